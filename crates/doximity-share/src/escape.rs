//! Escaping, one function per context. Every value a component renders goes through exactly
//! one of these, chosen by where it lands:
//!
//! | context | escaper | what it does |
//! |---|---|---|
//! | element text, double-quoted attribute value | [`html`] | `&` `<` `>` `"` `'` become character references |
//! | URL query component | [`query`] | everything but `A-Z a-z 0-9 - . _ ~` is percent-encoded (UTF-8) |
//! | JavaScript string inside `<script>` | [`js_string`] | a JSON string literal that also escapes `<` `>` `&` U+2028 U+2029 |
//!
//! A URL built with [`query`] is then written into an attribute with [`html`] (so `&` between
//! parameters becomes `&amp;`, which the browser turns back into `&`).

use std::fmt::{self, Display, Write as _};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The characters a query component keeps as they are: RFC 3986's unreserved set.
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Escapes `text` for HTML element content or a double-quoted attribute value.
///
/// ```
/// assert_eq!(
///     doximity_share::escape::html(r#"<a href="x">'&'</a>"#).to_string(),
///     "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
/// );
/// ```
pub fn html(text: &str) -> impl Display + '_ {
    Html(text)
}

/// Percent-encodes `text` as one URL query component (a name or a value): spaces become
/// `%20`, and `&`, `=`, `#`, `+` and every non-ASCII byte are encoded.
///
/// ```
/// assert_eq!(
///     doximity_share::escape::query("a b&c=d/é").to_string(),
///     "a%20b%26c%3Dd%2F%C3%A9"
/// );
/// ```
pub fn query(text: &str) -> impl Display + '_ {
    utf8_percent_encode(text, QUERY_COMPONENT)
}

/// Writes `text` as a JavaScript string literal (double quotes included) that is safe inside
/// an HTML `<script>` element: valid JSON, with `<`, `>` and `&` written as `\u003c`,
/// `\u003e`, `\u0026` (so neither `</script>` nor `<!--` can appear) and the line separators
/// U+2028 and U+2029 escaped (older engines treat them as line ends inside strings).
///
/// ```
/// assert_eq!(
///     doximity_share::escape::js_string("</script>\"\u{2028}").to_string(),
///     r#""\u003c/script\u003e\"\u2028""#
/// );
/// ```
pub fn js_string(text: &str) -> impl Display + '_ {
    JsString(text)
}

struct Html<'a>(&'a str);

impl Display for Html<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

struct JsString<'a>(&'a str);

impl Display for JsString<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\0'..='\u{1f}' | '\u{7f}' => {
                    write!(f, "\\u{:04x}", u32::from(c))?;
                }
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_the_five_characters_and_nothing_else() {
        assert_eq!(html("plain é ®").to_string(), "plain é ®");
        assert_eq!(html("&<>\"'").to_string(), "&amp;&lt;&gt;&quot;&#39;");
        assert_eq!(html("").to_string(), "");
    }

    #[test]
    fn query_keeps_only_unreserved_characters() {
        assert_eq!(query("AZaz09-._~").to_string(), "AZaz09-._~");
        assert_eq!(query("+ ?#&=%").to_string(), "%2B%20%3F%23%26%3D%25");
    }

    #[test]
    fn js_string_is_json_without_markup_characters() {
        assert_eq!(js_string("a\\b\n\u{0}").to_string(), r#""a\\b\n\u0000""#);
        assert_eq!(
            js_string("<!--&-->").to_string(),
            r#""\u003c!--\u0026--\u003e""#
        );
        assert_eq!(js_string("\u{2029}").to_string(), r#""\u2029""#);
    }
}
