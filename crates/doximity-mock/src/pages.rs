//! The HTML the provider shows a person. Every interpolated value is escaped.

use std::fmt::Write as _;

use axum::response::{IntoResponse as _, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::model::Clinician;

/// Escapes text for HTML element content and quoted attribute values (`&` `<` `>` `"` `'`
/// become character references), as the Doximity components of `doximity-share` do.
pub(crate) fn escape(text: &str) -> String {
    doximity_share::escape::html(text).to_string()
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
background:#f4f6f9;color:#1d2733;margin:0;padding:2rem 1rem}\
main{max-width:30rem;margin:0 auto;background:#fff;border-radius:10px;\
box-shadow:0 2px 10px rgba(0,0,0,.08);padding:1.75rem}\
main.compact{max-width:22rem;padding:1rem}\
h1{font-size:1.35rem;margin:0 0 .75rem}p{line-height:1.45}\
.muted{color:#5b6878;font-size:.9rem}code{background:#eef1f5;padding:0 .25rem;border-radius:3px}\
ul.scopes{padding-left:1.2rem}fieldset{border:0;padding:0;margin:1rem 0}\
label.who{display:flex;gap:.6rem;align-items:flex-start;padding:.55rem;border:1px solid #d8dee6;\
border-radius:6px;margin-bottom:.5rem;cursor:pointer}label.who:hover{background:#f7f9fc}\
.buttons{display:flex;gap:.75rem;margin-top:1rem}\
button{font-size:1rem;padding:.55rem 1.2rem;border-radius:6px;border:1px solid #1657c7;cursor:pointer}\
button.approve{background:#1a64e0;color:#fff}button.deny{background:#fff;color:#1657c7}\
.banner{background:#fff7e0;border:1px solid #f0d890;border-radius:6px;padding:.5rem .75rem;\
font-size:.85rem;margin-bottom:1rem}";

/// An HTML response that may not be framed by anyone.
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; \
             base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    response
}

pub(crate) fn document(title: &str, main_class: &str, content: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><style>{STYLE}</style></head>\
<body><main class=\"{main_class}\">{content}</main></body></html>\n",
        title = escape(title),
    )
}

/// An error page (never a redirect: used when the redirect target cannot be trusted).
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let content = format!(
        "<h1>{}</h1><p>{}</p><p class=\"muted\">Doximity mock provider</p>",
        escape(title),
        escape(message)
    );
    html(status, document(title, "", &content))
}

/// Which landing page the authorization request asked for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PageVariant {
    /// The usual sign-in (`type=login`, the default).
    Login,
    /// The older API's `type=verify` landing page.
    Verify,
    /// `prompt=create`: account creation, then the same flow.
    Create,
}

/// Why the authorization page asks a signed-in person to authenticate again.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Confirm {
    /// `prompt=login`, or a sign-in older than `max_age`: confirm it is you.
    Identity,
    /// A higher level (`acr_values`) than the person signed in at.
    Level(u8),
}

/// What the authorization page shows.
pub(crate) struct AuthorizePage<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) scopes: &'a [String],
    pub(crate) clinicians: &'a [Clinician],
    pub(crate) selected: Option<&'a str>,
    pub(crate) csrf_token: &'a str,
    pub(crate) variant: PageVariant,
    pub(crate) popup: bool,
    /// Set when the person has a provider session but must authenticate again.
    pub(crate) confirm: Option<Confirm>,
}

pub(crate) fn scope_text(scope: &str) -> &'static str {
    match scope {
        "openid" => "Confirm your identity (OpenID Connect)",
        "profile:read:basic" => "Read your name, credentials, photo and specialty",
        "profile:read:email" => "Read your email address",
        "search" => "Search the Doximity directory",
        "colleagues" => "Read your colleagues list",
        _ => "Unknown permission",
    }
}

/// The "Sign in with Doximity (mock)" page.
pub(crate) fn authorize_page(page: &AuthorizePage<'_>) -> Response {
    let title = "Sign in with Doximity (mock)";
    let mut content = String::new();
    let heading = match page.variant {
        PageVariant::Login => "Sign in with Doximity (mock)",
        PageVariant::Verify => "Verify your identity with Doximity (mock)",
        PageVariant::Create => "Create your Doximity account (mock)",
    };
    let _ = write!(content, "<h1>{}</h1>", escape(heading));
    if page.variant == PageVariant::Create {
        content.push_str(
            "<p class=\"banner\">This mock does not really create accounts: pick the demo \
             clinician who stands for the new account.</p>",
        );
    }
    match page.confirm {
        None => {}
        Some(Confirm::Identity) => content.push_str(
            "<p class=\"banner\">The application asks you to confirm it is you: sign in \
             again.</p>",
        ),
        Some(Confirm::Level(level)) => {
            let _ = write!(
                content,
                "<p class=\"banner\">The application asks for a stronger sign-in (level \
                 {level}): confirm it is you.</p>"
            );
        }
    }
    let _ = write!(
        content,
        "<p>The application <code>{}</code> would like to:</p><ul class=\"scopes\">",
        escape(page.client_id)
    );
    for scope in page.scopes {
        let _ = write!(
            content,
            "<li>{} <span class=\"muted\">(<code>{}</code>)</span></li>",
            escape(scope_text(scope)),
            escape(scope)
        );
    }
    content.push_str("</ul>");
    content.push_str("<form method=\"post\" action=\"/oauth/authorize\">");
    let _ = write!(
        content,
        "<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">",
        escape(page.csrf_token)
    );
    content.push_str("<fieldset><legend>Continue as a demo clinician:</legend>");
    for (index, clinician) in page.clinicians.iter().enumerate() {
        let checked = match page.selected {
            Some(sub) => sub == clinician.sub,
            None => index == 0,
        };
        let _ = write!(
            content,
            "<label class=\"who\"><input type=\"radio\" name=\"sub\" value=\"{sub}\"{checked}>\
             <span><strong>{name}, {credentials}</strong><br>\
             <span class=\"muted\">{specialty} · {email}</span></span></label>",
            sub = escape(&clinician.sub),
            checked = if checked { " checked" } else { "" },
            name = escape(&clinician.name),
            credentials = escape(&clinician.credentials),
            specialty = escape(&clinician.specialty),
            email = escape(&clinician.email),
        );
    }
    content.push_str(
        "</fieldset><div class=\"buttons\">\
         <button class=\"approve\" type=\"submit\" name=\"action\" value=\"approve\">Approve</button>\
         <button class=\"deny\" type=\"submit\" name=\"action\" value=\"deny\">Deny</button>\
         </div></form>",
    );
    if !page.popup {
        content.push_str(
            "<p class=\"muted\">This is a mock of Doximity's sign-in for development and \
             tests. No real account is used.</p>",
        );
    }
    html(
        StatusCode::OK,
        document(title, if page.popup { "compact" } else { "" }, &content),
    )
}

/// The `check_session_iframe` page (OpenID Connect Session Management 1.0 §4.2).
///
/// It must be framable by relying parties, so it carries no `X-Frame-Options`;
/// its script runs under a per-response CSP nonce.
pub(crate) fn check_session_page(nonce: &str) -> Response {
    let body = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Doximity mock: check_session_iframe</title></head>
<body>
<script nonce="{nonce}">
(function () {{
  "use strict";
  function readCookie(name) {{
    var parts = document.cookie ? document.cookie.split(";") : [];
    for (var i = 0; i < parts.length; i++) {{
      var kv = parts[i].trim();
      var eq = kv.indexOf("=");
      if (eq > 0 && kv.slice(0, eq) === name) {{ return decodeURIComponent(kv.slice(eq + 1)); }}
    }}
    return "";
  }}
  function hex(buffer) {{
    return Array.prototype.map.call(new Uint8Array(buffer), function (b) {{
      return ("0" + b.toString(16)).slice(-2);
    }}).join("");
  }}
  async function browserState() {{
    var value = readCookie("mock_op_browser_state");
    if (!value) {{ return ""; }}
    // The provider may have ended the session without the browser knowing
    // (sign-out elsewhere): ask it whether this browser state is still live.
    var response = await fetch("/oauth/session_state/alive?browser_state=" + encodeURIComponent(value),
      {{ credentials: "same-origin", cache: "no-store" }});
    var body = await response.json();
    return body.active ? value : "";
  }}
  async function check(clientId, sessionState, origin) {{
    var dot = sessionState.lastIndexOf(".");
    if (dot < 0) {{ return "error"; }}
    var salt = sessionState.slice(dot + 1);
    var state = await browserState();
    var data = new TextEncoder().encode(clientId + " " + origin + " " + state + " " + salt);
    var digest = await crypto.subtle.digest("SHA-256", data);
    return (hex(digest) + "." + salt) === sessionState ? "unchanged" : "changed";
  }}
  window.addEventListener("message", function (event) {{
    var reply = function (answer) {{ event.source.postMessage(answer, event.origin); }};
    if (typeof event.data !== "string") {{ reply("error"); return; }}
    var space = event.data.lastIndexOf(" ");
    if (space <= 0) {{ reply("error"); return; }}
    check(event.data.slice(0, space), event.data.slice(space + 1), event.origin)
      .then(reply, function () {{ reply("error"); }});
  }}, false);
}})();
</script>
</body></html>
"#
    );
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(csp) = HeaderValue::from_str(&format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; connect-src 'self'"
    )) {
        headers.insert(HeaderName::from_static("content-security-policy"), csp);
    }
    response
}

/// The `/share` page: shows what a Share button sent.
pub(crate) fn share_page(
    url: Option<&str>,
    message: Option<&str>,
    subject: Option<&str>,
) -> Response {
    let row = |name: &str, value: Option<&str>| {
        format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
            escape(name),
            value.map_or_else(|| "<em>(none)</em>".to_owned(), escape)
        )
    };
    let content = format!(
        "<h1>Share on Doximity (mock)</h1><p>The share button sent:</p>\
         <table>{}{}{}</table><p class=\"muted\">Nothing is posted anywhere.</p>",
        row("url", url),
        row("subject", subject),
        row("message", message)
    );
    html(
        StatusCode::OK,
        document("Share on Doximity (mock)", "", &content),
    )
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
