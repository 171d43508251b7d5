//! [`DoximityService`]: routes the auth paths, loads and refreshes the session, enforces.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use doximity::scope::Scopes;
use doximity::{Client, TokenSet};
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response};
use http_body_util::{Either, Full};
use tower_service::Service;

use crate::auth::{Mode, Routes};
use crate::background::Background;
use crate::bearer::BearerState;
use crate::cookies::{CookieCodec, find_all};
use crate::error::AuthError;
use crate::future::ResponseFuture;
use crate::memory::ExpiringSet;
use crate::refresh::{Flights, Outcome, Renewed};
use crate::response::{ClientKind, Refusal, Refuse};
use crate::return_to::sanitize_return_to;
use crate::session::{
    DoximityIdentity, Liveness, SessionRecord, Timeouts, TokenSource, liveness, needs_refresh,
};
use crate::store::{Backend, SessionId, StoredSession};

/// The body of the layer's responses: the inner service's body, or the layer's own
/// ([`Full<Bytes>`]) for auth routes and refusals. Both axum and tonic accept it.
pub type ResponseBody<B> = Either<B, Full<Bytes>>;

/// Everything the service needs, shared by every clone.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) routes: Routes,
    pub(crate) codec: CookieCodec,
    pub(crate) mode: Mode,
    pub(crate) backend: Backend,
    pub(crate) timeouts: Timeouts,
    pub(crate) refuse: Arc<dyn Refuse>,
    pub(crate) flights: Arc<Flights>,
    pub(crate) used_states: Arc<ExpiringSet>,
    /// Sessions signed out here, remembered until their absolute timeout.
    pub(crate) signed_out: Arc<ExpiringSet>,
    /// The app's origin (the redirect URI's), for the logout's same-origin rule.
    pub(crate) origin: String,
    /// The HMAC key of the layer's own step-up links.
    pub(crate) step_up_key: [u8; 32],
    /// Scopes the login route may add on request besides the configured ones.
    pub(crate) step_up_scopes: Scopes,
    pub(crate) clear_site_data: bool,
    pub(crate) background: Arc<Background>,
    pub(crate) public_paths: Arc<[String]>,
    pub(crate) profile_at_login: bool,
    pub(crate) bearer: Option<Arc<BearerState>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("routes", &self.routes)
            .field("codec", &self.codec)
            .field("mode", &self.mode)
            .field("backend", &self.backend)
            .field("timeouts", &self.timeouts)
            .field("bearer", &self.bearer)
            .finish_non_exhaustive()
    }
}

/// What loading the session found.
#[derive(Default)]
pub(crate) struct Loaded {
    pub(crate) identity: Option<DoximityIdentity>,
    pub(crate) set_cookies: Vec<HeaderValue>,
    pub(crate) error: Option<AuthError>,
}

/// The tokens cookie's JSON: the tokens, bound to their session's id, so the tokens cookie
/// of one session never serves the identity cookie of another.
#[derive(serde::Serialize, serde::Deserialize)]
struct TokensWire<I, T> {
    #[serde(rename = "i")]
    id: I,
    #[serde(rename = "t")]
    tokens: T,
}

/// The timeout rules' verdict on the session a request carries.
enum Begin {
    /// No readable session: the cookies to clear, if any.
    Absent(Loaded),
    /// Past a timeout: to delete (server store), its cookies to clear.
    Expired(SessionRecord),
    /// Alive; `touch` when `last_seen` is due to be written back.
    Live {
        record: SessionRecord,
        tokens: TokenSource,
        touch: bool,
    },
}

impl Shared {
    pub(crate) fn now(&self) -> i64 {
        self.client.clock().epoch_secs()
    }

    /// Decrypts and parses a sealed tokens cookie value, if it belongs to session `id`.
    pub(crate) fn open_tokens(&self, raw: &[u8], id: &str) -> Option<TokenSet> {
        let json = self.codec.open_bytes(self.codec.names.tokens, raw)?;
        let wire: TokensWire<String, TokenSet> = serde_json::from_slice(&json).ok()?;
        (wire.id == id).then_some(wire.tokens)
    }

    /// `Set-Cookie` values that delete every session cookie.
    pub(crate) fn clear_session_cookies(&self) -> Vec<HeaderValue> {
        let mut v = vec![self.codec.removal(self.codec.names.session)];
        if matches!(self.backend, Backend::Cookie) {
            v.push(self.codec.removal(self.codec.names.tokens));
        }
        v
    }

    fn had_session_cookie(&self, headers: &HeaderMap) -> bool {
        find_all(headers, self.codec.names.session).next().is_some()
            || find_all(headers, self.codec.names.tokens).next().is_some()
    }

    /// Writes a session: cookies (cookie store) or the store plus the id cookie. `tokens` is
    /// required for server stores and for a new or refreshed cookie session.
    pub(crate) async fn persist(
        &self,
        record: &SessionRecord,
        tokens: Option<&TokenSet>,
        now: i64,
    ) -> Result<Vec<HeaderValue>, AuthError> {
        let deadline = record.deadline(self.timeouts);
        match &self.backend {
            Backend::Cookie => Ok(self.seal_session(record, tokens, now)),
            Backend::Server(store) => {
                let Some(tokens) = tokens else {
                    return Ok(Vec::new());
                };
                let id = SessionId(record.id.clone());
                let idle = crate::session::secs(self.timeouts.idle);
                let stored = StoredSession {
                    record: record.clone(),
                    tokens: tokens.clone(),
                    deadline,
                    idle_deadline: record.last_seen.saturating_add(idle).min(deadline),
                    written_at: now,
                };
                store
                    .store(&id, &stored)
                    .await
                    .map_err(|e| AuthError::Store(Arc::new(e)))?;
                Ok(vec![self.codec.seal(
                    self.codec.names.session,
                    &record.id,
                    Some(self.cookie_max_age(record, now)),
                )])
            }
        }
    }

    /// The cookie store's write (no `await`): the identity cookie, and the tokens cookie when
    /// `tokens` is given.
    pub(crate) fn seal_session(
        &self,
        record: &SessionRecord,
        tokens: Option<&TokenSet>,
        now: i64,
    ) -> Vec<HeaderValue> {
        let max_age = self.cookie_max_age(record, now);
        let names = &self.codec.names;
        let mut out = Vec::with_capacity(2);
        out.push(
            self.codec
                .seal(names.session, &record.to_cookie(), Some(max_age)),
        );
        if let Some(tokens) = tokens {
            let wire = TokensWire {
                id: record.id.as_str(),
                tokens,
            };
            let json = serde_json::to_string(&wire).unwrap_or_default();
            out.push(self.codec.seal(names.tokens, &json, Some(max_age)));
        }
        out
    }

    /// A session cookie lives until the session's absolute deadline.
    fn cookie_max_age(&self, record: &SessionRecord, now: i64) -> std::time::Duration {
        let deadline = record.deadline(self.timeouts);
        std::time::Duration::from_secs(
            u64::try_from(deadline.saturating_sub(now).max(0)).unwrap_or(0),
        )
    }

    /// The cookie store's session (no `await`): the identity cookie opened and parsed, the
    /// tokens cookie found but left sealed. One pass over the `Cookie` headers.
    fn read_cookie_session(&self, headers: &HeaderMap) -> Option<(SessionRecord, TokenSource)> {
        let (record, sealed) = SessionRecord::from_cookies(&self.codec, headers);
        Some((record?, TokenSource::Sealed(sealed)))
    }

    /// Reads the session a request carries, without refreshing: the record and its tokens.
    pub(crate) async fn read_session(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<(SessionRecord, TokenSource)>, AuthError> {
        match &self.backend {
            Backend::Cookie => Ok(self.read_cookie_session(headers)),
            Backend::Server(store) => {
                let Some(opened) = self.codec.open(headers, self.codec.names.session) else {
                    return Ok(None);
                };
                let id = SessionId(opened);
                let stored = store
                    .load(&id)
                    .await
                    .map_err(|e| AuthError::Store(Arc::new(e)))?;
                Ok(stored
                    .filter(|s| s.record.id == id.0)
                    .map(|s| (s.record, TokenSource::Open(Arc::new(s.tokens)))))
            }
        }
    }

    pub(crate) async fn delete_session(&self, record: &SessionRecord) {
        if let Err(e) = self.try_delete_session(record).await {
            tracing::warn!(error = %e, "could not delete a session from the store");
        }
    }

    /// Deletes a server-side session (nothing to do for the cookie store).
    pub(crate) async fn try_delete_session(&self, record: &SessionRecord) -> Result<(), AuthError> {
        if let Backend::Server(store) = &self.backend {
            store
                .delete(&SessionId(record.id.clone()))
                .await
                .map_err(|e| AuthError::Store(Arc::new(e)))?;
        }
        Ok(())
    }

    /// The timeout rules for the session a request carries (`found`).
    fn begin(
        &self,
        found: Option<(SessionRecord, TokenSource)>,
        headers: &HeaderMap,
        now: i64,
    ) -> Begin {
        let Some((record, tokens)) = found else {
            let set_cookies = if self.had_session_cookie(headers) {
                self.clear_session_cookies()
            } else {
                Vec::new()
            };
            return Begin::Absent(Loaded {
                set_cookies,
                ..Loaded::default()
            });
        };
        if self.is_signed_out(&record, now) {
            // A copy of the cookies of a session signed out here (contract v2, point 4).
            return Begin::Expired(record);
        }
        match liveness(&record, now, self.timeouts) {
            Liveness::Expired => Begin::Expired(record),
            Liveness::Live { touch } => Begin::Live {
                record,
                tokens,
                touch,
            },
        }
    }

    /// What a request whose session ended gets: no identity, its cookies cleared.
    fn ended(&self) -> Loaded {
        Loaded {
            set_cookies: self.clear_session_cookies(),
            ..Loaded::default()
        }
    }

    /// [`Shared::load`] for the cookie store without any `await`, as nearly every signed-in
    /// request goes: `None` when a refresh is due (for the async path, single-flight).
    pub(crate) fn load_from_cookies(
        self: &Arc<Self>,
        headers: &HeaderMap,
        now: i64,
    ) -> Option<Loaded> {
        match self.begin(self.read_cookie_session(headers), headers, now) {
            Begin::Absent(loaded) => Some(loaded),
            Begin::Expired(_) => Some(self.ended()),
            Begin::Live {
                mut record,
                tokens,
                touch,
            } => {
                if needs_refresh(record.expires_at, record.tokens_at, now) {
                    return None;
                }
                let set_cookies = if touch {
                    record.last_seen = now;
                    self.seal_session(&record, None, now)
                } else {
                    Vec::new()
                };
                Some(Loaded {
                    identity: Some(DoximityIdentity::new(record, tokens, self.clone())),
                    set_cookies,
                    error: None,
                })
            }
        }
    }

    /// Loads the session, enforces the timeouts, refreshes when due (single-flight).
    pub(crate) async fn load(self: &Arc<Self>, headers: &HeaderMap, now: i64) -> Loaded {
        let found = match self.read_session(headers).await {
            Ok(found) => found,
            Err(error) => {
                return Loaded {
                    error: Some(error),
                    ..Loaded::default()
                };
            }
        };
        let (mut record, mut tokens, mut touch) = match self.begin(found, headers, now) {
            Begin::Absent(loaded) => return loaded,
            Begin::Expired(record) => {
                self.delete_session(&record).await;
                return self.ended();
            }
            Begin::Live {
                record,
                tokens,
                touch,
            } => (record, tokens, touch),
        };
        let mut set_cookies = Vec::new();
        if needs_refresh(record.expires_at, record.tokens_at, now) {
            if !record.refreshable {
                // Nothing to refresh with: the session lasts as long as its access token.
                if record.expires_at.is_some_and(|e| e <= now) {
                    return Loaded::default();
                }
            } else {
                let (r, t) = (record.clone(), tokens.clone());
                let this = self.clone();
                let outcome = self
                    .flights
                    .run(&record.id, record.rev, now, move || async move {
                        this.refresh(r, t, now).await
                    })
                    .await;
                match outcome {
                    Outcome::Renewed(renewed) => {
                        record = renewed.record.clone();
                        tokens = TokenSource::Open(renewed.tokens.clone());
                        set_cookies.extend(renewed.set_cookies.iter().cloned());
                        touch = false;
                    }
                    // A transient failure keeps the session (contract v2, point 7): the
                    // identity is still valid; the next request tries again.
                    Outcome::Retryable { .. } => {}
                    Outcome::Ended => {
                        self.delete_session(&record).await;
                        return self.ended();
                    }
                }
            }
        }
        if touch {
            record.last_seen = now;
            let full = match &tokens {
                TokenSource::Open(t) if matches!(self.backend, Backend::Server(_)) => {
                    Some(t.clone())
                }
                _ => None,
            };
            match self.persist(&record, full.as_deref(), now).await {
                Ok(c) => set_cookies.extend(c),
                Err(e) => tracing::warn!(error = %e, "could not extend the session"),
            }
        }
        Loaded {
            identity: Some(DoximityIdentity::new(record, tokens, self.clone())),
            set_cookies,
            error: None,
        }
    }

    /// The body of a flight: a refresh at the provider, under the store's cross-instance lock
    /// for server-side stores.
    async fn refresh(&self, record: SessionRecord, tokens: TokenSource, now: i64) -> Outcome {
        match &self.backend {
            Backend::Server(store) => {
                let r = record.clone();
                crate::refresh::coordinated(store.as_ref(), &record, move || {
                    self.refresh_at_provider(r, tokens, now)
                })
                .await
            }
            Backend::Cookie => self.refresh_at_provider(record, tokens, now).await,
        }
    }

    /// One refresh at the provider.
    async fn refresh_at_provider(
        &self,
        record: SessionRecord,
        tokens: TokenSource,
        now: i64,
    ) -> Outcome {
        let tokens = match tokens {
            TokenSource::Open(t) => t,
            TokenSource::Sealed(raw) => match self.open_tokens(raw.as_bytes(), &record.id) {
                Some(t) => Arc::new(t),
                None => return Outcome::Ended,
            },
            TokenSource::Claims(_) => return Outcome::Ended,
        };
        match self.client.refresh(&tokens, None).await {
            Ok(fresh) => {
                let record = record.refreshed(&fresh, now);
                match self.persist(&record, Some(&fresh), now).await {
                    Ok(set_cookies) => Outcome::Renewed(Arc::new(Renewed {
                        record,
                        tokens: Arc::new(fresh),
                        set_cookies,
                    })),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not store a refreshed session");
                        Outcome::retry_now()
                    }
                }
            }
            Err(e) if is_conclusive(&e) => {
                tracing::info!(error = %e, "token refresh refused; the session ends");
                Outcome::Ended
            }
            Err(e) => {
                tracing::warn!(error = %e, "token refresh failed; the session stays, will retry");
                Outcome::Retryable {
                    until: rate_limited_until(&e, now),
                }
            }
        }
    }

    /// Records a login `state` as used; false when it already was (a replayed transaction).
    /// Remembered for as long as a transaction may be completed; bounded.
    pub(crate) fn mark_state_used(&self, state: &str, now: i64) -> bool {
        let deadline = now + doximity::callback::MAX_LOGIN_AGE_SECS + 60;
        self.used_states
            .insert(ExpiringSet::key(state.as_bytes()), deadline, now)
    }

    /// Remembers that session `record` was signed out, until its absolute timeout, so a copy
    /// of its cookies made before is refused (the cookie store keeps nothing server-side).
    pub(crate) fn mark_signed_out(&self, record: &SessionRecord, now: i64) {
        self.signed_out.insert(
            ExpiringSet::key(record.id.as_bytes()),
            record.deadline(self.timeouts),
            now,
        );
    }

    /// Whether session `record` was signed out here.
    pub(crate) fn is_signed_out(&self, record: &SessionRecord, now: i64) -> bool {
        self.signed_out
            .contains(&ExpiringSet::key(record.id.as_bytes()), now)
    }

    /// The login route with `return_to` (and, for a step-up, `scope` with the `step_up` tag
    /// that lets the login route request those scopes).
    pub(crate) fn login_location(&self, return_to: &str, scopes: Option<&Scopes>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("return_to", sanitize_return_to(return_to));
        if let Some(s) = scopes {
            let scope = s.to_string();
            q.append_pair("scope", &scope);
            q.append_pair("step_up", &self.step_up_tag(&scope));
        }
        format!("{}?{}", self.routes.login, q.finish())
    }

    fn step_up_mac(&self, scope: &str) -> hmac::Hmac<sha2::Sha256> {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.step_up_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(scope.as_bytes());
        mac
    }

    /// The tag of a step-up link for `scope`: HMAC-SHA256 with a key derived from the cookie
    /// key, base64url.
    fn step_up_tag(&self, scope: &str) -> String {
        use base64::Engine;
        use hmac::Mac;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.step_up_mac(scope).finalize().into_bytes())
    }

    /// Whether `tag` is this layer's tag for `scope` (constant time).
    pub(crate) fn verify_step_up(&self, scope: &str, tag: &str) -> bool {
        use base64::Engine;
        use hmac::Mac;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(tag)
            .is_ok_and(|t| self.step_up_mac(scope).verify_slice(&t).is_ok())
    }

    /// A refusal through the strategy, with the error in the extensions and `no-store`.
    pub(crate) fn refusal(
        &self,
        method: &Method,
        headers: &HeaderMap,
        uri: &http::Uri,
        error: AuthError,
    ) -> Response<Full<Bytes>> {
        let kind = ClientKind::of(headers);
        let navigable =
            kind == ClientKind::Browser && (method == Method::GET || method == Method::HEAD);
        let here = uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        let login_location = match &error {
            AuthError::Unauthenticated if navigable => Some(self.login_location(here, None)),
            AuthError::InsufficientScope { required, .. } if navigable => {
                Some(self.login_location(here, Some(required)))
            }
            _ => None,
        };
        let mut response = self
            .refuse
            .refuse(&Refusal::new(&error, kind, method, login_location));
        no_store(response.headers_mut());
        response.extensions_mut().insert(error);
        response
    }

    fn is_public(&self, path: &str) -> bool {
        self.public_paths.iter().any(|p| p == path)
    }
}

/// Whether a refresh failure ends the session: only a conclusive refusal of the grant
/// (`invalid_grant`: the refresh token is revoked, expired or already used) or an answer that
/// fails the identity checks (another user, issuer or audience; a bad signature). Anything
/// else (an outage, a timeout, a rate limit, a 5xx, an answer that is not the expected JSON, an
/// unexpected status) is transient: the session stays (contract v2, point 7).
pub(crate) fn is_conclusive(error: &doximity::Error) -> bool {
    use doximity::Error;
    match error {
        Error::OAuth { error, .. } => error == "invalid_grant",
        Error::IdToken(_) | Error::MissingIdToken => true,
        _ => false,
    }
}

/// Until when a rate limit blocks new refresh attempts: the provider's reset (at most
/// [`MAX_RATE_LIMIT_WAIT_SECS`](crate::refresh::MAX_RATE_LIMIT_WAIT_SECS) away), or `now` for
/// any other failure.
fn rate_limited_until(error: &doximity::Error, now: i64) -> i64 {
    match error {
        doximity::Error::RateLimited { reset, .. } => {
            let reset = reset
                .and_then(|r| r.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(now + 60, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            reset.clamp(now, now + crate::refresh::MAX_RATE_LIMIT_WAIT_SECS)
        }
        _ => now,
    }
}

pub(crate) fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The layer's view for code running inside it (extractors): present in the request
/// extensions of every request that went through [`DoximityLayer`](crate::DoximityLayer),
/// signed in or not.
#[derive(Clone)]
pub struct AuthContext(pub(crate) Arc<Shared>);

impl std::fmt::Debug for AuthContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AuthContext").finish_non_exhaustive()
    }
}

impl AuthContext {
    /// The refusal for this request, negotiated like the layer's own (gRPC, API, browser), by
    /// the configured [`Refuse`] strategy, with `error` in the response extensions. A browser's
    /// GET or HEAD is sent to sign in (with the union of scopes for
    /// [`AuthError::InsufficientScope`]: a step-up).
    pub fn refusal(&self, parts: &Parts, error: AuthError) -> Response<Full<Bytes>> {
        self.0
            .refusal(&parts.method, &parts.headers, &parts.uri, error)
    }

    /// The login route's URL for this `return_to` (sanitised) and extra scopes.
    pub fn login_location(&self, return_to: &str, scopes: Option<&Scopes>) -> String {
        self.0.login_location(return_to, scopes)
    }

    /// The protocol client.
    pub fn client(&self) -> &Client {
        &self.0.client
    }
}

/// The middleware built by [`DoximityLayer`](crate::DoximityLayer).
#[derive(Clone)]
pub struct DoximityService<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for DoximityService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoximityService")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .finish()
    }
}

/// Which auth route a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Login,
    Callback,
    Logout,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for DoximityService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let route = self.shared.routes.route(req.method(), req.uri().path());
        // The common case, a request with the cookie store's session and nothing to refresh,
        // needs no `await` before the inner service: it is decided here and the inner
        // service's own future is returned, wrapped but not boxed.
        if route.is_none()
            && matches!(self.shared.backend, Backend::Cookie)
            && (self.shared.bearer.is_none() || crate::bearer::presented(req.headers()).is_none())
        {
            let now = self.shared.now();
            if let Some(loaded) = self.shared.load_from_cookies(req.headers(), now) {
                let (mut parts, body) = req.into_parts();
                if let Some(refusal) = admit(&self.shared, &mut parts, &loaded) {
                    return ResponseFuture::ready(refusal.map(Either::Right));
                }
                let future = self.inner.call(Request::from_parts(parts, body));
                return ResponseFuture::inner(future, After::new(loaded));
            }
        }
        let shared = self.shared.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::boxed(Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            if let Some(route) = route {
                let response = crate::routes::handle(&shared, route, &parts).await;
                return Ok(response.map(Either::Right));
            }
            let now = shared.now();
            if let Some(bearer) = &shared.bearer
                && let Some(result) = bearer.authenticate(&shared, &parts, now).await
            {
                // Bearer mode: the token alone decides; no cookie is read or written.
                parts.extensions.insert(AuthContext(shared.clone()));
                match result {
                    Ok(found) => {
                        parts.extensions.insert(found.identity);
                        parts.extensions.insert(found.credential);
                    }
                    Err(error) if !shared.is_public(parts.uri.path()) => {
                        let r =
                            shared.refusal(&parts.method, &parts.headers, &parts.uri, error.into());
                        return Ok(r.map(Either::Right));
                    }
                    Err(_) => {}
                }
                let response = inner.call(Request::from_parts(parts, body)).await?;
                return Ok(response.map(Either::Left));
            }
            let loaded = shared.load(&parts.headers, now).await;
            if let Some(refusal) = admit(&shared, &mut parts, &loaded) {
                return Ok(refusal.map(Either::Right));
            }
            let mut response = inner.call(Request::from_parts(parts, body)).await?;
            append_cookies(response.headers_mut(), &loaded.set_cookies);
            if let Some(identity) = loaded.identity
                && let Some(updated) = identity.take_update()
            {
                let tokens = match &shared.backend {
                    Backend::Server(_) => identity.tokens().ok(),
                    Backend::Cookie => None,
                };
                match shared
                    .persist(&updated, tokens.as_deref(), shared.now())
                    .await
                {
                    Ok(c) => append_cookies(response.headers_mut(), &c),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not keep the profile in the session");
                    }
                }
            }
            Ok(response.map(Either::Left))
        }))
    }
}

/// Puts the layer's view and the identity in the request extensions, or answers the refusal
/// (with the cookies `loaded` clears) when the request may not pass.
fn admit(
    shared: &Arc<Shared>,
    parts: &mut Parts,
    loaded: &Loaded,
) -> Option<Response<Full<Bytes>>> {
    parts.extensions.insert(AuthContext(shared.clone()));
    if let Some(error) = &loaded.error {
        return Some(shared.refusal(&parts.method, &parts.headers, &parts.uri, error.clone()));
    }
    match &loaded.identity {
        Some(identity) => {
            parts.extensions.insert(identity.clone());
        }
        None if shared.mode == Mode::Enforce && !shared.is_public(parts.uri.path()) => {
            let mut r = shared.refusal(
                &parts.method,
                &parts.headers,
                &parts.uri,
                AuthError::Unauthenticated,
            );
            append_cookies(r.headers_mut(), &loaded.set_cookies);
            return Some(r);
        }
        None => {}
    }
    None
}

/// What the cookie store's fast path does once the inner service answered: the cookies
/// loading the session set, and the session again when the handler fetched the profile into
/// it (sealing only, no `await`).
pub(crate) struct After {
    set_cookies: Vec<HeaderValue>,
    identity: Option<DoximityIdentity>,
}

impl After {
    fn new(loaded: Loaded) -> Self {
        Self {
            set_cookies: loaded.set_cookies,
            identity: loaded.identity,
        }
    }

    pub(crate) fn apply(self, headers: &mut HeaderMap) {
        append_cookies(headers, &self.set_cookies);
        if let Some(identity) = self.identity
            && let Some(updated) = identity.take_update()
        {
            let shared = identity.shared();
            append_cookies(headers, &shared.seal_session(&updated, None, shared.now()));
        }
    }
}

/// Appends session `Set-Cookie`s; a response that carries one is never cached (contract v2,
/// point 5).
pub(crate) fn append_cookies(headers: &mut HeaderMap, cookies: &[HeaderValue]) {
    for c in cookies {
        headers.append(header::SET_COOKIE, c.clone());
    }
    if !cookies.is_empty() {
        no_store(headers);
    }
}
