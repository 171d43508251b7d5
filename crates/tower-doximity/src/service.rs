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
use crate::decide::{Decision, Found, Settings, decide};
use crate::error::AuthError;
use crate::future::ResponseFuture;
use crate::memory::ExpiringSet;
use crate::refresh::{Flights, Outcome, Renewed};
use crate::response::{ClientKind, Refusal, Refuse};
use crate::return_to::sanitize_return_to;
use crate::session::{DoximityIdentity, SessionRecord, Timeouts, TokenSource};
use crate::store::{Backend, SessionId, StoredSession};

/// The body of the layer's responses: the inner service's body, or the layer's own
/// ([`Full<Bytes>`]) for auth routes and refusals. Both axum and tonic accept it.
pub type ResponseBody<B> = Either<B, Full<Bytes>>;

/// A public-path predicate.
pub(crate) type PublicFn = Arc<dyn Fn(&str) -> bool + Send + Sync>;

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
    /// Users an operator signed out ([`DoximityAuth::sign_out_user`](crate::DoximityAuth::sign_out_user)):
    /// their sessions created until `deadline - absolute timeout` are refused.
    pub(crate) users_signed_out: Arc<ExpiringSet>,
    /// The app's origin (the redirect URI's), for the logout's same-origin rule.
    pub(crate) origin: String,
    /// The HMAC key of the layer's own step-up links.
    pub(crate) step_up_key: [u8; 32],
    /// Scopes the login route may add on request besides the configured ones.
    pub(crate) step_up_scopes: Scopes,
    pub(crate) clear_site_data: bool,
    pub(crate) background: Arc<Background>,
    pub(crate) public_paths: Arc<[String]>,
    /// Predicates of [`DoximityAuth::with_public`](crate::DoximityAuth::with_public).
    pub(crate) public: Arc<[PublicFn]>,
    /// [`DoximityAuth::bearer_layer`]: no auth routes, no cookies.
    pub(crate) bearer_only: bool,
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

/// What acting on the [`Decision`] found: the identity (or the refusal), and the cookies to set.
#[derive(Default)]
pub(crate) struct Loaded {
    pub(crate) identity: Option<DoximityIdentity>,
    pub(crate) set_cookies: Vec<HeaderValue>,
    pub(crate) error: Option<AuthError>,
    /// No identity, and the decision was to refuse ([`Decision::Refuse`]).
    pub(crate) refuse: bool,
}

impl Loaded {
    /// No identity, refused: what a decision that cannot be acted on becomes (never open).
    fn refused() -> Self {
        Self {
            refuse: true,
            ..Self::default()
        }
    }
}

/// The tokens cookie's JSON: the tokens, bound to their session's id, so the tokens cookie
/// of one session never serves the identity cookie of another.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct TokensWire<I, T> {
    #[serde(rename = "i")]
    pub(crate) id: I,
    #[serde(rename = "t")]
    pub(crate) tokens: T,
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

    /// The decision ([`decide`]) for a request whose session is `found`.
    pub(crate) fn decide(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        found: Found<'_>,
        now: i64,
    ) -> Decision {
        let is_public = |path: &str| self.is_public(path);
        let settings = Settings {
            routes: &self.routes,
            mode: self.mode,
            bearer: self.bearer.is_some(),
            bearer_only: self.bearer_only,
            timeouts: self.timeouts,
            is_public: &is_public,
        };
        decide(&settings, method, uri.path(), headers, found, now)
    }

    /// What a session the request carries (`session`) is, for [`decide`]: with the signed-out
    /// check; `Nothing` says whether session cookies were sent anyway.
    fn found<'a>(
        &self,
        session: Option<&'a (SessionRecord, TokenSource)>,
        headers: &HeaderMap,
        now: i64,
    ) -> Found<'a> {
        match session {
            Some((record, _)) => Found::Session {
                record,
                signed_out: self.is_signed_out(record, now),
            },
            None => Found::Nothing {
                cookies: self.had_session_cookie(headers),
            },
        }
    }

    /// Acts on a decision without an `await`: `Pass`, `Anonymous` and `Refuse` (cookie store;
    /// a server store's touch is written by [`Shared::settle`]). `None` for the others.
    fn settle_now(
        self: &Arc<Self>,
        decision: Decision,
        session: Option<(SessionRecord, TokenSource)>,
        now: i64,
    ) -> Option<Loaded> {
        match decision {
            Decision::Pass { touch } => {
                let (mut record, tokens) = session?;
                let set_cookies = if touch && matches!(self.backend, Backend::Cookie) {
                    record.last_seen = now;
                    self.seal_session(&record, None, now)
                } else {
                    Vec::new()
                };
                Some(Loaded {
                    identity: Some(DoximityIdentity::new(record, tokens, self.clone())),
                    set_cookies,
                    ..Loaded::default()
                })
            }
            Decision::Anonymous { clear, .. } | Decision::Refuse { clear, .. } => Some(Loaded {
                set_cookies: if clear {
                    self.clear_session_cookies()
                } else {
                    Vec::new()
                },
                refuse: matches!(decision, Decision::Refuse { .. }),
                ..Loaded::default()
            }),
            Decision::Route(_) | Decision::Bearer | Decision::Load | Decision::Refresh { .. } => {
                None
            }
        }
    }

    /// [`Shared::settle`] for the cookie store without any `await`, as nearly every signed-in
    /// request goes: `None` when the decision needs an `await` (a route, a bearer token, a
    /// refresh).
    pub(crate) fn settle_from_cookies(
        self: &Arc<Self>,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        now: i64,
    ) -> Option<Loaded> {
        let session = self.read_cookie_session(headers);
        let decision = self.decide(
            method,
            uri,
            headers,
            self.found(session.as_ref(), headers, now),
            now,
        );
        self.settle_now(decision, session, now)
    }

    /// Reads the session (cookies or store), decides, and acts on the decision: the timeouts,
    /// the signed-out check, a refresh when due (single-flight), a touch.
    pub(crate) async fn settle(
        self: &Arc<Self>,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        now: i64,
    ) -> Loaded {
        let session = match self.read_session(headers).await {
            Ok(session) => session,
            Err(error) => {
                return Loaded {
                    error: Some(error),
                    ..Loaded::default()
                };
            }
        };
        let decision = self.decide(
            method,
            uri,
            headers,
            self.found(session.as_ref(), headers, now),
            now,
        );
        let (mut record, mut tokens, mut touch) = match (decision, session) {
            (Decision::Refresh { touch }, Some((record, tokens))) => (record, tokens, touch),
            (Decision::Pass { touch: true }, Some((record, tokens)))
                if matches!(self.backend, Backend::Server(_)) =>
            {
                (record, tokens, true)
            }
            (
                Decision::Anonymous { ended, .. } | Decision::Refuse { ended, .. },
                Some((record, _)),
            ) if ended.is_some() => {
                self.delete_session(&record).await;
                return self
                    .settle_now(decision, None, now)
                    .unwrap_or_else(Loaded::refused);
            }
            (decision, session) => {
                return self
                    .settle_now(decision, session, now)
                    .unwrap_or_else(Loaded::refused);
            }
        };
        let mut set_cookies = Vec::new();
        if matches!(decision, Decision::Refresh { .. }) {
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
                // A transient failure keeps the session (contract v2, point 7): the identity
                // is still valid; the next request tries again.
                Outcome::Retryable { .. } => {}
                Outcome::Ended => {
                    self.delete_session(&record).await;
                    return Loaded {
                        set_cookies: self.clear_session_cookies(),
                        refuse: self.mode == Mode::Enforce && !self.is_public(uri.path()),
                        ..Loaded::default()
                    };
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
            ..Loaded::default()
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
    /// With a server store that shares it ([`SessionStore::mark_used`]), the memory is
    /// shared by every instance; a store error fails closed.
    ///
    /// [`SessionStore::mark_used`]: crate::SessionStore::mark_used
    pub(crate) async fn mark_state_used(&self, state: &str, now: i64) -> Result<bool, AuthError> {
        let ttl = doximity::callback::MAX_LOGIN_AGE_SECS + 60;
        let key = ExpiringSet::key(state.as_bytes());
        let here = self.used_states.insert(key, now + ttl, now);
        if let Backend::Server(store) = &self.backend {
            use std::fmt::Write as _;
            let hex = key.iter().fold(String::with_capacity(64), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            });
            let ttl = std::time::Duration::from_secs(u64::try_from(ttl).unwrap_or(0));
            match store.mark_used(&hex, ttl).await {
                Ok(Some(shared)) => return Ok(here && shared),
                Ok(None) => {}
                Err(e) => return Err(AuthError::Store(Arc::new(e))),
            }
        }
        Ok(here)
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

    /// Whether session `record` was signed out here, or its user was signed out everywhere
    /// after it began.
    pub(crate) fn is_signed_out(&self, record: &SessionRecord, now: i64) -> bool {
        self.signed_out
            .contains(&ExpiringSet::key(record.id.as_bytes()), now)
            || self
                .users_signed_out
                .deadline(&ExpiringSet::key(record.sub.as_bytes()), now)
                .is_some_and(|deadline| {
                    record.created_at
                        <= deadline.saturating_sub(crate::session::secs(self.timeouts.absolute))
                })
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
        // A bearer-only layer has no login route to send a browser to.
        let navigable = kind == ClientKind::Browser
            && !self.bearer_only
            && (method == Method::GET || method == Method::HEAD);
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
        let mut response = self.refuse.refuse(
            &Refusal::new(&error, kind, method, login_location).with_accepts_html(
                headers
                    .get_all(header::ACCEPT)
                    .iter()
                    .any(|v| v.as_bytes().windows(9).any(|w| w == b"text/html")),
            ),
        );
        no_store(response.headers_mut());
        if let Some(secs) = error.retry_after()
            && !response.headers().contains_key(header::RETRY_AFTER)
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(error);
        response
    }

    fn is_public(&self, path: &str) -> bool {
        self.public_paths.iter().any(|p| p == path) || self.public.iter().any(|f| f(path))
    }
}

/// Whether a refresh failure ends the session: only a conclusive refusal of the grant
/// (`invalid_grant`) or an answer that fails the identity checks
/// ([`doximity::Error::is_conclusive_refresh_failure`]). Anything else (an outage, a timeout, a
/// rate limit, a 5xx, an answer that is not the expected JSON, an unexpected status) is
/// transient: the session stays (contract v2, point 7).
pub(crate) fn is_conclusive(error: &doximity::Error) -> bool {
    error.is_conclusive_refresh_failure()
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
        let shared = &self.shared;
        // The common case, a request with the cookie store's session and nothing to refresh,
        // needs no `await` before the inner service: it is decided here and the inner
        // service's own future is returned, wrapped but not boxed.
        if !shared.bearer_only && matches!(shared.backend, Backend::Cookie) {
            let now = shared.now();
            // A refusal while the provider is not discovered yet goes the slow way: it may be
            // 503 (provider unavailable) rather than "not signed in".
            if let Some(loaded) =
                shared.settle_from_cookies(req.method(), req.uri(), req.headers(), now)
                && (!loaded.refuse || shared.client.is_ready())
            {
                let (mut parts, body) = req.into_parts();
                if let Some(refusal) = admit(shared, &mut parts, &loaded) {
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
            let now = shared.now();
            let first = shared.decide(
                &parts.method,
                &parts.uri,
                &parts.headers,
                Found::Unread,
                now,
            );
            let loaded = match first {
                Decision::Route(route) => {
                    let response = crate::routes::handle(&shared, route, &parts).await;
                    return Ok(response.map(Either::Right));
                }
                Decision::Bearer => {
                    // Bearer mode: the token alone decides; no cookie is read or written.
                    let result = match &shared.bearer {
                        Some(b) => b.authenticate(&shared, &parts, now).await,
                        None => None,
                    };
                    // Never open: a token the decision saw but the check did not is refused.
                    let result = result.unwrap_or(Err(crate::bearer::BearerError::Malformed));
                    parts.extensions.insert(AuthContext(shared.clone()));
                    match result {
                        Ok(found) => {
                            parts.extensions.insert(found.identity);
                            parts.extensions.insert(found.credential);
                        }
                        Err(error) if !shared.is_public(parts.uri.path()) => {
                            let r = shared.refusal(
                                &parts.method,
                                &parts.headers,
                                &parts.uri,
                                error.into(),
                            );
                            return Ok(r.map(Either::Right));
                        }
                        Err(_) => {}
                    }
                    let response = inner.call(Request::from_parts(parts, body)).await?;
                    return Ok(response.map(Either::Left));
                }
                Decision::Load | Decision::Refresh { .. } => {
                    shared
                        .settle(&parts.method, &parts.uri, &parts.headers, now)
                        .await
                }
                decision => shared
                    .settle_now(decision, None, now)
                    .unwrap_or_else(Loaded::refused),
            };
            let mut loaded = loaded;
            if loaded.refuse
                && loaded.error.is_none()
                && !shared.client.is_ready()
                && let Err(e) = shared.client.ready().await
            {
                // Nobody can sign in while the provider cannot be discovered: say so (503 with
                // `Retry-After`, gRPC 14) instead of sending the client to a login that fails.
                loaded.error = Some(AuthError::Login(Arc::new(e)));
            }
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
        None if loaded.refuse => {
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
