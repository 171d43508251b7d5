//! Single-flight refresh per session, and the short-lived upgrade map.
//!
//! Doximity rotates both tokens on refresh and kills the old pair at once, so two refreshes
//! with the same refresh token sign the user out. Every request that needs a refresh for a
//! session revision `(id, rev)` joins one flight; the flight's outcome (including the new
//! cookies) is kept for two minutes, so a request that arrives a little later with the old
//! cookie is upgraded from memory instead of refreshing again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use doximity::TokenSet;
use http::HeaderValue;
use tokio::sync::OnceCell;

use crate::session::SessionRecord;

/// How long a finished refresh stays in the upgrade map, seconds.
const KEEP_RENEWED_SECS: i64 = 120;
/// How long a retryable failure blocks new attempts, seconds (a back-off: never retry into a
/// rate limit on every request).
const KEEP_RETRYABLE_SECS: i64 = 5;

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
    /// The provider was unreachable, unavailable or rate-limited: keep the current identity
    /// while its token is valid.
    Retryable,
    /// The provider refused (e.g. `invalid_grant`): the session is over.
    Ended,
}

struct Flight {
    cell: Arc<OnceCell<Outcome>>,
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
    /// the entry lives. If the request driving it is dropped, a waiting one takes over.
    pub(crate) async fn run<F, Fut>(&self, id: &str, rev: u64, now: i64, refresh: F) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let cell = {
            let mut map = self
                .map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.retain(|_, f| {
                let age = now.saturating_sub(f.started);
                match f.cell.get() {
                    Some(Outcome::Retryable) => age < KEEP_RETRYABLE_SECS,
                    _ => age < KEEP_RENEWED_SECS,
                }
            });
            map.entry((id.to_owned(), rev))
                .or_insert_with(|| Flight {
                    cell: Arc::new(OnceCell::new()),
                    started: now,
                })
                .cell
                .clone()
        };
        cell.get_or_init(refresh).await.clone()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
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
            .run("s", 1, 1000, || async { Outcome::Retryable })
            .await;
        assert!(matches!(o, Outcome::Retryable));
        assert_eq!(flights.len(), 1);
    }
}
