//! Where sessions live: in the user's own encrypted cookies ([`CookieStore`], the default), or
//! server-side behind [`SessionStore`] with only an id in the cookie ([`MemoryStore`], or your
//! own).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The future a [`SessionStore`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A session store failed (a network or database error of the backend).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(#[source] Box<dyn std::error::Error + Send + Sync>);

impl StoreError {
    /// Wraps a backend error. It must not contain session data or ids.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(error.into())
    }
}

/// A session id: 128 random bits (base64url), made by the layer at each sign-in (never taken
/// from the request, so no fixation). Its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(pub(crate) String);

impl SessionId {
    /// The id as a string (the store's key).
    ///
    /// # Security
    ///
    /// It is a bearer credential: do not log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

/// One session as a server-side store keeps it: opaque sealed bytes plus the few facts a store
/// needs to index and expire it. Serialisable (for a store that writes bytes); its `Debug` shows
/// no secret.
///
/// The layer seals before it hands a session to a store, with the same AES-256-GCM sealing and
/// key ring as its cookies (`DOXIMITY_COOKIE_KEY`): a store, its backups and a dump of it hold
/// no token and no profile in clear, whoever wrote the store. Two sealed parts: the hot record
/// (scopes, timestamps, a cached profile), opened on every request, and the tokens, opened only
/// to refresh, at logout, or when a handler asks for a token or the ID-token claims. Each is
/// bound to the session id, so a value copied under another id does not open.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredSession {
    /// The format of the sealed parts ([`StoredSession::FORMAT`]); a session of another
    /// format is "not signed in".
    #[serde(rename = "v")]
    pub(crate) format: u8,
    #[serde(rename = "u")]
    pub(crate) sub: String,
    #[serde(rename = "r")]
    pub(crate) rev: u64,
    #[serde(rename = "d")]
    pub(crate) deadline: i64,
    /// When the session ends if no request comes (the idle timeout from `last_seen`, capped by
    /// the absolute deadline).
    #[serde(rename = "i")]
    pub(crate) idle_deadline: i64,
    /// The layer's clock when it wrote this (epoch seconds).
    #[serde(rename = "w")]
    pub(crate) written_at: i64,
    /// The hot record, sealed.
    #[serde(rename = "h")]
    pub(crate) record: String,
    /// The tokens, sealed.
    #[serde(rename = "t")]
    pub(crate) tokens: String,
}

impl StoredSession {
    /// The format this version of the layer writes.
    pub const FORMAT: u8 = 2;

    /// The user's `sub` (a store may index sessions by it, for
    /// [`SessionStore::delete_user`]).
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// When the session ends at the latest (the absolute timeout), epoch seconds: a store
    /// may expire the entry then.
    pub fn expires_at(&self) -> i64 {
        self.deadline
    }

    /// When the session ends if no further request comes, epoch seconds: the idle timeout
    /// counted from the last request the layer recorded, never after
    /// [`StoredSession::expires_at`]. Every write of a live session moves it forward.
    pub fn idle_expires_at(&self) -> i64 {
        self.idle_deadline.min(self.deadline)
    }

    /// How long a store may keep this entry from now on: from when the layer wrote it to
    /// [`StoredSession::idle_expires_at`] (at least one second). Relative, so a store's own
    /// clock does not need to agree with the layer's (use it as a `PX`/`EXPIRE` time to live).
    pub fn time_to_live(&self) -> Duration {
        let secs = self
            .idle_expires_at()
            .saturating_sub(self.written_at)
            .max(1);
        Duration::from_secs(u64::try_from(secs).unwrap_or(1))
    }

    /// The session's revision: 0 at sign-in, bumped by every refresh. A store shared by
    /// several instances should never let a write with a lower revision replace a higher one
    /// (that would bring back a refresh token the provider already retired).
    pub fn revision(&self) -> u64 {
        self.rev
    }

    /// The sealed bytes' total length (for a store's size accounting).
    pub fn sealed_len(&self) -> usize {
        self.record.len() + self.tokens.len()
    }
}

impl std::fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSession")
            .field("sub", &self.sub)
            .field("revision", &self.rev)
            .field("expires_at", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// A server-side session store: sessions by id. The layer enforces the timeouts itself; a
/// store may also drop entries after [`StoredSession::expires_at`].
///
/// Two rules every store keeps, because requests of one session race: a write of an older
/// revision ([`StoredSession::revision`]) never replaces a newer one (a late write-back would
/// bring back a refresh token the provider already retired), and a deleted session stays
/// deleted (a write still in flight when the user signed out must not revive it).
///
/// A worked example, a store over a `HashMap` that keeps both (what [`MemoryStore`] does,
/// without its expiry):
///
/// ```
/// use std::collections::{HashMap, HashSet};
/// use std::sync::Mutex;
/// use tower_doximity::{SessionId, SessionStore, StoreFuture, StoredSession};
///
/// #[derive(Default)]
/// struct MapStore {
///     sessions: Mutex<HashMap<String, StoredSession>>,
///     deleted: Mutex<HashSet<String>>,
/// }
///
/// impl SessionStore for MapStore {
///     fn load<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, Option<StoredSession>> {
///         Box::pin(async move { Ok(self.sessions.lock().unwrap().get(id.as_str()).cloned()) })
///     }
///     fn store<'a>(&'a self, id: &'a SessionId, session: &'a StoredSession) -> StoreFuture<'a, ()> {
///         Box::pin(async move {
///             if self.deleted.lock().unwrap().contains(id.as_str()) {
///                 return Ok(()); // deleted stays deleted
///             }
///             let mut sessions = self.sessions.lock().unwrap();
///             let newer = sessions.get(id.as_str()).is_some_and(|s| s.revision() > session.revision());
///             if !newer {
///                 sessions.insert(id.as_str().to_owned(), session.clone());
///             }
///             Ok(())
///         })
///     }
///     fn delete<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, ()> {
///         Box::pin(async move {
///             self.deleted.lock().unwrap().insert(id.as_str().to_owned());
///             self.sessions.lock().unwrap().remove(id.as_str());
///             Ok(())
///         })
///     }
/// }
///
/// // Sessions now live in the map; the cookie carries only the encrypted id.
/// fn with_map(auth: tower_doximity::DoximityAuth) -> tower_doximity::DoximityAuth {
///     auth.with_store(MapStore::default())
/// }
/// ```
pub trait SessionStore: Send + Sync + 'static {
    /// The session with this id, if any.
    fn load<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, Option<StoredSession>>;
    /// Creates or replaces the session with this id.
    fn store<'a>(&'a self, id: &'a SessionId, session: &'a StoredSession) -> StoreFuture<'a, ()>;
    /// Deletes the session with this id (no error when it does not exist).
    fn delete<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, ()>;

    /// Takes the cross-instance lock for refreshing session `id`, for a store shared by
    /// several app instances. The default answers [`RefreshLock::NotShared`]: the layer's
    /// in-process single flight alone decides (right for a store only one process uses).
    ///
    /// The layer calls it inside its in-process single flight, so each instance asks at most
    /// once at a time per session revision. With [`RefreshLock::Acquired`] it re-reads the
    /// session (another instance may have refreshed just before), refreshes at the provider
    /// only if the revision is unchanged, writes the session, then releases the guard. With
    /// [`RefreshLock::Held`] it does not refresh: it re-reads the session with a short,
    /// growing pause until the revision changes (the other instance's result, which it then
    /// uses), the session is gone (ended), or the lock is free again (then it asks again).
    ///
    /// A lock must be released only by its owner, and must end by itself after a lease longer
    /// than a provider call can take, so that a holder that dies does not block the session.
    fn lock_refresh<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, RefreshLock> {
        let _ = id;
        Box::pin(std::future::ready(Ok(RefreshLock::NotShared)))
    }

    /// Deletes every session of user `sub` (an operator ending a compromised account:
    /// [`DoximityAuth::sign_out_user`](crate::DoximityAuth::sign_out_user)); how many it
    /// deleted. The default deletes none and answers 0: the layer still refuses that user's
    /// older sessions in process, but a store shared by several instances should implement it.
    fn delete_user<'a>(&'a self, sub: &'a str) -> StoreFuture<'a, usize> {
        let _ = sub;
        Box::pin(std::future::ready(Ok(0)))
    }

    /// Records that the sign-in transaction `key` (a hash of its `state`, never the `state`
    /// itself) was used, for `ttl`: `Some(true)` the first time, `Some(false)` when it already
    /// was (a replay, maybe on another instance). The default answers `None`: the store does
    /// not share this, and the layer's in-process memory alone guards against replays (right
    /// for a store only one process uses). A store shared by several instances should keep it
    /// (`RedisStore` does, with `SET NX PX`).
    fn mark_used<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Option<bool>> {
        let _ = (key, ttl);
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Whether the store keeps its sessions in this process's memory. The default, `false`,
    /// suits a store across a network: the layer then keeps the records it opens from the
    /// store (and the ids it opens from cookies) in its session cache
    /// ([`DoximityAuth::with_session_cache_bytes`](crate::DoximityAuth::with_session_cache_bytes)),
    /// still loading the session from the store on every request, so that only the decrypting
    /// is saved. A store in this process (`MemoryStore`) answers `true`, and the layer keeps no
    /// second copy of what the store already holds in memory.
    fn in_process(&self) -> bool {
        false
    }
}

/// What [`SessionStore::lock_refresh`] found.
#[derive(Debug)]
#[non_exhaustive]
pub enum RefreshLock {
    /// The store does not coordinate refreshes across instances (the default).
    NotShared,
    /// This instance holds the lock until the guard is released or its lease ends.
    Acquired(RefreshGuard),
    /// Another instance holds the lock.
    Held {
        /// The most the lock can still be held (what is left of its lease).
        remaining: Duration,
    },
}

type Release = Box<dyn FnOnce() -> StoreFuture<'static, ()> + Send>;

/// A refresh lock this instance holds. [`RefreshGuard::release`] gives it back; a guard
/// dropped without it (a cancelled request) is released in the background when a tokio
/// runtime is at hand, and otherwise ends with its lease.
#[must_use = "a refresh lock is held until it is released or its lease ends"]
pub struct RefreshGuard {
    release: Option<Release>,
}

impl RefreshGuard {
    /// A guard that runs `release` once to give the lock back.
    pub fn new(release: impl FnOnce() -> StoreFuture<'static, ()> + Send + 'static) -> Self {
        Self {
            release: Some(Box::new(release)),
        }
    }

    /// Gives the lock back.
    pub async fn release(mut self) -> Result<(), StoreError> {
        match self.release.take() {
            Some(release) => release().await,
            None => Ok(()),
        }
    }
}

impl Drop for RefreshGuard {
    fn drop(&mut self) {
        if let Some(release) = self.release.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(e) = release().await {
                    tracing::debug!(error = %e, "could not release a refresh lock; its lease will end it");
                }
            });
        }
    }
}

impl std::fmt::Debug for RefreshGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshGuard")
            .field("held", &self.release.is_some())
            .finish()
    }
}

impl<T: SessionStore + ?Sized> SessionStore for Arc<T> {
    fn load<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, Option<StoredSession>> {
        (**self).load(id)
    }
    fn store<'a>(&'a self, id: &'a SessionId, session: &'a StoredSession) -> StoreFuture<'a, ()> {
        (**self).store(id, session)
    }
    fn delete<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, ()> {
        (**self).delete(id)
    }
    fn lock_refresh<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, RefreshLock> {
        (**self).lock_refresh(id)
    }
    fn delete_user<'a>(&'a self, sub: &'a str) -> StoreFuture<'a, usize> {
        (**self).delete_user(sub)
    }
    fn mark_used<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Option<bool>> {
        (**self).mark_used(key, ttl)
    }
    fn in_process(&self) -> bool {
        (**self).in_process()
    }
}

/// Sessions in process memory; the cookie carries only the (encrypted) id. For one instance
/// (a restart signs everyone out).
///
/// It keeps the rules of a [`SessionStore`]: a write of an older revision never replaces a
/// newer one (a late touch cannot bring back a retired refresh token), and a deleted session
/// stays deleted (a write still in flight when the user signed out is dropped: the id is kept
/// as a tombstone until the session's deadline). Entries leave at their absolute deadline
/// through a queue ordered by deadline: a write costs O(1) amortised, never a scan of the map.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Default)]
struct MemoryInner {
    sessions: HashMap<String, StoredSession>,
    /// Deleted ids, until their deadline.
    tombstones: HashMap<String, i64>,
    /// `(deadline, id)` in write order; deadlines (creation + the absolute timeout) grow with
    /// it, so the expired ones are at the front.
    expiry: std::collections::VecDeque<(i64, String)>,
}

impl MemoryInner {
    /// Drops what expired by `now` (amortised O(1): each queue item is popped once).
    fn expire(&mut self, now: i64) {
        while let Some((deadline, _)) = self.expiry.front() {
            if *deadline > now {
                break;
            }
            let Some((deadline, id)) = self.expiry.pop_front() else {
                break;
            };
            if self
                .sessions
                .get(&id)
                .is_some_and(|s| s.deadline <= deadline)
            {
                self.sessions.remove(&id);
            }
            if self.tombstones.get(&id).is_some_and(|d| *d <= deadline) {
                self.tombstones.remove(&id);
            }
        }
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("sessions", &self.len())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many sessions it holds.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SessionStore for MemoryStore {
    fn load<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, Option<StoredSession>> {
        let found = self.lock().sessions.get(id.as_str()).cloned();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn in_process(&self) -> bool {
        true
    }

    fn store<'a>(&'a self, id: &'a SessionId, session: &'a StoredSession) -> StoreFuture<'a, ()> {
        let mut inner = self.lock();
        inner.expire(session.written_at);
        let key = id.as_str();
        let newer_kept = inner.sessions.get(key).is_some_and(|s| s.rev > session.rev);
        if !newer_kept && !inner.tombstones.contains_key(key) {
            if !inner.sessions.contains_key(key) {
                inner.expiry.push_back((session.deadline, key.to_owned()));
            }
            inner.sessions.insert(key.to_owned(), session.clone());
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn delete<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, ()> {
        let mut inner = self.lock();
        if let Some(gone) = inner.sessions.remove(id.as_str()) {
            inner
                .tombstones
                .insert(id.as_str().to_owned(), gone.deadline);
            inner
                .expiry
                .push_back((gone.deadline, id.as_str().to_owned()));
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn delete_user<'a>(&'a self, sub: &'a str) -> StoreFuture<'a, usize> {
        // An operator's action, rare: one pass over the map is fine here.
        let mut inner = self.lock();
        let ids: Vec<(String, i64)> = inner
            .sessions
            .iter()
            .filter(|(_, s)| s.sub == sub)
            .map(|(id, s)| (id.clone(), s.deadline))
            .collect();
        for (id, deadline) in &ids {
            inner.sessions.remove(id);
            inner.tombstones.insert(id.clone(), *deadline);
            inner.expiry.push_back((*deadline, id.clone()));
        }
        Box::pin(std::future::ready(Ok(ids.len())))
    }
}

/// The default: the whole session in the user's own cookies, sealed with AES-256-GCM under the
/// cookie key. Nothing is stored server-side, so any number of instances share sessions as
/// long as they share the key.
///
/// Two cookies: a small identity cookie (`sub`, scopes, timestamps, the profile once fetched),
/// opened on every request, and a tokens cookie (access, refresh and ID token, the ID-token
/// claims), bound to its session and opened only to refresh, at logout, or when a handler asks
/// for the claims or the access token. Each stays well under the 4 KB cookie limit.
#[derive(Clone, Copy, Debug, Default)]
pub struct CookieStore;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arc_answers_in_process_as_its_store_does() {
        // The layer asks through `Arc<dyn SessionStore>`: a missing forward would answer the
        // default and give an in-process store a second copy of its sessions.
        let memory: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
        assert!(memory.in_process());
        assert!(Arc::new(MemoryStore::new()).in_process());
        struct Remote;
        impl SessionStore for Remote {
            fn load<'a>(&'a self, _: &'a SessionId) -> StoreFuture<'a, Option<StoredSession>> {
                Box::pin(std::future::ready(Ok(None)))
            }
            fn store<'a>(&'a self, _: &'a SessionId, _: &'a StoredSession) -> StoreFuture<'a, ()> {
                Box::pin(std::future::ready(Ok(())))
            }
            fn delete<'a>(&'a self, _: &'a SessionId) -> StoreFuture<'a, ()> {
                Box::pin(std::future::ready(Ok(())))
            }
        }
        let remote: Arc<dyn SessionStore> = Arc::new(Remote);
        assert!(!remote.in_process());
    }

    fn session(rev: u64, deadline: i64, written_at: i64) -> StoredSession {
        StoredSession {
            format: StoredSession::FORMAT,
            sub: "sub".into(),
            rev,
            deadline,
            idle_deadline: deadline,
            written_at,
            record: "sealed record".into(),
            tokens: "sealed tokens".into(),
        }
    }

    async fn rev(store: &MemoryStore, id: &SessionId) -> Option<u64> {
        store.load(id).await.ok().flatten().map(|s| s.rev)
    }

    #[tokio::test]
    async fn memory_store_keeps_the_store_rules() {
        let store = MemoryStore::new();
        let id = SessionId("id".into());
        store.store(&id, &session(1, 1000, 10)).await.unwrap();
        // A late write of an older revision never replaces a newer one.
        store.store(&id, &session(0, 1000, 11)).await.unwrap();
        assert_eq!(rev(&store, &id).await, Some(1));
        store.store(&id, &session(2, 1000, 12)).await.unwrap();
        assert_eq!(rev(&store, &id).await, Some(2));
        // A deleted session stays deleted, whatever write was still in flight.
        store.delete(&id).await.unwrap();
        store.store(&id, &session(3, 1000, 13)).await.unwrap();
        assert_eq!(rev(&store, &id).await, None);
        // Past its deadline an entry leaves on a later write, without a scan (deadlines grow
        // with creation: the absolute timeout is one per layer).
        let other = SessionId("other".into());
        store.store(&other, &session(0, 1500, 20)).await.unwrap();
        store
            .store(&SessionId("late".into()), &session(0, 5000, 1600))
            .await
            .unwrap();
        assert_eq!(rev(&store, &other).await, None);
        assert_eq!(store.len(), 1);
        // Every session of one user.
        assert_eq!(store.delete_user("sub").await.unwrap(), 1);
        assert!(store.is_empty());
    }
}
