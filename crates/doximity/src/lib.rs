//! Sign in with Doximity: the OpenID Connect protocol client, exactly as Doximity documents it.
//!
//! This crate speaks Doximity's protocol and nothing else: no web framework, no sessions.
//! `tower-doximity` builds the web layer on it. It covers every step of Doximity's
//! documentation: discovery of both metadata documents (Step 1), the authorization URL with
//! PKCE, `state` and `nonce` (Step 2), the callback (Step 4), the code exchange (Step 5),
//! ID-token verification (Step 6), refresh with rotation (Step 7), revocation, RP-initiated
//! logout, session management, signed userinfo, rate-limit headers, and, opt-in, the older
//! API's `client_secret_post` and `/api/v1/users/current`.
//!
//! # Tutorial
//!
//! Against the bundled mock provider (`doximity-mock`), which behaves like Doximity over real
//! HTTPS with its own CA:
//!
//! ```
//! use doximity::{AuthorizeRequest, Client, Config, secret::ClientSecret};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mock = doximity_mock::MockProvider::builder().auto_approve(true).start().await?;
//! let demo = mock.client();
//!
//! // 1. Configure and discover. The mock's CA is trusted explicitly; checks stay on.
//! let config = Config::new(
//!     demo.client_id.clone(),
//!     ClientSecret::new(demo.client_secret.clone()),
//!     "http://127.0.0.1:3000/auth/doximity/callback".parse()?,
//! )
//! .with_issuer(&mock.issuer())?
//! .with_ca_cert_pem(mock.ca_pem().to_vec());
//! let client = Client::discover(config).await?;
//!
//! // 2. Send the browser to the authorization URL; keep `pending` (state, nonce, PKCE).
//! let (url, pending) = client.authorize_url(&AuthorizeRequest::new()).await?;
//!
//! // 3. The user approves; Doximity redirects back with `?code=...&state=...`.
//! # let browser = reqwest::Client::builder()
//! #     .use_preconfigured_tls(mock.rustls_client_config())
//! #     .redirect(reqwest::redirect::Policy::none())
//! #     .build()?;
//! let callback = browser.get(url).send().await?;
//! let location = callback.headers()["location"].to_str()?.parse::<url::Url>()?;
//!
//! // 4. Check the callback, exchange the code, verify the ID token.
//! let tokens = client.complete_login(&pending, location.query().unwrap_or("")).await?;
//! println!("signed in: {}", tokens.claims.sub);
//!
//! // 5. Later: refresh (both tokens rotate), read the profile, sign out.
//! let tokens = client.refresh(&tokens, None).await?;
//! let me = client.userinfo(&tokens.access_token, &tokens.claims.sub).await?;
//! assert_eq!(me.sub, tokens.claims.sub);
//! client.revoke(doximity::RevocableToken::Access(&tokens.access_token)).await?;
//! let logout = client.logout_url(&tokens.id_token, Some("bye")).await?;
//! assert!(logout.as_str().contains("post_logout_redirect_uri"));
//! # Ok(()) }
//! ```
//!
//! # TLS crypto provider
//!
//! Calls to the provider go through rustls, with a crypto provider chosen by Cargo features,
//! as reqwest, tonic and hyper-rustls do:
//!
//! | features | provider |
//! |---|---|
//! | `ring` (the default) | [ring](https://docs.rs/ring) |
//! | `default-features = false, features = ["aws-lc-rs"]` | [aws-lc-rs](https://docs.rs/aws-lc-rs) |
//! | `default-features = false` | the process-level default the application installs |
//!
//! The client builds its rustls configuration with `ClientConfig::builder_with_provider`.
//! When the application has installed a process-level default
//! (`rustls::crypto::CryptoProvider::install_default`), that one is used; otherwise the
//! feature's provider (`aws-lc-rs` when both features are on); with neither,
//! [`Client::discover`] fails with [`ConfigError::HttpClient`]. The crate never installs a
//! process-level default.
//!
//! Pick the provider the rest of the binary uses. rustls's own `ClientConfig::builder()`
//! (which other crates call, database and mail clients for example) panics when more than one
//! provider feature of rustls is on and no default is installed: a binary with reqwest's
//! default TLS (aws-lc-rs) should depend on this crate with
//! `default-features = false, features = ["aws-lc-rs"]`.
//!
//! # Security
//!
//! - HTTPS only, certificates always verified (an extra root comes from `DOXIMITY_CA_CERT`),
//!   redirects never followed, a timeout on every call, answers over 1 MiB refused without
//!   reading them all. Every discovered endpoint is https; the one exception, plain http for
//!   the browser-facing endpoints of an embedded mock on loopback, is only ever set in code
//!   ([`Config::with_loopback_browser_endpoints`]).
//! - Callback: `state` first; `iss` (RFC 9207) must be ours, and present when the provider
//!   advertises it.
//! - ID tokens: RS256 only, never the algorithm list from discovery; `iss` exact; `aud` is our
//!   client id plus, at most, the issuer; `azp` is our client id; `exp` with a small leeway;
//!   `iat` not in the future; `nonce` required and equal; `at_hash` checked; a numeric `acr`
//!   accepted. An unknown `kid` refetches the JWKS once (single-flight, at most once a minute).
//! - Userinfo must be a signed JWT whose `sub` is the session's.
//! - DPoP (RFC 9449), with [`Config::with_dpop_key`] and a provider that advertises `RS256`:
//!   proofs on the token endpoint and userinfo, tokens bound to the key, the `use_dpop_nonce`
//!   retry exactly once; [`Client::resource_headers`] for a handler's own API calls. See
//!   [`dpop`] and `docs/dpop.md`.
//! - A 429 is [`Error::RateLimited`] with the reset time; nothing here retries into a limit.
//! - Refresh failures say whether they are conclusive
//!   ([`Error::is_conclusive_refresh_failure`]): only a refused grant ends a session.
//! - Text from the network is escaped and bounded before it reaches an error or a log line.
//! - Every secret is a newtype with a redacted `Debug`; errors and logs never carry one.
//!
//! `docs/security.md` in the repository lists each rule with the test that covers it.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod error;
mod http;
mod jwt;
mod ratelimit;
pub mod text;
mod token;

pub mod authorize;
pub mod callback;
pub mod claims;
pub mod config;
pub mod device;
pub mod discovery;
pub mod dpop;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod presented;
pub mod scope;
pub mod secret;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;

pub use authorize::{AuthorizeRequest, PendingLogin};
pub use claims::{Acr, IdTokenClaims, UserInfo};
pub use client::{
    Client, Clock, LAZY_RETRY_MAX, LAZY_RETRY_MIN, LogoutFields, ResourceHeaders, RevocableToken,
};
pub use config::{ClientAuthMethod, Config};
pub use device::{DeviceAuthorization, DeviceError, DevicePoll};
pub use discovery::ProviderMetadata;
pub use error::{CallbackError, ConfigError, DiscoveryError, Endpoint, Error, JwtError};
pub use presented::VerifiedAccessToken;
pub use ratelimit::RateLimitStatus;
pub use token::{PresentedToken, TokenSet, TokenType};

/// The README (the crate's page on crates.io): its example runs as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
