//! [`ResponseFuture`]: the future of [`DoximityService`](crate::DoximityService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use http::header::{HeaderMap, HeaderValue};
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;

use crate::engine::{Loaded, Shared, append_cookies};
use crate::session::DoximityIdentity;

/// The body of the layer's responses: the inner service's body, or the layer's own
/// ([`Full<Bytes>`]) for auth routes and refusals. Both axum and tonic accept it.
pub type ResponseBody<B> = Either<B, Full<Bytes>>;

/// What the cookie store's fast path does once the inner service answered: the cookies
/// loading the session set, and the session again when the handler fetched the profile into
/// it (sealing only, no `await`).
pub(crate) struct After {
    shared: Arc<Shared>,
    set_cookies: Vec<HeaderValue>,
    identity: Option<DoximityIdentity>,
}

impl After {
    pub(crate) fn new(shared: Arc<Shared>, loaded: Loaded) -> Self {
        Self {
            shared,
            set_cookies: loaded.set_cookies,
            identity: loaded.identity,
        }
    }

    fn apply(self, headers: &mut HeaderMap) {
        append_cookies(headers, &self.set_cookies);
        if let Some(identity) = self.identity
            && let Some(updated) = identity.take_update()
        {
            let sessions = &self.shared.sessions;
            append_cookies(
                headers,
                &sessions.seal_cookies(&updated, None, self.shared.now()),
            );
        }
    }
}

type BoxFuture<B, E> = Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// The response future of [`DoximityService`](crate::DoximityService).
    ///
    /// A signed-in request of the cookie store with nothing to refresh (nearly every request)
    /// is decided before the inner service is called: this is then the inner service's
    /// future, unboxed. A refusal decided at once is ready. The rest (the auth routes, a
    /// refresh, a server-side store, a bearer token) may need an `await` before the inner
    /// service runs and is boxed.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B, E> {
        Inner {
            #[pin]
            future: F,
            after: Option<After>,
        },
        Ready {
            response: Option<Response<ResponseBody<B>>>,
        },
        Boxed {
            future: BoxFuture<B, E>,
        },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn inner(future: F, after: After) -> Self {
        Self {
            state: State::Inner {
                future,
                after: Some(after),
            },
        }
    }

    pub(crate) fn ready(response: Response<ResponseBody<B>>) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }

    pub(crate) fn boxed(future: BoxFuture<B, E>) -> Self {
        Self {
            state: State::Boxed { future },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future, after } => {
                let mut response = ready!(future.poll(cx))?;
                if let Some(after) = after.take() {
                    after.apply(response.headers_mut());
                }
                Poll::Ready(Ok(response.map(Either::Left)))
            }
            StateProj::Ready { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => panic!("ResponseFuture polled after completion"),
            },
            StateProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
