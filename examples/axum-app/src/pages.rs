//! The demo's HTML pages: the home page (sign-in button, Share Button, and for a signed-in
//! person the session check) and `/session` (the session check, reporting only).
//!
//! Every page carries a Content-Security-Policy with a fresh script nonce, so the session
//! check runs only because `doximity-share` puts the nonce on its script.

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum_doximity::DoximityUser;
use doximity_share::{OnChanged, SessionCheck, ShareButton, SignInButton};
use tower_doximity::DoximityAuth;

/// How the demo's pages are put together.
#[derive(Clone, Debug, Default)]
pub struct PageOptions {
    /// The share endpoint. `None`: Doximity's (the crate's default), with its script. `Some`:
    /// that endpoint (the embedded mock's `/share`) as a plain link, without the script, which
    /// a mock does not serve.
    pub share_endpoint: Option<String>,
}

/// What the pages need from the app.
#[derive(Clone)]
pub(crate) struct Pages {
    auth: Option<DoximityAuth>,
    options: PageOptions,
}

/// A page being built: its nonce and the origins it may frame.
struct Page {
    nonce: String,
    frame_origin: Option<String>,
}

impl Page {
    fn new() -> Self {
        let bytes: [u8; 16] = rand::random();
        Self {
            nonce: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            frame_origin: None,
        }
    }

    fn respond(self, title: &str, body: &str) -> Response {
        let mut response = Html(format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem }}
.doximity-share-button {{ display: inline-block; margin-top: .5rem }}
#session-status {{ color: #5b6878 }}
html[data-doximity-session="unchanged"] #session-status::after {{ content: "active" }}
html[data-doximity-session="changed"] #session-status::after {{ content: "ended or changed: sign in again" }}
html[data-doximity-session="error"] #session-status::after {{ content: "could not be checked" }}
</style></head>
<body>
<h1>{title}</h1>
{body}
<p><small>Doximity&reg; is a registered trademark of Doximity, Inc.</small></p>
</body></html>"#,
            title = escape(title),
        ))
        .into_response();
        let mut csp = format!(
            "script-src 'nonce-{}'; object-src 'none'; base-uri 'none'",
            self.nonce
        );
        if let Some(origin) = &self.frame_origin {
            csp.push_str("; frame-src ");
            csp.push_str(origin);
        }
        if let Ok(value) = HeaderValue::from_str(&csp) {
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, value);
        }
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

impl Pages {
    pub(crate) fn new(auth: Option<DoximityAuth>, options: PageOptions) -> Self {
        Self { auth, options }
    }

    /// `/`: the sign-in button and the Share Button; signed in, the session check too.
    pub(crate) fn home(&self, user: Option<&DoximityUser>) -> Response {
        let mut page = Page::new();
        let share = self.share_button(&page.nonce);
        let body = match user {
            Some(user) => {
                let check = self.session_check(&mut page, user, OnChanged::default());
                format!(
                    r#"<p>Signed in as <code>{sub}</code>.</p>
<ul><li><a href="/me">/me</a> (JSON)</li><li><a href="/session">/session</a> (your Doximity&reg; session)</li>
<li><a href="/profile">/profile</a> (asks for <code>profile:read:basic</code>)</li></ul>
<form method="post" action="/auth/doximity/logout"><button type="submit">Sign out</button></form>
<h2>Share</h2>
<p>{share}</p>
{check}"#,
                    sub = escape(user.sub()),
                )
            }
            None => format!(
                r#"<p>{sign_in}</p>
<h2>Share</h2>
<p>{share}</p>"#,
                sign_in = SignInButton::new().with_return_to("/me"),
            ),
        };
        page.respond("doximity-rs demo", &body)
    }

    /// `/session`: the session check, reporting its state on the page instead of acting.
    pub(crate) fn session(&self, user: &DoximityUser) -> Response {
        let mut page = Page::new();
        let check = self.session_check(&mut page, user, OnChanged::Report);
        let body = format!(
            r#"<p>Signed in as <code>{sub}</code>.</p>
<p>Your Doximity&reg; session: <span id="session-status"></span></p>
<p><a href="/">Home</a></p>
{check}"#,
            sub = escape(user.sub()),
        );
        page.respond("Your Doximity session", &body)
    }

    fn share_button(&self, nonce: &str) -> ShareButton {
        let mut button = ShareButton::new()
            .with_message("Sign in with Doximity® from Rust — tower, axum & tonic")
            .with_subject("doximity-rs demo")
            .with_nonce(nonce);
        if let Some(auth) = &self.auth {
            let mut url = auth.client().config().redirect_uri().clone();
            url.set_path("/");
            url.set_query(None);
            button = button.with_url(url.as_str());
        }
        match &self.options.share_endpoint {
            Some(endpoint) => button.with_endpoint(endpoint).without_script(),
            None => button,
        }
    }

    /// The session check for `user`, or a note saying why there is none.
    fn session_check(&self, page: &mut Page, user: &DoximityUser, on_changed: OnChanged) -> String {
        let Some(auth) = &self.auth else {
            return String::new();
        };
        let client = auth.client();
        let (Some(frame), Some(session_state)) = (
            client.check_session_iframe(),
            user.identity().session_state(),
        ) else {
            return "<p><small>No session check: the provider sent no <code>session_state</code> \
                    or advertises no <code>check_session_iframe</code>.</small></p>"
                .to_owned();
        };
        match SessionCheck::new(frame.as_str(), client.config().client_id(), session_state) {
            Ok(check) => {
                page.frame_origin = Some(check.origin().to_owned());
                check
                    .with_nonce(page.nonce.clone())
                    .with_on_changed(on_changed)
                    .to_string()
            }
            Err(e) => {
                tracing::warn!(error = %e, "no session check");
                String::new()
            }
        }
    }
}

pub(crate) fn escape(s: &str) -> String {
    doximity_share::escape::html(s).to_string()
}
