//! Every way the protocol can fail, one variant per rule.

use std::time::SystemTime;

/// Which provider endpoint a call was made to. Carried by transport and status errors so a
/// caller (and a log line) can say where things went wrong without naming any secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `/.well-known/openid-configuration`.
    OpenIdConfiguration,
    /// `/.well-known/oauth-authorization-server`.
    AuthorizationServerMetadata,
    /// The `jwks_uri`.
    Jwks,
    /// The `token_endpoint` (code exchange or refresh).
    Token,
    /// The `revocation_endpoint` (RFC 7009).
    Revocation,
    /// The `userinfo_endpoint`.
    Userinfo,
    /// `/api/v1/rate_limit`.
    RateLimit,
    /// The older API's `/api/v1/users/current`.
    UsersCurrent,
    /// The `device_authorization_endpoint` (RFC 8628).
    DeviceAuthorization,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::OpenIdConfiguration => "openid-configuration",
            Self::AuthorizationServerMetadata => "oauth-authorization-server metadata",
            Self::Jwks => "jwks",
            Self::Token => "token endpoint",
            Self::Revocation => "revocation endpoint",
            Self::Userinfo => "userinfo endpoint",
            Self::RateLimit => "rate limit endpoint",
            Self::UsersCurrent => "users/current endpoint",
            Self::DeviceAuthorization => "device authorization endpoint",
        })
    }
}

/// The error of every fallible call in this crate.
///
/// Messages never contain a secret (client secret, token, code, state, nonce, verifier).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The discovery documents broke a rule.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The authorization response (the callback) broke a rule or carried an error.
    #[error(transparent)]
    Callback(#[from] CallbackError),
    /// The ID token broke a rule.
    #[error("ID token rejected: {0}")]
    IdToken(#[source] JwtError),
    /// The signed userinfo response broke a rule.
    #[error("userinfo response rejected: {0}")]
    Userinfo(#[source] JwtError),
    /// The provider could not be reached, or the connection failed (TLS, timeout, reset).
    #[error("could not reach the Doximity {endpoint}: {source}")]
    Transport {
        /// Where the call went.
        endpoint: Endpoint,
        /// The transport failure (its URL is stripped).
        #[source]
        source: reqwest::Error,
    },
    /// The provider answered with an OAuth error (`{"error": ..., "error_description": ...}`).
    #[error("the Doximity {endpoint} refused the request: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    OAuth {
        /// Where the call went.
        endpoint: Endpoint,
        /// The HTTP status.
        status: u16,
        /// The OAuth error code, e.g. `invalid_grant`.
        error: String,
        /// The provider's `error_description`, if any.
        description: Option<String>,
    },
    /// The provider answered 429: over the hourly budget. Never retried automatically.
    #[error("Doximity rate limit exceeded at the {endpoint}; the window resets at {}", reset.map(|r| crate::ratelimit::epoch_secs(r).to_string()).unwrap_or_else(|| "an unknown time".into()))]
    RateLimited {
        /// Where the call went.
        endpoint: Endpoint,
        /// When the budget resets (`X-Rate-Limit-Reset`), if the provider said.
        reset: Option<SystemTime>,
    },
    /// The provider is temporarily unavailable (5xx). Safe to retry later.
    #[error("the Doximity {endpoint} is unavailable (HTTP {status}); try again later")]
    Unavailable {
        /// Where the call went.
        endpoint: Endpoint,
        /// The HTTP status.
        status: u16,
    },
    /// The provider refused the access token (401): unknown, expired or revoked.
    #[error("the Doximity {endpoint} rejected the access token")]
    TokenRejected {
        /// Where the call went.
        endpoint: Endpoint,
    },
    /// The provider answered with a status the protocol does not allow here (including any
    /// redirect: redirects are never followed).
    #[error("the Doximity {endpoint} answered with unexpected HTTP status {status}")]
    UnexpectedStatus {
        /// Where the call went.
        endpoint: Endpoint,
        /// The HTTP status.
        status: u16,
    },
    /// The provider's answer could not be understood.
    #[error("the Doximity {endpoint} sent a response that could not be understood: {reason}")]
    InvalidResponse {
        /// Where the call went.
        endpoint: Endpoint,
        /// What was wrong with it.
        reason: String,
    },
    /// An endpoint this call needs is not in the provider's metadata.
    #[error("the provider metadata does not advertise `{0}`")]
    EndpointNotAdvertised(&'static str),
    /// A refresh was asked with scopes beyond what was originally granted.
    #[error("a refresh may only ask for a subset of the granted scopes; `{scope}` was not granted")]
    ScopeNotGranted {
        /// The scope that was not granted.
        scope: String,
    },
    /// The token response carried no ID token although `openid` was asked for.
    #[error("the token response carried no ID token")]
    MissingIdToken,
    /// The device authorization grant (RFC 8628) ended without tokens.
    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),
    /// The token response carried a `token_type` other than `bearer`.
    #[error("the token response has token_type `{0}`, expected `bearer`")]
    UnsupportedTokenType(String),
}

impl Error {
    /// Whether trying the same call again later may succeed (provider down, rate-limited,
    /// transport failure). Protocol violations are never retryable.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Transport { .. } | Self::Unavailable { .. } | Self::RateLimited { .. }
        )
    }
}

/// The configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required variable or value is missing.
    #[error("`{0}` is required")]
    Missing(&'static str),
    /// A value is not a valid URL.
    #[error("`{name}` is not a valid URL: {reason}")]
    InvalidUrl {
        /// The setting.
        name: &'static str,
        /// Why it is not valid.
        reason: String,
    },
    /// A provider URL is not HTTPS.
    #[error("`{name}` must be an https URL, got `{url}`")]
    NotHttps {
        /// The setting.
        name: &'static str,
        /// The URL that was given.
        url: String,
    },
    /// A scope string is not a valid OAuth scope token.
    #[error("`{0}` is not a valid scope (RFC 6749 §3.3)")]
    InvalidScope(String),
    /// The extra CA certificate could not be read or parsed.
    #[error("could not load the CA certificate from `{path}`: {reason}")]
    CaCert {
        /// Where it was read from.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("could not build the HTTPS client: {0}")]
    HttpClient(String),
}

/// The discovery documents broke a rule.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The `issuer` in a discovery document is not exactly the configured issuer.
    #[error("discovery `issuer` is `{actual}`, expected exactly `{expected}`")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// What the document said.
        actual: String,
    },
    /// An endpoint in the discovery document is not an https URL.
    #[error("discovery field `{field}` must be an https URL, got `{url}`")]
    NotHttps {
        /// The field.
        field: &'static str,
        /// Its value.
        url: String,
    },
    /// A required field is missing.
    #[error("discovery document lacks `{0}`")]
    MissingField(&'static str),
    /// The provider does not support what Doximity documents (`S256`, `code`).
    #[error("discovery says the provider does not support `{0}`")]
    Unsupported(&'static str),
}

/// The authorization response broke a rule, or the provider sent an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// A parameter appears more than once.
    #[error("callback parameter `{0}` appears more than once")]
    RepeatedParameter(String),
    /// No `state` parameter.
    #[error("callback has no `state`")]
    MissingState,
    /// `state` does not match the one this login sent (a forged or replayed callback).
    #[error("callback `state` does not match this login")]
    StateMismatch,
    /// The provider's `iss` parameter (RFC 9207) is not the configured issuer.
    #[error("callback `iss` is `{actual}`, expected `{expected}`")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// What the callback said.
        actual: String,
    },
    /// The user denied the request (`error=access_denied`).
    #[error("the user denied the request{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    AccessDenied {
        /// The provider's `error_description`.
        description: Option<String>,
    },
    /// `prompt=none` and the user is not signed in at Doximity (`login_required` and friends).
    #[error("the user must sign in at Doximity (`{error}`)")]
    InteractionRequired {
        /// `login_required`, `consent_required` or `interaction_required`.
        error: String,
    },
    /// Any other OAuth error from the authorization endpoint.
    #[error("the authorization request failed: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Provider {
        /// The OAuth error code.
        error: String,
        /// The provider's `error_description`.
        description: Option<String>,
    },
    /// No `code` although no error either.
    #[error("callback has no `code`")]
    MissingCode,
    /// The login transaction is older than allowed.
    #[error("the login took too long; please sign in again")]
    Expired,
}

/// A signed JWT (ID token or userinfo) broke a rule.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Not a compact JWS with three base64url parts and JSON header and payload.
    #[error("malformed JWT: {0}")]
    Malformed(&'static str),
    /// The `alg` is not RS256 (this covers `none` and every HMAC algorithm).
    #[error("JWT algorithm `{0}` is not allowed; only RS256 is")]
    DisallowedAlgorithm(String),
    /// The header has a `crit` member, which we do not understand.
    #[error("JWT header has critical extensions we do not understand")]
    CriticalHeader,
    /// No key in the provider's JWKS has this `kid`, even after refetching it.
    #[error("no provider key has kid `{0}`")]
    UnknownKeyId(String),
    /// No `kid` and the JWKS does not have exactly one usable key.
    #[error("JWT has no kid and the provider has {0} usable keys")]
    AmbiguousKey(usize),
    /// The signature does not verify.
    #[error("JWT signature does not verify")]
    BadSignature,
    /// `iss` is not exactly the configured issuer.
    #[error("`iss` is `{actual}`, expected exactly `{expected}`")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The claim.
        actual: String,
    },
    /// `aud` does not contain our client id.
    #[error("`aud` {actual:?} does not contain our client id")]
    AudienceMissingClient {
        /// The claim.
        actual: Vec<String>,
    },
    /// `aud` contains an audience that is neither our client id nor the issuer.
    #[error("`aud` contains untrusted audience `{0}`")]
    UntrustedAudience(String),
    /// `azp` is not our client id.
    #[error("`azp` is `{actual}`, expected our client id `{expected}`")]
    AuthorizedPartyMismatch {
        /// Our client id.
        expected: String,
        /// The claim.
        actual: String,
    },
    /// Several audiences and no `azp`.
    #[error("`azp` is required when `aud` has several values")]
    MissingAuthorizedParty,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The claim, epoch seconds.
        exp: i64,
        /// Our clock, epoch seconds.
        now: i64,
    },
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future at {iat} (now {now})")]
    IssuedInFuture {
        /// The claim, epoch seconds.
        iat: i64,
        /// Our clock, epoch seconds.
        now: i64,
    },
    /// A required claim is missing or has the wrong type.
    #[error("claim `{0}` is missing or malformed")]
    MissingClaim(&'static str),
    /// The ID token carries no `nonce` although the login sent one.
    #[error("`nonce` is missing")]
    MissingNonce,
    /// `nonce` is not the one this login sent (a replayed token).
    #[error("`nonce` does not match this login")]
    NonceMismatch,
    /// `at_hash` does not match the access token it came with.
    #[error("`at_hash` does not match the access token")]
    AccessTokenHashMismatch,
    /// A refreshed ID token changed a claim that must stay (`iss`, `sub`, `aud`) or the nonce.
    #[error("refreshed ID token changed `{0}`")]
    RefreshChangedClaim(&'static str),
    /// The userinfo `sub` is not the signed-in user's.
    #[error("`sub` is `{actual}`, expected `{expected}`")]
    SubjectMismatch {
        /// The session's subject.
        expected: String,
        /// The claim.
        actual: String,
    },
    /// The userinfo response is not `application/jwt` (an unsigned answer is never trusted).
    #[error("userinfo content type is `{0}`, expected a signed `application/jwt`")]
    NotSigned(String),
}
