//! Rejections: one named type per failure, each with `status()` and `body_text()`.

use axum_core::body::Body;
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use tower_doximity::AuthError;

/// The request did not go through `DoximityLayer`: a programmer error (like
/// tower-sessions' missing layer), so a 500 that says which layer to add.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct MissingDoximityLayer;

impl MissingDoximityLayer {
    /// 500.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The message.
    pub fn body_text(&self) -> String {
        "DoximityLayer is not installed: add `.layer(auth.layer())` (tower-doximity) around \
         the routes that use Doximity extractors"
            .to_owned()
    }
}

impl IntoResponse for MissingDoximityLayer {
    fn into_response(self) -> Response {
        (self.status(), self.body_text()).into_response()
    }
}

/// Not signed in. The response is negotiated by the layer's refusal strategy: a redirect to
/// sign in for a browser's GET, 401 with `WWW-Authenticate: Bearer` and JSON for APIs,
/// `grpc-status: 16` for gRPC.
#[derive(Debug)]
pub struct NotSignedIn {
    pub(crate) response: Box<http::Response<Body>>,
}

impl NotSignedIn {
    /// 401 (the nominal status; a browser's GET gets the 303 to sign in instead).
    pub fn status(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    /// The message.
    pub fn body_text(&self) -> String {
        AuthError::Unauthenticated.to_string()
    }
}

impl IntoResponse for NotSignedIn {
    fn into_response(self) -> Response {
        *self.response
    }
}

/// The session lacks a scope. A browser's GET is sent to sign in again with the union of
/// scopes (a step-up) and back to the same page; APIs get 403 with
/// `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"`.
#[derive(Debug)]
pub struct InsufficientScope {
    pub(crate) missing: &'static str,
    pub(crate) response: Box<http::Response<Body>>,
}

impl InsufficientScope {
    /// 403 (the nominal status; a browser's GET gets the 303 step-up instead).
    pub fn status(&self) -> StatusCode {
        StatusCode::FORBIDDEN
    }

    /// The message.
    pub fn body_text(&self) -> String {
        format!(
            "this needs the scope `{}`, which the session was not granted",
            self.missing
        )
    }

    /// The missing scope.
    pub fn missing(&self) -> &'static str {
        self.missing
    }
}

impl IntoResponse for InsufficientScope {
    fn into_response(self) -> Response {
        *self.response
    }
}

/// The user signed in, but not strongly or recently enough (RFC 9470). A browser's GET is
/// sent to sign in again with `acr_values` and/or `max_age` and back to the same page (a
/// step-up); APIs get 401 with `WWW-Authenticate: Bearer
/// error="insufficient_user_authentication"` and what to ask for; gRPC gets 16.
#[derive(Debug)]
pub struct InsufficientAuthentication {
    pub(crate) error: AuthError,
    pub(crate) response: Box<http::Response<Body>>,
}

impl InsufficientAuthentication {
    /// 401 (the nominal status; a browser's GET gets the 303 step-up instead).
    pub fn status(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    /// The message, naming the `acr_values` and `max_age` to ask for.
    pub fn body_text(&self) -> String {
        self.error.to_string()
    }

    /// The `acr` level needed, if that is what is missing.
    pub fn acr_values(&self) -> Option<&str> {
        match &self.error {
            AuthError::InsufficientAuthentication { acr_values, .. } => acr_values.as_deref(),
            _ => None,
        }
    }

    /// The most seconds since the user authenticated, if that is what is missing.
    pub fn max_age(&self) -> Option<u64> {
        match &self.error {
            AuthError::InsufficientAuthentication { max_age, .. } => *max_age,
            _ => None,
        }
    }
}

impl IntoResponse for InsufficientAuthentication {
    fn into_response(self) -> Response {
        *self.response
    }
}

/// The profile could not be fetched (provider unavailable, rate-limited, or its answer did not
/// verify). The session stays signed in.
#[derive(Debug)]
pub struct ProfileUnavailable {
    pub(crate) error: AuthError,
    pub(crate) response: Box<http::Response<Body>>,
}

impl ProfileUnavailable {
    /// 503 for a provider outage or rate limit, 502 for an answer that did not verify.
    pub fn status(&self) -> StatusCode {
        self.error.status()
    }

    /// The message.
    pub fn body_text(&self) -> String {
        self.error.to_string()
    }
}

impl IntoResponse for ProfileUnavailable {
    fn into_response(self) -> Response {
        *self.response
    }
}

/// Every rejection of this crate's extractors.
#[derive(Debug)]
#[non_exhaustive]
pub enum DoximityRejection {
    /// See [`MissingDoximityLayer`].
    MissingDoximityLayer(MissingDoximityLayer),
    /// See [`NotSignedIn`].
    NotSignedIn(NotSignedIn),
    /// See [`InsufficientScope`].
    InsufficientScope(InsufficientScope),
    /// See [`InsufficientAuthentication`].
    InsufficientAuthentication(InsufficientAuthentication),
    /// See [`ProfileUnavailable`].
    ProfileUnavailable(ProfileUnavailable),
}

impl DoximityRejection {
    /// The nominal status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingDoximityLayer(r) => r.status(),
            Self::NotSignedIn(r) => r.status(),
            Self::InsufficientScope(r) => r.status(),
            Self::InsufficientAuthentication(r) => r.status(),
            Self::ProfileUnavailable(r) => r.status(),
        }
    }

    /// The message.
    pub fn body_text(&self) -> String {
        match self {
            Self::MissingDoximityLayer(r) => r.body_text(),
            Self::NotSignedIn(r) => r.body_text(),
            Self::InsufficientScope(r) => r.body_text(),
            Self::InsufficientAuthentication(r) => r.body_text(),
            Self::ProfileUnavailable(r) => r.body_text(),
        }
    }
}

impl IntoResponse for DoximityRejection {
    fn into_response(self) -> Response {
        match self {
            Self::MissingDoximityLayer(r) => r.into_response(),
            Self::NotSignedIn(r) => r.into_response(),
            Self::InsufficientScope(r) => r.into_response(),
            Self::InsufficientAuthentication(r) => r.into_response(),
            Self::ProfileUnavailable(r) => r.into_response(),
        }
    }
}

impl std::fmt::Display for DoximityRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.body_text())
    }
}

impl std::error::Error for DoximityRejection {}

macro_rules! from_variant {
    ($($t:ident),*) => {$(
        impl From<$t> for DoximityRejection {
            fn from(r: $t) -> Self {
                Self::$t(r)
            }
        }
    )*};
}
from_variant!(
    MissingDoximityLayer,
    NotSignedIn,
    InsufficientScope,
    InsufficientAuthentication,
    ProfileUnavailable
);
