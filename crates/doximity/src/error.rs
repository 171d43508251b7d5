//! Every way the protocol can fail, one variant per rule.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
    /// A lazy client ([`Client::lazy`](crate::Client::lazy)) could not read the provider's
    /// metadata and keys, now or on its last attempt, and will not try again before
    /// `retry_after` has passed. Retryable: answer 503 with `Retry-After`.
    #[error("the Doximity provider is unavailable (next attempt in {} s): {reason}", retry_after.as_secs().max(1))]
    ProviderUnavailable {
        /// How long until the next attempt is allowed.
        retry_after: Duration,
        /// Why the last attempt failed.
        #[source]
        reason: Arc<Error>,
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
    /// The provider answered with a body that is not JSON at all (an HTML error page from a
    /// proxy, an empty body) where the protocol wants JSON. Distinct from [`Error::OAuth`]:
    /// no OAuth error was given, so nothing was refused; see
    /// [`Error::is_conclusive_refresh_failure`].
    #[error(
        "the Doximity {endpoint} answered HTTP {status} with a body that is not JSON (content type `{content_type}`)"
    )]
    NotJson {
        /// Where the call went.
        endpoint: Endpoint,
        /// The HTTP status.
        status: u16,
        /// The `Content-Type` it claimed (escaped and shortened).
        content_type: String,
    },
    /// The provider's answer is larger than the bound (1 MiB). It was refused without reading
    /// it all: at once when its `Content-Length` says so, else as soon as the bytes read cross
    /// the bound. Not retryable: the same request would get the same answer.
    #[error("the Doximity {endpoint} answered with more than {limit} bytes; refused")]
    ResponseTooLarge {
        /// Where the call went.
        endpoint: Endpoint,
        /// The bound, in bytes.
        limit: usize,
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
    /// The authorization request asked for an `acr` value the provider does not list in
    /// `acr_values_supported`, or one that is not a plain token.
    #[error("the provider does not support the acr value `{0}`")]
    AcrNotSupported(String),
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
    /// The token response carried a `token_type` other than `bearer` (or `DPoP` to a request
    /// with a DPoP proof).
    #[error("the token response has token_type `{0}`, expected `bearer` (or `DPoP`)")]
    UnsupportedTokenType(String),
    /// DPoP (RFC 9449) failed: an unusable key, or a nonce the provider kept refusing.
    #[error(transparent)]
    Dpop(#[from] crate::dpop::DpopError),
}

impl Error {
    /// Whether trying the same call again later may succeed (provider down, rate-limited,
    /// transport failure). Protocol violations are never retryable.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Transport { .. }
                | Self::Unavailable { .. }
                | Self::RateLimited { .. }
                | Self::ProviderUnavailable { .. }
        )
    }

    /// Whether this error, returned by [`Client::refresh`](crate::Client::refresh), is a
    /// definitive refusal of the refresh grant, after which the session must end. Everything
    /// else is transient or unclear, and a session layer keeps the session (and tries again
    /// later) rather than sign the user out on a provider hiccup.
    ///
    /// Conclusive:
    /// - the token endpoint's OAuth error `invalid_grant`: the refresh token is expired,
    ///   revoked or already used (rotation), and will never work again;
    /// - an ID token from the refresh that fails verification, or changes `iss`, `sub` or
    ///   `aud` ([`Error::IdToken`]): the answer is not one to trust, so the session must not go
    ///   on with it.
    ///
    /// Not conclusive: 5xx ([`Error::Unavailable`]), 429 ([`Error::RateLimited`]), transport
    /// failures and timeouts ([`Error::Transport`]), a body that is not JSON
    /// ([`Error::NotJson`], e.g. a proxy's HTML page, with any status), JSON of the wrong
    /// shape ([`Error::InvalidResponse`]), an unexpected status ([`Error::UnexpectedStatus`]),
    /// and every other OAuth error. In particular `invalid_client` and `unauthorized_client`
    /// are not conclusive: they say the *application's* credentials or registration are
    /// wrong (a rotated secret mid-deploy, say), not that this user's grant is dead; ending
    /// every user's session over an operator's mistake would turn it into a mass sign-out.
    ///
    /// ```
    /// use doximity::{Endpoint, Error};
    /// let refused = Error::OAuth { endpoint: Endpoint::Token, status: 400,
    ///     error: "invalid_grant".into(), description: None };
    /// assert!(refused.is_conclusive_refresh_failure());
    /// let down = Error::Unavailable { endpoint: Endpoint::Token, status: 503 };
    /// assert!(!down.is_conclusive_refresh_failure());
    /// ```
    pub fn is_conclusive_refresh_failure(&self) -> bool {
        match self {
            Self::OAuth {
                endpoint: Endpoint::Token,
                error,
                ..
            } => error == "invalid_grant",
            Self::IdToken(_) => true,
            _ => false,
        }
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
    /// `DOXIMITY_DPOP_KEY` is not a usable RSA private key (PEM, or the path of a PEM file).
    #[error("`DOXIMITY_DPOP_KEY` is unusable: {0}")]
    DpopKey(#[source] crate::dpop::DpopError),
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
    /// The provider advertises `authorization_response_iss_parameter_supported` (RFC 9207) and
    /// the callback carries no `iss`: it may come from another provider (a mix-up attack).
    #[error("callback has no `iss` although the provider always sends one (RFC 9207)")]
    MissingIssuer,
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
    /// The ID token's `acr` does not satisfy the `acr_values` the login asked for (RFC 9470):
    /// the provider authenticated the user at a lower level than requested.
    #[error("`acr` is `{actual}`, which does not satisfy the requested acr_values `{requested}`")]
    AcrNotSatisfied {
        /// The `acr_values` the login sent (space-separated).
        requested: String,
        /// The claim, escaped.
        actual: String,
    },
    /// The ID token's `auth_time` is older than the `max_age` the login asked for (or in the
    /// future): the provider did not authenticate the user again.
    #[error(
        "`auth_time` {auth_time} is not within the requested max_age of {max_age} s (now {now})"
    )]
    AuthenticationTooOld {
        /// The claim, epoch seconds.
        auth_time: i64,
        /// The `max_age` the login sent, seconds.
        max_age: i64,
        /// Our clock, epoch seconds.
        now: i64,
    },
    /// The userinfo response is not `application/jwt` (an unsigned answer is never trusted).
    #[error("userinfo content type is `{0}`, expected a signed `application/jwt`")]
    NotSigned(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth(endpoint: Endpoint, status: u16, error: &str) -> Error {
        Error::OAuth {
            endpoint,
            status,
            error: error.into(),
            description: None,
        }
    }

    fn transport() -> Error {
        let client = crate::http::Http::new(None, std::time::Duration::from_secs(1)).unwrap();
        let source = client.client().get("not a url").build().unwrap_err();
        Error::Transport {
            endpoint: Endpoint::Token,
            source,
        }
    }

    #[test]
    fn conclusive_refresh_failures_table() {
        let t = Endpoint::Token;
        let table: Vec<(Error, bool)> = vec![
            (oauth(t, 400, "invalid_grant"), true),
            (oauth(t, 401, "invalid_grant"), true),
            (Error::IdToken(JwtError::BadSignature), true),
            (Error::IdToken(JwtError::RefreshChangedClaim("sub")), true),
            (Error::IdToken(JwtError::RefreshChangedClaim("iss")), true),
            (Error::IdToken(JwtError::RefreshChangedClaim("aud")), true),
            (Error::IdToken(JwtError::UnknownKeyId("k".into())), true),
            (oauth(t, 401, "invalid_client"), false),
            (oauth(t, 400, "unauthorized_client"), false),
            (oauth(t, 400, "invalid_request"), false),
            (oauth(t, 400, "server_error"), false),
            (oauth(Endpoint::Revocation, 400, "invalid_grant"), false),
            (
                Error::Unavailable {
                    endpoint: t,
                    status: 500,
                },
                false,
            ),
            (
                Error::Unavailable {
                    endpoint: t,
                    status: 503,
                },
                false,
            ),
            (
                Error::RateLimited {
                    endpoint: t,
                    reset: None,
                },
                false,
            ),
            (transport(), false),
            (
                Error::NotJson {
                    endpoint: t,
                    status: 200,
                    content_type: "text/html".into(),
                },
                false,
            ),
            (
                Error::NotJson {
                    endpoint: t,
                    status: 403,
                    content_type: "text/html".into(),
                },
                false,
            ),
            (
                Error::InvalidResponse {
                    endpoint: t,
                    reason: "not the expected JSON".into(),
                },
                false,
            ),
            (
                Error::UnexpectedStatus {
                    endpoint: t,
                    status: 302,
                },
                false,
            ),
            (
                Error::UnexpectedStatus {
                    endpoint: t,
                    status: 403,
                },
                false,
            ),
            (Error::UnsupportedTokenType("mac".into()), false),
            (
                Error::ResponseTooLarge {
                    endpoint: t,
                    limit: 1 << 20,
                },
                false,
            ),
            (Error::Userinfo(JwtError::BadSignature), false),
        ];
        for (error, conclusive) in table {
            assert_eq!(
                error.is_conclusive_refresh_failure(),
                conclusive,
                "{error:?}"
            );
            if conclusive {
                assert!(!error.is_retryable(), "{error:?}");
            }
        }
    }
}
