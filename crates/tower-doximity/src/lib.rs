//! Sign in with Doximity for any [tower](https://docs.rs/tower) service: axum routers and tonic
//! servers alike.
//!
//! One [`DoximityAuth`], built from configuration, gives one [`DoximityLayer`]. The layer owns
//! the auth routes (`/auth/doximity/login`, `/auth/doximity/callback`,
//! `/auth/doximity/logout`), keeps the session in encrypted cookies (or a [`SessionStore`]),
//! refreshes tokens before they expire (once per session, however many requests race), puts
//! the signed-in [`DoximityIdentity`] in the request extensions, and refuses everyone else with
//! the answer their client understands (a redirect, a 401 with JSON, or a gRPC status).
//!
//! # Tutorial
//!
//! Against the bundled mock provider (`doximity-mock`), over real HTTPS with its own CA:
//!
//! ```
//! use axum::{Router, routing::get, body::Body};
//! use doximity::{Client, Config, secret::ClientSecret};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_doximity::{DoximityAuth, DoximityIdentity};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let redirect = "http://127.0.0.1:3000/auth/doximity/callback";
//! let mock = doximity_mock::MockProvider::builder()
//!     .auto_approve(true)
//!     .redirect_uri(redirect)
//!     .start()
//!     .await?;
//!
//! // 1. The protocol client (discovery), then the auth value and its layer.
//! let demo = mock.client();
//! let config = Config::new(demo.client_id.clone(), ClientSecret::new(demo.client_secret.clone()), redirect.parse()?)
//!     .with_issuer(&mock.issuer())?
//!     .with_ca_cert_pem(mock.ca_pem().to_vec());
//! let auth = DoximityAuth::new(Client::discover(config).await?)
//!     .with_cookie_key(tower_doximity::Key::generate());
//!
//! // 2. Protect a router. Handlers read the identity from the request extensions (or use the
//! //    `axum-doximity` extractors).
//! let app = Router::new()
//!     .route("/me", get(|user: axum::Extension<DoximityIdentity>| async move { user.sub().to_owned() }))
//!     .layer(auth.layer());
//!
//! // 3. Not signed in: a browser is sent to the login route, which sends it to Doximity.
//! let res = app.clone().oneshot(Request::get("/me").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::SEE_OTHER);
//! let res = app.clone().oneshot(Request::get(res.headers()["location"].to_str()?).body(Body::empty())?).await?;
//! let transaction = res.headers()["set-cookie"].to_str()?.split(';').next().unwrap_or_default().to_owned();
//!
//! // 4. Doximity sends the browser back to the callback with a code.
//! # let browser = reqwest::Client::builder()
//! #     .use_preconfigured_tls(mock.rustls_client_config())
//! #     .redirect(reqwest::redirect::Policy::none())
//! #     .build()?;
//! let at_provider = browser.get(res.headers()["location"].to_str()?).send().await?;
//! let callback = url::Url::parse(at_provider.headers()["location"].to_str()?)?;
//! let res = app.clone().oneshot(
//!     Request::get(format!("{}?{}", callback.path(), callback.query().unwrap_or_default()))
//!         .header("cookie", transaction)
//!         .body(Body::empty())?,
//! ).await?;
//! assert_eq!(res.status(), StatusCode::SEE_OTHER);
//! assert_eq!(res.headers()["location"], "/me");
//!
//! // 5. Signed in: the session cookies carry the user.
//! let cookies: Vec<String> = res.headers().get_all("set-cookie").iter()
//!     .filter_map(|v| v.to_str().ok())
//!     .filter(|c| !c.contains("Max-Age=0"))
//!     .filter_map(|c| c.split(';').next().map(str::to_owned))
//!     .collect();
//! let res = app.oneshot(Request::get("/me").header("cookie", cookies.join("; ")).body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! # Ok(()) }
//! ```
//!
//! # The answers it gives
//!
//! | request | not signed in | missing scope |
//! |---|---|---|
//! | gRPC (`content-type: application/grpc*`) | 200, `grpc-status: 16` | 200, `grpc-status: 7` |
//! | API (`Authorization`, `Accept` preferring JSON, non-navigation `Sec-Fetch-Mode`) | 401, `WWW-Authenticate: Bearer`, JSON | 403, `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"` |
//! | browser GET/HEAD | 303 to the login route with `return_to` | 303 to the login route with `scope` (step-up) |
//!
//! Replace them with [`DoximityAuth::with_refuse`]; the [`AuthError`] is always in the
//! response extensions.
//!
//! # Bearer tokens and gRPC
//!
//! [`DoximityAuth::with_bearer`] lets API and gRPC clients send `Authorization: Bearer
//! <access token>` instead of cookies. Each token is checked once through Doximity's signed
//! userinfo answer (one call however many requests race), cached by its SHA-256 (bounded, until
//! its expiry or a TTL), and the caller gets the same [`DoximityIdentity`] plus a
//! [`BearerCredential`]. Tokens the layer does not know are held back: a bounded number of
//! checks at once, a budget per caller, and a provider 429 that stops only the caller whose
//! check drew it ([`BearerConfig`]). Unauthenticated gRPC calls get `grpc-status: 16`, a caller
//! over its budget 8, a provider over its rate limit 14 with `retry-after`. The `tonic` feature
//! adds the `grpc` module for handlers
//! (`grpc::identity`, `grpc::Scoped`). `docs/grpc-and-bearer.md` has the
//! details and the trade-offs (a revoked token works until its cache entry ends).
//!
//! # TLS crypto provider
//!
//! The calls to Doximity use rustls with the provider of this crate's features, forwarded to
//! `doximity`: `ring` (the default) or `aws-lc-rs`. A binary that already uses aws-lc-rs (for
//! example reqwest 0.13 with its default TLS) should say
//! `tower-doximity = { version = "0.1", default-features = false, features = ["aws-lc-rs"] }`,
//! so that rustls's `ClientConfig::builder()` elsewhere in the binary still finds exactly one
//! provider. With neither feature, the process-level default provider is used. The
//! `doximity` crate docs have the details.
//!
//! # Security
//!
//! - Cookies are sealed with AES-256-GCM (tower-cookies `private`), `HttpOnly`,
//!   `SameSite=Lax`, `Path=/`, and `Secure` with the `__Host-` prefix when the redirect URI is
//!   https. A tampered, truncated or foreign cookie is simply "not signed in".
//! - The login transaction (state, nonce, PKCE verifier, `return_to`) lives in its own sealed
//!   cookie for 10 minutes and is used once; `return_to` is only ever a same-origin path
//!   ([`sanitize_return_to`]).
//! - Every sign-in makes a new session id; logout destroys the session first, then revokes the
//!   refresh token in the background.
//! - No token, code, state, cookie value or key appears in a log line, an error or a `Debug`.
//!
//! `docs/layer.md` in the repository explains the design choices.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod audit;
mod auth;
mod backend;
mod background;
mod bearer;
mod cookies;
mod decide;
mod engine;
mod error;
mod future;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub mod grpc;
mod layer;
mod ledger;
mod links;
mod memory;
mod metrics;
mod opened;
#[cfg(feature = "redis")]
mod redis_store;
mod refresh;
mod response;
mod return_to;
mod routes;
mod service;
mod session;
mod store;
#[cfg(feature = "store-suite")]
#[cfg_attr(docsrs, doc(cfg(feature = "store-suite")))]
pub mod store_suite;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;

pub use audit::TARGET as AUDIT_TARGET;
pub use auth::{
    CookieKeyError, CookiePrefixError, DEFAULT_ABSOLUTE_TIMEOUT, DEFAULT_CALLBACK_PATH,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_LOGIN_PATH, DEFAULT_LOGOUT_PATH, DEFAULT_SESSION_CACHE_BYTES,
    DoximityAuth, FromEnvError, parse_cookie_key, parse_cookie_keys,
};
pub use bearer::{
    BearerConfig, BearerCredential, BearerError, BearerKind, DEFAULT_BEARER_TTL,
    DEFAULT_CALLER_BUDGET, DEFAULT_CALLER_WINDOW, DEFAULT_CHECK_WAIT, DEFAULT_MAX_CALLERS,
    DEFAULT_MAX_CONCURRENT_CHECKS, DEFAULT_MAX_ENTRIES, DEFAULT_NEGATIVE_TTL, MAX_BEARER_TOKEN_LEN,
};
pub use decide::Mode;
pub use engine::AuthContext;
pub use error::AuthError;
pub use future::{ResponseBody, ResponseFuture};
pub use layer::DoximityLayer;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_store::{DEFAULT_REDIS_PREFIX, DEFAULT_REFRESH_LEASE, RedisStore};
pub use response::{ClientKind, DefaultRefuse, Refusal, Refuse, default_response};
pub use return_to::{MAX_RETURN_TO_LEN, sanitize_return_to};
pub use service::DoximityService;
pub use session::DoximityIdentity;
pub use store::{
    CookieStore, MemoryStore, RefreshGuard, RefreshLock, SessionId, SessionStore, StoreError,
    StoreFuture, StoredSession,
};
pub use tower_cookies::Key;

pub use doximity;

/// Internals for the benchmarks in `benches/` (the workspace's `doximity-benches`), behind
/// the non-default feature `bench`: not part of the API.
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod __bench;

/// The README (the crate's page on crates.io): its example runs as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
