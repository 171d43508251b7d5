//! A signed-in user for the tests of your own handlers, without a provider (feature
//! `test-util`).
//!
//! [`SignedIn`] describes the user: a `sub`, the scopes granted, a cached profile, an `acr`,
//! when they authenticated, when the access token expires and which access token the session
//! holds. Two ways to use it:
//!
//! 1. **Through the real layer.** [`SignedIn::cookie_header`] seals the session cookies (the
//!    identity cookie and the tokens cookie) with the cookie key ring of your
//!    [`DoximityAuth`], bound to its issuer and client id exactly as a sign-in would seal them,
//!    and gives the `Cookie` header a browser would send. The layer, unchanged, opens it: your
//!    test goes through the same timeouts, scope checks and refusals as production. With a
//!    server store ([`DoximityAuth::with_store`]), [`SignedIn::store_in`] writes the session
//!    to the store and gives the header with the session id cookie.
//! 2. **Without the layer.** [`SignedIn::identity`] builds the [`DoximityIdentity`] a handler
//!    reads, and [`SignedIn::insert_into`] puts it into a request's extensions together with
//!    the [`AuthContext`] the extractors (axum-doximity's, `tower_doximity::grpc`'s) use to
//!    answer refusals; call your handler or tonic service with that request.
//!
//! ```
//! use doximity::{Client, Config, scope::ProfileReadBasic, secret::ClientSecret};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_doximity::{DoximityAuth, DoximityIdentity, Key, test_util::SignedIn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The app's own DoximityAuth (here a lazy client: nothing is fetched until a refusal needs
//! // the provider).
//! let config = Config::new("app", ClientSecret::new("secret".into()),
//!     "http://127.0.0.1:3000/auth/doximity/callback".parse()?)
//!     .with_issuer("https://auth.example.test")?;
//! let auth = DoximityAuth::new(Client::lazy(config)?).with_cookie_key(Key::generate());
//! let app = tower::service_fn(|req: Request<String>| async move {
//!     let sub = req.extensions().get::<DoximityIdentity>().map(|u| u.sub().to_owned());
//!     Ok::<_, std::convert::Infallible>(http::Response::new(sub.unwrap_or_default()))
//! });
//! let app = tower::ServiceBuilder::new().layer(auth.layer()).service(app);
//!
//! let cookie = SignedIn::new("clinician-1").scope::<ProfileReadBasic>().cookie_header(&auth)?;
//! let res = app.oneshot(Request::get("/").header("cookie", cookie).body(String::new())?).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! # Ok(()) }
//! ```
//!
//! # Why this cannot weaken a release build
//!
//! - The feature is off unless a crate asks for it. Ask for it in `[dev-dependencies]` only:
//!   with Cargo's feature resolver 2 (edition 2021 and later; resolver 3 keeps it), the
//!   features a dev-dependency turns on do not reach the build of your binary, so the release
//!   binary has no `test_util` at all.
//! - Form 1 adds nothing to the layer: the layer does not know this module exists. The cookies
//!   are sealed with **your** key ring, for **your** issuer and client id; whoever holds that
//!   key can already mint sessions, with or without this module. A cookie sealed with another
//!   key, or for another issuer or client id, is refused like any foreign cookie.
//! - Form 2 never touches the layer: it builds values that a test puts into a request itself.
//!   A request that reaches your server carries no extensions; only the layer puts an identity
//!   there.
//!
//! The tokens inside are built by [`TokenSet::for_tests`]: never verified, with an ID token
//! that is no JWS. The access token is the one you choose ([`SignedIn::access_token`]); a
//! handler that calls Doximity with it gets whatever your test double answers. The session has
//! no refresh token: when the access token expires the session ends, as a real one without a
//! refresh token would.

use std::sync::Arc;
use std::time::Duration;

use doximity::scope::{Scope, Scopes};
use doximity::secret::AccessToken;
use doximity::{Acr, IdTokenClaims, TokenSet, UserInfo};
use http::HeaderValue;

use crate::auth::DoximityAuth;
use crate::engine::{AuthContext, Shared};
use crate::error::AuthError;
use crate::session::{
    DoximityIdentity, Lazy, SessionRecord, TokenSource, new_session_id, scopes_of, secs,
};

/// The access token of a [`SignedIn`] unless the test chooses one.
pub const DEFAULT_TEST_ACCESS_TOKEN: &str = "test-access-token";

/// How long the access token of a [`SignedIn`] lives unless the test says otherwise: one hour.
pub const DEFAULT_TEST_EXPIRES_IN: Duration = Duration::from_secs(3600);

/// [`SignedIn::cookie_header`] or [`SignedIn::store_in`] could not make the session.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TestSessionError {
    /// [`SignedIn::cookie_header`] on a [`DoximityAuth`] that keeps sessions in a
    /// [`SessionStore`](crate::SessionStore): the session has to be written there, with
    /// [`SignedIn::store_in`].
    #[error("this DoximityAuth keeps sessions in a SessionStore: use SignedIn::store_in")]
    ServerStore,
    /// The store refused to keep the session.
    #[error(transparent)]
    Store(#[from] AuthError),
}

/// A signed-in user for tests: see the [module](self) docs. Its `Debug` shows no token.
#[derive(Clone)]
#[must_use]
pub struct SignedIn {
    sub: String,
    scopes: Scopes,
    profile: Option<UserInfo>,
    acr: Option<Acr>,
    authenticated_ago: Duration,
    expires_in: Duration,
    access_token: String,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("sub", &self.sub)
            .field("scopes", &self.scopes)
            .field("profile", &self.profile.is_some())
            .field("acr", &self.acr)
            .field("authenticated_ago", &self.authenticated_ago)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

impl SignedIn {
    /// User `sub`, signed in now, granted `openid`, with no cached profile, no `acr`, and the
    /// access token [`DEFAULT_TEST_ACCESS_TOKEN`] expiring in [`DEFAULT_TEST_EXPIRES_IN`].
    pub fn new(sub: impl Into<String>) -> Self {
        Self {
            sub: sub.into(),
            scopes: Scopes::openid(),
            profile: None,
            acr: None,
            authenticated_ago: Duration::ZERO,
            expires_in: DEFAULT_TEST_EXPIRES_IN,
            access_token: DEFAULT_TEST_ACCESS_TOKEN.to_owned(),
        }
    }

    /// Grants these scopes too (`openid` stays, as every sign-in grants it).
    pub fn scopes(mut self, scopes: &Scopes) -> Self {
        self.scopes = self.scopes.union(scopes);
        self
    }

    /// Grants scope `S` too.
    pub fn scope<S: Scope>(self) -> Self {
        self.scopes(&scopes_of(S::NAME))
    }

    /// The profile the session has cached (what [`DoximityIdentity::cached_profile`] and
    /// [`DoximityIdentity::profile`] answer, without a provider call). Its `sub` is set to
    /// the session's, as the core only accepts a userinfo answer for the session's `sub`. Grant
    /// `profile:read:basic` too if your handler checks the scope, as a real session with a
    /// profile has it.
    pub fn profile(mut self, profile: UserInfo) -> Self {
        self.profile = Some(profile);
        self
    }

    /// The ID token's `acr` (in [`DoximityIdentity::claims`]).
    pub fn acr(mut self, acr: Acr) -> Self {
        self.acr = Some(acr);
        self
    }

    /// How long ago the user authenticated at the provider: the ID token's `auth_time` (in
    /// [`DoximityIdentity::auth_time`], judged by `AuthenticatedWithin`). Default: now.
    pub fn authenticated_ago(mut self, ago: Duration) -> Self {
        self.authenticated_ago = ago;
        self
    }

    /// When the access token expires, from now (by the layer's clock). The session ends then
    /// (there is no refresh token). A token expiring within a minute (or a quarter of its
    /// lifetime) is due for a refresh, which the layer attempts at the provider.
    pub fn expires_in(mut self, expires_in: Duration) -> Self {
        self.expires_in = expires_in;
        self
    }

    /// The access token the session holds ([`DoximityIdentity::access_token`], axum-doximity's
    /// `DoximityAccessToken`).
    pub fn access_token(mut self, token: impl Into<String>) -> Self {
        self.access_token = token.into();
        self
    }

    /// The session's tokens as of `now` for the layer of `auth`: [`TokenSet::for_tests`] with
    /// claims for `sub` from `auth`'s issuer and client id. Never verified.
    pub fn tokens(&self, auth: &DoximityAuth) -> TokenSet {
        let now = auth.client().clock().epoch_secs();
        self.tokens_at(auth.client(), now)
    }

    fn tokens_at(&self, client: &doximity::Client, now: i64) -> TokenSet {
        let config = client.config();
        let exp = now.saturating_add(secs(self.expires_in));
        let mut claims =
            IdTokenClaims::for_tests(config.issuer(), config.client_id(), &self.sub, now, exp);
        claims.acr.clone_from(&self.acr);
        claims.auth_time = Some(now.saturating_sub(secs(self.authenticated_ago)));
        TokenSet::for_tests(
            AccessToken::new(self.access_token.clone()),
            self.scopes.clone(),
            Some(exp),
            claims,
        )
    }

    /// A fresh session (a new id) and its tokens, by the layer's clock.
    fn session(&self, shared: &Shared) -> (SessionRecord, TokenSet) {
        let now = shared.now();
        let tokens = self.tokens_at(shared.client(), now);
        let mut record = SessionRecord::new(new_session_id(), &tokens, now);
        record.profile = self.profile.clone().map(|mut p| {
            p.sub.clone_from(&self.sub);
            Lazy::new(p)
        });
        (record, tokens)
    }

    /// The `Cookie` header of this user's session for the layers of `auth` (cookie store):
    /// the identity cookie and the tokens cookie, sealed with `auth`'s key ring for its issuer
    /// and client id, as a sign-in seals them. Each call is a new session.
    ///
    /// # Errors
    ///
    /// [`TestSessionError::ServerStore`] when `auth` keeps sessions in a store: use
    /// [`SignedIn::store_in`].
    pub fn cookie_header(&self, auth: &DoximityAuth) -> Result<HeaderValue, TestSessionError> {
        let shared = auth.layer().shared;
        if !shared.sessions.is_cookie() {
            return Err(TestSessionError::ServerStore);
        }
        let (record, tokens) = self.session(&shared);
        let set_cookies = shared
            .sessions
            .seal_cookies(&record, Some(&tokens), shared.now());
        Ok(cookie_header(&set_cookies))
    }

    /// Writes this user's session where the layers of `auth` keep sessions and returns the
    /// `Cookie` header that carries it: with a [`SessionStore`](crate::SessionStore), the
    /// session goes into the store (sealed, as the layer writes it) and the header holds the
    /// session id cookie; with the cookie store, the same as [`SignedIn::cookie_header`].
    /// Each call is a new session.
    ///
    /// # Errors
    ///
    /// [`TestSessionError::Store`] when the store fails.
    pub async fn store_in(&self, auth: &DoximityAuth) -> Result<HeaderValue, TestSessionError> {
        let shared = auth.layer().shared;
        let (record, tokens) = self.session(&shared);
        let set_cookies = shared
            .sessions
            .persist(&record, Some(&tokens), None, shared.now())
            .await?;
        Ok(cookie_header(&set_cookies))
    }

    /// The identity a layer of `auth` would put into the request extensions for this user
    /// (a session with its tokens already open), for tests that call a handler directly. Put
    /// it there with [`SignedIn::insert_into`], which adds the [`AuthContext`] too.
    pub fn identity(&self, auth: &DoximityAuth) -> DoximityIdentity {
        self.identity_in(&auth.layer().shared)
    }

    fn identity_in(&self, shared: &Arc<Shared>) -> DoximityIdentity {
        let (record, tokens) = self.session(shared);
        DoximityIdentity::session(
            record,
            TokenSource::Open(Arc::new(tokens)),
            shared.sessions.env.clone(),
        )
    }

    /// Puts this user's [`SignedIn::identity`] and an [`AuthContext`] of `auth` into
    /// `extensions` (a request's), as the layer does for a signed-in request.
    ///
    /// ```
    /// use doximity::{Client, Config, secret::ClientSecret};
    /// use tower_doximity::{DoximityAuth, DoximityIdentity, test_util::SignedIn};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let config = Config::new("app", ClientSecret::new("secret".into()),
    /// #     "https://app.example.test/auth/doximity/callback".parse()?)
    /// #     .with_issuer("https://auth.example.test")?;
    /// let auth = DoximityAuth::new(Client::lazy(config)?);
    /// let mut request = http::Request::new(());
    /// SignedIn::new("clinician-1").insert_into(&auth, request.extensions_mut());
    /// assert_eq!(request.extensions().get::<DoximityIdentity>().map(|u| u.sub()), Some("clinician-1"));
    /// # Ok(()) }
    /// ```
    pub fn insert_into(&self, auth: &DoximityAuth, extensions: &mut http::Extensions) {
        let shared = auth.layer().shared;
        extensions.insert(self.identity_in(&shared));
        extensions.insert(AuthContext(shared));
    }

    /// A tonic request carrying `message`, this user's identity and an [`AuthContext`] of
    /// `auth` in its extensions, for calling a tonic service's method directly (feature
    /// `tonic` as well).
    ///
    /// ```
    /// use doximity::{Client, Config, scope::ProfileReadBasic, secret::ClientSecret};
    /// use tower_doximity::{DoximityAuth, grpc, test_util::SignedIn};
    ///
    /// // The service method under test, as a generated trait's method would read the caller.
    /// fn who_am_i(request: &tonic::Request<()>) -> Result<String, tonic::Status> {
    ///     let user = grpc::Scoped::<ProfileReadBasic>::from_request(request)?;
    ///     Ok(user.sub().to_owned())
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let config = Config::new("app", ClientSecret::new("secret".into()),
    /// #     "https://app.example.test/auth/doximity/callback".parse()?)
    /// #     .with_issuer("https://auth.example.test")?;
    /// let auth = DoximityAuth::new(Client::lazy(config)?);
    ///
    /// let request = SignedIn::new("clinician-1").scope::<ProfileReadBasic>().grpc_request(&auth, ());
    /// assert_eq!(who_am_i(&request)?, "clinician-1");
    ///
    /// // Without the scope: PERMISSION_DENIED, as the handler answers in production.
    /// let request = SignedIn::new("clinician-1").grpc_request(&auth, ());
    /// assert_eq!(who_am_i(&request).unwrap_err().code(), tonic::Code::PermissionDenied);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tonic")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
    pub fn grpc_request<T>(&self, auth: &DoximityAuth, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        self.insert_into(auth, request.extensions_mut());
        request
    }
}

/// The [`AuthContext`] a layer of `auth` puts into every request's extensions: what the
/// extractors use to answer a refusal (a redirect to sign in, a 401 or 403, a gRPC status)
/// the way the layer would. Insert it for tests that call handlers directly, also for a
/// request from nobody signed in.
pub fn auth_context(auth: &DoximityAuth) -> AuthContext {
    AuthContext(auth.layer().shared)
}

/// A `Cookie` header (`name=value; name=value`) from the layer's `Set-Cookie` values.
fn cookie_header(set_cookies: &[HeaderValue]) -> HeaderValue {
    let pairs: Vec<&str> = set_cookies
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .collect();
    // Names are the layer's and values base64: always a valid header value.
    HeaderValue::from_str(&pairs.join("; ")).unwrap_or_else(|_| HeaderValue::from_static(""))
}
