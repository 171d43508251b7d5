//! What the layer remembers in process, bounded: login `state`s already used (replay guard)
//! and sessions signed out (so copies of their cookies are refused).
//!
//! Both are an [`ExpiringSet`]: a hash set with a deadline per entry and a queue in insertion
//! order. An insert drops the expired entries at the front of the queue (amortised O(1): each
//! entry is queued and dropped once) and, past the capacity, the oldest entry; a lookup is one
//! hash probe that also checks the deadline. The lock is held for those steps only, never for
//! a sweep of the whole set.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::Digest;

/// A set of 32-byte keys, each alive until its deadline (epoch seconds), with at most
/// `capacity` entries.
#[derive(Debug)]
pub(crate) struct ExpiringSet {
    inner: Mutex<Inner>,
    /// The number of entries, read without the lock so an empty set costs no lock.
    len: AtomicUsize,
    capacity: usize,
    what: &'static str,
}

#[derive(Debug, Default)]
struct Inner {
    deadlines: HashMap<[u8; 32], i64>,
    order: VecDeque<([u8; 32], i64)>,
}

impl Inner {
    /// Removes `key` if the queue item `(key, at)` is still its entry (an entry inserted again
    /// later has a newer queue item and keeps its map entry); whether it removed one.
    fn forget(&mut self, key: &[u8; 32], at: i64) -> bool {
        if self.deadlines.get(key) == Some(&at) {
            self.deadlines.remove(key);
            true
        } else {
            false
        }
    }
}

impl ExpiringSet {
    /// An empty set of at most `capacity` entries; `what` names it in the warning logged when
    /// the capacity forces out an entry before its deadline.
    pub(crate) fn new(capacity: usize, what: &'static str) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
            what,
        }
    }

    /// The key of a secret value: its SHA-256 (the set never holds the value itself).
    pub(crate) fn key(value: &[u8]) -> [u8; 32] {
        sha2::Sha256::digest(value).into()
    }

    /// Adds `key` until `deadline`; false when it was already there and alive at `now`.
    pub(crate) fn insert(&self, key: [u8; 32], deadline: i64, now: i64) -> bool {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Drop expired entries from the front (each entry is dropped once: amortised O(1)).
        while let Some(&(front, at)) = inner.order.front() {
            if at > now {
                break;
            }
            inner.order.pop_front();
            inner.forget(&front, at);
        }
        let fresh = inner.deadlines.get(&key).is_none_or(|&at| at <= now);
        if fresh {
            // Full: the oldest entry goes, before its deadline.
            while inner.order.len() >= self.capacity {
                let Some((front, at)) = inner.order.pop_front() else {
                    break;
                };
                if inner.forget(&front, at) {
                    tracing::warn!(
                        set = self.what,
                        capacity = self.capacity,
                        "an entry was forgotten before its deadline: the set is full"
                    );
                }
            }
            inner.deadlines.insert(key, deadline);
            inner.order.push_back((key, deadline));
        }
        self.len.store(inner.deadlines.len(), Ordering::Relaxed);
        fresh
    }

    /// Adds `key` until `deadline`, replacing a deadline it already had.
    pub(crate) fn upsert(&self, key: [u8; 32], deadline: i64, now: i64) {
        {
            let mut inner = self
                .inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            inner.deadlines.remove(&key);
        }
        self.insert(key, deadline, now);
    }

    /// The deadline of `key`, if it is in the set and alive at `now`.
    pub(crate) fn deadline(&self, key: &[u8; 32], now: i64) -> Option<i64> {
        if self.len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .deadlines
            .get(key)
            .copied()
            .filter(|&at| at > now)
    }

    /// Whether `key` is in the set and alive at `now`.
    pub(crate) fn contains(&self, key: &[u8; 32], now: i64) -> bool {
        if self.len.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .deadlines
            .get(key)
            .is_some_and(|&at| at > now)
    }

    /// How many keys it holds (expired ones included until they are swept): 0 means none.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(i: u32) -> [u8; 32] {
        ExpiringSet::key(&i.to_be_bytes())
    }

    #[test]
    fn an_entry_lives_until_its_deadline() {
        let set = ExpiringSet::new(10, "test");
        assert!(!set.contains(&k(1), 0));
        assert!(set.insert(k(1), 100, 0));
        assert!(!set.insert(k(1), 100, 50), "a second insert while alive");
        assert!(set.contains(&k(1), 99));
        assert!(!set.contains(&k(1), 100));
        assert!(set.insert(k(1), 300, 100), "expired: fresh again");
        assert!(set.contains(&k(1), 200));
    }

    #[test]
    fn memory_stays_bounded_whatever_is_inserted() {
        let set = ExpiringSet::new(1000, "test");
        for i in 0..100_000 {
            set.insert(k(i), i64::MAX, 0);
            assert!(set.len() <= 1000);
        }
        // The newest are kept, the oldest forgotten.
        assert!(set.contains(&k(99_999), 0));
        assert!(!set.contains(&k(0), 0));
    }

    #[test]
    fn expired_entries_are_dropped_as_new_ones_arrive() {
        let set = ExpiringSet::new(1_000_000, "test");
        for i in 0..10_000 {
            // Each entry lives 10 s; time moves 1 s per insert.
            set.insert(k(i), i64::from(i) + 10, i64::from(i));
        }
        assert!(set.len() <= 11, "{}", set.len());
    }
}
