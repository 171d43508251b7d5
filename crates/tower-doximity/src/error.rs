//! [`AuthError`]: why the layer refused a request. It rides in the refusal's response
//! extensions.

use std::sync::Arc;

use doximity::scope::Scopes;
use doximity::{CallbackError, Error};
use http::StatusCode;

use crate::store::StoreError;

/// Why the layer (or an extractor) refused a request. Cloned into the response extensions of
/// every refusal, so outer layers and tests can tell the cases apart without parsing bodies.
///
/// Messages never contain a secret (token, code, state, cookie value, cookie key).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No valid session: no cookie, a tampered or foreign one, an expired session, or a
    /// session the provider ended.
    #[error("not signed in")]
    Unauthenticated,
    /// The session lacks a scope the request needs.
    #[error("this needs the scope `{missing}`, which the session was not granted")]
    InsufficientScope {
        /// The scope that is missing.
        missing: String,
        /// Every scope the request needs (granted and missing).
        required: Scopes,
    },
    /// The user signed in, but not strongly or recently enough for this request (RFC 9470):
    /// the session's `acr` does not satisfy `acr_values`, or its `auth_time` is older than
    /// `max_age` seconds. A browser is sent to sign in again asking for them (a step-up); an
    /// API gets 401 with `WWW-Authenticate: Bearer error="insufficient_user_authentication"`
    /// and the `acr_values` and/or `max_age` to ask for; gRPC gets 16.
    #[error("{}", insufficient_authentication_message(acr_values.as_deref(), *max_age))]
    InsufficientAuthentication {
        /// The `acr` value(s) needed (space-separated), if the level is what is missing.
        acr_values: Option<String>,
        /// The most seconds since the user authenticated, if that is what is missing.
        max_age: Option<u64>,
    },
    /// The login route's `acr_values` or `max_age` parameter is malformed.
    #[error("the `{0}` parameter is malformed")]
    InvalidStepUpParameter(&'static str),
    /// The callback came without a usable login transaction cookie (missing, expired after 10
    /// minutes, tampered with, or from another browser).
    #[error("the sign-in attempt was not found or has expired; please sign in again")]
    MissingTransaction,
    /// The callback replayed a login transaction that was already used.
    #[error("this sign-in attempt was already used; please sign in again")]
    ReplayedTransaction,
    /// The login route's `scope` parameter is not a list of scope tokens.
    #[error("the `scope` parameter is not a list of OAuth scope tokens")]
    InvalidScopeParameter,
    /// Signing in failed: the callback broke a rule, the user denied, or the provider's
    /// answer did not verify.
    #[error("sign-in failed: {0}")]
    Login(#[source] Arc<Error>),
    /// A logout `POST` that the browser did not mark same-origin (`Sec-Fetch-Site`), or,
    /// without that header, whose `Origin` (or `Referer`) is not the app's: someone else's
    /// page tried to sign the user out. The session stays.
    #[error("sign-out must come from this site's own page")]
    CrossOriginLogout,
    /// The session store failed.
    #[error("the session store failed: {0}")]
    Store(#[source] Arc<StoreError>),
    /// An `Authorization: Bearer` credential was refused, or could not be checked (bearer
    /// mode, [`DoximityAuth::with_bearer`](crate::DoximityAuth::with_bearer)).
    #[error(transparent)]
    Bearer(BearerError),
}

/// The message of [`AuthError::InsufficientAuthentication`], naming what to ask for as the
/// `WWW-Authenticate` parameters do.
fn insufficient_authentication_message(acr_values: Option<&str>, max_age: Option<u64>) -> String {
    let mut m = "this needs a stronger or more recent sign-in".to_owned();
    match (acr_values, max_age) {
        (Some(acr), Some(age)) => m.push_str(&format!(" (acr_values=\"{acr}\", max_age={age})")),
        (Some(acr), None) => m.push_str(&format!(" (acr_values=\"{acr}\")")),
        (None, Some(age)) => m.push_str(&format!(" (max_age={age})")),
        (None, None) => {}
    }
    m
}

impl From<BearerError> for AuthError {
    fn from(e: BearerError) -> Self {
        Self::Bearer(e)
    }
}

impl AuthError {
    /// The HTTP status of this refusal (for browsers and APIs; gRPC always gets 200 with a
    /// `grpc-status`). Never 500: every case is the client's, the provider's or the store's.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated | Self::InsufficientAuthentication { .. } => {
                StatusCode::UNAUTHORIZED
            }
            Self::InsufficientScope { .. } | Self::CrossOriginLogout => StatusCode::FORBIDDEN,
            Self::MissingTransaction
            | Self::ReplayedTransaction
            | Self::InvalidScopeParameter
            | Self::InvalidStepUpParameter(_) => StatusCode::BAD_REQUEST,
            Self::Login(e) => match &**e {
                Error::Callback(CallbackError::AccessDenied { .. }) => StatusCode::FORBIDDEN,
                e if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
                Error::Callback(_) | Error::OAuth { .. } | Error::AcrNotSupported(_) => {
                    StatusCode::BAD_REQUEST
                }
                _ => StatusCode::BAD_GATEWAY,
            },
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Bearer(e) => e.status(),
        }
    }

    /// A short machine-readable code for JSON bodies (`"error"`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::InsufficientAuthentication { .. } => "insufficient_user_authentication",
            Self::InvalidStepUpParameter(_) => "invalid_request",
            Self::MissingTransaction => "login_transaction_missing",
            Self::ReplayedTransaction => "login_transaction_replayed",
            Self::InvalidScopeParameter => "invalid_scope",
            Self::CrossOriginLogout => "cross_origin_logout",
            Self::Login(e) => match &**e {
                Error::Callback(CallbackError::AccessDenied { .. }) => "access_denied",
                Error::Callback(CallbackError::StateMismatch | CallbackError::MissingState) => {
                    "state_mismatch"
                }
                e if e.is_retryable() => "provider_unavailable",
                _ => "login_failed",
            },
            Self::Store(_) => "session_store_unavailable",
            Self::Bearer(e) => e.code(),
        }
    }

    /// Seconds the client should wait before trying again (`Retry-After`), when the provider
    /// said when its rate-limit window resets.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Bearer(e) => e.retry_after(),
            Self::Login(e) => match &**e {
                Error::ProviderUnavailable { retry_after, .. } => {
                    Some(retry_after.as_secs().max(1))
                }
                e if e.is_retryable() => Some(5),
                _ => None,
            },
            Self::Store(_) => Some(1),
            _ => None,
        }
    }

    /// The gRPC status code: 16 (`UNAUTHENTICATED`), 7 (`PERMISSION_DENIED`), 8
    /// (`RESOURCE_EXHAUSTED`, a bearer caller over its budget) or 14 (`UNAVAILABLE`).
    pub fn grpc_status(&self) -> u8 {
        match self.status() {
            StatusCode::FORBIDDEN => 7,
            StatusCode::TOO_MANY_REQUESTS => 8,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY => 14,
            _ => 16,
        }
    }
}

/// Why a bearer credential was refused or could not be checked. In
/// [`AuthError::Bearer`](crate::AuthError::Bearer). Messages never contain the token.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BearerError {
    /// `Authorization: Bearer` with no token, more than one token, characters outside RFC
    /// 6750's `b64token`, a token over [`MAX_BEARER_TOKEN_LEN`](crate::MAX_BEARER_TOKEN_LEN) bytes, or more than one
    /// `Authorization` header. 400, `error="invalid_request"`; gRPC 16.
    #[error("the Authorization header is not `Bearer <token>`")]
    Malformed,
    /// The provider does not accept the token: unknown, expired or revoked. 401,
    /// `error="invalid_token"`; gRPC 16.
    #[error("the bearer token is invalid, expired or revoked")]
    Rejected,
    /// The provider vouched for the token, but it was issued to another client (the signed
    /// userinfo answer's `aud` or `azp` is not our client id). 401, `error="invalid_token"`;
    /// gRPC 16. Remembered like [`BearerError::Rejected`].
    #[error("the bearer token was issued to another client")]
    OtherClient,
    /// This caller has spent its budget of checks of new tokens
    /// ([`BearerConfig::with_caller_budget`](crate::BearerConfig::with_caller_budget)); the provider was not asked. 429 with
    /// `Retry-After`; gRPC 8 (`RESOURCE_EXHAUSTED`).
    #[error("too many new bearer tokens from this caller; try again in {retry_after} s")]
    CallerBudgetExhausted {
        /// Seconds until the caller's budget allows one more check.
        retry_after: u64,
    },
    /// Every slot for checks is taken ([`BearerConfig::with_max_concurrent_checks`](crate::BearerConfig::with_max_concurrent_checks)); the
    /// provider was not asked. 503 with `Retry-After: 1`; gRPC 14.
    #[error("too many bearer tokens are being checked at once; try again shortly")]
    Busy,
    /// An ID token presented as a bearer token did not verify (signature, issuer, audience,
    /// expiry). 401, `error="invalid_token"`; gRPC 16.
    #[error("the bearer ID token was rejected: {0}")]
    InvalidIdToken(#[source] Arc<Error>),
    /// The provider's answer about the token did not verify (signature, issuer, audience):
    /// nothing is trusted, and nothing is cached. 502; gRPC 14.
    #[error("the provider's answer about the bearer token did not verify: {0}")]
    Unverifiable(#[source] Arc<Error>),
    /// Doximity's rate limit is spent: no new token can be checked until the window
    /// resets (tokens already cached keep working). 503 with `Retry-After`; gRPC 14.
    #[error("Doximity's rate limit is exhausted; try again in {retry_after} s")]
    RateLimited {
        /// Seconds until the provider's rate-limit window resets.
        retry_after: u64,
    },
    /// The provider could not be reached, or answered 5xx. 503; gRPC 14.
    #[error("Doximity is unavailable to check the bearer token: {0}")]
    Unavailable(#[source] Arc<Error>),
    /// The check was interrupted (its task panicked, or the runtime is shutting down). 503;
    /// gRPC 14.
    #[error("the bearer token check was interrupted")]
    Interrupted,
}

impl BearerError {
    /// The HTTP status of this refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Malformed => StatusCode::BAD_REQUEST,
            Self::Rejected | Self::OtherClient | Self::InvalidIdToken(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::CallerBudgetExhausted { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unverifiable(_) => StatusCode::BAD_GATEWAY,
            Self::RateLimited { .. } | Self::Busy | Self::Unavailable(_) | Self::Interrupted => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The `error` code: RFC 6750's `invalid_request` and `invalid_token`, or ours.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "invalid_request",
            Self::Rejected | Self::OtherClient | Self::InvalidIdToken(_) => "invalid_token",
            Self::CallerBudgetExhausted { .. } => "too_many_new_tokens",
            Self::Busy => "bearer_checks_busy",
            Self::Unverifiable(_) => "provider_answer_invalid",
            Self::RateLimited { .. } => "provider_rate_limited",
            Self::Unavailable(_) | Self::Interrupted => "provider_unavailable",
        }
    }

    /// Seconds to wait before trying again, when known (`Retry-After`).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after } | Self::CallerBudgetExhausted { retry_after } => {
                Some(*retry_after)
            }
            Self::Busy => Some(1),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_never_500() {
        let cases = [
            AuthError::Unauthenticated,
            AuthError::MissingTransaction,
            AuthError::ReplayedTransaction,
            AuthError::InvalidScopeParameter,
            AuthError::Login(Arc::new(Error::Callback(CallbackError::AccessDenied {
                description: None,
            }))),
            AuthError::Login(Arc::new(Error::Callback(CallbackError::StateMismatch))),
            AuthError::Login(Arc::new(Error::MissingIdToken)),
            AuthError::Login(Arc::new(Error::RateLimited {
                endpoint: doximity::Endpoint::Token,
                reset: None,
            })),
        ];
        let statuses: Vec<u16> = cases.iter().map(|c| c.status().as_u16()).collect();
        assert_eq!(statuses, [401, 400, 400, 400, 403, 400, 502, 503]);
        assert_eq!(cases[4].code(), "access_denied");
        assert_eq!(cases[5].code(), "state_mismatch");
    }
}
