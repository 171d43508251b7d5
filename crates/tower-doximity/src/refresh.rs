//! Single-flight refresh per session, and the short-lived upgrade map.
//!
//! Doximity rotates both tokens on refresh and kills the old pair at once, so two refreshes
//! with the same refresh token sign the user out. Every request that needs a refresh for a
//! session revision `(id, rev)` joins one flight; the flight's outcome (including the new
//! cookies) is kept for two minutes, so a request that arrives a little later with the old
//! cookie is upgraded from memory instead of refreshing again.
//!
//! A flight runs as its own task: if every request waiting for it goes away (a client hangs
//! up), the refresh still finishes and its result is stored and kept for the next request, so
//! rotated tokens are never lost. A transient failure is not kept (the next request tries
//! again), except a rate limit, which blocks new attempts until the provider's reset.
//!
//! Across instances, a shared store's lock ([`SessionStore::lock_refresh`]) sits behind the
//! in-process flight: [`coordinated`] refreshes only while holding it, and otherwise waits for
//! the other instance's result in the store.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use doximity::TokenSet;
use http::HeaderValue;

use crate::backend::Sessions;
use crate::session::SessionRecord;
use crate::store::{RefreshLock, SessionId, SessionStore, StoreError};

/// How long a finished refresh stays in the upgrade map, seconds.
const KEEP_RENEWED_SECS: i64 = 120;
/// The longest a rate limit blocks new refresh attempts, seconds.
pub(crate) const MAX_RATE_LIMIT_WAIT_SECS: i64 = 300;

/// A successful refresh.
#[derive(Debug)]
pub(crate) struct Renewed {
    pub(crate) record: SessionRecord,
    pub(crate) tokens: Arc<TokenSet>,
    /// The cookies that carry the new session (cookie store), for every response that joined.
    pub(crate) set_cookies: Vec<HeaderValue>,
}

/// The outcome of one refresh flight.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    Renewed(Arc<Renewed>),
    /// The provider was unreachable, unavailable, rate-limited, or answered something that
    /// is not a conclusive refusal: the session stays, and no new attempt is made before
    /// `until` (epoch seconds; a rate limit's reset, else now).
    Retryable {
        until: i64,
    },
    /// The provider refused (e.g. `invalid_grant`): the session is over.
    Ended,
}

impl Outcome {
    /// A transient failure that may be tried again at once.
    pub(crate) const fn retry_now() -> Self {
        Self::Retryable { until: 0 }
    }
}

struct Flight {
    outcome: Shared<BoxFuture<'static, Outcome>>,
    started: i64,
}

/// The flights, keyed by session id and revision.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<(String, u64), Flight>>,
}

impl std::fmt::Debug for Flights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights").finish_non_exhaustive()
    }
}

impl Flights {
    /// Joins (or starts) the flight for `(id, rev)`; `refresh` runs at most once per key while
    /// the entry lives, as its own task, so it finishes even if every waiting request is
    /// dropped.
    pub(crate) async fn run<F, Fut>(&self, id: &str, rev: u64, now: i64, refresh: F) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let outcome = {
            let mut map = self
                .map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.retain(|_, f| match f.outcome.peek() {
                None => true,
                Some(Outcome::Retryable { until }) => now < *until,
                Some(_) => now.saturating_sub(f.started) < KEEP_RENEWED_SECS,
            });
            map.entry((id.to_owned(), rev))
                .or_insert_with(|| {
                    let task = tokio::spawn(refresh());
                    Flight {
                        outcome: async move {
                            task.await.unwrap_or_else(|e| {
                                tracing::warn!(error = %e, "a refresh task failed");
                                Outcome::retry_now()
                            })
                        }
                        .boxed()
                        .shared(),
                        started: now,
                    }
                })
                .outcome
                .clone()
        };
        outcome.await
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

/// The first pause before re-reading a session another instance is refreshing.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause between two re-reads.
const MAX_PAUSE: Duration = Duration::from_millis(100);
/// How long past the lease a waiter still waits for a lock that changed hands.
const WAIT_MARGIN: Duration = Duration::from_millis(250);

/// Runs `refresh` under the store's cross-instance refresh lock (the body of an in-process
/// flight, for a server-side store).
///
/// - [`RefreshLock::NotShared`]: `refresh` runs (the in-process flight alone decides).
/// - [`RefreshLock::Acquired`]: the session is read again first; `refresh` runs only if no
///   other instance changed it meanwhile; then the lock is released.
/// - [`RefreshLock::Held`]: no refresh here. The session is re-read after a short pause
///   (growing from 5 ms to 100 ms) until its revision changes (the other instance's result is
///   used as ours), it is gone (ended), or the lock is free (then it is asked for again). The
///   wait is bounded by the lease the lock had left when first seen, plus a margin; past it
///   the outcome is retryable.
///
/// A store error is a retryable outcome: the current token keeps serving while it is valid.
pub(crate) async fn coordinated<F, Fut>(
    store: &dyn SessionStore,
    sessions: &Sessions,
    record: &SessionRecord,
    refresh: F,
) -> Outcome
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Outcome>,
{
    let id = SessionId(record.id.clone());
    let mut pause = FIRST_PAUSE;
    let mut give_up: Option<tokio::time::Instant> = None;
    loop {
        let lock = match store.lock_refresh(&id).await {
            Ok(lock) => lock,
            Err(e) => return store_failed(&e),
        };
        match lock {
            RefreshLock::Acquired(guard) => {
                // Another instance may have refreshed between our read and our lock.
                let outcome = match changed(store, sessions, &id, record).await {
                    Ok(Some(outcome)) => outcome,
                    Ok(None) => refresh().await,
                    Err(e) => store_failed(&e),
                };
                if let Err(e) = guard.release().await {
                    tracing::warn!(error = %e, "could not release a refresh lock; its lease will end it");
                }
                return outcome;
            }
            RefreshLock::Held { remaining } => {
                let now = tokio::time::Instant::now();
                let limit = *give_up.get_or_insert(now + remaining + WAIT_MARGIN);
                if now >= limit {
                    tracing::warn!("another instance held the refresh lock past its lease");
                    return Outcome::retry_now();
                }
                tokio::time::sleep(pause.min(limit - now)).await;
                pause = (pause * 2).min(MAX_PAUSE);
                match changed(store, sessions, &id, record).await {
                    Ok(Some(outcome)) => return outcome,
                    Ok(None) => {}
                    Err(e) => return store_failed(&e),
                }
            }
            // `NotShared`, and whatever a future store may answer: the in-process flight decides.
            _ => return refresh().await,
        }
    }
}

/// The outcome another instance left in the store, if it changed the session: a newer
/// revision (renewed; the cookie, which holds only the id, stays as it is) or no session
/// (ended).
async fn changed(
    store: &dyn SessionStore,
    sessions: &Sessions,
    id: &SessionId,
    record: &SessionRecord,
) -> Result<Option<Outcome>, StoreError> {
    let Some(stored) = store.load(id).await? else {
        return Ok(Some(Outcome::Ended));
    };
    if stored.revision() <= record.rev {
        return Ok(None);
    }
    // A newer revision: the other instance's refresh. Its tokens are needed at once (the
    // request that waited for them may use them), so they are opened here.
    let opened = sessions
        .open_stored(id, stored)
        .and_then(|(record, tokens)| {
            let tokens = sessions.env.open_tokens(&tokens, &record.id)?;
            Some((record, tokens))
        });
    Ok(Some(match opened {
        Some((record, tokens)) => Outcome::Renewed(Arc::new(Renewed {
            record,
            tokens: Arc::new(tokens),
            set_cookies: Vec::new(),
        })),
        None => Outcome::Ended,
    }))
}

fn store_failed(error: &StoreError) -> Outcome {
    tracing::warn!(error = %error, "the session store failed during a refresh; will retry");
    Outcome::retry_now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn one_flight_per_revision() {
        let flights = Arc::new(Flights::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (flights, calls, gate) = (flights.clone(), calls.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run("s", 0, 100, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        Outcome::Ended
                    })
                    .await
            }));
        }
        // Let every task join, then release the one refresh.
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        for t in tasks {
            assert!(matches!(t.await.unwrap(), Outcome::Ended));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A later request with the same revision gets the stored outcome.
        let o = flights.run("s", 0, 150, || async { unreachable!() }).await;
        assert!(matches!(o, Outcome::Ended));
        // Another revision is another flight; old entries are swept.
        let o = flights
            .run("s", 1, 1000, || async { Outcome::retry_now() })
            .await;
        assert!(matches!(o, Outcome::Retryable { .. }));
        assert_eq!(flights.len(), 1);
    }

    #[tokio::test]
    async fn a_transient_failure_is_tried_again_at_once_and_a_rate_limit_waits() {
        let flights = Flights::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let attempt = |until: i64| {
            let calls = calls.clone();
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Outcome::Retryable { until }
            }
        };
        flights.run("s", 0, 100, attempt(0)).await;
        flights.run("s", 0, 100, attempt(0)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "a transient failure was kept"
        );
        // Rate-limited until 160: no new attempt before then.
        flights.run("s", 0, 100, attempt(160)).await;
        flights.run("s", 0, 159, attempt(0)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        flights.run("s", 0, 160, attempt(0)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_refresh_finishes_and_is_kept_when_its_request_is_dropped() {
        let flights = Arc::new(Flights::default());
        let gate = Arc::new(tokio::sync::Notify::new());
        let done = Arc::new(tokio::sync::Notify::new());
        let (g, d) = (gate.clone(), done.clone());
        let first = flights.run("s", 0, 100, move || async move {
            g.notified().await;
            d.notify_one();
            Outcome::Ended
        });
        // Start the flight, then drop the only request waiting for it.
        let mut first = Box::pin(first);
        assert!((&mut first).now_or_never().is_none());
        drop(first);
        gate.notify_one();
        done.notified().await;
        // The outcome is there for the next request; no second refresh.
        let o = flights.run("s", 0, 101, || async { unreachable!() }).await;
        assert!(matches!(o, Outcome::Ended));
    }
}
