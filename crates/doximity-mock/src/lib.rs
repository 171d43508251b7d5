//! A mock of Doximity's OpenID Connect provider, served over real HTTPS on
//! loopback, so tests and demos need neither a Doximity account nor a network.
//!
//! # Tutorial
//!
//! Start a provider, trust its freshly generated CA (and nothing else), and read
//! its discovery document:
//!
//! ```
//! use doximity_mock::MockProvider;
//! use rustls::pki_types::CertificateDer;
//! use rustls::pki_types::pem::PemObject as _;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let mock = MockProvider::builder().auto_approve(true).start().await?;
//!
//!     // A TLS configuration whose only root is the mock's CA.
//!     let mut roots = rustls::RootCertStore::empty();
//!     roots.add(CertificateDer::from_pem_slice(mock.ca_pem())?)?;
//!     let tls = rustls::ClientConfig::builder_with_provider(doximity_mock::provider())
//!         .with_safe_default_protocol_versions()?
//!         .with_root_certificates(roots)
//!         .with_no_client_auth();
//!     let http = reqwest::Client::builder()
//!         .tls_backend_preconfigured(tls)
//!         .build()?;
//!
//!     let discovery: serde_json::Value = http
//!         .get(format!("{}/.well-known/openid-configuration", mock.issuer()))
//!         .send()
//!         .await?
//!         .error_for_status()?
//!         .json()
//!         .await?;
//!     assert_eq!(discovery["issuer"], mock.issuer());
//!     assert_eq!(
//!         discovery["token_endpoint"],
//!         format!("{}/oauth/token", mock.issuer())
//!     );
//!
//!     // The demo client every provider starts with.
//!     let client = mock.client();
//!     assert_eq!(client.client_id, "doximity-demo-client");
//!     println!("{client:?}"); // the secret is redacted
//!
//!     mock.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
//! [`MockProvider::rustls_client_config`] builds the same TLS configuration in
//! one call, and [`MockProvider::ca_path`] names a PEM file for tools that want
//! one (curl's `--cacert`, `SSL_CERT_FILE`, a browser's certificate import).
//!
//! # What it imitates
//!
//! The paths and behaviour are Doximity's (`auth.doximity.com`):
//!
//! * `GET /.well-known/openid-configuration`, `GET /.well-known/oauth-authorization-server`,
//!   `GET /.well-known/jwks.json`;
//! * `GET|POST /oauth/authorize`: strict validation (exact `redirect_uri`, PKCE S256
//!   required, supported scopes only), a sign-in page where a person picks a demo
//!   [`Clinician`] and approves or denies, `prompt=none|login|consent|create`,
//!   `display=popup`, `response_mode=query|fragment`, `acr_values` and `max_age` (see
//!   [Authentication level and age](#authentication-level-and-age)), Session Management
//!   `session_state`;
//! * `POST /oauth/token`: `client_secret_basic` only, single-use codes living 120 s,
//!   refresh-token rotation; RS256 ID tokens with `aud: [issuer, client_id]`, `azp`,
//!   `at_hash`, `auth_time` and a numeric `acr` (`2` unless a level was asked for);
//! * `POST /oauth/revoke` (RFC 7009), `GET /oauth/userinfo` (an `application/jwt`),
//!   `GET|POST /oauth/logout`, `GET /oauth/session_state` (the `check_session_iframe`);
//! * the older `GET /api/v1/users/current` and `GET /api/v1/rate_limit`, with
//!   Doximity's `X-Rate-Limit-*` headers and 429 body;
//! * `GET /share`, a page echoing what a Share button sent;
//! * `GET /photos/{sub}.svg`, each demo clinician's profile photo (their
//!   `profile_photo_url`), so a page showing it needs no network;
//! * device sign-in (RFC 8628): `POST /oauth/device_authorization`, the `device_code` grant at
//!   the token endpoint, and `GET|POST /device`, the verification page where a person types
//!   the user code, picks a clinician and approves or denies
//!   ([`MockProvider::approve_device`] and [`MockProvider::set_device_auto_approve`] do it
//!   without a browser).
//!
//! # Authentication level and age
//!
//! Step-up as OpenID Connect Core 3.1.2.1 and RFC 9470 describe it. The openid-configuration
//! (and the authorization-server document, which repeats its fields) advertises
//! `acr_values_supported: ["1","2","3"]`, as Doximity's metadata does.
//!
//! * `acr_values` (space-separated) names the levels an application asks for; values the
//!   provider does not support are ignored (the request is voluntary), and the *requested
//!   level* is the first supported one. `max_age` is a non-negative whole number of
//!   seconds; anything else is redirected as `invalid_request`.
//! * A provider session remembers when the person authenticated (`auth_time`) and at which
//!   level (`acr`). A fresh authentication (Approve on the sign-in page, or auto-approve
//!   signing someone in) dates it now, at the requested level, or `2` when none was asked.
//! * A session answers a request silently only when there is no `prompt=login`, its
//!   `auth_time` is no older than `max_age` (when given), and the requested level is not
//!   above its `acr`. Otherwise the person authenticates again: the sign-in page says that
//!   the application asks them to confirm it is them (or for a stronger sign-in, level N) with
//!   the session's clinician selected, and Approve re-dates the same session at the requested
//!   level; auto-approve re-authenticates at once; `prompt=none` answers `login_required`.
//! * The code, its ID tokens (the code exchange's, the hybrid flow's) and every ID token a
//!   refresh of that grant brings carry the session's `acr` and `auth_time` at the time the
//!   code was issued. Device sign-ins are at level `2`, dated when the person approved.
//!
//! [`Fault::IdTokenLowAcr`] has ID tokens say `acr: 1` whatever was asked;
//! [`Fault::StaleAuthTime`] has the provider ignore `max_age` and keep the old `auth_time`
//! when it re-authenticates someone (for `prompt=login` or a higher level);
//! [`Fault::IdTokenStringAcr`] sends the level as a string.
//!
//! # Which scope gives which claim
//!
//! Userinfo carries `iss`, `aud` and `sub` always, and the claims a token's scopes grant.
//! Doximity documents only the `profile:read:basic` row; the others are inferred from the
//! scope names and the claims its published metadata lists, and may differ on Doximity:
//!
//! | scope | claims | source |
//! |---|---|---|
//! | `profile:read:basic` | `name`, `given_name`, `family_name`, `middle_name`, `credentials`, `profile_photo_url`, `specialty` | documented (Requesting User Info) |
//! | `profile:read:basic` | `profile_uuid` | inferred: the public profile's id belongs to the basic profile |
//! | `profile:read:email` | `primary_email`, `emails` (and `email`, the mock's older name for the primary address) | inferred from the scope name; the older API's `email` scope gave the address |
//! | `profile:read:permissions` | `permissions` | inferred from the scope name |
//! | every other scope | none | the metadata lists no claim for them (`profile:read:dialer_phone`, `profile:read:office`, `profile:read:experience`, `profile:read:private_contact` included) |
//!
//! # A browser nobody configured
//!
//! Browsers do not trust the mock's CA. With [`MockProviderBuilder::browser_over_http`] the
//! pages a browser opens are also served over plain HTTP on loopback (a secure context for
//! browsers), and the discovery documents name them there; the back channel stays HTTPS.
//!
//! Tests steer it through the handle: [`MockProvider::inject`] a [`Fault`],
//! [`MockProvider::set_clock_offset`] instead of sleeping,
//! [`MockProvider::rotate_keys`], [`MockProvider::requests`] counters, and more.
//!
//! Run `cargo run -p doximity-mock` for a provider a person can use from a browser.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod dpop;
mod error;
mod faults;
mod keys;
mod model;
mod pages;
mod routes;
mod server;
mod state;
mod tls;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use builder::MockProviderBuilder;
pub use error::Error;
pub use faults::{DpopCheck, Endpoint, Fault};
pub use model::{
    ClientRegistration, Clinician, DEMO_CLIENT_ID, DEMO_POST_LOGOUT_REDIRECT_URI,
    DEMO_REDIRECT_URI, SCOPE_COLLEAGUES, SCOPE_OPENID, SCOPE_PROFILE_BASIC, SCOPE_PROFILE_EMAIL,
    SCOPE_PROFILE_PERMISSIONS, SCOPE_SEARCH, SUPPORTED_SCOPES,
};
pub use tls::{TlsMaterial, provider, server_tls};

use keys::SigningKeyEntry;
use state::Shared;

/// A running mock provider. Dropping it stops the server; so does [`shutdown`](Self::shutdown).
pub struct MockProvider {
    shared: Arc<Shared>,
    addr: SocketAddr,
    browser_addr: Option<SocketAddr>,
    ca_pem: Vec<u8>,
    ca_path: tempfile::TempPath,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockProvider")
            .field("issuer", &self.shared.issuer)
            .field("ca_path", &self.ca_path())
            .finish_non_exhaustive()
    }
}

impl MockProvider {
    /// Starts a provider with the defaults (see [`MockProviderBuilder`]).
    ///
    /// # Errors
    ///
    /// As [`MockProviderBuilder::start`].
    pub async fn start() -> Result<Self, Error> {
        Self::builder().start().await
    }

    /// A builder to configure the provider before it starts.
    pub fn builder() -> MockProviderBuilder {
        MockProviderBuilder::default()
    }

    /// `https://127.0.0.1:PORT` (no trailing slash): the `iss` of every token and
    /// the base of every endpoint.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// The address the provider listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of the pages a browser opens (authorization, sign-out,
    /// `check_session_iframe`, share, photos), no trailing slash: `http://127.0.0.1:PORT` with
    /// [`browser_over_http`](MockProviderBuilder::browser_over_http), else the
    /// [`issuer`](Self::issuer).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), doximity_mock::Error> {
    /// let mock = doximity_mock::MockProvider::builder().browser_over_http(true).start().await?;
    /// assert!(mock.browser_base().starts_with("http://127.0.0.1:"));
    /// assert!(mock.issuer().starts_with("https://127.0.0.1:"));
    /// # Ok(()) }
    /// ```
    pub fn browser_base(&self) -> String {
        self.shared.browser_base.clone()
    }

    /// The address of the plain-HTTP listener for the browser-facing pages, when
    /// [`browser_over_http`](MockProviderBuilder::browser_over_http) is on.
    pub fn browser_addr(&self) -> Option<SocketAddr> {
        self.browser_addr
    }

    /// The PEM of the CA generated at start. The server's certificate is signed
    /// by it and valid for `127.0.0.1`, `::1` and `localhost`.
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// A PEM file holding [`ca_pem`](Self::ca_pem); it is deleted when the provider is dropped.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// A rustls client configuration (the mock's [`provider`]) whose only trusted root is the
    /// mock's CA.
    ///
    /// # Panics
    ///
    /// Never in practice: the CA was generated by this provider and is well formed.
    #[allow(clippy::expect_used)]
    pub fn rustls_client_config(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::from_pem_slice(&self.ca_pem).expect("the generated CA is PEM");
        roots
            .add(ca)
            .expect("the generated CA is a valid certificate");
        rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .expect("the provider supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth()
    }

    /// The demo client: `client_id = "doximity-demo-client"`, a secret random per start.
    pub fn client(&self) -> ClientRegistration {
        self.shared
            .lock()
            .clients
            .get(DEMO_CLIENT_ID)
            .cloned()
            .unwrap_or_else(|| ClientRegistration::new(DEMO_CLIENT_ID, String::new()))
    }

    /// Registers another client (or replaces one with the same `client_id`).
    pub fn register_client(&self, client: ClientRegistration) {
        self.shared
            .lock()
            .clients
            .insert(client.client_id.clone(), client);
    }

    /// The fixed set of demo clinicians.
    pub fn clinicians(&self) -> Vec<Clinician> {
        self.shared.lock().clinicians.clone()
    }

    /// `Some(sub)`: the authorization endpoint answers at once, as that clinician,
    /// after validating the request. `None`: it shows the sign-in page.
    pub fn set_auto_approve(&self, sub: Option<String>) {
        self.shared.lock().auto_approve = sub;
    }

    /// Activates a fault until [`clear_faults`](Self::clear_faults).
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.insert(fault);
    }

    /// Deactivates every fault.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Seconds added to the provider's clock: it dates new tokens and judges expiry.
    pub fn set_clock_offset(&self, seconds: i64) {
        self.shared.lock().clock_offset = seconds;
    }

    /// Makes a new RSA-2048 key (with a new `kid`) current; the old public key
    /// stays in the JWKS until [`retire_old_keys`](Self::retire_old_keys).
    ///
    /// Key generation takes a moment and runs on the calling thread.
    pub fn rotate_keys(&self) {
        match SigningKeyEntry::generate() {
            Ok(key) => self.shared.lock().keys.rotate(key),
            Err(error) => tracing::error!(%error, "key rotation failed"),
        }
    }

    /// Drops every key but the current one from the JWKS.
    pub fn retire_old_keys(&self) {
        self.shared.lock().keys.retire_old();
    }

    /// How many requests an endpoint has seen since start, whatever their result.
    pub fn requests(&self, endpoint: Endpoint) -> u64 {
        self.shared
            .lock()
            .counters
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// Sets the per-client hourly request budget.
    pub fn set_rate_limit(&self, per_hour: u32) {
        self.shared.lock().rate_limit = per_hour;
    }

    /// Revokes every access and refresh token of a user ("signed out everywhere").
    pub fn revoke_all_for(&self, sub: impl AsRef<str>) {
        self.shared.lock().revoke_all_for(sub.as_ref());
    }

    /// Ends every provider browser session: the `check_session_iframe` then
    /// answers `changed`, and `prompt=none` answers `login_required`.
    pub fn end_provider_sessions(&self) {
        self.shared.lock().sessions.clear();
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// The README (the crate's page on crates.io): its example runs as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
