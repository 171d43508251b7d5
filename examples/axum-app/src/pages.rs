//! The demo's HTML pages: the home page (signed out: Doximity's sign-in, verify and sign-up
//! buttons and the Share Button; signed in: who, the scopes, when the session ends, the session
//! check's live status and a sign-out button), `/session` (the session check, reporting only),
//! and the pages a person sees when something goes wrong: access denied, provider unavailable,
//! "your session ended", and a sign-in that did not complete.
//!
//! Every page carries a Content-Security-Policy with a fresh script nonce, so the session
//! check runs only because `doximity-share` puts the nonce on its script. Nothing is loaded
//! from another site: the styles are inline, the photo comes from the provider (the embedded
//! mock serves it on this machine).

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum_doximity::DoximityUser;
use doximity::UserInfo;
use doximity::scope::ProfileReadBasic;
use doximity_share::{OnChanged, SessionCheck, ShareButton, SignInButton, SignInKind};
use http_body_util::Full;
use tower_doximity::{AuthError, ClientKind, DoximityAuth, Refusal, default_response};

/// The route that steps a signed-in person up to `profile:read:basic` and comes back home.
pub(crate) const SHOW_PROFILE_PATH: &str = "/show-profile";
/// The page a person lands on when the session check found their Doximity session ended.
pub(crate) const SESSION_ENDED_PATH: &str = "/session-ended";
/// Where the session check re-checks a changed session (then on to the layer's login route).
pub(crate) const RECHECK_PATH: &str = "/session-recheck";

/// How the demo's pages are put together.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PageOptions {
    /// The share endpoint. `None`: Doximity's (the crate's default), with its script. `Some`:
    /// that endpoint (the embedded mock's `/share`) as a plain link, without the script, which
    /// a mock does not serve.
    pub share_endpoint: Option<String>,
    /// The layer's absolute session timeout, to say when a session ends at the latest.
    pub absolute_timeout: Duration,
    /// The layer's idle timeout, to say how long a session survives without activity.
    pub idle_timeout: Duration,
}

impl Default for PageOptions {
    /// Doximity's share endpoint and the layer's default timeouts (12 hours absolute, 30
    /// minutes idle).
    fn default() -> Self {
        Self {
            share_endpoint: None,
            absolute_timeout: crate::ABSOLUTE_TIMEOUT,
            idle_timeout: crate::IDLE_TIMEOUT,
        }
    }
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
    status: StatusCode,
}

const STYLE: &str = "
*{box-sizing:border-box}
body{margin:0;background:#f3f5f8;color:#1d2733;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}
header,main,footer{max-width:40rem;margin:0 auto;padding:0 1rem}
header{padding-top:1.25rem;padding-bottom:.25rem}
header a{color:#1d2733;font-weight:700;text-decoration:none}
main>section{background:#fff;border:1px solid #d5dbe3;border-radius:10px;padding:1.25rem;margin:1rem 0}
h1{font-size:1.5rem;line-height:1.25;margin:0 0 .75rem}
h2{font-size:1.1rem;margin:0 0 .5rem}
p{margin:.5rem 0}
a{color:#0b57a4}
code{background:#eef1f5;border-radius:4px;padding:0 .25rem;overflow-wrap:anywhere;font-size:.9em}
.lead{font-size:1.05rem}
.muted,footer{color:#4a5565;font-size:.9rem}
footer{padding-bottom:2rem}
.actions{display:flex;flex-wrap:wrap;gap:.75rem;align-items:center;margin-top:1rem}
.actions.stack{flex-direction:column;align-items:stretch;max-width:18rem}
.button,button{display:inline-flex;align-items:center;justify-content:center;min-height:44px;padding:.5rem 1.1rem;border-radius:6px;border:1px solid #0b57a4;background:#0b57a4;color:#fff;font-family:inherit;font-size:1rem;font-weight:600;line-height:1.2;text-decoration:none;cursor:pointer}
.button.secondary,button.secondary{background:#fff;color:#0b57a4}
.person{display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
.person img{width:96px;height:96px;border-radius:50%;border:1px solid #d5dbe3;background:#eef1f5}
.person .name{font-size:1.25rem;font-weight:700;margin:0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1rem;margin:1rem 0 0}
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
ul.scopes{margin:0;padding:0;list-style:none;display:flex;flex-wrap:wrap;gap:.35rem}
#session-status::after{content:'checking…'}
html[data-doximity-session='unchanged'] #session-status::after{content:'active'}
html[data-doximity-session='changed'] #session-status::after{content:'ended or changed'}
html[data-doximity-session='error'] #session-status::after{content:'could not be checked'}
.error h1{color:#8a1c1c}
@media (max-width:420px){dl{grid-template-columns:1fr}dd{margin-bottom:.4rem}}
";

impl Page {
    fn new() -> Self {
        let bytes: [u8; 16] = rand::random();
        Self {
            nonce: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            frame_origin: None,
            status: StatusCode::OK,
        }
    }

    fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    fn respond(self, title: &str, body: &str) -> Response {
        let (status, headers, html) = self.finish(title, body);
        (status, headers, Html(html)).into_response()
    }

    /// The status, the headers (CSP with the nonce, `no-store`) and the document.
    fn finish(self, title: &str, body: &str) -> (StatusCode, HeaderMap, String) {
        let mut headers = HeaderMap::new();
        let mut csp = format!(
            "script-src 'nonce-{}'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
            self.nonce
        );
        if let Some(origin) = &self.frame_origin {
            csp.push_str("; frame-src ");
            csp.push_str(origin);
        }
        if let Ok(value) = HeaderValue::from_str(&csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, value);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        (self.status, headers, document(title, body))
    }
}

/// The whole document around `body` (no external asset: the style is inline).
fn document(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{STYLE}</style></head>
<body>
<header><a href="/">Clinician sign-in demo</a></header>
<main>
{body}
</main>
<footer><p>Doximity&reg; is a registered trademark of Doximity, Inc. This demo of the
doximity-rs crates is not made or endorsed by Doximity.</p></footer>
</body></html>"#,
        title = escape(title),
    )
}

impl Pages {
    pub(crate) fn new(auth: Option<DoximityAuth>, options: PageOptions) -> Self {
        Self { auth, options }
    }

    /// `/`: signed out, the buttons and a line on what the demo shows; signed in, who, the
    /// scopes, when the session ends, the session check and the sign-out button.
    pub(crate) async fn home(&self, user: Option<&DoximityUser>) -> Response {
        match user {
            Some(user) => self.home_signed_in(user).await,
            None => self.home_signed_out(),
        }
    }

    fn home_signed_out(&self) -> Response {
        let page = Page::new();
        let share = self.share_button(&page.nonce);
        let body = format!(
            r#"<section>
<h1>Sign in as a verified clinician</h1>
<p class="lead">This app lets only verified clinicians in, with Doximity&reg;: one click, no
password here, and it learns only what you allow.</p>
<p class="muted">{mode}</p>
<div class="actions stack">
{sign_in}
{verify}
{create}
</div>
</section>
<section>
<h2>Share this demo</h2>
<p>{share}</p>
</section>"#,
            mode = self.mode_line(),
            sign_in = SignInButton::new()
                .with_return_to("/")
                .with_width(doximity_share::Width::Percent(100)),
            verify = SignInButton::new()
                .kind(SignInKind::Verify)
                .with_return_to("/")
                .with_width(doximity_share::Width::Percent(100)),
            create = SignInButton::new()
                .kind(SignInKind::Create)
                .with_return_to("/")
                .with_width(doximity_share::Width::Percent(100)),
        );
        page.respond("Clinician sign-in demo", &body)
    }

    /// Says which provider the buttons lead to.
    fn mode_line(&self) -> &'static str {
        if self.options.share_endpoint.is_some() {
            "Running with the built-in mock provider: nothing leaves this computer. Pick one of \
             four demo clinicians on its sign-in page; no account is needed."
        } else {
            "The buttons lead to Doximity's own sign-in page."
        }
    }

    async fn home_signed_in(&self, user: &DoximityUser) -> Response {
        let mut page = Page::new();
        let share = self.share_button(&page.nonce);
        let check = self.session_check(&mut page, user, self.recheck());
        let identity = user.identity();
        let who = if identity.has_scope::<ProfileReadBasic>() {
            match identity.profile().await {
                Ok(profile) => person(&profile),
                Err(e) => {
                    tracing::warn!(error = %e, "no profile for the home page");
                    format!(
                        r#"<p>Signed in as Doximity&reg; member <code>{sub}</code>.</p>
<p class="muted">Your profile could not be fetched just now ({reason}); reload the page to try
again.</p>"#,
                        sub = escape(user.sub()),
                        reason = escape(&e.to_string()),
                    )
                }
            }
        } else {
            format!(
                r#"<p>Signed in as Doximity&reg; member <code id="sub">{sub}</code>.</p>
<p class="muted">This app asked only for <code>openid</code>: it knows that a verified clinician
signed in, through an id that means nothing elsewhere, but not who you are. Showing your name
needs one more permission, <code>profile:read:basic</code>.</p>
<div class="actions"><a class="button" id="step-up" href="{show}">Show my name and photo</a></div>"#,
                sub = escape(user.sub()),
                show = SHOW_PROFILE_PATH,
            )
        };
        let scopes: String = user
            .scopes()
            .to_string()
            .split_whitespace()
            .map(|s| format!("<li><code>{}</code></li>", escape(s)))
            .collect();
        let signed_in_at = identity.signed_in_at();
        let ends_at = signed_in_at.saturating_add(secs(self.options.absolute_timeout));
        let body = format!(
            r#"<section>
<h1>You are signed in</h1>
{who}
<dl>
<dt>Permissions granted</dt><dd><ul class="scopes" id="scopes">{scopes}</ul></dd>
<dt>Signed in</dt><dd>{signed_in}</dd>
<dt>Session ends</dt><dd id="session-ends">{ends} at the latest, or after {idle} minutes without a visit</dd>
<dt>Doximity&reg; session</dt><dd><span id="session-status" role="status" aria-live="polite"></span></dd>
</dl>
<form class="actions" method="post" action="/auth/doximity/logout">
<button type="submit" id="sign-out">Sign out</button>
<a class="button secondary" href="/me">Your id as JSON</a>
</form>
</section>
<section>
<h2>Share this demo</h2>
<p>{share}</p>
</section>
{check}"#,
            signed_in = utc(signed_in_at),
            ends = utc(ends_at),
            idle = self.options.idle_timeout.as_secs() / 60,
        );
        page.respond("Signed in · Clinician sign-in demo", &body)
    }

    /// `/session`: the session check, reporting its state on the page instead of acting.
    pub(crate) fn session(&self, user: &DoximityUser) -> Response {
        let mut page = Page::new();
        let check = self.session_check(&mut page, user, OnChanged::Report);
        let body = format!(
            r#"<section>
<h1>Your Doximity&reg; session</h1>
<p>Signed in as <code>{sub}</code>.</p>
<p>Your Doximity&reg; session: <span id="session-status" role="status" aria-live="polite"></span></p>
<p class="muted">This page only reports what the session check says; the home page acts on it.</p>
<div class="actions"><a class="button secondary" href="/">Home</a></div>
</section>
{check}"#,
            sub = escape(user.sub()),
        );
        page.respond("Your Doximity session", &body)
    }

    /// `/session-ended`: the session check found the Doximity session gone, so the session here
    /// ended too.
    pub(crate) fn session_ended() -> Response {
        error_page(
            StatusCode::OK,
            "Your session ended",
            "You signed out of Doximity® elsewhere, or your Doximity® session expired, so this \
             app signed you out as well. Nothing is lost: sign in again to continue.",
            true,
        )
    }

    /// The re-check action: through [`RECHECK_PATH`], which lands on [`SESSION_ENDED_PATH`]
    /// when the provider's session is gone.
    fn recheck(&self) -> OnChanged {
        OnChanged::Recheck {
            login_path: RECHECK_PATH.to_owned(),
        }
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
            return "<p class=\"muted\">No session check: the provider sent no \
                    <code>session_state</code> or advertises no \
                    <code>check_session_iframe</code>.</p>"
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

/// The profile card: photo, name, credentials, specialty, then what the other granted scopes
/// gave (`profile_uuid`, the email addresses, the permissions).
fn person(profile: &UserInfo) -> String {
    let name = profile.name.as_deref().unwrap_or("Name not shared");
    let photo = profile
        .profile_photo_url
        .as_deref()
        .filter(|url| url.starts_with("https://") || url.starts_with("http://"))
        .map(|url| {
            format!(
                r#"<img id="photo" src="{}" alt="Photo of {}" width="96" height="96">"#,
                escape(url),
                escape(name)
            )
        })
        .unwrap_or_default();
    let credentials = profile
        .credentials
        .as_deref()
        .map(|c| format!(", {}", escape(c)))
        .unwrap_or_default();
    let specialty = profile
        .specialty
        .as_deref()
        .map(|s| format!(r#"<p id="specialty">{}</p>"#, escape(s)))
        .unwrap_or_default();
    format!(
        r#"<div class="person">{photo}<div><p class="name" id="name">{name}{credentials}</p>{specialty}
<p class="muted">Doximity&reg; member <code id="sub">{sub}</code></p></div></div>{claims}"#,
        name = escape(name),
        sub = escape(&profile.sub),
        claims = granted_claims(profile),
    )
}

/// The claims beyond the basic profile, each shown only when its scope gave it:
/// `profile_uuid` (`profile:read:basic`), `primary_email` and `emails`
/// (`profile:read:email`), `permissions` (`profile:read:permissions`).
fn granted_claims(profile: &UserInfo) -> String {
    let list = |id: &str, items: &[String]| {
        let items: String = items
            .iter()
            .map(|i| format!("<li>{}</li>", escape(i)))
            .collect();
        format!(r#"<ul id="{id}">{items}</ul>"#)
    };
    let mut rows = String::new();
    if let Some(uuid) = &profile.profile_uuid {
        rows.push_str(&format!(
            r#"<dt>Profile id</dt><dd><code id="profile-uuid">{}</code></dd>"#,
            escape(uuid)
        ));
    }
    if let Some(email) = &profile.primary_email {
        rows.push_str(&format!(
            r#"<dt>Primary email</dt><dd id="primary-email">{}</dd>"#,
            escape(email)
        ));
    }
    if let Some(emails) = &profile.emails {
        rows.push_str(&format!(
            "<dt>Email addresses</dt><dd>{}</dd>",
            list("emails", emails)
        ));
    }
    if let Some(permissions) = &profile.permissions {
        rows.push_str(&format!(
            "<dt>Doximity&reg; permissions</dt><dd>{}</dd>",
            list("permissions", permissions)
        ));
    }
    if rows.is_empty() {
        String::new()
    } else {
        format!(r#"<dl id="profile-claims">{rows}</dl>"#)
    }
}

/// A page for something that went wrong, with a way back: a sign-in button (when `sign_in`)
/// and the home page.
fn error_page(status: StatusCode, title: &str, message: &str, sign_in: bool) -> Response {
    let (status, headers, html) = error_parts(status, title, message, sign_in);
    (status, headers, Html(html)).into_response()
}

fn error_parts(
    status: StatusCode,
    title: &str,
    message: &str,
    sign_in: bool,
) -> (StatusCode, HeaderMap, String) {
    let button = if sign_in {
        format!(
            "{}",
            SignInButton::new()
                .with_return_to("/")
                .with_width(doximity_share::Width::Pixels(220))
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<section class="error">
<h1>{title}</h1>
<p>{message}</p>
<div class="actions">{button}<a class="button secondary" href="/">Back to the home page</a></div>
</section>"#,
        title = escape(title),
        message = escape(message),
    );
    Page::new().with_status(status).finish(title, &body)
}

fn provider_unavailable_parts(reason: &str) -> (StatusCode, HeaderMap, String) {
    let mut message = "Doximity® did not answer, so signing in cannot work right now. This is \
                       usually brief: try again in a moment."
        .to_owned();
    if !reason.is_empty() {
        message.push_str(" (Details: ");
        message.push_str(reason);
        message.push(')');
    }
    error_parts(
        StatusCode::SERVICE_UNAVAILABLE,
        "Doximity® is unavailable",
        &message,
        true,
    )
}

/// The demo's refusal strategy: for a browser whose sign-in failed, a page a person
/// understands (access denied, provider unavailable, or a sign-in that did not complete),
/// with a way back. Every other refusal (gRPC, API clients, the redirect to sign in, a missing
/// scope) is the layer's default, unchanged.
pub(crate) fn refuse(refusal: &Refusal<'_>) -> axum::http::Response<Full<Bytes>> {
    let error = refusal.error();
    if refusal.kind() != ClientKind::Browser
        || refusal.login_location().is_some()
        || matches!(
            error,
            AuthError::Unauthenticated | AuthError::InsufficientScope { .. }
        )
    {
        return default_response(refusal);
    }
    let (status, headers, html) = match error.code() {
        "access_denied" => error_parts(
            StatusCode::FORBIDDEN,
            "Sign-in cancelled: access denied",
            "You chose Deny on Doximity's sign-in page, so this app was not given your \
             identity and nothing was shared. You can sign in again at any time.",
            true,
        ),
        // A script or a client that asked for no HTML keeps the layer's JSON answer (with
        // `Retry-After`); a person gets the page, with the reason.
        "provider_unavailable" if !refusal.accepts_html() => return default_response(refusal),
        "provider_unavailable" => {
            let (status, mut headers, html) = provider_unavailable_parts(&error.to_string());
            if let Some(secs) = error.retry_after()
                && let Ok(v) = HeaderValue::from_str(&secs.to_string())
            {
                headers.insert(header::RETRY_AFTER, v);
            }
            (status, headers, html)
        }
        _ => error_parts(
            error.status(),
            "Sign-in did not complete",
            &format!("{error}. Please start again from the home page."),
            true,
        ),
    };
    let mut response = axum::http::Response::new(Full::new(Bytes::from(html)));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// `2026-12-03 07:45 UTC` for epoch seconds (the proleptic Gregorian calendar).
pub(crate) fn utc(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let rem = epoch.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

pub(crate) fn escape(s: &str) -> String {
    doximity_share::escape::html(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_796_283_900), "2026-12-03 07:45 UTC");
    }
}
