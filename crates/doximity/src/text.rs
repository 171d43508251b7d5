//! Text that came from the network, made safe to show in an error message or a log line.

/// The most characters of network text kept in an error or a log line.
pub const MAX_CHARS: usize = 200;

/// Escapes and bounds a string that came from the network (a callback parameter, a provider's
/// error body, a claim, a header) before it can reach an error's `Display` or a log line.
///
/// Control characters and the invisible characters that change how a line reads (line and
/// paragraph separators, bidirectional overrides, zero-width characters) are written as
/// escapes (`\n`, `\u{2028}`), never dropped, so the text shows what was sent but can never
/// start a new log line or hide part of itself. A backslash is doubled so an escape in the
/// output always means an escaped character. At most [`MAX_CHARS`] characters are kept, and
/// `…` marks a cut.
///
/// ```
/// assert_eq!(doximity::text::escape("ok\nINFO forged"), "ok\\nINFO forged");
/// ```
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_CHARS));
    for (i, c) in s.chars().enumerate() {
        if i == MAX_CHARS {
            out.push('…');
            break;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || is_invisible(c) => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// Formatting characters that are not `char::is_control` but still reorder, hide or break a
/// line when displayed.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}'
        | '\u{061c}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{2069}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_not_dropped() {
        assert_eq!(
            escape("bad\n2026-01-01 INFO forged"),
            "bad\\n2026-01-01 INFO forged"
        );
        assert_eq!(escape("a\r\tb\u{1b}[31m"), "a\\r\\tb\\u{1b}[31m");
        assert_eq!(escape("x\u{2028}y\u{202e}z"), "x\\u{2028}y\\u{202e}z");
        assert_eq!(escape("back\\nslash"), "back\\\\nslash");
        assert_eq!(
            escape("The user's request, \"denied\"."),
            "The user's request, \"denied\"."
        );
        for s in ["\n", "\r\n", "\u{85}", "\u{2028}", "\u{2029}", "\u{0}"] {
            let out = escape(&format!("x{s}y"));
            assert!(
                out.chars().all(|c| !c.is_control() && !is_invisible(c)),
                "{out:?}"
            );
        }
    }

    #[test]
    fn long_text_is_bounded() {
        let long = "a".repeat(10_000);
        let out = escape(&long);
        assert_eq!(out.chars().count(), MAX_CHARS + 1);
        assert!(out.ends_with('…'));
        assert_eq!(escape(&"b".repeat(MAX_CHARS)), "b".repeat(MAX_CHARS));
    }
}
