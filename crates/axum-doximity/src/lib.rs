//! Sign in with Doximity for axum: typed extractors over the `tower-doximity` layer.
//!
//! The layer signs people in and puts the identity in the request extensions; these
//! extractors take it out, typed:
//!
//! - [`DoximityUser`]: the signed-in user (`sub`, scopes, ID-token claims); `Option<DoximityUser>`
//!   for pages that work both ways;
//! - [`Scoped<S>`]: the user, with scope `S` granted (`Scoped<ProfileReadBasic>`,
//!   `Scoped<doximity::scope!("profile:read:basic")>`), else a step-up;
//! - [`RequireAcr<L>`](RequireAcr) and [`AuthenticatedWithin<S>`](AuthenticatedWithin): the
//!   user, signed in at `acr` level `L` or higher, or within the last `S` seconds, else a
//!   step-up (RFC 9470);
//! - [`Profile`]: the userinfo profile, fetched at most once per session;
//! - [`DoximityAccessToken`]: the access token for calling Doximity APIs, decrypted only
//!   when extracted.
//!
//! # Tutorial
//!
//! ```
//! use axum::{Json, Router, body::Body, routing::get};
//! use axum_doximity::{DoximityUser, Profile, Scoped};
//! use doximity::scope::ProfileReadBasic;
//! use doximity::{Client, Config, secret::ClientSecret};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_doximity::{DoximityAuth, Mode};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let mock = doximity_mock::MockProvider::builder().auto_approve(true).start().await?;
//! # let demo = mock.client();
//! # let config = Config::new(demo.client_id.clone(), ClientSecret::new(demo.client_secret.clone()),
//! #     "http://127.0.0.1:3000/auth/doximity/callback".parse()?)
//! #     .with_issuer(&mock.issuer())?.with_ca_cert_pem(mock.ca_pem().to_vec());
//! // In an app: `DoximityAuth::from_env().await?`.
//! let auth = DoximityAuth::new(Client::discover(config).await?).with_mode(Mode::Optional);
//! let app = Router::new()
//!     .route("/", get(|user: Option<DoximityUser>| async move {
//!         user.map_or("hello, guest".to_owned(), |u| format!("hello, {}", u.sub()))
//!     }))
//!     .route("/me", get(|user: DoximityUser| async move { Json(serde_json::json!({ "sub": user.sub() })) }))
//!     .route("/profile", get(|_: Scoped<ProfileReadBasic>, Profile(p): Profile| async move { Json(p) }))
//!     .layer(auth.layer());
//!
//! // Nobody is signed in: `/` works, `/me` answers an API client with 401.
//! let res = app.clone().oneshot(Request::get("/").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! let res = app.oneshot(Request::get("/me").header("accept", "application/json").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["www-authenticate"], "Bearer");
//! # Ok(()) }
//! ```
//!
//! Without the layer, every extractor is rejected with [`MissingDoximityLayer`] (a 500: it is
//! a programmer error, the same choice as tower-sessions), whose message says
//! "`DoximityLayer` is not installed".
//!
//! # TLS crypto provider
//!
//! The features `ring` (the default) and `aws-lc-rs` pick the rustls crypto provider of the
//! calls to Doximity; they are forwarded to `tower-doximity` and `doximity`, whose docs say
//! how the provider is chosen. Next to reqwest 0.13 with its default TLS (aws-lc-rs), use
//! `default-features = false, features = ["aws-lc-rs"]`.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod rejection;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;

use std::marker::PhantomData;
use std::ops::Deref;

use axum_core::body::Body;
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use doximity::UserInfo;
use doximity::scope::{ProfileReadBasic, Scope, Scopes};
use doximity::secret::AccessToken;
use http::request::Parts;
use tower_doximity::{AuthContext, AuthError};

pub use rejection::{
    DoximityRejection, InsufficientAuthentication, InsufficientScope, MissingDoximityLayer,
    NotSignedIn, ProfileUnavailable,
};

/// What an axum app needs besides the extractors, so one dependency does: the auth value and
/// its options, and the scope markers.
pub use doximity::scope;
pub use tower_doximity::{DoximityAuth, DoximityIdentity, DoximityLayer, Key, Mode};

/// The signed-in user. Rejected with [`NotSignedIn`] (negotiated: redirect, 401 or gRPC 16)
/// when there is no session.
#[derive(Clone, Debug)]
pub struct DoximityUser(DoximityIdentity);

impl DoximityUser {
    /// The layer's identity handle (profile, access token). Its methods (`sub`, `scopes`,
    /// `claims`, ...) are also at hand on the `DoximityUser` itself, through `Deref`.
    pub fn identity(&self) -> &DoximityIdentity {
        &self.0
    }
}

/// A `DoximityUser` is the layer's [`DoximityIdentity`]: every method of it is at hand.
impl std::ops::Deref for DoximityUser {
    type Target = DoximityIdentity;

    fn deref(&self) -> &DoximityIdentity {
        &self.0
    }
}

fn context(parts: &Parts) -> Result<&AuthContext, DoximityRejection> {
    parts
        .extensions
        .get::<AuthContext>()
        .ok_or(DoximityRejection::MissingDoximityLayer(
            MissingDoximityLayer,
        ))
}

fn negotiated(ctx: &AuthContext, parts: &Parts, error: AuthError) -> Box<http::Response<Body>> {
    Box::new(ctx.refusal(parts, error).map(Body::new))
}

fn identity(parts: &Parts) -> Result<DoximityIdentity, DoximityRejection> {
    let ctx = context(parts)?;
    parts
        .extensions
        .get::<DoximityIdentity>()
        .cloned()
        .ok_or_else(|| {
            NotSignedIn {
                response: negotiated(ctx, parts, AuthError::Unauthenticated),
            }
            .into()
        })
}

fn insufficient(
    parts: &Parts,
    user: &DoximityIdentity,
    missing: &'static str,
) -> DoximityRejection {
    let required = user
        .scopes()
        .union(&missing.parse::<Scopes>().unwrap_or_default());
    let error = AuthError::InsufficientScope {
        missing: missing.to_owned(),
        required,
    };
    match context(parts) {
        Ok(ctx) => InsufficientScope {
            missing,
            response: negotiated(ctx, parts, error),
        }
        .into(),
        Err(e) => e,
    }
}

impl<S: Send + Sync> FromRequestParts<S> for DoximityUser {
    type Rejection = DoximityRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        identity(parts).map(Self)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for DoximityUser {
    type Rejection = MissingDoximityLayer;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if parts.extensions.get::<AuthContext>().is_none() {
            return Err(MissingDoximityLayer);
        }
        Ok(parts
            .extensions
            .get::<DoximityIdentity>()
            .cloned()
            .map(Self))
    }
}

/// The signed-in user with scope `S` granted. Derefs to [`DoximityUser`].
///
/// Without `S`: a browser's GET is sent to sign in again asking for the union of scopes and
/// returns to the same page (step-up); APIs get 403 with
/// `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"`.
pub struct Scoped<S: Scope> {
    user: DoximityUser,
    _scope: PhantomData<fn() -> S>,
}

impl<S: Scope> Clone for Scoped<S> {
    fn clone(&self) -> Self {
        Self {
            user: self.user.clone(),
            _scope: PhantomData,
        }
    }
}

impl<S: Scope> std::fmt::Debug for Scoped<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped")
            .field("scope", &S::NAME)
            .field("user", &self.user)
            .finish()
    }
}

impl<S: Scope> Deref for Scoped<S> {
    type Target = DoximityUser;

    fn deref(&self) -> &DoximityUser {
        &self.user
    }
}

impl<S: Scope> Scoped<S> {
    /// The user.
    pub fn into_user(self) -> DoximityUser {
        self.user
    }
}

impl<St: Send + Sync, S: Scope> FromRequestParts<St> for Scoped<S> {
    type Rejection = DoximityRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, Self::Rejection> {
        let user = identity(parts)?;
        if !user.has_scope::<S>() {
            return Err(insufficient(parts, &user, S::NAME));
        }
        Ok(Self {
            user: DoximityUser(user),
            _scope: PhantomData,
        })
    }
}

/// The refusal of a session that did not sign in strongly or recently enough.
fn insufficient_authentication(
    parts: &Parts,
    acr_values: Option<String>,
    max_age: Option<u64>,
) -> DoximityRejection {
    let error = AuthError::InsufficientAuthentication {
        acr_values,
        max_age,
    };
    match context(parts) {
        Ok(ctx) => InsufficientAuthentication {
            response: negotiated(ctx, parts, error.clone()),
            error,
        }
        .into(),
        Err(e) => e,
    }
}

/// The signed-in user, who signed in at `acr` level `LEVEL` or higher (RFC 9470; Doximity
/// advertises the levels 1, 2 and 3). Derefs to [`DoximityUser`].
///
/// Otherwise: a browser's GET is sent to sign in again with `acr_values=LEVEL` and back to the
/// same page (a step-up, keeping the session's scopes); APIs get 401 with
/// `WWW-Authenticate: Bearer error="insufficient_user_authentication", …, acr_values="LEVEL"`;
/// gRPC clients get 16. A bearer access token carries no `acr`, so it never passes.
///
/// ```
/// use axum_doximity::RequireAcr;
/// async fn sign_prescription(user: RequireAcr<3>) -> String {
///     format!("signed by {}", user.sub())
/// }
/// # let _: axum::Router = axum::Router::new().route("/sign", axum::routing::post(sign_prescription));
/// ```
pub struct RequireAcr<const LEVEL: u8> {
    user: DoximityUser,
}

/// The signed-in user, who authenticated at the provider at most `SECS` seconds ago (RFC
/// 9470's `max_age`, with the client's clock leeway). Derefs to [`DoximityUser`].
///
/// Otherwise: a browser's GET is sent to sign in again with `max_age=SECS` (the provider asks
/// the user to authenticate again) and back to the same page; APIs get 401 with
/// `WWW-Authenticate: Bearer error="insufficient_user_authentication", …, max_age="SECS"`;
/// gRPC clients get 16.
///
/// ```
/// use axum_doximity::AuthenticatedWithin;
/// async fn change_email(user: AuthenticatedWithin<300>) -> String {
///     format!("{} confirmed it is them", user.sub())
/// }
/// # let _: axum::Router = axum::Router::new().route("/email", axum::routing::post(change_email));
/// ```
pub struct AuthenticatedWithin<const SECS: u64> {
    user: DoximityUser,
}

impl<S: Send + Sync, const LEVEL: u8> FromRequestParts<S> for RequireAcr<LEVEL> {
    type Rejection = DoximityRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let user = identity(parts)?;
        let wanted = LEVEL.to_string();
        if !user.satisfies_acr(&wanted) {
            return Err(insufficient_authentication(parts, Some(wanted), None));
        }
        Ok(Self {
            user: DoximityUser(user),
        })
    }
}

impl<S: Send + Sync, const SECS: u64> FromRequestParts<S> for AuthenticatedWithin<SECS> {
    type Rejection = DoximityRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let user = identity(parts)?;
        if !user.authenticated_within(std::time::Duration::from_secs(SECS)) {
            return Err(insufficient_authentication(parts, None, Some(SECS)));
        }
        Ok(Self {
            user: DoximityUser(user),
        })
    }
}

macro_rules! user_wrapper {
    ($($t:ident < $c:ident : $ty:ty >),*) => {$(
        impl<const $c: $ty> $t<$c> {
            /// The user.
            pub fn into_user(self) -> DoximityUser {
                self.user
            }
        }

        impl<const $c: $ty> Deref for $t<$c> {
            type Target = DoximityUser;

            fn deref(&self) -> &DoximityUser {
                &self.user
            }
        }

        impl<const $c: $ty> Clone for $t<$c> {
            fn clone(&self) -> Self {
                Self { user: self.user.clone() }
            }
        }

        impl<const $c: $ty> std::fmt::Debug for $t<$c> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    .field(stringify!($c), &$c)
                    .field("user", &self.user)
                    .finish()
            }
        }
    )*};
}
user_wrapper!(RequireAcr<LEVEL: u8>, AuthenticatedWithin<SECS: u64>);

/// The userinfo profile (needs `profile:read:basic`, with a step-up when missing). Fetched
/// from the provider at most once per session, then kept in the session.
#[derive(Clone, Debug)]
pub struct Profile(pub UserInfo);

impl<S: Send + Sync> FromRequestParts<S> for Profile {
    type Rejection = DoximityRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let user = identity(parts)?;
        if !user.has_scope::<ProfileReadBasic>() {
            return Err(insufficient(parts, &user, ProfileReadBasic::NAME));
        }
        match user.profile().await {
            Ok(p) => Ok(Self(p)),
            Err(error) => {
                let ctx = context(parts)?;
                Err(ProfileUnavailable {
                    response: negotiated(ctx, parts, error.clone()),
                    error,
                }
                .into())
            }
        }
    }
}

/// The access token, for calling Doximity APIs on the user's behalf. Decrypted only when
/// this is extracted; its `Debug` is redacted.
///
/// # Security
///
/// As sensitive as a password: never log it or send it to the browser.
#[derive(Clone, Debug)]
pub struct DoximityAccessToken(pub AccessToken);

impl<S: Send + Sync> FromRequestParts<S> for DoximityAccessToken {
    type Rejection = DoximityRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let user = identity(parts)?;
        user.access_token()
            .map(Self)
            .map_err(|error| match context(parts) {
                Ok(ctx) => NotSignedIn {
                    response: negotiated(ctx, parts, error),
                }
                .into(),
                Err(e) => e,
            })
    }
}

/// The README (the crate's page on crates.io): its example runs as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
