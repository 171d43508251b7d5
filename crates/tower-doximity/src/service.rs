//! [`DoximityService`]: the tower adapter over the session engine. It asks the engine for the
//! [`Decision`] and acts on it: an auth route, a bearer token, or the session's identity put in
//! the request extensions before the inner service runs (or the refusal instead).

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body_util::{Either, Full};
use tower_service::Service;

use crate::audit::{Event, Origin, Record};
use crate::bearer::BearerError;
use crate::decide::{Decision, Found};
use crate::engine::{AuthContext, Loaded, Shared, append_cookies};
use crate::error::AuthError;
use crate::future::{After, ResponseBody, ResponseFuture};

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
        let (mut parts, body) = req.into_parts();
        // The common case, a request with the cookie store's session and nothing to refresh,
        // needs no `await` before the inner service: it is decided here and the inner
        // service's own future is returned, wrapped but not boxed.
        if !shared.bearer_only && shared.sessions.is_cookie() {
            let now = shared.now();
            // A refusal while the provider is not discovered yet goes the slow way: it may be
            // 503 (provider unavailable) rather than "not signed in".
            if let Some(loaded) = shared.settle_from_cookies(&parts, now)
                && (!loaded.refuse || shared.client().is_ready())
            {
                if let Some(refusal) = admit(shared, &mut parts, &loaded) {
                    return ResponseFuture::ready(refusal.map(Either::Right));
                }
                let future = self.inner.call(Request::from_parts(parts, body));
                return ResponseFuture::inner(future, After::new(shared.clone(), loaded));
            }
        }
        let shared = self.shared.clone();
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::boxed(Box::pin(slow_path(shared, inner, parts, body)))
    }
}

/// Every request the fast path did not settle: the auth routes, bearer tokens, server stores,
/// refreshes, and refusals while the provider is not discovered yet.
async fn slow_path<S, ReqBody, ResBody>(
    shared: Arc<Shared>,
    mut inner: S,
    mut parts: Parts,
    body: ReqBody,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    let now = shared.now();
    let first = shared.decide(
        &parts.method,
        &parts.uri,
        &parts.headers,
        Found::Unread,
        now,
    );
    let mut loaded = match first {
        Decision::Route(route) => {
            let response = crate::routes::handle(&shared, route, &parts).await;
            return Ok(response.map(Either::Right));
        }
        Decision::Bearer => return bearer(shared, inner, parts, body, now).await,
        Decision::Load | Decision::Refresh { .. } => shared.settle(&parts, now).await,
        decision => shared
            .settle_now(decision, None, now)
            .unwrap_or_else(Loaded::refused),
    };
    if loaded.refuse
        && loaded.error.is_none()
        && !shared.client().is_ready()
        && let Err(e) = shared.client().ready().await
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
        // The handler fetched the profile: keep it in the session.
        let written = shared
            .sessions
            .persist(&updated, None, identity.token_source(), shared.now())
            .await;
        match written {
            Ok(c) => append_cookies(response.headers_mut(), &c),
            Err(e) => tracing::warn!(error = %e, "could not keep the profile in the session"),
        }
    }
    Ok(response.map(Either::Left))
}

/// Bearer mode: the token alone decides; no cookie is read or written.
async fn bearer<S, ReqBody, ResBody>(
    shared: Arc<Shared>,
    mut inner: S,
    mut parts: Parts,
    body: ReqBody,
    now: i64,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    let result = match &shared.bearer {
        Some(b) => b.authenticate(&shared.sessions.env, &parts, now).await,
        None => None,
    };
    // Never open: a token the decision saw but the check did not is refused.
    let result = result.unwrap_or(Err(BearerError::Malformed));
    parts.extensions.insert(AuthContext(shared.clone()));
    let origin = Origin::of(&parts);
    match result {
        Ok(found) => {
            let record = Record {
                sub: Some(found.identity.sub()),
                reason: Some(found.credential.kind().name()),
                ..Record::default()
            };
            crate::audit::emit(Event::BearerAccepted, &origin, &record);
            parts.extensions.insert(found.identity);
            parts.extensions.insert(found.credential);
        }
        Err(error) => {
            let record = Record {
                reason: Some(error.code()),
                ..Record::default()
            };
            crate::audit::emit(Event::BearerRefused, &origin, &record);
            if !shared.is_public(parts.uri.path()) {
                let r = shared.refusal(&parts, error.into());
                return Ok(r.map(Either::Right));
            }
        }
    }
    let response = inner.call(Request::from_parts(parts, body)).await?;
    Ok(response.map(Either::Left))
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
        return Some(shared.refusal(parts, error.clone()));
    }
    match &loaded.identity {
        Some(identity) => {
            parts.extensions.insert(identity.clone());
        }
        None if loaded.refuse => {
            let mut r = shared.refusal(parts, AuthError::Unauthenticated);
            append_cookies(r.headers_mut(), &loaded.set_cookies);
            return Some(r);
        }
        None => {}
    }
    None
}
