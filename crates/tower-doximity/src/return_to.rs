//! `return_to`: where the user lands after signing in. Only a same-origin path is accepted.

/// The longest `return_to` kept; anything longer becomes `/`.
pub const MAX_RETURN_TO_LEN: usize = 2048;

/// Accepts `candidate` only as a same-origin absolute path (with optional query and fragment);
/// anything else becomes `/`.
///
/// The rules, applied to the raw value *and* to its percent-decoded form (decoded repeatedly,
/// so double encoding does not hide anything):
///
/// - it starts with exactly one `/` (so never `//host`, which browsers read as another origin);
/// - no backslash anywhere (browsers treat `\` as `/`, so `/\evil` is `//evil`);
/// - no control character, no whitespace, no non-ASCII character (so no `／／evil` lookalikes and
///   no header splitting);
/// - no `.` or `..` path segment (a normaliser could turn `/.//evil` into `//evil`);
/// - at most [`MAX_RETURN_TO_LEN`] bytes.
///
/// A scheme (`https:`, `javascript:`, `data:`) can only appear after the leading `/`, where it
/// is a harmless path segment.
///
/// ```
/// use tower_doximity::sanitize_return_to;
/// assert_eq!(sanitize_return_to("/profile?tab=1"), "/profile?tab=1");
/// assert_eq!(sanitize_return_to("//evil.example"), "/");
/// assert_eq!(sanitize_return_to("https://evil.example"), "/");
/// ```
pub fn sanitize_return_to(candidate: &str) -> &str {
    if is_safe_path(candidate) {
        candidate
    } else {
        "/"
    }
}

fn is_safe_path(candidate: &str) -> bool {
    if candidate.is_empty() || candidate.len() > MAX_RETURN_TO_LEN {
        return false;
    }
    let mut current = std::borrow::Cow::Borrowed(candidate);
    // Decode until stable (at most a few rounds): every form must pass.
    for _ in 0..4 {
        if !is_safe_form(&current) {
            return false;
        }
        let decoded = match percent_encoding::percent_decode_str(&current).decode_utf8() {
            Ok(d) => d.into_owned(),
            // Percent-encoded bytes that are not UTF-8: nothing a same-origin link needs.
            Err(_) => return false,
        };
        if decoded == *current {
            return true;
        }
        current = std::borrow::Cow::Owned(decoded);
    }
    false
}

fn is_safe_form(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'/') || bytes.get(1) == Some(&b'/') {
        return false;
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_graphic() && c != '\\' && c != '"' && c != '<' && c != '>')
    {
        return false;
    }
    let path = s.split(['?', '#']).next().unwrap_or_default();
    !path.split('/').any(|seg| seg == "." || seg == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_forms_land_on_root() {
        let hostile = [
            "",
            "//evil.example",
            "///evil.example",
            "////evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "\\/evil.example",
            "/\\/evil.example",
            "https://evil.example",
            "http://evil.example",
            "http:/evil.example",
            "http:evil.example",
            "HTTPS://evil.example",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox(1)",
            "evil.example",
            "evil.example/path",
            "%2F%2Fevil.example",
            "/%2F%2Fevil.example",
            "/%2fevil.example",
            "/%5Cevil.example",
            "/%5cevil.example",
            "%5C%5Cevil.example",
            "/%252F%252Fevil.example",
            "/%25252F%25252Fevil.example",
            "/\tevil.example",
            "/%09/evil.example",
            "/%0a/evil.example",
            "/%0d%0aSet-Cookie:x=1",
            "/x\r\nSet-Cookie: a=b",
            "/x\nLocation: //evil",
            " /x",
            "/x y",
            "/x%20y",
            "\t/x",
            "/x\u{0}",
            "/x%00",
            "/\u{7f}evil",
            "／／evil.example",
            "/／evil.example",
            "/%EF%BC%8Fevil.example",
            "/\u{2215}\u{2215}evil.example",
            "/.//evil.example",
            "/./evil",
            "/../evil",
            "/a/../..//evil.example",
            "/%2e%2e/%2e%2e//evil",
            "/%2E/%2Fevil",
            "/%ff",
            "/\"onmouseover=alert(1)",
            "/<script>",
            "/x\u{200b}",
            "/\u{a0}evil",
            "@evil.example",
            "?next=//evil",
            "#//evil",
            ".//evil",
        ];
        assert!(hostile.len() >= 50, "{} forms", hostile.len());
        for h in hostile {
            assert_eq!(sanitize_return_to(h), "/", "{h:?} was accepted");
        }
        let long = format!("/{}", "a".repeat(MAX_RETURN_TO_LEN));
        assert_eq!(sanitize_return_to(&long), "/");
    }

    #[test]
    fn same_origin_paths_are_kept() {
        for good in [
            "/",
            "/me",
            "/profile?tab=1",
            "/a/b#c",
            "/a/b?x=1&y=%2F",
            "/search?q=a+b",
            "/https://not-a-scheme-here",
            "/a.b/c..d/.e",
            "/~user/page",
        ] {
            assert_eq!(sanitize_return_to(good), good);
        }
    }
}
