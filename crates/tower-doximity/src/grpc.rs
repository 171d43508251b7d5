//! tonic handlers: read the identity the layer put in the request, and check scopes and how
//! strongly and recently the caller signed in. (Feature `tonic`.)
//!
//! The layer goes in front of the whole server
//! (`tonic::transport::Server::builder().layer(auth.layer())`); it refuses unauthenticated
//! calls itself (`grpc-status: 16`), so inside a handler the identity is there unless the
//! path is public or the mode is [`Mode::Optional`](crate::Mode::Optional).
//!
//! ```
//! use doximity::scope::ProfileReadBasic;
//! use tower_doximity::grpc::{self, Scoped};
//!
//! // In a generated service trait's method:
//! fn who_am_i(request: &tonic::Request<()>) -> Result<String, tonic::Status> {
//!     let user = grpc::identity(request)?;          // else UNAUTHENTICATED (16)
//!     Ok(user.sub().to_owned())
//! }
//!
//! fn my_profile(request: &tonic::Request<()>) -> Result<String, tonic::Status> {
//!     let user = Scoped::<ProfileReadBasic>::from_request(request)?; // else PERMISSION_DENIED (7)
//!     Ok(user.cached_profile().and_then(|p| p.name).unwrap_or_default())
//! }
//!
//! // Without the layer, both answer INTERNAL ("DoximityLayer is not installed").
//! let request = tonic::Request::new(());
//! assert_eq!(who_am_i(&request).unwrap_err().code(), tonic::Code::Internal);
//! ```

use std::marker::PhantomData;
use std::ops::Deref;

use doximity::scope::Scope;
use tonic::{Request, Status};

use crate::bearer::BearerCredential;
use crate::engine::AuthContext;
use crate::session::DoximityIdentity;

/// The message of the `INTERNAL` status when the layer is not in front of the service.
pub const MISSING_LAYER: &str = "DoximityLayer is not installed in front of this service";

/// The signed-in caller (a bearer token or a session), or `UNAUTHENTICATED`; `INTERNAL` when
/// the layer is not installed (a programmer error).
pub fn identity<T>(request: &Request<T>) -> Result<&DoximityIdentity, Status> {
    let extensions = request.extensions();
    if extensions.get::<AuthContext>().is_none() {
        return Err(Status::internal(MISSING_LAYER));
    }
    extensions
        .get::<DoximityIdentity>()
        .ok_or_else(|| Status::unauthenticated("not signed in"))
}

/// The caller, if signed in; `INTERNAL` when the layer is not installed.
pub fn optional_identity<T>(request: &Request<T>) -> Result<Option<&DoximityIdentity>, Status> {
    let extensions = request.extensions();
    if extensions.get::<AuthContext>().is_none() {
        return Err(Status::internal(MISSING_LAYER));
    }
    Ok(extensions.get::<DoximityIdentity>())
}

/// How a bearer caller authenticated (`None` for a browser session).
pub fn bearer_credential<T>(request: &Request<T>) -> Option<&BearerCredential> {
    request.extensions().get::<BearerCredential>()
}

/// The caller with scope `S`: the gRPC counterpart of axum-doximity's `Scoped<S>`. Derefs to
/// [`DoximityIdentity`].
///
/// `UNAUTHENTICATED` without a caller, `PERMISSION_DENIED` without the scope (with a message
/// naming it). A bearer caller's scopes are what its token is known to grant: see
/// [`BearerCredential`].
pub struct Scoped<'a, S: Scope> {
    identity: &'a DoximityIdentity,
    _scope: PhantomData<fn() -> S>,
}

impl<'a, S: Scope> Scoped<'a, S> {
    /// Checks the request's caller for scope `S`.
    pub fn from_request<T>(request: &'a Request<T>) -> Result<Self, Status> {
        let identity = identity(request)?;
        if !identity.has_scope::<S>() {
            return Err(Status::permission_denied(format!(
                "this needs the scope `{}`, which the caller was not granted",
                S::NAME
            )));
        }
        Ok(Self {
            identity,
            _scope: PhantomData,
        })
    }

    /// The caller.
    pub fn identity(&self) -> &'a DoximityIdentity {
        self.identity
    }
}

impl<S: Scope> Deref for Scoped<'_, S> {
    type Target = DoximityIdentity;

    fn deref(&self) -> &DoximityIdentity {
        self.identity
    }
}

impl<S: Scope> std::fmt::Debug for Scoped<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped")
            .field("scope", &S::NAME)
            .field("identity", self.identity)
            .finish()
    }
}

/// The caller, signed in at `acr` level `LEVEL` or higher (RFC 9470): the gRPC counterpart of
/// axum-doximity's `RequireAcr<LEVEL>`. Derefs to [`DoximityIdentity`].
///
/// `UNAUTHENTICATED` without a caller, and without the level, with a message that names what
/// to ask for (`acr_values="2"`), as the layer's HTTP answer does in `WWW-Authenticate`. A
/// bearer access token carries no `acr`, so it never passes.
///
/// ```
/// use tower_doximity::grpc::RequireAcr;
/// fn sign_prescription(request: &tonic::Request<()>) -> Result<(), tonic::Status> {
///     let user = RequireAcr::<3>::from_request(request)?;
///     # let _ = user;
///     Ok(())
/// }
/// ```
pub struct RequireAcr<'a, const LEVEL: u8> {
    identity: &'a DoximityIdentity,
}

impl<'a, const LEVEL: u8> RequireAcr<'a, LEVEL> {
    /// Checks the request's caller for the level.
    pub fn from_request<T>(request: &'a Request<T>) -> Result<Self, Status> {
        let identity = identity(request)?;
        let wanted = LEVEL.to_string();
        if !identity.satisfies_acr(&wanted) {
            return Err(crate::AuthError::InsufficientAuthentication {
                acr_values: Some(wanted),
                max_age: None,
            }
            .into());
        }
        Ok(Self { identity })
    }
}

/// The caller, who authenticated at the provider at most `SECS` seconds ago (RFC 9470's
/// `max_age`, with the client's clock leeway): the gRPC counterpart of axum-doximity's
/// `AuthenticatedWithin<SECS>`. Derefs to [`DoximityIdentity`].
///
/// `UNAUTHENTICATED` without a caller, and with an older sign-in, with a message that names
/// what to ask for (`max_age=300`).
pub struct AuthenticatedWithin<'a, const SECS: u64> {
    identity: &'a DoximityIdentity,
}

impl<'a, const SECS: u64> AuthenticatedWithin<'a, SECS> {
    /// Checks when the request's caller authenticated.
    pub fn from_request<T>(request: &'a Request<T>) -> Result<Self, Status> {
        let identity = identity(request)?;
        if !identity.authenticated_within(std::time::Duration::from_secs(SECS)) {
            return Err(crate::AuthError::InsufficientAuthentication {
                acr_values: None,
                max_age: Some(SECS),
            }
            .into());
        }
        Ok(Self { identity })
    }
}

macro_rules! deref_to_identity {
    ($($t:ident < $c:ident : $ty:ty >),*) => {$(
        impl<'a, const $c: $ty> $t<'a, $c> {
            /// The caller.
            pub fn identity(&self) -> &'a DoximityIdentity {
                self.identity
            }
        }

        impl<const $c: $ty> Deref for $t<'_, $c> {
            type Target = DoximityIdentity;

            fn deref(&self) -> &DoximityIdentity {
                self.identity
            }
        }

        impl<const $c: $ty> std::fmt::Debug for $t<'_, $c> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    .field(stringify!($c), &$c)
                    .field("identity", self.identity)
                    .finish()
            }
        }
    )*};
}
deref_to_identity!(RequireAcr<LEVEL: u8>, AuthenticatedWithin<SECS: u64>);

/// The gRPC status for a refusal: `UNAUTHENTICATED` (16), `PERMISSION_DENIED` (7) or
/// `UNAVAILABLE` (14), as the layer itself answers, with the error's message and, when known,
/// `retry-after` in the metadata.
impl From<crate::AuthError> for Status {
    fn from(error: crate::AuthError) -> Self {
        let code = match error.grpc_status() {
            7 => tonic::Code::PermissionDenied,
            14 => tonic::Code::Unavailable,
            _ => tonic::Code::Unauthenticated,
        };
        let mut status = Status::new(code, error.to_string());
        if let Some(secs) = error.retry_after()
            && let Ok(v) = secs.to_string().parse()
        {
            status.metadata_mut().insert("retry-after", v);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_errors_become_the_statuses_the_layer_answers() {
        let s = Status::from(crate::AuthError::Unauthenticated);
        assert_eq!(s.code(), tonic::Code::Unauthenticated);
        let s = Status::from(crate::AuthError::InsufficientScope {
            missing: "profile:read:basic".into(),
            required: "openid profile:read:basic".parse().unwrap_or_default(),
        });
        assert_eq!(s.code(), tonic::Code::PermissionDenied);
        assert!(s.message().contains("profile:read:basic"));
        let s = Status::from(crate::AuthError::Login(std::sync::Arc::new(
            doximity::Error::ProviderUnavailable {
                retry_after: std::time::Duration::from_secs(7),
                reason: std::sync::Arc::new(doximity::Error::MissingIdToken),
            },
        )));
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert_eq!(
            s.metadata().get("retry-after").map(|v| v.to_str().ok()),
            Some(Some("7"))
        );
    }
}
