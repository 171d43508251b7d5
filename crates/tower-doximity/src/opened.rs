//! A bounded memo from sealed values (identity cookies; with a store across a network, its hot
//! records and the id cookies) to what they open to.
//!
//! Opening the identity cookie (base64, AES-256-GCM, the record's decoding) was most of what a
//! signed-in request cost the layer in the cookie store (`docs/benchmarks.md`). A browser sends
//! the same identity cookie on every request until the layer re-seals it (at most once a
//! minute), and the same sealed bytes always open to the same record under the same keys, so
//! the layer keeps the records of the cookies it opened recently and opens a cookie only the
//! first time it sees it.
//!
//! What keeps it sound:
//! - Only a cookie that opened (authenticated by AES-GCM under the layer's keys) is kept, so
//!   nothing a client makes up reaches the memo: its memory is bounded by the sessions that
//!   really exist, and by [`OpenedCookies::DEFAULT_BYTES`] in any case.
//! - A lookup matches the whole sealed value, compared in constant time: a cookie that differs
//!   from a kept one in any byte is opened (and refused) as if the memo were not there, and the
//!   time a comparison takes says nothing about the kept cookie's bytes.
//! - The memo holds the record as it was sealed, never a decision: timeouts, the signed-out
//!   ledger and refresh are decided on every request from the record and the clock, as for a
//!   cookie opened afresh.
//! - It belongs to one layer, whose keys and cookie binding never change: a record opened under
//!   one key ring is never served to a layer with another. And it holds one kind of value: the
//!   layer has one for identity cookies (cookie store), and with a store across a network one
//!   for the stored hot records and one for the id cookies, so a value sealed for one purpose
//!   (its name is the associated data) is never looked up as another.

use std::hash::{Hash, Hasher};

use quick_cache::sync::Cache;
use quick_cache::{Equivalent, Weighter};

/// A sealed identity cookie's value, as the memo keeps it.
struct Sealed(Box<[u8]>);

/// A sealed value as a request carries it, to look up without copying.
struct SealedRef<'a>(&'a [u8]);

impl Hash for Sealed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        SealedRef(&self.0).hash(state);
    }
}

impl Hash for SealedRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0);
    }
}

impl PartialEq for Sealed {
    fn eq(&self, other: &Self) -> bool {
        SealedRef(&other.0).equivalent(self)
    }
}

impl Eq for Sealed {}

impl Equivalent<Sealed> for SealedRef<'_> {
    fn equivalent(&self, key: &Sealed) -> bool {
        same_bytes(self.0, &key.0)
    }
}

/// Whether `a` and `b` are the same bytes, in a time that depends on their length only (the
/// length is public: it is the cookie's). Eight bytes at a time with no early exit, and the
/// difference hidden from the optimiser before it is tested: `subtle`'s byte-by-byte
/// comparison, with a barrier per byte, was a third of a signed-in request's cost in the layer.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_words, a_rest) = a.as_chunks::<8>();
    let (b_words, b_rest) = b.as_chunks::<8>();
    let mut diff = 0u64;
    for (x, y) in a_words.iter().zip(b_words) {
        diff |= u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y);
    }
    for (x, y) in a_rest.iter().zip(b_rest) {
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// An entry's weight: its bytes, approximately (the record is smaller than its sealed form,
/// which is base64 of the record plus a nonce and a tag), with the map's own overhead.
#[derive(Clone)]
struct Bytes;

impl<V> Weighter<Sealed, V> for Bytes {
    fn weight(&self, key: &Sealed, _: &V) -> u64 {
        (2 * key.0.len() + 128) as u64
    }
}

/// The memo of records `V` (the layer's session record); see the module docs.
pub(crate) struct OpenedCookies<V> {
    cache: Option<Cache<Sealed, V, Bytes>>,
}

impl<V: Clone> std::fmt::Debug for OpenedCookies<V> {
    // Sizes only: the keys are sealed cookies.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (len, bytes) = self
            .cache
            .as_ref()
            .map_or((0, 0), |c| (c.len(), c.weight()));
        f.debug_struct("OpenedCookies")
            .field("entries", &len)
            .field("bytes", &bytes)
            .finish()
    }
}

impl<V: Clone> OpenedCookies<V> {
    /// The memory the memo may use per layer: about 5,000 sessions of a typical 300-byte
    /// identity cookie.
    pub(crate) const DEFAULT_BYTES: u64 = 4 << 20;

    /// A memo of at most `bytes` (0: none, every cookie is opened on every request).
    pub(crate) fn new(bytes: u64) -> Self {
        let cache = (bytes > 0).then(|| {
            // A typical entry weighs about 700.
            let items = usize::try_from(bytes / 700).unwrap_or(usize::MAX).max(16);
            Cache::with_weighter(items, bytes, Bytes)
        });
        Self { cache }
    }

    /// The record `sealed` opens to: from the memo, or `open`ed (and kept when it opens).
    pub(crate) fn get_or_open(
        &self,
        sealed: &[u8],
        open: impl FnOnce(&[u8]) -> Option<V>,
    ) -> Option<V> {
        let Some(cache) = &self.cache else {
            return open(sealed);
        };
        if let Some(record) = cache.get(&SealedRef(sealed)) {
            return Some(record);
        }
        let record = open(sealed)?;
        cache.insert(Sealed(sealed.into()), record.clone());
        Some(record)
    }

    /// How many bytes the memo holds now (by its weights).
    #[cfg(test)]
    fn weight(&self) -> u64 {
        self.cache.as_ref().map_or(0, Cache::weight)
    }
}

#[cfg(test)]
mod tests {
    use quick_cache::Equivalent as _;

    use crate::session::SessionRecord;

    type OpenedCookies = super::OpenedCookies<SessionRecord>;

    fn record(id: &str) -> SessionRecord {
        SessionRecord {
            id: id.to_owned(),
            rev: 0,
            created_at: 0,
            last_seen: 0,
            tokens_at: 0,
            expires_at: None,
            refreshable: true,
            scopes: doximity::scope::Scopes::openid(),
            sub: "sub-1".into(),
            profile: None,
        }
    }

    #[test]
    fn opens_once_and_answers_the_same_bytes_from_the_memo() {
        let memo = OpenedCookies::new(OpenedCookies::DEFAULT_BYTES);
        let mut opened = 0;
        for _ in 0..3 {
            let r = memo.get_or_open(b"sealed-a", |_| {
                opened += 1;
                Some(record("a"))
            });
            assert_eq!(r.map(|r| r.id), Some("a".to_owned()));
        }
        assert_eq!(opened, 1);
    }

    #[test]
    fn any_other_bytes_are_opened_afresh() {
        let memo = OpenedCookies::new(OpenedCookies::DEFAULT_BYTES);
        memo.get_or_open(b"sealed-a", |_| Some(record("a")));
        // The same length, one byte apart; a prefix; an extension: none is the kept cookie.
        for other in [&b"sealed-b"[..], b"sealed-", b"sealed-aa"] {
            let mut seen = None;
            let r = memo.get_or_open(other, |raw| {
                seen = Some(raw.to_vec());
                None
            });
            assert!(r.is_none(), "{other:?} answered from the memo");
            assert_eq!(seen.as_deref(), Some(other));
        }
    }

    #[test]
    fn same_bytes_compares_every_byte() {
        let a: Vec<u8> = (0..=255).collect();
        for len in [0, 1, 7, 8, 9, 216, 256] {
            assert!(super::same_bytes(&a[..len], &a[..len]));
            for i in 0..len {
                let mut b = a[..len].to_vec();
                b[i] ^= 0x80;
                assert!(!super::same_bytes(&a[..len], &b), "byte {i} of {len}");
            }
        }
        assert!(!super::same_bytes(&a[..8], &a[..9]));
        assert!(!super::same_bytes(b"", b"x"));
        // What the map calls on a hash match (a collision included).
        let kept = super::Sealed(b"sealed-a".to_vec().into());
        assert!(super::SealedRef(b"sealed-a").equivalent(&kept));
        assert!(!super::SealedRef(b"sealed-b").equivalent(&kept));
        assert!(kept == super::Sealed(b"sealed-a".to_vec().into()));
        assert!(kept != super::Sealed(b"sealed-b".to_vec().into()));
    }

    #[test]
    fn a_cookie_that_does_not_open_is_not_kept() {
        let memo = OpenedCookies::new(OpenedCookies::DEFAULT_BYTES);
        assert!(memo.get_or_open(b"forged", |_| None).is_none());
        assert_eq!(memo.weight(), 0);
        let r = memo.get_or_open(b"forged", |_| Some(record("later")));
        assert!(r.is_some(), "the second look opened it again");
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let budget = 64 << 10;
        let memo = OpenedCookies::new(budget);
        for i in 0..10_000 {
            let sealed = format!("{i:0>300}");
            memo.get_or_open(sealed.as_bytes(), |_| Some(record("x")));
        }
        assert!(memo.weight() <= budget, "{} > {budget}", memo.weight());
        assert!(memo.weight() > budget / 2, "the memo keeps what fits");
    }

    #[test]
    fn size_zero_opens_every_time() {
        let memo = OpenedCookies::new(0);
        let mut opened = 0;
        for _ in 0..2 {
            memo.get_or_open(b"sealed-a", |_| {
                opened += 1;
                Some(record("a"))
            });
        }
        assert_eq!(opened, 2);
    }

    #[test]
    fn debug_shows_sizes_only() {
        let memo = OpenedCookies::new(OpenedCookies::DEFAULT_BYTES);
        memo.get_or_open(b"sealed-secret", |_| Some(record("a")));
        let shown = format!("{memo:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("entries: 1"), "{shown}");
    }
}
