//! The behaviour every [`SessionStore`] must have, as one function a store's author runs
//! against their own store (feature `store-suite`). The crate runs it against
//! [`MemoryStore`](crate::MemoryStore), `RedisStore` (against a real `redis-server`) and the
//! [`SessionStore`] documentation's worked example.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = tower_doximity::MemoryStore::new();
//! tower_doximity::store_suite::run(&store).await.expect("MemoryStore keeps every rule");
//! # }
//! ```
//!
//! Each rule is a check that either holds or names what broke:
//! - a stored session loads back as it was (revision, user, deadlines), and a session never
//!   stored is `None`;
//! - a deleted session is gone, and deleting one that does not exist is no error;
//! - a write of a lower revision never replaces a higher one (a late write-back would bring
//!   back a refresh token the provider already retired);
//! - a write still in flight when the session was deleted never brings it back;
//! - `delete_user` ends every session of that user and no other;
//! - when the store shares a refresh lock ([`RefreshLock::Acquired`]), a second caller finds
//!   it held until the owner releases it, and can take it afterwards.

use std::time::Duration;

use crate::store::{RefreshLock, SessionId, SessionStore, StoredSession};

/// A rule the store broke.
#[derive(Debug, thiserror::Error)]
#[error("the store broke a rule: {rule}")]
pub struct SuiteFailure {
    /// What was expected.
    pub rule: &'static str,
}

fn fail(rule: &'static str) -> SuiteFailure {
    SuiteFailure { rule }
}

/// Runs every rule against `store`, with fresh random session ids so it can run against a
/// store in use. Store errors count as failures.
pub async fn run(store: &dyn SessionStore) -> Result<(), SuiteFailure> {
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
    .unwrap_or(0);
    let sub = format!("suite-{}", crate::session::new_session_id());
    let id = || SessionId(crate::session::new_session_id());

    // Round trip; unknown ids.
    let a = id();
    store
        .store(&a, &session(&a, &sub, 0, now))
        .await
        .map_err(|_| fail("store writes a session"))?;
    let back = store
        .load(&a)
        .await
        .map_err(|_| fail("store reads a session"))?
        .ok_or(fail("a stored session loads back"))?;
    let written = session(&a, &sub, 0, now);
    if back.revision() != 0
        || back.sub() != sub
        || back.expires_at() != now + 3600
        || back.idle_expires_at() != written.idle_expires_at()
        || back.record != written.record
        || back.tokens != written.tokens
        || back.format != written.format
    {
        return Err(fail(
            "a stored session loads back as it was (its sealed bytes unchanged)",
        ));
    }
    if store.load(&id()).await.ok().flatten().is_some() {
        return Err(fail("a session never stored is None"));
    }

    // A lower revision never replaces a higher one.
    store
        .store(&a, &session(&a, &sub, 2, now))
        .await
        .map_err(|_| fail("store writes a session"))?;
    store
        .store(&a, &session(&a, &sub, 1, now))
        .await
        .map_err(|_| fail("store writes a session"))?;
    let rev = store.load(&a).await.ok().flatten().map(|s| s.revision());
    if rev != Some(2) {
        return Err(fail(
            "a write of a lower revision never replaces a higher one",
        ));
    }

    // Delete; deleted stays deleted; deleting nothing is fine.
    store
        .delete(&a)
        .await
        .map_err(|_| fail("delete succeeds"))?;
    if store.load(&a).await.ok().flatten().is_some() {
        return Err(fail("a deleted session is gone"));
    }
    store
        .store(&a, &session(&a, &sub, 3, now))
        .await
        .map_err(|_| fail("store writes a session"))?;
    if store.load(&a).await.ok().flatten().is_some() {
        return Err(fail(
            "a write in flight never brings back a deleted session",
        ));
    }
    store
        .delete(&id())
        .await
        .map_err(|_| fail("deleting a session that does not exist is no error"))?;

    // Every session of one user, and no other.
    let (b, c, other) = (id(), id(), id());
    let other_sub = format!("{sub}-other");
    for (sid, who) in [(&b, &sub), (&c, &sub), (&other, &other_sub)] {
        store
            .store(sid, &session(sid, who, 0, now))
            .await
            .map_err(|_| fail("store writes a session"))?;
    }
    let deleted = store
        .delete_user(&sub)
        .await
        .map_err(|_| fail("delete_user succeeds"))?;
    let b_left = store.load(&b).await.ok().flatten().is_some();
    let other_left = store.load(&other).await.ok().flatten().is_some();
    // A store that does not implement `delete_user` answers 0 and deletes nothing.
    if deleted > 0 && (b_left || deleted != 2) {
        return Err(fail("delete_user ends every session of that user"));
    }
    if !other_left {
        return Err(fail("delete_user leaves other users' sessions"));
    }
    let _ = store.delete(&other).await;

    // The refresh lock, when shared: held for others until the owner releases it.
    let d = id();
    match store.lock_refresh(&d).await {
        Ok(RefreshLock::Acquired(guard)) => {
            match store.lock_refresh(&d).await {
                Ok(RefreshLock::Held { remaining }) if remaining > Duration::ZERO => {}
                _ => return Err(fail("a held refresh lock is Held for another caller")),
            }
            guard
                .release()
                .await
                .map_err(|_| fail("the owner releases its refresh lock"))?;
            match store.lock_refresh(&d).await {
                Ok(RefreshLock::Acquired(again)) => {
                    let _ = again.release().await;
                }
                _ => return Err(fail("a released refresh lock can be taken again")),
            }
        }
        Ok(_) => {}
        Err(_) => return Err(fail("lock_refresh answers")),
    }
    Ok(())
}

/// A session of `sub` at revision `rev`, written at `now`, ending an hour later. The sealed
/// parts are opaque to a store: arbitrary text that names the revision, so a test can tell
/// which write a store kept.
fn session(id: &SessionId, sub: &str, rev: u64, now: i64) -> StoredSession {
    StoredSession {
        format: StoredSession::FORMAT,
        sub: sub.to_owned(),
        rev,
        deadline: now + 3600,
        idle_deadline: now + 1800,
        written_at: now,
        record: format!("record of {} at {rev}", id.as_str()),
        tokens: format!("tokens of {} at {rev}", id.as_str()),
    }
}
