//! HTML helpers for Doximity: the Share Button, the sign-in buttons and the session check.
//!
//! Every component is a small builder that renders itself with [`Display`](std::fmt::Display),
//! so it drops into any template (`format!`, askama, maud's `PreEscaped`, …); with the `axum`
//! feature each one is also an `IntoResponse` (an HTML response). Every value it writes is
//! escaped for the place it lands (see [`escape`]).
//!
//! # Tutorial
//!
//! A page with a sign-in button, a Share Button and, for a signed-in person, the session
//! check:
//!
//! ```
//! use doximity_share::{OnChanged, SessionCheck, ShareButton, SignInButton};
//!
//! // 1. "Sign in with Doximity®": a link to the layer's login route, coming back to /me.
//! let sign_in = SignInButton::new().with_return_to("/me");
//! assert_eq!(sign_in.href(), "/auth/doximity/login?return_to=%2Fme");
//!
//! // 2. A Share Button for this page, with a message and a subject.
//! let share = ShareButton::new()
//!     .with_url("https://app.example/articles/42")
//!     .with_message("Worth a read")
//!     .with_subject("Measles in Ohio");
//! assert!(share.share_url().ends_with("?url=https%3A%2F%2Fapp.example%2Farticles%2F42&message=Worth%20a%20read&subject=Measles%20in%20Ohio"));
//!
//! // 3. Signed in: watch the Doximity session. `check_session_iframe` comes from discovery
//! //    (`doximity::Client::check_session_iframe`), `session_state` from the callback.
//! let check = SessionCheck::new(
//!     "https://auth.doximity.com/oauth/session_state",
//!     "my-client-id",
//!     "session-state-from-the-callback",
//! )?
//! .with_on_changed(OnChanged::default()) // re-check through the login route
//! .with_nonce("per-response-nonce");     // for `script-src 'nonce-…'`
//!
//! let page = format!("<!doctype html><title>Demo</title>{sign_in}\n{share}\n{check}");
//! assert!(page.contains(">Sign in with Doximity®</a>"));
//! assert!(page.contains("aria-label=\"Share via Doximity\""));
//! assert!(page.contains("<script nonce=\"per-response-nonce\">"));
//! # Ok::<(), doximity_share::InvalidProviderUrl>(())
//! ```
//!
//! With axum (feature `axum`), a component is a handler's answer as it is:
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum_core::response::IntoResponse;
//! let response = doximity_share::SignInButton::new().into_response();
//! assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
//! # }
//! ```
//!
//! # Must be confirmed with Doximity
//!
//! The stored copy of Doximity's documentation lost two URLs, so this crate's defaults are
//! **choices, not facts**. Before going live, confirm both against Doximity's live developer
//! documentation and override them when they differ:
//!
//! * the share endpoint, [`DEFAULT_SHARE_ENDPOINT`] (`https://www.doximity.com/share`), set with
//!   [`ShareButton::with_endpoint`];
//! * the Share Button script, [`DEFAULT_SHARE_SCRIPT`] (`https://www.doximity.com/share.js`), set
//!   with [`ShareButton::with_script_src`].
//!
//! No Doximity image is bundled either: the sign-in buttons render as accessible text buttons
//! of the documented size (140pt × 30pt), or show the official graphic you host through
//! [`SignInButton::with_image`].
//!
//! # Security
//!
//! * Values are escaped per context: HTML text and attributes, URL query components, and
//!   JavaScript strings inside `<script>` (JSON with `<`, `>`, `&`, U+2028 and U+2029 escaped,
//!   so `</script>` cannot close the element early). Property tests check that no generated
//!   value changes the markup's structure.
//! * The session check talks only to the provider's origin: it posts with that exact target
//!   origin (never `"*"`) and ignores messages from any other origin or window.
//! * Both scripts take a CSP nonce; the sign-in button can drop its `style` attribute for
//!   policies without `'unsafe-inline'` styles ([`SIGN_IN_STYLESHEET`]).
//! * The endpoint, script and login URLs are configuration: they are escaped, not validated.
//!   Do not build them from request data.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod brand;
pub mod escape;
mod session;
mod share;
mod signin;

pub use brand::Mark;
pub use session::{
    DEFAULT_INTERVAL, DEFAULT_RECHECK_AT_MOST_EVERY, InvalidProviderUrl, MIN_INTERVAL, OnChanged,
    SessionCheck,
};
pub use share::{
    DEFAULT_SHARE_ENDPOINT, DEFAULT_SHARE_SCRIPT, SHARE_LABEL, ShareButton, ShareLink, ShareScript,
};
pub use signin::{DEFAULT_LOGIN_PATH, SIGN_IN_STYLESHEET, SignInButton, SignInKind, Width};

#[cfg(feature = "axum")]
mod axum_impls {
    use axum_core::response::{IntoResponse, Response};
    use http::HeaderValue;
    use http::header::CONTENT_TYPE;

    fn html(body: String) -> Response {
        let mut response = body.into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response
    }

    macro_rules! into_html_response {
        ($($t:ty),*) => {$(
            /// An HTML response (`text/html; charset=utf-8`) whose body is the markup.
            #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
            impl IntoResponse for $t {
                fn into_response(self) -> Response {
                    html(self.to_string())
                }
            }
        )*};
    }

    into_html_response!(
        super::ShareButton,
        super::ShareLink,
        super::ShareScript,
        super::SignInButton,
        super::SessionCheck
    );
}

/// The README (the crate's page on crates.io): its example runs as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
