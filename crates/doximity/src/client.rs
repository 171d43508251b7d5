//! [`Client`]: discovery, keys and every provider call, over one HTTPS client.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet};
use url::Url;

use crate::authorize::{self, AuthorizeRequest, PendingLogin};
use crate::callback::{Authorized, CallbackParams, IssParameter};
use crate::claims::{self, Expect, IdTokenClaims, UserInfo};
use crate::config::Config;
use crate::discovery::{DiscoveryPolicy, ProviderMetadata, RawMetadata, well_known};
use crate::dpop::{DpopError, DpopKey, DpopProof};
use crate::error::{ConfigError, Endpoint, Error, JwtError};
use crate::http::{Http, Response};
use crate::jwt::{KEYS_MAX_AGE, Lookup, REFETCH_INTERVAL, UnverifiedJwt, lookup};
use crate::presented::VerifiedAccessToken;
use crate::ratelimit::RateLimitStatus;
use crate::scope::Scopes;
use crate::secret::{AccessToken, Nonce, RawIdToken, RefreshToken};
use crate::text::escape;
use crate::token::{
    FormRequest, PresentedToken, RawTokenResponse, TokenSet, TokenType, authenticated,
};

/// The source of the current time. Tests and simulations swap it; production uses the system
/// clock.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> SystemTime + Send + Sync>);

impl Clock {
    /// A clock from a function.
    pub fn new(f: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// The system clock.
    pub fn system() -> Self {
        Self::new(SystemTime::now)
    }

    /// The current time.
    pub fn now(&self) -> SystemTime {
        (self.0)()
    }

    /// The current time in epoch seconds.
    pub fn epoch_secs(&self) -> i64 {
        match self.now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// The fields of an RP-initiated logout POST form.
pub type LogoutFields = Vec<(&'static str, String)>;

/// Which token to revoke (RFC 7009). Revoking either revokes the pair at Doximity.
#[derive(Debug, Clone, Copy)]
pub enum RevocableToken<'a> {
    /// An access token.
    Access(&'a AccessToken),
    /// A refresh token.
    Refresh(&'a RefreshToken),
}

/// The first delay after a failed lazy discovery; it doubles with each failure in a row.
pub const LAZY_RETRY_MIN: Duration = Duration::from_secs(5);
/// The longest delay between lazy discovery attempts.
pub const LAZY_RETRY_MAX: Duration = Duration::from_secs(60);

/// A Doximity OpenID Connect client: cheap to clone, shareable across tasks.
///
/// Built by [`Client::discover`], which reads both discovery documents and the JWKS at once,
/// or by [`Client::lazy`], which reads them on first use.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    http: Http,
    clock: Clock,
    /// `None` until a lazy client's first discovery succeeds.
    metadata: RwLock<Option<Arc<ProviderMetadata>>>,
    keys: crate::jwt::KeyCache,
    /// Held by the one task that runs a lazy discovery; the others wait on it (single flight).
    start: tokio::sync::Mutex<Backoff>,
    /// When the metadata was last read, or a daily re-read last tried.
    metadata_at: std::sync::Mutex<Option<SystemTime>>,
    /// The latest `DPoP-Nonce` of each server, by origin (RFC 9449 §8).
    dpop_nonces: std::sync::Mutex<HashMap<String, String>>,
}

/// The most servers whose DPoP nonce is remembered; past it the memory starts afresh.
const MAX_DPOP_NONCES: usize = 32;

/// The `Authorization` and (for a DPoP-bound token) `DPoP` headers for one call to a Doximity
/// API, from [`Client::resource_headers`]. Both values are marked sensitive; `Debug` is
/// redacted.
#[derive(Clone)]
pub struct ResourceHeaders {
    authorization: http::HeaderValue,
    dpop: Option<http::HeaderValue>,
}

impl ResourceHeaders {
    /// `Authorization: Bearer <token>` or `Authorization: DPoP <token>`.
    pub fn authorization(&self) -> &http::HeaderValue {
        &self.authorization
    }

    /// The `DPoP` proof header, for a DPoP-bound token.
    pub fn dpop(&self) -> Option<&http::HeaderValue> {
        self.dpop.as_ref()
    }

    /// Adds both headers to `headers` (replacing any `Authorization` or `DPoP` there).
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        headers.insert(http::header::AUTHORIZATION, self.authorization.clone());
        match &self.dpop {
            Some(proof) => {
                headers.insert(DPOP, proof.clone());
            }
            None => {
                headers.remove(DPOP);
            }
        }
    }
}

impl std::fmt::Debug for ResourceHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceHeaders")
            .field("authorization", &"[redacted]")
            .field("dpop", &self.dpop.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The `DPoP` request header.
const DPOP: http::HeaderName = http::HeaderName::from_static("dpop");

/// The lazy discovery's memory of its failures.
#[derive(Default)]
struct Backoff {
    failures: u32,
    retry_at: Option<SystemTime>,
    last: Option<Arc<Error>>,
}

impl Backoff {
    /// The delay after `failures` failures in a row: 5 s, 10 s, 20 s, 40 s, then 60 s.
    fn delay(failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(5);
        LAZY_RETRY_MIN.saturating_mul(factor).min(LAZY_RETRY_MAX)
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Reads the provider's metadata (both documents) and keys, and checks them.
    pub async fn discover(config: Config) -> Result<Self, Error> {
        Self::discover_with_clock(config, Clock::system()).await
    }

    /// [`Client::discover`] with a clock of your own.
    #[tracing::instrument(name = "doximity.provider", skip_all, fields(endpoint = "discovery"))]
    pub async fn discover_with_clock(config: Config, clock: Clock) -> Result<Self, Error> {
        let client = Self::lazy_with_clock(config, clock)?;
        let (metadata, keys) = client.fetch_all().await?;
        client.install(metadata, keys);
        Ok(client)
    }

    /// A client that makes no call yet: the discovery documents and the keys are read on
    /// first use, by whichever call needs them first. Only configuration errors (an unreadable
    /// CA certificate) fail here, so an app can start while the provider is down.
    ///
    /// - **Single flight**: however many calls race for the first discovery, one request goes
    ///   to the provider; the others wait for its result.
    /// - **Backoff**: a failed discovery arms a delay ([`LAZY_RETRY_MIN`], doubling up to
    ///   [`LAZY_RETRY_MAX`]); calls during it fail at once with
    ///   [`Error::ProviderUnavailable`], which carries the remaining delay and the last
    ///   failure, and make no provider call. The first call after the delay tries again.
    /// - Every failure of discovery, including metadata that breaks a rule, is
    ///   [`Error::ProviderUnavailable`] (retryable): a web layer answers 503 with
    ///   `Retry-After` rather than failing to start.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mock = doximity_mock::MockProvider::builder().auto_approve(true).start().await?;
    /// # let demo = mock.client();
    /// # let config = doximity::Config::new(demo.client_id.clone(),
    /// #     doximity::secret::ClientSecret::new(demo.client_secret.clone()),
    /// #     "http://127.0.0.1:3000/auth/doximity/callback".parse()?)
    /// #     .with_issuer(&mock.issuer())?.with_ca_cert_pem(mock.ca_pem().to_vec());
    /// let client = doximity::Client::lazy(config)?;      // no I/O
    /// assert!(!client.is_ready());
    /// let (url, _pending) = client.authorize_url(&doximity::AuthorizeRequest::new()).await?;
    /// assert!(client.is_ready());
    /// # let _ = url; Ok(()) }
    /// ```
    pub fn lazy(config: Config) -> Result<Self, ConfigError> {
        Self::lazy_with_clock(config, Clock::system())
    }

    /// [`Client::lazy`] with a clock of your own (it also times the backoff).
    pub fn lazy_with_clock(config: Config, clock: Clock) -> Result<Self, ConfigError> {
        let http = Http::new(config.extra_root_pem.as_deref(), config.timeout)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                http,
                clock,
                metadata: RwLock::new(None),
                keys: crate::jwt::KeyCache::new(CoreJsonWebKeySet::new(Vec::new())),
                start: tokio::sync::Mutex::new(Backoff::default()),
                metadata_at: std::sync::Mutex::new(None),
                dpop_nonces: std::sync::Mutex::default(),
            }),
        })
    }

    /// Whether the metadata and keys have been read (always true for [`Client::discover`]).
    pub fn is_ready(&self) -> bool {
        self.metadata().is_some()
    }

    /// The provider metadata, reading it first if this is a lazy client's first use (see
    /// [`Client::lazy`] for the single flight and the backoff).
    pub async fn ready(&self) -> Result<Arc<ProviderMetadata>, Error> {
        if let Some(m) = self.metadata() {
            self.refresh_stale_metadata().await;
            return Ok(self.metadata().unwrap_or(m));
        }
        let mut backoff = self.inner.start.lock().await;
        // Whoever held the lock before may have finished the work.
        if let Some(m) = self.metadata() {
            return Ok(m);
        }
        let now = self.inner.clock.now();
        if let (Some(retry_at), Some(last)) = (backoff.retry_at, &backoff.last)
            && let Ok(retry_after) = retry_at.duration_since(now)
            && !retry_after.is_zero()
        {
            return Err(Error::ProviderUnavailable {
                retry_after,
                reason: last.clone(),
            });
        }
        match self.fetch_all().await {
            Ok((metadata, keys)) => {
                *backoff = Backoff::default();
                Ok(self.install(metadata, keys))
            }
            Err(e) => {
                backoff.failures = backoff.failures.saturating_add(1);
                let retry_after = Backoff::delay(backoff.failures);
                let reason = Arc::new(e);
                backoff.retry_at = Some(now + retry_after);
                backoff.last = Some(reason.clone());
                tracing::warn!(error = %reason, retry_in_secs = retry_after.as_secs(),
                    "Doximity discovery failed; will retry");
                Err(Error::ProviderUnavailable {
                    retry_after,
                    reason,
                })
            }
        }
    }

    async fn fetch_all(&self) -> Result<(ProviderMetadata, CoreJsonWebKeySet), Error> {
        let metadata = fetch_metadata(&self.inner.http, &self.inner.config).await?;
        let keys = fetch_jwks(&self.inner.http, &metadata.jwks_uri).await?;
        Ok((metadata, keys))
    }

    fn install(
        &self,
        metadata: ProviderMetadata,
        keys: CoreJsonWebKeySet,
    ) -> Arc<ProviderMetadata> {
        let metadata = Arc::new(metadata);
        let now = self.inner.clock.now();
        self.inner.keys.replace_at(keys, now);
        *self
            .inner
            .metadata_at
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(now);
        *self
            .inner
            .metadata
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(metadata.clone());
        metadata
    }

    /// Fetches the discovery documents and the keys again (Doximity asks apps to do this
    /// regularly). On failure the previous metadata stays in use.
    #[tracing::instrument(name = "doximity.provider", skip_all, fields(endpoint = "discovery"))]
    pub async fn refresh_metadata(&self) -> Result<(), Error> {
        let (metadata, keys) = self.fetch_all().await?;
        self.install(metadata, keys);
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The provider metadata in use; `None` until a lazy client has read it (see
    /// [`Client::ready`]).
    pub fn metadata(&self) -> Option<Arc<ProviderMetadata>> {
        self.inner
            .metadata
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The rate-limit status of the provider's last response, if it sent one.
    pub fn rate_limit(&self) -> Option<RateLimitStatus> {
        self.inner.http.rate_limit()
    }

    /// `check_session_iframe`, for OpenID Connect Session Management; `None` when the
    /// provider does not advertise it or a lazy client has not read the metadata yet.
    pub fn check_session_iframe(&self) -> Option<Url> {
        self.metadata()?.check_session_iframe.clone()
    }

    /// The authorization URL to send the browser to (Step 2), and the [`PendingLogin`] to
    /// keep until the callback: fresh 256-bit `state` and `nonce`, PKCE S256 with a 256-bit
    /// verifier.
    pub async fn authorize_url(
        &self,
        request: &AuthorizeRequest,
    ) -> Result<(Url, PendingLogin), Error> {
        let metadata = self.ready().await?;
        if let Some(value) = request.acr_values().iter().find(|v| {
            !authorize::is_acr_token(v)
                || !(metadata.acr_values_supported.is_empty()
                    || metadata.acr_values_supported.contains(v))
        }) {
            return Err(Error::AcrNotSupported(escape(value)));
        }
        let c = &self.inner.config;
        Ok(authorize::build(
            &metadata.authorization_endpoint,
            &c.client_id,
            &c.redirect_uri,
            &c.scopes,
            request,
            self.inner.clock.epoch_secs(),
        ))
    }

    /// Completes a login from the callback's query (or fragment) string: checks it (state
    /// first), exchanges the code, and verifies the ID token. This is Steps 4 to 6.
    pub async fn complete_login(
        &self,
        pending: &PendingLogin,
        callback: &str,
    ) -> Result<TokenSet, Error> {
        let iss_parameter = IssParameter::from_metadata(&*self.ready().await?);
        let authorized = CallbackParams::parse(callback)?.validate(
            pending,
            &self.inner.config.issuer,
            iss_parameter,
            self.inner.clock.epoch_secs(),
        )?;
        self.exchange_code(pending, authorized).await
    }

    /// Exchanges a checked authorization code (Step 5) and verifies the ID token (Step 6).
    #[tracing::instrument(name = "doximity.provider", skip_all, fields(endpoint = "token"))]
    pub async fn exchange_code(
        &self,
        pending: &PendingLogin,
        authorized: Authorized,
    ) -> Result<TokenSet, Error> {
        let form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", authorized.code.secret().clone()),
            ("redirect_uri", pending.redirect_uri.clone()),
            ("code_verifier", pending.pkce_verifier.secret().clone()),
        ];
        let (raw, token_type) = self.token_request(form).await?;
        let now = self.inner.clock.epoch_secs();
        let id_token = RawIdToken::new(raw.id_token.clone().ok_or(Error::MissingIdToken)?);
        let access_token = AccessToken::new(raw.access_token.clone());
        let claims = self
            .verify_sign_in_id_token(&id_token, &pending.nonce, Some(&access_token))
            .await?;
        let expect = self.expect();
        claims::check_authentication(
            &claims,
            &pending.acr_values,
            pending.max_age,
            expect.now,
            expect.leeway,
        )
        .map_err(Error::IdToken)?;
        Ok(TokenSet {
            scopes: raw.scopes(&pending.scopes)?,
            expires_at: raw.expires_at(now),
            refresh_token: raw.refresh_token.map(RefreshToken::new),
            access_token,
            id_token,
            claims,
            session_state: authorized.session_state,
            token_type,
        })
    }

    /// Verifies the ID token of a sign-in (the code exchange): signature, every claim rule,
    /// and the `nonce` of this login, which must be present and equal. `at_hash` is checked
    /// when the token has one and `access_token` is given. [`Client::complete_login`] does
    /// this for you.
    pub async fn verify_sign_in_id_token(
        &self,
        id_token: &RawIdToken,
        nonce: &Nonce,
        access_token: Option<&AccessToken>,
    ) -> Result<IdTokenClaims, Error> {
        self.verify_id_token(id_token, Some(nonce), access_token)
            .await
    }

    /// Verifies an ID token that a client *presents* as a credential (for example in an
    /// `Authorization: Bearer` header), outside any sign-in of ours: signature (RS256, a
    /// provider key), `iss` exactly ours, `aud` our client id (plus at most the issuer), `azp`,
    /// `exp` with the leeway, `iat` not in the future. There is no nonce to check.
    ///
    /// # Security
    ///
    /// Without a nonce nothing ties the token to a sign-in this app started, and nothing binds
    /// it to whoever presents it: anyone who obtained a still-valid ID token (from a log, a
    /// browser, another service it was shared with) can present it until its `exp`. An ID
    /// token is proof of a sign-in addressed to this client, not an access credential, and
    /// it cannot be revoked. Accept it only where that is acceptable, keep the time it is
    /// trusted short, and prefer access tokens verified through
    /// [`Client::verify_access_token`], which the provider can revoke. The audience check
    /// still refuses tokens minted for another client.
    pub async fn verify_presented_id_token(
        &self,
        id_token: &RawIdToken,
    ) -> Result<IdTokenClaims, Error> {
        self.verify_id_token(id_token, None, None).await
    }

    /// Verifies an ID token: RS256 with a provider key (refetching the JWKS once on an
    /// unknown `kid`), then every claim rule. `nonce` is required when given; `at_hash` is
    /// checked when the token has one and `access_token` is given.
    ///
    /// Prefer the two named forms: [`Client::verify_sign_in_id_token`] (nonce required) and
    /// [`Client::verify_presented_id_token`] (no nonce, read its `# Security` section).
    pub async fn verify_id_token(
        &self,
        id_token: &RawIdToken,
        nonce: Option<&Nonce>,
        access_token: Option<&AccessToken>,
    ) -> Result<IdTokenClaims, Error> {
        let jwt = UnverifiedJwt::parse(id_token.secret()).map_err(Error::IdToken)?;
        let key = self.key_for(jwt.kid.as_deref(), Error::IdToken).await?;
        let claims = jwt.verify(&key).map_err(Error::IdToken)?;
        claims::check_id_token(claims, &self.expect(), &key, nonce, access_token)
            .map_err(Error::IdToken)
    }

    /// Refreshes the tokens (Step 7). Doximity rotates both: the old pair is dead once this
    /// returns, so keep the result. `scopes` may only narrow what was granted. A refreshed ID
    /// token must keep `iss`, `sub` and `aud` and carry no different nonce.
    #[tracing::instrument(name = "doximity.provider", skip_all, fields(endpoint = "token"))]
    pub async fn refresh(
        &self,
        tokens: &TokenSet,
        scopes: Option<&Scopes>,
    ) -> Result<TokenSet, Error> {
        let refresh_token = tokens
            .refresh_token
            .as_ref()
            .ok_or(Error::EndpointNotAdvertised("refresh_token"))?;
        let scopes = scopes.unwrap_or(&tokens.scopes);
        if let Some(extra) = scopes.iter().find(|s| !tokens.scopes.contains(s)) {
            return Err(Error::ScopeNotGranted {
                scope: extra.to_owned(),
            });
        }
        let form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.secret().clone()),
            ("scope", scopes.to_string()),
        ];
        let (raw, token_type) = self.token_request(form).await?;
        let now = self.inner.clock.epoch_secs();
        let access_token = AccessToken::new(raw.access_token.clone());
        let (id_token, claims) = match &raw.id_token {
            Some(jwt) => {
                let id_token = RawIdToken::new(jwt.clone());
                let claims = self
                    .verify_id_token(&id_token, None, Some(&access_token))
                    .await?;
                claims::check_refreshed(&claims, &tokens.claims).map_err(Error::IdToken)?;
                (id_token, claims)
            }
            None => (tokens.id_token.clone(), tokens.claims.clone()),
        };
        Ok(TokenSet {
            scopes: raw.scopes(scopes)?,
            expires_at: raw.expires_at(now),
            refresh_token: raw
                .refresh_token
                .map(RefreshToken::new)
                .or_else(|| tokens.refresh_token.clone()),
            access_token,
            id_token,
            claims,
            session_state: tokens.session_state.clone(),
            token_type,
        })
    }

    /// Revokes a token (RFC 7009). 200 is success; a 503 is [`Error::Unavailable`], which
    /// [`Error::is_retryable`].
    #[tracing::instrument(name = "doximity.provider", skip_all, fields(endpoint = "revocation"))]
    pub async fn revoke(&self, token: RevocableToken<'_>) -> Result<(), Error> {
        let endpoint = self
            .ready()
            .await?
            .revocation_endpoint
            .clone()
            .ok_or(Error::EndpointNotAdvertised("revocation_endpoint"))?;
        let (value, hint) = match token {
            RevocableToken::Access(t) => (t.secret().clone(), "access_token"),
            RevocableToken::Refresh(t) => (t.secret().clone(), "refresh_token"),
        };
        let request =
            self.authenticated(vec![("token", value), ("token_type_hint", hint.to_owned())]);
        let response = self
            .post_form(Endpoint::Revocation, endpoint, request)
            .await?;
        if response.is_success() {
            Ok(())
        } else {
            Err(response.error(Endpoint::Revocation))
        }
    }

    /// Calls userinfo and verifies the signed (`application/jwt`) answer; its `sub` must be
    /// `expected_sub`.
    ///
    /// Pass the [`TokenSet`] (or a [`PresentedToken`]) so a DPoP-bound token is presented as
    /// `DPoP` with a proof; a bare [`AccessToken`] is presented as `Bearer`.
    #[tracing::instrument(name = "doximity.provider", skip_all, fields(endpoint = "userinfo"))]
    pub async fn userinfo(
        &self,
        access_token: impl Into<PresentedToken<'_>>,
        expected_sub: &str,
    ) -> Result<UserInfo, Error> {
        let (claims, _) = self.signed_userinfo(access_token.into()).await?;
        claims::check_userinfo(claims, &self.expect(), expected_sub).map_err(Error::Userinfo)
    }

    /// Verifies an access token presented to an API through the provider's signed userinfo
    /// answer (signature, `iss`, `aud`, `exp` when present), and returns what the answer
    /// vouches for: the subject, the scopes it shows, the profile. The way to build a bearer
    /// identity: no ID token or session is invented for it.
    ///
    /// Each call is one provider request and counts against the rate limit: cache the result
    /// by a hash of the token.
    pub async fn verify_access_token(
        &self,
        access_token: &AccessToken,
    ) -> Result<VerifiedAccessToken, Error> {
        let userinfo = self.identify_access_token(access_token).await?;
        Ok(VerifiedAccessToken::from_verified_userinfo(
            access_token.clone(),
            userinfo,
        ))
    }

    /// Identifies the holder of an access token (a bearer API call) through the signed
    /// userinfo answer: signature, `iss` and `aud` are checked; the subject is whoever the
    /// provider says.
    #[tracing::instrument(name = "doximity.provider", skip_all, fields(endpoint = "userinfo"))]
    pub async fn identify_access_token(
        &self,
        access_token: &AccessToken,
    ) -> Result<UserInfo, Error> {
        let (claims, _) = self.signed_userinfo(access_token.into()).await?;
        let sub = match claims.get("sub") {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(Error::Userinfo(JwtError::MissingClaim("sub"))),
        };
        claims::check_userinfo(claims, &self.expect(), &sub).map_err(Error::Userinfo)
    }

    async fn signed_userinfo(
        &self,
        access_token: PresentedToken<'_>,
    ) -> Result<(serde_json::Map<String, serde_json::Value>, CoreJsonWebKey), Error> {
        let endpoint = self
            .ready()
            .await?
            .userinfo_endpoint
            .clone()
            .ok_or(Error::EndpointNotAdvertised("userinfo_endpoint"))?;
        let response = self
            .resource_get(Endpoint::Userinfo, endpoint, access_token)
            .await?;
        if !response.content_type.starts_with("application/jwt") {
            return Err(Error::Userinfo(JwtError::NotSigned(escape(
                &response.content_type,
            ))));
        }
        let text = std::str::from_utf8(&response.body)
            .map_err(|_| Error::Userinfo(JwtError::Malformed("not UTF-8")))?
            .trim();
        let jwt = UnverifiedJwt::parse(text).map_err(Error::Userinfo)?;
        let key = self.key_for(jwt.kid.as_deref(), Error::Userinfo).await?;
        let claims = jwt.verify(&key).map_err(Error::Userinfo)?;
        Ok((claims, key))
    }

    /// The RP-initiated logout URL (GET form): `id_token_hint`, the configured
    /// `post_logout_redirect_uri`, and `state` when given.
    pub async fn logout_url(
        &self,
        id_token_hint: &RawIdToken,
        state: Option<&str>,
    ) -> Result<Url, Error> {
        let (mut url, fields) = self.logout_form(id_token_hint, state).await?;
        url.query_pairs_mut().extend_pairs(fields);
        Ok(url)
    }

    /// The RP-initiated logout as a POST form: the endpoint and its fields.
    pub async fn logout_form(
        &self,
        id_token_hint: &RawIdToken,
        state: Option<&str>,
    ) -> Result<(Url, LogoutFields), Error> {
        let url = self
            .ready()
            .await?
            .end_session_endpoint
            .clone()
            .ok_or(Error::EndpointNotAdvertised("end_session_endpoint"))?;
        let mut fields = vec![
            ("id_token_hint", id_token_hint.secret().to_owned()),
            (
                "post_logout_redirect_uri",
                self.inner.config.post_logout_redirect_uri().to_string(),
            ),
        ];
        if let Some(state) = state {
            fields.push(("state", state.to_owned()));
        }
        Ok((url, fields))
    }

    /// Reads the rate-limit status from `/api/v1/rate_limit` (which costs no request).
    #[tracing::instrument(name = "doximity.provider", skip_all, fields(endpoint = "rate_limit"))]
    pub async fn fetch_rate_limit(
        &self,
        access_token: impl Into<PresentedToken<'_>>,
    ) -> Result<RateLimitStatus, Error> {
        let url = self.api_url("api/v1/rate_limit")?;
        self.resource_get(Endpoint::RateLimit, url, access_token.into())
            .await?
            .json(Endpoint::RateLimit)
    }

    /// The older API's profile call, `/api/v1/users/current` (`002_*.txt`). Opt-in: it is
    /// not part of the OpenID Connect flow. The token goes in the `Authorization` header,
    /// never in the URL.
    #[tracing::instrument(
        name = "doximity.provider",
        skip_all,
        fields(endpoint = "users_current")
    )]
    pub async fn legacy_current_user(
        &self,
        access_token: impl Into<PresentedToken<'_>>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
        let url = self.api_url("api/v1/users/current")?;
        self.resource_get(Endpoint::UsersCurrent, url, access_token.into())
            .await?
            .json(Endpoint::UsersCurrent)
    }

    /// `GET url` with the access token as its [`TokenType`] says: `Bearer`, or `DPoP` with a
    /// proof (and one retry when the server asks for a nonce). A 401 is a rejected token; any
    /// other non-2xx is an error; a 2xx is returned.
    async fn resource_get(
        &self,
        endpoint: Endpoint,
        url: Url,
        token: PresentedToken<'_>,
    ) -> Result<Response, Error> {
        let key = match token.token_type {
            TokenType::Bearer => None,
            TokenType::Dpop => Some(self.dpop_key_now().await?.ok_or(DpopError::NotAvailable)?),
        };
        let authorization = authorization_value(endpoint, token)?;
        let response = self
            .send_dpop(
                endpoint,
                &http::Method::GET,
                &url,
                key,
                Some(token.access_token),
                || {
                    self.inner
                        .http
                        .client()
                        .get(url.clone())
                        .header(http::header::AUTHORIZATION, authorization.clone())
                },
            )
            .await?;
        match response.status {
            200..=299 => Ok(response),
            401 => Err(Error::TokenRejected { endpoint }),
            _ => Err(response.error(endpoint)),
        }
    }

    /// The DPoP key to use with this provider: the configured one, when the provider's
    /// metadata advertises an algorithm this crate implements. Never chosen from a token.
    pub(crate) fn dpop_key_for(&self, metadata: &ProviderMetadata) -> Option<&DpopKey> {
        let key = self.inner.config.dpop_key.as_ref()?;
        crate::dpop::alg_supported(&metadata.dpop_signing_alg_values_supported).then_some(key)
    }

    async fn dpop_key_now(&self) -> Result<Option<&DpopKey>, Error> {
        let metadata = self.ready().await?;
        Ok(self.dpop_key_for(&metadata))
    }

    /// Whether this client sends DPoP proofs to its provider: a key is configured and the
    /// provider advertises `RS256` in `dpop_signing_alg_values_supported`.
    pub async fn uses_dpop(&self) -> Result<bool, Error> {
        Ok(self.dpop_key_now().await?.is_some())
    }

    /// A DPoP proof for a call of `method` to `url` with `access_token` (its `ath`), or for a
    /// call without a token (`None`, no `ath`). It carries the nonce last received from that
    /// server (see [`Client::record_dpop_nonce`]). `Ok(None)` when this client does not use
    /// DPoP ([`Client::uses_dpop`]): then send the token as `Bearer`.
    ///
    /// This is how an application calls a Doximity API with a DPoP-bound token without ever
    /// holding the key: put `Authorization: DPoP <token>` and `DPoP: <proof>` on the request.
    /// A proof is single-use: make a new one for every request, retries included.
    /// [`Client::resource_headers`] builds both headers from a [`TokenSet`].
    pub async fn dpop_proof(
        &self,
        method: &http::Method,
        url: &Url,
        access_token: Option<&AccessToken>,
    ) -> Result<Option<DpopProof>, Error> {
        match self.dpop_key_now().await? {
            Some(key) => Ok(Some(self.make_proof(key, method, url, access_token)?)),
            None => Ok(None),
        }
    }

    /// The `Authorization` header, and for a DPoP-bound token the `DPoP` proof header, for one
    /// call of `method` to `url` with `tokens` (a [`TokenSet`] or a [`PresentedToken`]). The
    /// scheme is the one the token set records.
    ///
    /// When the API answers 401 with `WWW-Authenticate: DPoP error="use_dpop_nonce"`, pass
    /// its headers to [`Client::record_dpop_nonce`] and call this again for one retry.
    ///
    /// # Errors
    ///
    /// [`DpopError::NotAvailable`] for a DPoP-bound token when this client has no key or
    /// the provider no longer advertises `RS256`; [`Error::TokenRejected`] (naming the
    /// userinfo endpoint, without any call) for a token that cannot be a header value.
    pub async fn resource_headers(
        &self,
        method: &http::Method,
        url: &Url,
        tokens: impl Into<PresentedToken<'_>>,
    ) -> Result<ResourceHeaders, Error> {
        let token = tokens.into();
        let authorization = authorization_value(Endpoint::Userinfo, token)?;
        let dpop = match token.token_type {
            TokenType::Bearer => None,
            TokenType::Dpop => {
                let key = self.dpop_key_now().await?.ok_or(DpopError::NotAvailable)?;
                let proof = self.make_proof(key, method, url, Some(token.access_token))?;
                let mut value =
                    http::HeaderValue::from_str(proof.as_str()).map_err(|_| DpopError::Signing)?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(ResourceHeaders {
            authorization,
            dpop,
        })
    }

    /// Remembers the `DPoP-Nonce` a response from `url`'s server carried, for the next proof
    /// to that server. The client does this itself for its own calls; call it for the
    /// responses of API calls made with [`Client::resource_headers`]. A missing or malformed
    /// header is ignored.
    pub fn record_dpop_nonce(&self, url: &Url, response_headers: &http::HeaderMap) {
        if let Some(nonce) = response_headers
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .filter(|v| crate::dpop::valid_nonce(v))
        {
            self.remember_dpop_nonce(url, nonce);
        }
    }

    fn remember_dpop_nonce(&self, url: &Url, nonce: &str) {
        let mut nonces = self
            .inner
            .dpop_nonces
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let origin = url.origin().ascii_serialization();
        if nonces.len() >= MAX_DPOP_NONCES && !nonces.contains_key(&origin) {
            nonces.clear();
        }
        nonces.insert(origin, nonce.to_owned());
    }

    fn make_proof(
        &self,
        key: &DpopKey,
        method: &http::Method,
        url: &Url,
        access_token: Option<&AccessToken>,
    ) -> Result<DpopProof, Error> {
        let nonce = self
            .inner
            .dpop_nonces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&url.origin().ascii_serialization())
            .cloned();
        Ok(key.proof(
            method.as_str(),
            url,
            access_token,
            nonce.as_deref(),
            self.inner.clock.epoch_secs(),
        )?)
    }

    /// Sends the request `build` makes, with a fresh DPoP proof when `key` is given, and
    /// applies RFC 9449's nonce rule: a `use_dpop_nonce` answer (the token endpoint's 400, or a
    /// resource's 401 challenge) is retried exactly once with the nonce it carried; a second
    /// one in a row is [`DpopError::NonceRejected`]. Every `DPoP-Nonce` received is
    /// remembered for the server.
    async fn send_dpop(
        &self,
        endpoint: Endpoint,
        method: &http::Method,
        url: &Url,
        key: Option<&DpopKey>,
        access_token: Option<&AccessToken>,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Response, Error> {
        let Some(key) = key else {
            return self.inner.http.send(endpoint, build()).await;
        };
        let mut retried = false;
        loop {
            let proof = self.make_proof(key, method, url, access_token)?;
            let request = build().header(DPOP, proof.as_str());
            let response = self.inner.http.send(endpoint, request).await?;
            if let Some(nonce) = &response.dpop_nonce {
                self.remember_dpop_nonce(url, nonce);
            }
            let asks_nonce = response.is_use_dpop_nonce_error()
                || (response.status == 401 && response.asks_dpop_nonce);
            if !asks_nonce {
                return Ok(response);
            }
            if response.dpop_nonce.is_none() {
                return Err(DpopError::MissingNonce { endpoint }.into());
            }
            if retried {
                return Err(DpopError::NonceRejected { endpoint }.into());
            }
            tracing::debug!(%endpoint, "the provider asked for a DPoP nonce; retrying once");
            retried = true;
        }
    }

    fn api_url(&self, path: &str) -> Result<Url, Error> {
        let mut base = self.inner.config.api_base();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        base.join(path).map_err(|e| {
            Error::Config(crate::error::ConfigError::InvalidUrl {
                name: "api_base",
                reason: e.to_string(),
            })
        })
    }

    fn expect(&self) -> Expect<'_> {
        let c = &self.inner.config;
        Expect {
            issuer: &c.issuer,
            client_id: &c.client_id,
            now: self.inner.clock.epoch_secs(),
            leeway: i64::try_from(c.leeway.as_secs()).unwrap_or(i64::MAX),
        }
    }

    pub(crate) fn authenticated(&self, form: Vec<(&'static str, String)>) -> FormRequest {
        let c = &self.inner.config;
        authenticated(c.auth_method, &c.client_id, &c.client_secret, form)
    }

    /// A token-endpoint call, with a DPoP proof when DPoP is in use; returns the parsed
    /// answer and the kind of its tokens.
    async fn token_request(
        &self,
        form: Vec<(&'static str, String)>,
    ) -> Result<(RawTokenResponse, TokenType), Error> {
        let metadata = self.ready().await?;
        let request = self.authenticated(form);
        let key = self.dpop_key_for(&metadata);
        let response = self
            .post_token(metadata.token_endpoint.clone(), request, key)
            .await?;
        let raw: RawTokenResponse = response.json(Endpoint::Token)?;
        let token_type = raw.check_type(key.is_some())?;
        Ok((raw, token_type))
    }

    /// POSTs to the token endpoint, with a DPoP proof (and the nonce retry) when `key` is given.
    pub(crate) async fn post_token(
        &self,
        url: Url,
        request: FormRequest,
        key: Option<&DpopKey>,
    ) -> Result<Response, Error> {
        self.send_dpop(
            Endpoint::Token,
            &http::Method::POST,
            &url,
            key,
            None,
            || self.form_builder(url.clone(), &request),
        )
        .await
    }

    pub(crate) async fn post_form(
        &self,
        endpoint: Endpoint,
        url: Url,
        request: FormRequest,
    ) -> Result<Response, Error> {
        let builder = self.form_builder(url, &request);
        self.inner.http.send(endpoint, builder).await
    }

    fn form_builder(&self, url: Url, request: &FormRequest) -> reqwest::RequestBuilder {
        let mut builder = self
            .inner
            .http
            .client()
            .post(url)
            .header(http::header::ACCEPT, "application/json")
            .form(&request.form);
        if let Some(auth) = &request.authorization {
            builder = builder.header(http::header::AUTHORIZATION, auth);
        }
        builder
    }

    /// Finds the key for `kid`. On a miss, refetches the JWKS once (single-flight: concurrent
    /// misses wait for one fetch) and at most once per minute; then fails.
    /// Reads both metadata documents (and the keys) again once they are a day old, so a
    /// provider's changed endpoints or signing keys reach a long-running process. One task
    /// does it while the others go on with the current metadata; a failure keeps the current
    /// metadata (logged) and is tried again a minute later.
    async fn refresh_stale_metadata(&self) {
        let now = self.inner.clock.now();
        let stale = |at: Option<SystemTime>| {
            at.is_some_and(|at| now.duration_since(at).is_ok_and(|age| age >= KEYS_MAX_AGE))
        };
        let at = || {
            *self
                .inner
                .metadata_at
                .lock()
                .unwrap_or_else(|e| e.into_inner())
        };
        if !stale(at()) {
            return;
        }
        let Ok(_one) = self.inner.start.try_lock() else {
            return;
        };
        if !stale(at()) {
            return;
        }
        match self.fetch_all().await {
            Ok((metadata, keys)) => {
                self.install(metadata, keys);
            }
            Err(e) => {
                tracing::warn!(error = %e, "the daily metadata refresh failed; keeping the metadata");
                // Try again in a minute: pretend the last read was a minute short of a day ago.
                let retry = now
                    .checked_sub(KEYS_MAX_AGE)
                    .and_then(|t| t.checked_add(REFETCH_INTERVAL));
                *self
                    .inner
                    .metadata_at
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = retry;
            }
        }
    }

    /// Fetches the key set again once it is a day old ([`KEYS_MAX_AGE`]), through the same
    /// single-flight gate and once-a-minute limit as an unknown `kid`. A failure keeps the
    /// current keys (logged) and waits out the limit.
    async fn refresh_stale_keys(&self, metadata: &ProviderMetadata) {
        let now = self.inner.clock.now();
        let fetched = self.inner.keys.fetched_at(now);
        if now
            .duration_since(fetched)
            .map_or(true, |age| age < KEYS_MAX_AGE)
        {
            return;
        }
        let mut last_refetch = self.inner.keys.refetch_gate().await;
        let recently = last_refetch
            .is_some_and(|t| now.duration_since(t).map_or(true, |d| d < REFETCH_INTERVAL));
        let fetched = self.inner.keys.fetched_at(now);
        if recently
            || now
                .duration_since(fetched)
                .map_or(true, |age| age < KEYS_MAX_AGE)
        {
            return;
        }
        *last_refetch = Some(now);
        match fetch_jwks(&self.inner.http, &metadata.jwks_uri).await {
            Ok(fresh) => self.inner.keys.replace_at(fresh, now),
            Err(e) => tracing::warn!(error = %e, "the daily key refresh failed; keeping the keys"),
        }
    }

    async fn key_for(
        &self,
        kid: Option<&str>,
        wrap: fn(JwtError) -> Error,
    ) -> Result<CoreJsonWebKey, Error> {
        let metadata = self.ready().await?;
        self.refresh_stale_keys(&metadata).await;
        let (generation, set) = self.inner.keys.current();
        match lookup(&set, kid) {
            Lookup::Found(k) => return Ok(*k),
            Lookup::Ambiguous(n) => return Err(wrap(JwtError::AmbiguousKey(n))),
            Lookup::NotFound => {}
        }
        let unknown = || wrap(JwtError::UnknownKeyId(escape(kid.unwrap_or_default())));
        let mut last_refetch = self.inner.keys.refetch_gate().await;
        let (now_generation, set) = self.inner.keys.current();
        let now = self.inner.clock.now();
        let recently = last_refetch
            .is_some_and(|t| now.duration_since(t).map_or(true, |d| d < REFETCH_INTERVAL));
        if now_generation == generation && !recently {
            // Armed before the call: a failed refetch waits out the interval too, so made-up
            // `kid`s cannot make every request call the provider while its JWKS is failing.
            *last_refetch = Some(now);
            let fresh = fetch_jwks(&self.inner.http, &metadata.jwks_uri).await?;
            self.inner.keys.replace_at(fresh, now);
        }
        drop(last_refetch);
        let set = if now_generation == generation {
            self.inner.keys.current().1
        } else {
            set
        };
        match lookup(&set, kid) {
            Lookup::Found(k) => Ok(*k),
            Lookup::Ambiguous(n) => Err(wrap(JwtError::AmbiguousKey(n))),
            Lookup::NotFound => Err(unknown()),
        }
    }
}

async fn fetch_document(
    http: &Http,
    endpoint: Endpoint,
    url: Url,
) -> Result<Option<RawMetadata>, Error> {
    let response = http.send(endpoint, http.client().get(url)).await?;
    if response.status == 404 && endpoint == Endpoint::AuthorizationServerMetadata {
        return Ok(None);
    }
    response.json(endpoint).map(Some)
}

async fn fetch_metadata(http: &Http, config: &Config) -> Result<ProviderMetadata, Error> {
    let issuer = config.issuer.as_str();
    let (oidc, oauth) = tokio::join!(
        fetch_document(
            http,
            Endpoint::OpenIdConfiguration,
            well_known(issuer, "openid-configuration")?
        ),
        fetch_document(
            http,
            Endpoint::AuthorizationServerMetadata,
            well_known(issuer, "oauth-authorization-server")?
        ),
    );
    let oidc = oidc?.ok_or(Error::UnexpectedStatus {
        endpoint: Endpoint::OpenIdConfiguration,
        status: 404,
    })?;
    Ok(ProviderMetadata::from_documents_with(
        issuer,
        oidc,
        oauth?,
        DiscoveryPolicy::from_config(config),
    )?)
}

async fn fetch_jwks(http: &Http, uri: &Url) -> Result<CoreJsonWebKeySet, Error> {
    let response = http
        .send(Endpoint::Jwks, http.client().get(uri.clone()))
        .await?;
    response.json(Endpoint::Jwks)
}

/// The `Authorization` value for a token, marked sensitive. A token that cannot be a header
/// value cannot be valid: it is refused without a request.
fn authorization_value(
    endpoint: Endpoint,
    token: PresentedToken<'_>,
) -> Result<http::HeaderValue, Error> {
    let scheme = token.token_type.scheme();
    let mut value =
        http::HeaderValue::from_str(&format!("{scheme} {}", token.access_token.secret()))
            .map_err(|_| Error::TokenRejected { endpoint })?;
    value.set_sensitive(true);
    Ok(value)
}
