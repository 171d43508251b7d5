//! [`Client`]: discovery, keys and every provider call, over one HTTPS client.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet};
use url::Url;

use crate::authorize::{self, AuthorizeRequest, PendingLogin};
use crate::callback::{Authorized, CallbackParams, IssParameter};
use crate::claims::{self, Expect, IdTokenClaims, UserInfo};
use crate::config::Config;
use crate::discovery::{DiscoveryPolicy, ProviderMetadata, RawMetadata, well_known};
use crate::error::{Endpoint, Error, JwtError};
use crate::http::{Http, Response};
use crate::jwt::{Lookup, REFETCH_INTERVAL, UnverifiedJwt, lookup};
use crate::ratelimit::RateLimitStatus;
use crate::scope::Scopes;
use crate::secret::{AccessToken, Nonce, RawIdToken, RefreshToken};
use crate::token::{FormRequest, RawTokenResponse, TokenSet, authenticated};

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

/// A Doximity OpenID Connect client: cheap to clone, shareable across tasks.
///
/// Built by [`Client::discover`], which reads both discovery documents and the JWKS.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    http: Http,
    clock: Clock,
    metadata: RwLock<Arc<ProviderMetadata>>,
    keys: crate::jwt::KeyCache,
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
    pub async fn discover_with_clock(config: Config, clock: Clock) -> Result<Self, Error> {
        let http = Http::new(config.extra_root_pem.as_deref(), config.timeout)?;
        let metadata = fetch_metadata(&http, &config).await?;
        let keys = fetch_jwks(&http, &metadata.jwks_uri).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                http,
                clock,
                metadata: RwLock::new(Arc::new(metadata)),
                keys: crate::jwt::KeyCache::new(keys),
            }),
        })
    }

    /// Fetches the discovery documents and the keys again (Doximity asks apps to do this
    /// regularly). On failure the previous metadata stays in use.
    pub async fn refresh_metadata(&self) -> Result<(), Error> {
        let metadata = fetch_metadata(&self.inner.http, &self.inner.config).await?;
        let keys = fetch_jwks(&self.inner.http, &metadata.jwks_uri).await?;
        *self
            .inner
            .metadata
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(metadata);
        self.inner.keys.replace(keys);
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The provider metadata in use.
    pub fn metadata(&self) -> Arc<ProviderMetadata> {
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

    /// `check_session_iframe`, for OpenID Connect Session Management.
    pub fn check_session_iframe(&self) -> Option<Url> {
        self.metadata().check_session_iframe.clone()
    }

    /// The authorization URL to send the browser to (Step 2), and the [`PendingLogin`] to
    /// keep until the callback: fresh 256-bit `state` and `nonce`, PKCE S256 with a 256-bit
    /// verifier.
    pub fn authorize_url(&self, request: &AuthorizeRequest) -> (Url, PendingLogin) {
        let c = &self.inner.config;
        authorize::build(
            &self.metadata().authorization_endpoint,
            &c.client_id,
            &c.redirect_uri,
            &c.scopes,
            request,
            self.inner.clock.epoch_secs(),
        )
    }

    /// Completes a login from the callback's query (or fragment) string: checks it (state
    /// first), exchanges the code, and verifies the ID token. This is Steps 4 to 6.
    pub async fn complete_login(
        &self,
        pending: &PendingLogin,
        callback: &str,
    ) -> Result<TokenSet, Error> {
        let iss_parameter = IssParameter::from_metadata(&self.metadata());
        let authorized = CallbackParams::parse(callback)?.validate(
            pending,
            &self.inner.config.issuer,
            iss_parameter,
            self.inner.clock.epoch_secs(),
        )?;
        self.exchange_code(pending, authorized).await
    }

    /// Exchanges a checked authorization code (Step 5) and verifies the ID token (Step 6).
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
        let raw = self.token_request(form).await?;
        let now = self.inner.clock.epoch_secs();
        let id_token = RawIdToken::new(raw.id_token.clone().ok_or(Error::MissingIdToken)?);
        let access_token = AccessToken::new(raw.access_token.clone());
        let claims = self
            .verify_id_token(&id_token, Some(&pending.nonce), Some(&access_token))
            .await?;
        Ok(TokenSet {
            scopes: raw.scopes(&pending.scopes)?,
            expires_at: raw.expires_at(now),
            refresh_token: raw.refresh_token.map(RefreshToken::new),
            access_token,
            id_token,
            claims,
            session_state: authorized.session_state,
        })
    }

    /// Verifies an ID token: RS256 with a provider key (refetching the JWKS once on an
    /// unknown `kid`), then every claim rule. `nonce` is required when given; `at_hash` is
    /// checked when the token has one and `access_token` is given.
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
        let raw = self.token_request(form).await?;
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
        })
    }

    /// Revokes a token (RFC 7009). 200 is success; a 503 is [`Error::Unavailable`], which
    /// [`Error::is_retryable`].
    pub async fn revoke(&self, token: RevocableToken<'_>) -> Result<(), Error> {
        let endpoint = self
            .metadata()
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
    pub async fn userinfo(
        &self,
        access_token: &AccessToken,
        expected_sub: &str,
    ) -> Result<UserInfo, Error> {
        let (claims, _) = self.signed_userinfo(access_token).await?;
        claims::check_userinfo(claims, &self.expect(), expected_sub).map_err(Error::Userinfo)
    }

    /// Identifies the holder of an access token (a bearer API call) through the signed
    /// userinfo answer: signature, `iss` and `aud` are checked; the subject is whoever the
    /// provider says.
    pub async fn identify_access_token(
        &self,
        access_token: &AccessToken,
    ) -> Result<UserInfo, Error> {
        let (claims, _) = self.signed_userinfo(access_token).await?;
        let sub = match claims.get("sub") {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(Error::Userinfo(JwtError::MissingClaim("sub"))),
        };
        claims::check_userinfo(claims, &self.expect(), &sub).map_err(Error::Userinfo)
    }

    async fn signed_userinfo(
        &self,
        access_token: &AccessToken,
    ) -> Result<(serde_json::Map<String, serde_json::Value>, CoreJsonWebKey), Error> {
        let endpoint = self
            .metadata()
            .userinfo_endpoint
            .clone()
            .ok_or(Error::EndpointNotAdvertised("userinfo_endpoint"))?;
        let response = self
            .bearer_get(Endpoint::Userinfo, endpoint, access_token)
            .await?;
        if !response.content_type.starts_with("application/jwt") {
            return Err(Error::Userinfo(JwtError::NotSigned(
                response.content_type.chars().take(64).collect(),
            )));
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
    pub fn logout_url(
        &self,
        id_token_hint: &RawIdToken,
        state: Option<&str>,
    ) -> Result<Url, Error> {
        let (mut url, fields) = self.logout_form(id_token_hint, state)?;
        url.query_pairs_mut().extend_pairs(fields);
        Ok(url)
    }

    /// The RP-initiated logout as a POST form: the endpoint and its fields.
    pub fn logout_form(
        &self,
        id_token_hint: &RawIdToken,
        state: Option<&str>,
    ) -> Result<(Url, LogoutFields), Error> {
        let url = self
            .metadata()
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
    pub async fn fetch_rate_limit(
        &self,
        access_token: &AccessToken,
    ) -> Result<RateLimitStatus, Error> {
        let url = self.api_url("api/v1/rate_limit")?;
        self.bearer_get(Endpoint::RateLimit, url, access_token)
            .await?
            .json(Endpoint::RateLimit)
    }

    /// The older API's profile call, `/api/v1/users/current` (`002_*.txt`). Opt-in: it is
    /// not part of the OpenID Connect flow. The token goes in the `Authorization` header,
    /// never in the URL.
    pub async fn legacy_current_user(
        &self,
        access_token: &AccessToken,
    ) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
        let url = self.api_url("api/v1/users/current")?;
        self.bearer_get(Endpoint::UsersCurrent, url, access_token)
            .await?
            .json(Endpoint::UsersCurrent)
    }

    /// `GET url` with the access token as `Bearer`. A 401 is a rejected token; any other
    /// non-2xx is an error; a 2xx is returned.
    async fn bearer_get(
        &self,
        endpoint: Endpoint,
        url: Url,
        access_token: &AccessToken,
    ) -> Result<Response, Error> {
        let request = self
            .inner
            .http
            .client()
            .get(url)
            .bearer_auth(access_token.secret());
        let response = self.inner.http.send(endpoint, request).await?;
        match response.status {
            200..=299 => Ok(response),
            401 => Err(Error::TokenRejected { endpoint }),
            _ => Err(response.error(endpoint)),
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

    fn authenticated(&self, form: Vec<(&'static str, String)>) -> FormRequest {
        let c = &self.inner.config;
        authenticated(c.auth_method, &c.client_id, &c.client_secret, form)
    }

    async fn token_request(
        &self,
        form: Vec<(&'static str, String)>,
    ) -> Result<RawTokenResponse, Error> {
        let endpoint = self.metadata().token_endpoint.clone();
        let request = self.authenticated(form);
        let response = self.post_form(Endpoint::Token, endpoint, request).await?;
        let raw: RawTokenResponse = response.json(Endpoint::Token)?;
        raw.check_type()?;
        Ok(raw)
    }

    async fn post_form(
        &self,
        endpoint: Endpoint,
        url: Url,
        request: FormRequest,
    ) -> Result<Response, Error> {
        let mut builder = self
            .inner
            .http
            .client()
            .post(url)
            .header(http::header::ACCEPT, "application/json")
            .form(&request.form);
        if let Some(auth) = request.authorization {
            builder = builder.header(http::header::AUTHORIZATION, auth);
        }
        self.inner.http.send(endpoint, builder).await
    }

    /// Finds the key for `kid`. On a miss, refetches the JWKS once (single-flight: concurrent
    /// misses wait for one fetch) and at most once per minute; then fails.
    async fn key_for(
        &self,
        kid: Option<&str>,
        wrap: fn(JwtError) -> Error,
    ) -> Result<CoreJsonWebKey, Error> {
        let (generation, set) = self.inner.keys.current();
        match lookup(&set, kid) {
            Lookup::Found(k) => return Ok(*k),
            Lookup::Ambiguous(n) => return Err(wrap(JwtError::AmbiguousKey(n))),
            Lookup::NotFound => {}
        }
        let unknown = || {
            wrap(JwtError::UnknownKeyId(
                kid.unwrap_or_default().chars().take(64).collect(),
            ))
        };
        let mut last_refetch = self.inner.keys.refetch_gate().await;
        let (now_generation, set) = self.inner.keys.current();
        let now = self.inner.clock.now();
        let recently = last_refetch
            .is_some_and(|t| now.duration_since(t).map_or(true, |d| d < REFETCH_INTERVAL));
        if now_generation == generation && !recently {
            let jwks_uri = self.metadata().jwks_uri.clone();
            let fresh = fetch_jwks(&self.inner.http, &jwks_uri).await?;
            *last_refetch = Some(now);
            self.inner.keys.replace(fresh);
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
