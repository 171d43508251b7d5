//! The session engine: the layer's state ([`Shared`]), and acting on the [`Decision`] for a
//! request: read the session (cookies or store), decide, refresh when due (single-flight),
//! touch, and hand back the identity or the refusal. The tower adapter
//! ([`DoximityService`](crate::DoximityService)) and the auth routes sit on top of it.

use std::sync::Arc;

use bytes::Bytes;
use doximity::Client;
use doximity::scope::Scopes;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response};
use http_body_util::Full;

use crate::audit::{Event, Origin, Record, SessionHasher};
use crate::backend::{Carried, Sessions};
use crate::background::Background;
use crate::bearer::BearerState;
use crate::decide::{Decision, Ended, Found, Mode, Routes, Settings, decide};
use crate::error::AuthError;
use crate::ledger::Ledger;
use crate::links::Links;
use crate::refresh::{Flights, Outcome, Renewed};
use crate::response::{ClientKind, Refusal, Refuse};
use crate::session::{DoximityIdentity, SessionRecord, TokenSource};

/// A public-path predicate.
pub(crate) type PublicFn = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Everything the layer needs, shared by every clone of the service.
pub(crate) struct Shared {
    pub(crate) routes: Routes,
    pub(crate) mode: Mode,
    pub(crate) sessions: Sessions,
    pub(crate) refuse: Arc<dyn Refuse>,
    pub(crate) flights: Arc<Flights>,
    pub(crate) ledger: Ledger,
    /// The app's origin (the redirect URI's), for the logout's same-origin rule.
    pub(crate) origin: String,
    pub(crate) links: Links,
    /// Scopes the login route may add on request besides the configured ones.
    pub(crate) step_up_scopes: Scopes,
    pub(crate) clear_site_data: bool,
    pub(crate) background: Arc<Background>,
    pub(crate) public_paths: Arc<[String]>,
    /// Predicates of [`DoximityAuth::with_public`](crate::DoximityAuth::with_public).
    pub(crate) public: Arc<[PublicFn]>,
    /// [`DoximityAuth::bearer_layer`](crate::DoximityAuth::bearer_layer): no auth routes, no
    /// cookies.
    pub(crate) bearer_only: bool,
    pub(crate) profile_at_login: bool,
    pub(crate) bearer: Option<Arc<BearerState>>,
    /// The keyed hash of session ids in audit events.
    pub(crate) audit: SessionHasher,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("routes", &self.routes)
            .field("mode", &self.mode)
            .field("sessions", &self.sessions)
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
    pub(crate) fn refused() -> Self {
        Self {
            refuse: true,
            ..Self::default()
        }
    }
}

impl Shared {
    pub(crate) fn client(&self) -> &Client {
        &self.sessions.env.client
    }

    pub(crate) fn now(&self) -> i64 {
        self.sessions.env.now()
    }

    pub(crate) fn is_public(&self, path: &str) -> bool {
        self.public_paths.iter().any(|p| p == path) || self.public.iter().any(|f| f(path))
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
            timeouts: self.sessions.timeouts,
            is_public: &is_public,
        };
        decide(&settings, method, uri.path(), headers, found, now)
    }

    /// What a session the request carries (`session`) is, for [`decide`]: with the signed-out
    /// check; `Nothing` says whether session cookies were sent anyway.
    fn found<'a>(&self, session: Option<&'a Carried>, headers: &HeaderMap, now: i64) -> Found<'a> {
        match session {
            Some((record, _)) => Found::Session {
                record,
                signed_out: self
                    .ledger
                    .is_signed_out(record, self.sessions.timeouts, now),
            },
            None => Found::Nothing {
                cookies: self.sessions.had_cookie(headers),
            },
        }
    }

    fn identity(&self, record: SessionRecord, tokens: TokenSource) -> DoximityIdentity {
        DoximityIdentity::session(record, tokens, self.sessions.env.clone())
    }

    /// Acts on a decision without an `await`: `Pass`, `Anonymous` and `Refuse` (cookie store;
    /// a server store's touch is written by [`Shared::settle`]). `None` for the others.
    pub(crate) fn settle_now(
        &self,
        decision: Decision,
        session: Option<Carried>,
        now: i64,
    ) -> Option<Loaded> {
        match decision {
            Decision::Pass { touch } => {
                let (mut record, tokens) = session?;
                let set_cookies = if touch && self.sessions.is_cookie() {
                    record.last_seen = now;
                    self.sessions.seal_cookies(&record, None, now)
                } else {
                    Vec::new()
                };
                Some(Loaded {
                    identity: Some(self.identity(record, tokens)),
                    set_cookies,
                    ..Loaded::default()
                })
            }
            Decision::Anonymous { clear, .. } | Decision::Refuse { clear, .. } => Some(Loaded {
                set_cookies: if clear {
                    self.sessions.clear_cookies()
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
    pub(crate) fn settle_from_cookies(&self, parts: &Parts, now: i64) -> Option<Loaded> {
        let session = self.sessions.read_cookies(&parts.headers);
        let found = self.found(session.as_ref(), &parts.headers, now);
        let decision = self.decide(&parts.method, &parts.uri, &parts.headers, found, now);
        self.note_ended(decision, session.as_ref(), parts, now);
        self.settle_now(decision, session, now)
    }

    /// The audit event of a session the request carried that is over.
    fn note_ended(&self, decision: Decision, session: Option<&Carried>, parts: &Parts, now: i64) {
        let (Decision::Anonymous {
            ended: Some(ended), ..
        }
        | Decision::Refuse {
            ended: Some(ended), ..
        }) = decision
        else {
            return;
        };
        let Some((record, _)) = session else {
            return;
        };
        let reason = match ended {
            Ended::TimedOut if now >= record.deadline(self.sessions.timeouts) => "absolute",
            Ended::TimedOut => "idle",
            Ended::SignedOut => "revoked",
            Ended::TokenExpired => "token_expired",
        };
        self.audit_session(
            Event::SessionEnded,
            &Origin::of(parts),
            record,
            Some(reason),
        );
    }

    /// An audit event about session `record`.
    pub(crate) fn audit_session(
        &self,
        event: Event,
        origin: &Origin,
        record: &SessionRecord,
        reason: Option<&'static str>,
    ) {
        crate::audit::emit(
            event,
            origin,
            &Record {
                sub: Some(&record.sub),
                session: Some(self.audit.hash(&record.id)),
                reason,
                ..Record::default()
            },
        );
    }

    /// Reads the session (cookies or store), decides, and acts on the decision: the timeouts,
    /// the signed-out check, a refresh when due (single-flight), a touch.
    pub(crate) async fn settle(self: &Arc<Self>, parts: &Parts, now: i64) -> Loaded {
        let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
        let session = match self.sessions.read(headers).await {
            Ok(session) => session,
            Err(error) => {
                return Loaded {
                    error: Some(error),
                    ..Loaded::default()
                };
            }
        };
        let found = self.found(session.as_ref(), headers, now);
        let decision = self.decide(method, uri, headers, found, now);
        self.note_ended(decision, session.as_ref(), parts, now);
        let (mut record, mut tokens, mut touch) = match (decision, session) {
            (Decision::Refresh { touch }, Some((record, tokens))) => (record, tokens, touch),
            (Decision::Pass { touch: true }, Some((record, tokens)))
                if !self.sessions.is_cookie() =>
            {
                (record, tokens, true)
            }
            (
                Decision::Anonymous { ended, .. } | Decision::Refuse { ended, .. },
                Some((record, _)),
            ) if ended.is_some() => {
                self.sessions.delete(&record).await;
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
            let origin = Origin::of(parts);
            let outcome = self
                .flights
                .run(&record.id, record.rev, now, move || async move {
                    this.refresh(r, t, now, origin).await
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
                    self.sessions.delete(&record).await;
                    return Loaded {
                        set_cookies: self.sessions.clear_cookies(),
                        refuse: self.mode == Mode::Enforce && !self.is_public(uri.path()),
                        ..Loaded::default()
                    };
                }
            }
        }
        if touch {
            record.last_seen = now;
            match self
                .sessions
                .persist(&record, None, Some(&tokens), now)
                .await
            {
                Ok(c) => set_cookies.extend(c),
                Err(e) => tracing::warn!(error = %e, "could not extend the session"),
            }
        }
        Loaded {
            identity: Some(self.identity(record, tokens)),
            set_cookies,
            ..Loaded::default()
        }
    }

    /// The body of a flight: a refresh at the provider, under the store's cross-instance lock
    /// for server-side stores.
    async fn refresh(
        &self,
        record: SessionRecord,
        tokens: TokenSource,
        now: i64,
        origin: Origin,
    ) -> Outcome {
        match &self.sessions.backend {
            crate::backend::Backend::Server(store) => {
                let r = record.clone();
                crate::refresh::coordinated(
                    store.as_ref(),
                    &self.sessions,
                    &record,
                    move || async move { self.refresh_at_provider(r, tokens, now, &origin).await },
                )
                .await
            }
            crate::backend::Backend::Cookie => {
                self.refresh_at_provider(record, tokens, now, &origin).await
            }
        }
    }

    /// One refresh at the provider.
    async fn refresh_at_provider(
        &self,
        record: SessionRecord,
        tokens: TokenSource,
        now: i64,
        origin: &Origin,
    ) -> Outcome {
        let tokens = match tokens {
            TokenSource::Open(t) => t,
            sealed => match self.sessions.env.open_tokens(&sealed, &record.id) {
                Some(t) => Arc::new(t),
                None => return Outcome::Ended,
            },
        };
        let refreshed = crate::metrics::timed("token", self.client().refresh(&tokens, None)).await;
        crate::audit::rate_limit(self.client(), origin);
        match refreshed {
            Ok(fresh) => {
                self.audit_session(Event::RefreshSucceeded, origin, &record, None);
                let record = record.refreshed(&fresh, now);
                match self
                    .sessions
                    .persist(&record, Some(&fresh), None, now)
                    .await
                {
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
            // Only a conclusive refusal of the grant (`invalid_grant`) or an answer that fails
            // the identity checks ends the session; anything else (an outage, a timeout, a
            // rate limit, a 5xx, an answer that is not the expected JSON) is transient
            // (contract v2, point 7).
            Err(e) if e.is_conclusive_refresh_failure() => {
                tracing::info!(error = %e, "token refresh refused; the session ends");
                let reason = Some(refresh_reason(&e));
                self.audit_session(Event::RefreshFailedConclusive, origin, &record, reason);
                self.audit_session(Event::SessionEnded, origin, &record, Some("revoked"));
                Outcome::Ended
            }
            Err(e) => {
                tracing::warn!(error = %e, "token refresh failed; the session stays, will retry");
                let reason = Some(refresh_reason(&e));
                self.audit_session(Event::RefreshFailedTransient, origin, &record, reason);
                Outcome::Retryable {
                    until: rate_limited_until(&e, now),
                }
            }
        }
    }

    /// A refusal through the strategy, with the error in the extensions and `no-store`.
    pub(crate) fn refusal(&self, parts: &Parts, error: AuthError) -> Response<Full<Bytes>> {
        let (method, headers, uri) = (&parts.method, &parts.headers, &parts.uri);
        let origin = Origin::of(parts);
        crate::audit::emit(
            Event::Refused,
            &origin,
            &Record {
                sub: parts
                    .extensions
                    .get::<DoximityIdentity>()
                    .map(DoximityIdentity::sub),
                reason: Some(error.code()),
                ..Record::default()
            },
        );
        let kind = ClientKind::of(headers);
        // A bearer-only layer has no login route to send a browser to.
        let navigable = kind == ClientKind::Browser
            && !self.bearer_only
            && (method == Method::GET || method == Method::HEAD);
        let here = uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        let login_location = match &error {
            AuthError::Unauthenticated if navigable => Some(self.links.login_location(here, None)),
            AuthError::InsufficientScope { required, .. } if navigable => {
                Some(self.links.login_location(here, Some(required)))
            }
            AuthError::InsufficientAuthentication {
                acr_values,
                max_age,
            } if navigable => {
                // Signing in again keeps the scopes the session was stepped up to.
                let configured = self.client().config().scopes();
                let kept = parts
                    .extensions
                    .get::<DoximityIdentity>()
                    .map(DoximityIdentity::scopes)
                    .filter(|s| s.iter().any(|s| !configured.contains(s)));
                Some(
                    self.links
                        .step_up_location(here, kept, acr_values.as_deref(), *max_age),
                )
            }
            _ => None,
        };
        let accepts_html = headers
            .get_all(header::ACCEPT)
            .iter()
            .any(|v| v.as_bytes().windows(9).any(|w| w == b"text/html"));
        let mut response = self.refuse.refuse(
            &Refusal::new(&error, kind, method, login_location).with_accepts_html(accepts_html),
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
}

/// A refresh failure's normalised reason, for the audit trail.
fn refresh_reason(error: &doximity::Error) -> &'static str {
    match error {
        doximity::Error::RateLimited { .. } => "rate_limited",
        e if e.is_conclusive_refresh_failure() => "refused",
        e if e.is_retryable() => "provider_unavailable",
        _ => "provider_error",
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

/// `Cache-Control: no-store`.
pub(crate) fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
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
        self.0.refusal(parts, error)
    }

    /// The login route's URL for this `return_to` (sanitised) and extra scopes.
    pub fn login_location(&self, return_to: &str, scopes: Option<&Scopes>) -> String {
        self.0.links.login_location(return_to, scopes)
    }

    /// The protocol client.
    pub fn client(&self) -> &Client {
        self.0.client()
    }
}
