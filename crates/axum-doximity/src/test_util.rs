//! A signed-in user for the tests of your axum handlers, without a provider (feature
//! `test-util`): tower-doximity's [`test_util`](tower_doximity::test_util), re-exported.
//!
//! Put it in `[dev-dependencies]` only:
//!
//! ```toml
//! [dev-dependencies]
//! axum-doximity = { version = "0.1", features = ["test-util"] }
//! ```
//!
//! [`SignedIn::cookie_header`] gives the `Cookie` header of a session sealed with your
//! [`DoximityAuth`](crate::DoximityAuth)'s own key, which the real layer accepts: the request
//! goes through the layer and the extractors exactly as a signed-in browser's would.
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use axum_doximity::{DoximityAuth, DoximityUser, Key, Scoped, test_util::SignedIn};
//! use doximity::scope::ProfileReadBasic;
//! use doximity::{Client, Config, UserInfo, secret::ClientSecret};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # async fn text(res: http::Response<Body>) -> String {
//! #     String::from_utf8_lossy(&axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap()).into_owned()
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let mock = doximity_mock::MockProvider::builder().start().await?;
//! # let demo = mock.client();
//! # let config = Config::new(demo.client_id.clone(), ClientSecret::new(demo.client_secret.clone()),
//! #     "http://127.0.0.1:3000/auth/doximity/callback".parse()?)
//! #     .with_issuer(&mock.issuer())?.with_ca_cert_pem(mock.ca_pem().to_vec());
//! // The app's router, with its real layer (here discovered against the bundled mock).
//! let auth = DoximityAuth::new(Client::discover(config).await?).with_cookie_key(Key::generate());
//! let app = Router::new()
//!     .route("/me", get(|user: DoximityUser| async move { user.sub().to_owned() }))
//!     .route("/name", get(|user: Scoped<ProfileReadBasic>| async move {
//!         user.cached_profile().and_then(|p| p.name).unwrap_or_default()
//!     }))
//!     .layer(auth.layer());
//!
//! // A clinician signed in with the profile scope and a cached profile.
//! let mut profile = UserInfo::default();
//! profile.name = Some("Dr. Ada Lovelace".into());
//! let cookie = SignedIn::new("clinician-1")
//!     .scope::<ProfileReadBasic>()
//!     .profile(profile)
//!     .cookie_header(&auth)?;
//! let res = app.clone().oneshot(Request::get("/me").header("cookie", &cookie).body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(text(res).await, "clinician-1");
//! let res = app.clone().oneshot(Request::get("/name").header("cookie", &cookie).body(Body::empty())?).await?;
//! assert_eq!(text(res).await, "Dr. Ada Lovelace");
//!
//! // Nobody signed in: an API client gets 401.
//! let res = app.clone().oneshot(Request::get("/me").header("accept", "application/json").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//!
//! // Signed in without the scope: 403 naming it.
//! let cookie = SignedIn::new("clinician-2").cookie_header(&auth)?;
//! let res = app.oneshot(Request::get("/name").header("cookie", &cookie)
//!     .header("accept", "application/json").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! assert!(res.headers()["www-authenticate"].to_str()?.contains("profile:read:basic"));
//! # Ok(()) }
//! ```
//!
//! # Without a provider at all
//!
//! With [`Client::lazy`](doximity::Client::lazy) and an issuer nothing answers at, a
//! signed-in request works the same (the layer needs no provider to open a session), and so do
//! the extractors' refusals (a 403 for a missing scope). The layer's own refusal of a request
//! from nobody signed in is a 503 instead of a 401 or a redirect: it cannot send anyone to
//! sign in while the provider cannot be discovered. Test those refusals against the bundled
//! mock (`doximity-mock`), as above.
//!
//! # Calling a handler directly
//!
//! [`SignedIn::insert_into`] puts the identity and the [`AuthContext`](tower_doximity::AuthContext)
//! the extractors need into a request's extensions; run the handler with that request (for
//! example a `Router` without the layer, or `Handler::call`).
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use axum_doximity::{DoximityAuth, DoximityUser, test_util::{SignedIn, auth_context}};
//! use doximity::{Client, Config, secret::ClientSecret};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let config = Config::new("app", ClientSecret::new("secret".into()),
//! #     "https://app.example.test/auth/doximity/callback".parse()?)
//! #     .with_issuer("https://auth.example.test")?;
//! let auth = DoximityAuth::new(Client::lazy(config)?);
//! let handler = Router::new().route("/me", get(|user: DoximityUser| async move { user.sub().to_owned() }));
//!
//! let mut request = Request::get("/me").body(Body::empty())?;
//! SignedIn::new("clinician-1").insert_into(&auth, request.extensions_mut());
//! assert_eq!(handler.clone().oneshot(request).await?.status(), StatusCode::OK);
//!
//! // Nobody signed in: the context alone, and the extractor refuses as the layer would.
//! let mut request = Request::get("/me").header("accept", "application/json").body(Body::empty())?;
//! request.extensions_mut().insert(auth_context(&auth));
//! assert_eq!(handler.oneshot(request).await?.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! ```
//!
//! Why none of this can weaken a release build: see
//! [`tower_doximity::test_util`](tower_doximity::test_util#why-this-cannot-weaken-a-release-build).

pub use tower_doximity::test_util::*;
