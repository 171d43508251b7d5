//! Bearer mode: `Authorization: Bearer <token>` for APIs and gRPC services, next to browser
//! sessions.
//!
//! Doximity's access tokens are opaque and there is no introspection endpoint, but the
//! userinfo endpoint answers a signed JWT for a live token. So a bearer token is checked by
//! calling userinfo once ([`Client::identify_access_token`](doximity::Client::identify_access_token))
//! and the verified answer is cached:
//!
//! - keyed by the SHA-256 of the token (the token itself is never stored, logged or shown);
//! - until the token's expiry (the userinfo JWT's `exp`, when it has one) or the configured
//!   TTL, whichever is sooner;
//! - bounded: at most [`BearerConfig::with_max_entries`] entries, the oldest evicted first;
//! - refusals (an unknown, expired or revoked token, and a valid token issued to another
//!   client) in a separate, short negative cache, so a client retrying a dead token does not
//!   spend the provider's budget, and a flood of junk tokens cannot evict the valid ones;
//! - one provider call per token however many requests carry it at once (single flight: the
//!   waiters share the one answer).
//!
//! A token the layer does not know is a provider call, so those are held back (see
//! [`BearerConfig`]): a bounded number of checks at once, a budget of checks per caller, and a
//! 429 from the provider stops only the new tokens of the caller whose check drew it, until
//! the rate-limit window resets (answered 503 / gRPC `UNAVAILABLE` with `Retry-After`; tokens
//! already cached keep working; nothing is retried).
//!
//! Opt-in, [`BearerConfig::with_id_tokens`]: a Doximity ID token (a JWT whose audience is our
//! client id) is accepted as a bearer token and verified offline against the provider's keys.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use doximity::secret::{AccessToken, RawIdToken};
use doximity::{Error, IdTokenClaims, JwtError, UserInfo, VerifiedAccessToken};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared as SharedFuture};
use http::header::{self, HeaderMap};
use http::request::Parts;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use crate::error::BearerError;
use crate::session::{DoximityIdentity, Principal, SessionEnv, secs};

/// How long a validated token is trusted without asking the provider again, at most (5
/// minutes). A token revoked at Doximity keeps working here until its entry expires.
pub const DEFAULT_BEARER_TTL: Duration = Duration::from_secs(300);
/// How long a refused token is remembered as refused (10 seconds).
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// The default bound of each cache (10,000 tokens).
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
/// The longest bearer token looked at (bytes); longer ones are malformed.
pub const MAX_BEARER_TOKEN_LEN: usize = 4096;
/// The default bound of userinfo checks running at once (32).
pub const DEFAULT_MAX_CONCURRENT_CHECKS: usize = 32;
/// How long a check waits for a free slot, by default, before it is answered 503 (200 ms).
pub const DEFAULT_CHECK_WAIT: Duration = Duration::from_millis(200);
/// The default budget of each caller: this many checks of tokens the layer does not know
/// (10)...
pub const DEFAULT_CALLER_BUDGET: u32 = 10;
/// ...refilled over this window (1 minute).
pub const DEFAULT_CALLER_WINDOW: Duration = Duration::from_secs(60);
/// The default bound of callers whose budget is remembered (100,000).
pub const DEFAULT_MAX_CALLERS: usize = 100_000;
/// When a 429 carries no `X-Rate-Limit-Reset`, new tokens wait this long.
const RATE_LIMIT_FALLBACK_SECS: i64 = 60;

/// Who a caller is, for the budget of new-token checks: see
/// [`BearerConfig::with_caller_key`].
#[derive(Clone)]
enum CallerKey {
    /// A `std::net::SocketAddr` in the request extensions, by [`BearerConfig::ip_caller_key`].
    PeerAddress,
    Custom(Arc<KeyFn>),
}

/// A caller-key function ([`BearerConfig::with_caller_key`]).
type KeyFn = dyn Fn(&Parts) -> Option<String> + Send + Sync;

impl CallerKey {
    fn of(&self, parts: &Parts) -> Option<String> {
        match self {
            Self::PeerAddress => parts
                .extensions
                .get::<SocketAddr>()
                .map(|addr| BearerConfig::ip_caller_key(addr.ip())),
            Self::Custom(key) => key(parts),
        }
    }
}

impl PartialEq for CallerKey {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::PeerAddress, Self::PeerAddress) => true,
            (Self::Custom(a), Self::Custom(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for CallerKey {}

impl std::fmt::Debug for CallerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::PeerAddress => "PeerAddress",
            Self::Custom(_) => "Custom(..)",
        })
    }
}

/// The settings of bearer mode, given to
/// [`DoximityAuth::with_bearer`](crate::DoximityAuth::with_bearer).
///
/// ```
/// use std::time::Duration;
/// use tower_doximity::BearerConfig;
///
/// let bearer = BearerConfig::new()
///     .with_ttl(Duration::from_secs(60))        // re-check every token at least once a minute
///     .with_negative_ttl(Duration::from_secs(5))
///     .with_max_entries(50_000)
///     .with_max_concurrent_checks(16)
///     .with_caller_budget(30, Duration::from_secs(60));
/// assert_eq!(bearer.ttl(), Duration::from_secs(60));
/// assert_eq!(bearer.caller_budget(), (30, Duration::from_secs(60)));
/// assert!(!bearer.accepts_id_tokens());
/// ```
///
/// # Tokens the layer does not know
///
/// A token that is neither cached as good nor as refused costs one userinfo call, so made-up
/// tokens are held in three ways:
///
/// - at most [`with_max_concurrent_checks`](Self::with_max_concurrent_checks) checks run at
///   once; a check that finds no free slot within
///   [`with_check_wait`](Self::with_check_wait) is answered 503 with `Retry-After: 1` (gRPC
///   14), without a provider call;
/// - each caller has a budget of checks ([`with_caller_budget`](Self::with_caller_budget));
///   beyond it, 429 with `Retry-After` (gRPC 8 `RESOURCE_EXHAUSTED`), without a provider
///   call. A caller is told apart by [`with_caller_key`](Self::with_caller_key): by default
///   the peer address;
/// - a provider 429 stops the new tokens of the caller whose check drew it, until the
///   provider's reset; other callers, and every token already cached, are not affected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct BearerConfig {
    ttl: Duration,
    negative_ttl: Duration,
    max_entries: usize,
    id_tokens: bool,
    max_concurrent_checks: usize,
    check_wait: Duration,
    caller_budget: u32,
    caller_window: Duration,
    max_callers: usize,
    caller_key: CallerKey,
}

impl Default for BearerConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl BearerConfig {
    /// Access tokens only, [`DEFAULT_BEARER_TTL`], [`DEFAULT_NEGATIVE_TTL`],
    /// [`DEFAULT_MAX_ENTRIES`], [`DEFAULT_MAX_CONCURRENT_CHECKS`], [`DEFAULT_CHECK_WAIT`], a
    /// budget of [`DEFAULT_CALLER_BUDGET`] checks per [`DEFAULT_CALLER_WINDOW`] for each of at
    /// most [`DEFAULT_MAX_CALLERS`] callers, told apart by their peer address.
    pub fn new() -> Self {
        Self {
            ttl: DEFAULT_BEARER_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            max_entries: DEFAULT_MAX_ENTRIES,
            id_tokens: false,
            max_concurrent_checks: DEFAULT_MAX_CONCURRENT_CHECKS,
            check_wait: DEFAULT_CHECK_WAIT,
            caller_budget: DEFAULT_CALLER_BUDGET,
            caller_window: DEFAULT_CALLER_WINDOW,
            max_callers: DEFAULT_MAX_CALLERS,
            caller_key: CallerKey::PeerAddress,
        }
    }

    /// The longest a validated token is trusted before the provider is asked again (default
    /// 5 minutes). The entry ends sooner when the token expires sooner.
    ///
    /// # Security
    ///
    /// This is how long a revoked token keeps working here. Shorter is safer and spends more
    /// of the provider's rate limit (one userinfo call per token per TTL).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long a refused token is remembered as refused (default 10 seconds): a token the
    /// provider does not know, and a valid token issued to another client.
    pub fn with_negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The bound of the cache of validated tokens, and of the negative cache (default
    /// 10,000 each; at least 1). The oldest entry is evicted first.
    pub fn with_max_entries(mut self, max: usize) -> Self {
        self.max_entries = max.max(1);
        self
    }

    /// How many userinfo checks may run at once (default 32; at least 1). The requests that
    /// wait for a check already running (the same token) do not count.
    pub fn with_max_concurrent_checks(mut self, max: usize) -> Self {
        self.max_concurrent_checks = max.max(1);
        self
    }

    /// How long a check waits for a free slot before it is answered 503 with
    /// `Retry-After: 1` (default 200 ms; zero: never wait).
    pub fn with_check_wait(mut self, wait: Duration) -> Self {
        self.check_wait = wait;
        self
    }

    /// Each caller may start `checks` checks of tokens the layer does not know, refilled
    /// evenly over `window` (a token bucket; default 10 per minute). Beyond it the caller is
    /// answered 429 (gRPC 8 `RESOURCE_EXHAUSTED`) with `Retry-After`, without a provider call.
    /// Tokens cached as good or as refused cost nothing. `checks` is at least 1 and `window`
    /// at least one second.
    ///
    /// # Security
    ///
    /// Doximity allows an application 5,000 calls an hour. The budget is what one caller can
    /// spend of it with made-up tokens; many callers (a botnet, or a misconfigured
    /// [`with_caller_key`](Self::with_caller_key)) can still spend it all.
    pub fn with_caller_budget(mut self, checks: u32, window: Duration) -> Self {
        self.caller_budget = checks.max(1);
        self.caller_window = window.max(Duration::from_secs(1));
        self
    }

    /// The bound of callers whose budget is remembered (default 100,000; at least 1). A
    /// caller not seen for the longest is forgotten first (it starts again with a full
    /// budget).
    pub fn with_max_callers(mut self, max: usize) -> Self {
        self.max_callers = max.max(1);
        self
    }

    /// How a caller is told apart, for [`with_caller_budget`](Self::with_caller_budget) and
    /// the provider's 429.
    ///
    /// The default reads a `std::net::SocketAddr` from the request extensions (the peer
    /// address, put there by the server) and keys it with
    /// [`ip_caller_key`](Self::ip_caller_key). Requests for which the key is `None` share one
    /// budget.
    ///
    /// axum puts the peer address in `ConnectInfo<SocketAddr>` (with
    /// `into_make_service_with_connect_info::<SocketAddr>()`), tonic in `TcpConnectInfo`:
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use tower_doximity::BearerConfig;
    /// # #[derive(Clone)] struct ConnectInfo<T>(T); // axum::extract::ConnectInfo
    ///
    /// let bearer = BearerConfig::new().with_caller_key(|parts| {
    ///     let ConnectInfo(addr) = parts.extensions.get::<ConnectInfo<SocketAddr>>()?;
    ///     Some(BearerConfig::ip_caller_key(addr.ip()))
    /// });
    /// ```
    ///
    /// Behind a reverse proxy every request comes from the proxy: key by the address the
    /// proxy appends to `X-Forwarded-For` (its last entry), and only when the request came
    /// from the proxy:
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use tower_doximity::BearerConfig;
    ///
    /// let bearer = BearerConfig::new().with_caller_key(|parts| {
    ///     let forwarded = parts.headers.get_all("x-forwarded-for").iter().next_back()?;
    ///     let last = forwarded.to_str().ok()?.rsplit(',').next()?.trim();
    ///     let ip: IpAddr = last.parse().ok()?;
    ///     Some(BearerConfig::ip_caller_key(ip))
    /// });
    /// ```
    ///
    /// # Security
    ///
    /// A header is the caller's to choose unless a proxy you run sets it: keyed by a header
    /// that reaches the app unfiltered, a caller picks a fresh budget for every request.
    /// Read only the entry your own proxy wrote.
    pub fn with_caller_key<F>(mut self, key: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.caller_key = CallerKey::Custom(Arc::new(key));
        self
    }

    /// The caller key of an IP address: the address itself for IPv4 (and IPv4-mapped IPv6),
    /// its /64 prefix for IPv6 (one host usually holds a whole /64).
    ///
    /// ```
    /// use tower_doximity::BearerConfig;
    ///
    /// let a = BearerConfig::ip_caller_key("2001:db8:1:2:aaaa::1".parse().unwrap());
    /// let b = BearerConfig::ip_caller_key("2001:db8:1:2:bbbb::9".parse().unwrap());
    /// assert_eq!(a, b);
    /// assert_eq!(BearerConfig::ip_caller_key("192.0.2.7".parse().unwrap()), "192.0.2.7");
    /// ```
    pub fn ip_caller_key(ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        }
    }

    /// Also accept a Doximity ID token as a bearer token (default off): a JWT verified
    /// offline with the provider's keys, whose audience must be our client id (the
    /// provider's issuer is the only other audience allowed) and `azp` our client id.
    ///
    /// # Security
    ///
    /// An ID token is proof of a sign-in *to this client*, not an API credential: accept it
    /// only when your own front end sends it to your own back end. It cannot be revoked: it
    /// stays valid until its `exp`, whatever happens at the provider. It carries no scopes,
    /// so such a caller has `openid` only.
    pub fn with_id_tokens(mut self, accept: bool) -> Self {
        self.id_tokens = accept;
        self
    }

    /// See [`BearerConfig::with_ttl`].
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// See [`BearerConfig::with_negative_ttl`].
    pub fn negative_ttl(&self) -> Duration {
        self.negative_ttl
    }

    /// See [`BearerConfig::with_max_entries`].
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// See [`BearerConfig::with_max_concurrent_checks`].
    pub fn max_concurrent_checks(&self) -> usize {
        self.max_concurrent_checks
    }

    /// See [`BearerConfig::with_check_wait`].
    pub fn check_wait(&self) -> Duration {
        self.check_wait
    }

    /// See [`BearerConfig::with_caller_budget`]: (checks, window).
    pub fn caller_budget(&self) -> (u32, Duration) {
        (self.caller_budget, self.caller_window)
    }

    /// See [`BearerConfig::with_max_callers`].
    pub fn max_callers(&self) -> usize {
        self.max_callers
    }

    /// See [`BearerConfig::with_id_tokens`].
    pub fn accepts_id_tokens(&self) -> bool {
        self.id_tokens
    }
}

/// What a bearer caller presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BearerKind {
    /// An opaque Doximity access token, checked through userinfo.
    AccessToken,
    /// A Doximity ID token, verified offline ([`BearerConfig::with_id_tokens`]).
    IdToken,
}

impl BearerKind {
    /// The kind's name in audit events: `access_token` or `id_token`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::IdToken => "id_token",
        }
    }
}

/// How a request was authenticated in bearer mode: in the request extensions next to the
/// [`DoximityIdentity`] of every request the bearer path let in. Its absence means a browser
/// session (or nobody).
///
/// For a bearer caller, the [`DoximityIdentity`] reads as follows:
///
/// - `sub()`: the provider's subject for the token;
/// - `scopes()`: what is known of the token's scopes. An opaque access token's scopes are not
///   told by Doximity: `openid` (userinfo answered), plus `profile:read:basic` when userinfo
///   carried profile claims, `profile:read:email` when it carried `email`, plus whatever a
///   `scope` claim in the signed answer lists. Any other scope is unknown, so `Scoped<S>` for
///   it refuses the caller (403, gRPC 7). An ID token: `openid` only;
/// - `claims()`: for an ID token its verified claims; for an access token the claims built
///   from the signed userinfo answer (`iss`, `sub`, `aud` as signed; `iat` = when it was
///   checked; `exp` = the answer's `exp`, else the end of the cache entry);
/// - `cached_profile()` / `profile()`: the userinfo answer itself when it carried the profile
///   (no further call);
/// - `access_token()`: the token presented (an error for an ID token);
/// - `signed_in_at()`: when the token was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BearerCredential {
    kind: BearerKind,
    validated_at: i64,
    valid_until: i64,
}

impl BearerCredential {
    /// What was presented.
    pub fn kind(&self) -> BearerKind {
        self.kind
    }

    /// When the provider (or the ID token's signature) last vouched for it, epoch seconds.
    pub fn validated_at(&self) -> i64 {
        self.validated_at
    }

    /// Until when the layer trusts it without asking again, epoch seconds.
    pub fn valid_until(&self) -> i64 {
        self.valid_until
    }
}

/// The SHA-256 of a token: the only form in which a token is kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TokenHash([u8; 32]);

impl TokenHash {
    pub(crate) fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// A bounded map from token hashes to values with an expiry (epoch seconds). Insertion order
/// decides eviction (oldest first); a lookup takes a read lock only.
pub(crate) struct Cache<V> {
    max: usize,
    state: RwLock<CacheState<V>>,
}

struct CacheState<V> {
    entries: HashMap<TokenHash, Slot<V>>,
    /// Insertion order; an item whose `seq` no longer matches its slot is stale (the key was
    /// inserted again later) and is skipped.
    order: VecDeque<(TokenHash, u64)>,
    seq: u64,
}

struct Slot<V> {
    value: V,
    until: i64,
    seq: u64,
}

impl<V: Clone> Cache<V> {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            state: RwLock::new(CacheState {
                entries: HashMap::new(),
                order: VecDeque::new(),
                seq: 0,
            }),
        }
    }

    /// The value for `key` if its entry has not expired at `now`.
    pub(crate) fn get(&self, key: &TokenHash, now: i64) -> Option<V> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state
            .entries
            .get(key)
            .filter(|slot| now < slot.until)
            .map(|slot| slot.value.clone())
    }

    /// Inserts (or replaces) `key` until `until`, then evicts the oldest entries beyond the
    /// bound.
    pub(crate) fn insert(&self, key: TokenHash, value: V, until: i64) {
        let mut guard = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *guard;
        state.seq += 1;
        let seq = state.seq;
        state.entries.insert(key, Slot { value, until, seq });
        state.order.push_back((key, seq));
        while state.entries.len() > self.max {
            let Some((old, old_seq)) = state.order.pop_front() else {
                break;
            };
            if state.entries.get(&old).is_some_and(|s| s.seq == old_seq) {
                state.entries.remove(&old);
            }
        }
        // Re-inserted keys leave stale order items behind: drop them once they pile up.
        if state.order.len() > 2 * self.max + 64 {
            let entries = &state.entries;
            state
                .order
                .retain(|(k, s)| entries.get(k).is_some_and(|slot| slot.seq == *s));
        }
    }

    /// How many entries are held (expired ones included until evicted or replaced).
    pub(crate) fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }
}

/// A caller, as the budget table knows it: a keyed hash of its key (so a long key costs no
/// memory, and the key is never kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CallerId(u64);

/// The budget of each caller for checks of new tokens (a token bucket), and the provider's
/// 429 gate per caller. Bounded: the caller not seen for the longest is forgotten first, and
/// callers whose bucket is full again are dropped as new ones arrive; both in amortised O(1)
/// under a lock that is never held across an `await`.
pub(crate) struct Callers {
    max: usize,
    /// Units: a check costs `window` units, and `checks` units come back each second, so the
    /// bucket holds `checks * window` units: integers only.
    checks: u64,
    window: u64,
    hasher: RandomState,
    state: Mutex<CallersState>,
}

struct CallersState {
    entries: HashMap<CallerId, Caller>,
    /// Least recently touched first; an item whose `seq` no longer matches is stale.
    order: VecDeque<(CallerId, u64)>,
    seq: u64,
}

struct Caller {
    /// Units in the bucket at `at` (epoch seconds).
    level: u64,
    at: i64,
    /// The provider answered 429 to this caller's check: no new token before this.
    blocked_until: i64,
    seq: u64,
}

impl Caller {
    /// The level at `now`, refilled since `at`.
    fn level_at(&self, now: i64, checks: u64, window: u64) -> u64 {
        let elapsed = u64::try_from(now.saturating_sub(self.at)).unwrap_or(0);
        self.level
            .saturating_add(elapsed.saturating_mul(checks))
            .min(checks.saturating_mul(window))
    }
}

impl Callers {
    pub(crate) fn new(max: usize, checks: u32, window: Duration) -> Self {
        Self {
            max: max.max(1),
            checks: u64::from(checks.max(1)),
            window: window.as_secs().max(1),
            hasher: RandomState::new(),
            state: Mutex::new(CallersState {
                entries: HashMap::new(),
                order: VecDeque::new(),
                seq: 0,
            }),
        }
    }

    pub(crate) fn id(&self, key: Option<&str>) -> CallerId {
        CallerId(self.hasher.hash_one(key))
    }

    fn full(&self) -> u64 {
        self.checks.saturating_mul(self.window)
    }

    /// Lets `id` start one check at `now`, or says why not: the provider's 429 gate, then
    /// the budget.
    pub(crate) fn admit(&self, id: CallerId, now: i64) -> Result<(), BearerError> {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *guard;
        let (checks, window, full) = (self.checks, self.window, self.full());
        if !state.entries.contains_key(&id) {
            self.make_room(state, now);
        }
        state.seq += 1;
        let seq = state.seq;
        let caller = state.entries.entry(id).or_insert(Caller {
            level: full,
            at: now,
            blocked_until: i64::MIN,
            seq,
        });
        caller.seq = seq;
        state.order.push_back((id, seq));
        let result = if now < caller.blocked_until {
            Err(rate_limited(caller.blocked_until, now))
        } else {
            let level = caller.level_at(now, checks, window);
            caller.at = now;
            if let Some(left) = level.checked_sub(window) {
                caller.level = left;
                Ok(())
            } else {
                caller.level = level;
                Err(BearerError::CallerBudgetExhausted {
                    retry_after: (window - level).div_ceil(checks).max(1),
                })
            }
        };
        self.compact(state);
        result
    }

    /// Gives back the check `admit` counted, when no provider call was made after all.
    pub(crate) fn refund(&self, id: CallerId) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let full = self.full();
        if let Some(caller) = state.entries.get_mut(&id) {
            caller.level = caller.level.saturating_add(self.window).min(full);
        }
    }

    /// The provider answered 429 to a check `id` started: its new tokens wait for `reset`.
    pub(crate) fn block(&self, id: CallerId, reset: i64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(caller) = state.entries.get_mut(&id) {
            caller.blocked_until = caller.blocked_until.max(reset);
        }
    }

    /// Before a new caller is added: drops the callers at the front that carry nothing (a
    /// full bucket, no gate), then the least recently seen ones beyond the bound.
    fn make_room(&self, state: &mut CallersState, now: i64) {
        let (checks, window, full) = (self.checks, self.window, self.full());
        while let Some(&(id, seq)) = state.order.front() {
            let idle = match state.entries.get(&id) {
                Some(c) if c.seq == seq => {
                    now >= c.blocked_until && c.level_at(now, checks, window) >= full
                }
                _ => true, // stale item
            };
            if !(idle || state.entries.len() >= self.max) {
                break;
            }
            state.order.pop_front();
            if state.entries.get(&id).is_some_and(|c| c.seq == seq) {
                state.entries.remove(&id);
            }
        }
    }

    /// Drops stale order items once they pile up (amortised: after at least `max` pushes).
    fn compact(&self, state: &mut CallersState) {
        if state.order.len() > 2 * self.max + 64 {
            let entries = &state.entries;
            state
                .order
                .retain(|(id, seq)| entries.get(id).is_some_and(|c| c.seq == *seq));
        }
    }

    /// How many callers are remembered.
    pub(crate) fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }
}

/// What the `Authorization` header holds, for bearer mode (pure).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Presented<'a> {
    /// One well-formed bearer token.
    Token(&'a str),
    /// `Bearer` with something that is not one token.
    Malformed,
}

/// Reads `Authorization: Bearer <token>`. `None` when there is no `Authorization` header or
/// its scheme is not `Bearer` (the request then goes the session way).
pub(crate) fn presented(headers: &HeaderMap) -> Option<Presented<'_>> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let first = values.next()?;
    let bytes = first.as_bytes();
    let scheme = bytes.get(..6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let rest = &bytes[6..];
    if !(rest.is_empty() || rest.first() == Some(&b' ')) {
        return None; // `Bearerish ...`: another scheme.
    }
    if values.next().is_some() {
        return Some(Presented::Malformed);
    }
    let Ok(rest) = std::str::from_utf8(rest) else {
        return Some(Presented::Malformed);
    };
    let token = rest.trim_matches(' ');
    Some(if is_b64token(token) {
        Presented::Token(token)
    } else {
        Presented::Malformed
    })
}

/// RFC 6750 `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`, at
/// most [`MAX_BEARER_TOKEN_LEN`] bytes.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && token.len() <= MAX_BEARER_TOKEN_LEN
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// Whether a token has the shape of a compact JWS (three dot-separated parts).
fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// What the cache keeps for a validated token. The identity is built from it per request
/// (an identity holds the layer's state, which holds this cache: storing identities would
/// make a reference cycle).
struct Vouched {
    principal: Principal,
    credential: BearerCredential,
}

/// A request the bearer path let in.
pub(crate) struct Authenticated {
    pub(crate) identity: DoximityIdentity,
    pub(crate) credential: BearerCredential,
}

/// The result of one check, shared by every request that waited for it.
#[derive(Clone)]
enum Outcome {
    Valid(Arc<Vouched>),
    /// The token is bad: remembered in the negative cache.
    Refused(BearerError),
    /// Nothing is known about the token: not cached.
    Failed(BearerError),
    /// The provider's budget is spent until `reset` (epoch seconds).
    RateLimited {
        reset: i64,
    },
}

type Flight = SharedFuture<BoxFuture<'static, Outcome>>;

/// What is known of a token without starting a check.
enum Known {
    Answer(Result<Authenticated, BearerError>),
    Flying(Flight),
}

/// Bearer mode's state, shared by every layer made from one
/// [`DoximityAuth`](crate::DoximityAuth).
pub(crate) struct BearerState {
    config: BearerConfig,
    valid: Cache<Arc<Vouched>>,
    refused: Cache<BearerError>,
    flights: Mutex<HashMap<TokenHash, Flight>>,
    /// One permit per check running ([`BearerConfig::with_max_concurrent_checks`]).
    slots: Arc<Semaphore>,
    /// Each caller's budget and provider 429 gate.
    callers: Callers,
}

impl std::fmt::Debug for BearerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerState")
            .field("config", &self.config)
            .field("cached", &self.valid.len())
            .field("refused", &self.refused.len())
            .field("callers", &self.callers.len())
            .finish_non_exhaustive()
    }
}

impl BearerState {
    pub(crate) fn new(config: BearerConfig) -> Self {
        Self {
            valid: Cache::new(config.max_entries),
            refused: Cache::new(config.max_entries),
            flights: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(config.max_concurrent_checks)),
            callers: Callers::new(
                config.max_callers,
                config.caller_budget,
                config.caller_window,
            ),
            config,
        }
    }

    /// Authenticates a request by its bearer token. `None` when it carries none (the session
    /// way applies).
    ///
    /// A token cached as good or as refused, or being checked already, is answered from that.
    /// A new one costs a provider call, so it must pass, in this order: the caller's 429
    /// gate, the caller's budget, and a free check slot.
    pub(crate) async fn authenticate(
        self: &Arc<Self>,
        env: &Arc<SessionEnv>,
        parts: &Parts,
        now: i64,
    ) -> Option<Result<Authenticated, BearerError>> {
        let token = match presented(&parts.headers)? {
            Presented::Token(token) => token,
            Presented::Malformed => return Some(Err(BearerError::Malformed)),
        };
        let hash = TokenHash::of(token);
        if let Some(known) = self.cached(&hash, env, now) {
            crate::metrics::bearer_cache(true);
            return Some(known);
        }
        crate::metrics::bearer_cache(false);
        if let Some(known) = self.known_or_flying(&hash, env, now) {
            return Some(match known {
                Known::Answer(answer) => answer,
                Known::Flying(flight) => self.result(&flight.await, env, env.now()),
            });
        }
        let key = self.config.caller_key.of(parts);
        let caller = self.callers.id(key.as_deref());
        if let Err(e) = self.callers.admit(caller, now) {
            return Some(Err(e));
        }
        let Some(permit) = self.slot().await else {
            self.callers.refund(caller);
            return Some(Err(BearerError::Busy));
        };
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            // While this request waited for a slot, another may have checked the token, or
            // started to: no second provider call, and the check is given back.
            if let Some(known) = self.cached(&hash, env, now) {
                self.callers.refund(caller);
                return Some(known);
            }
            if let Some(flight) = flights.get(&hash) {
                self.callers.refund(caller);
                flight.clone()
            } else {
                let flight = self.start(env.clone(), hash, token.to_owned(), caller, permit);
                flights.insert(hash, flight.clone());
                flight
            }
        };
        let outcome = flight.await;
        Some(self.result(&outcome, env, env.now()))
    }

    /// The cached answer, or the check already running, for a token; under the flights lock
    /// (a flight fills the cache before it leaves the map).
    fn known_or_flying(&self, hash: &TokenHash, env: &Arc<SessionEnv>, now: i64) -> Option<Known> {
        let flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = self.cached(hash, env, now) {
            return Some(Known::Answer(known));
        }
        flights.get(hash).cloned().map(Known::Flying)
    }

    /// A slot for one check: at once, or within [`BearerConfig::with_check_wait`].
    async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Some(permit);
        }
        if self.config.check_wait.is_zero() {
            return None;
        }
        tokio::time::timeout(self.config.check_wait, self.slots.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    fn cached(
        &self,
        hash: &TokenHash,
        env: &Arc<SessionEnv>,
        now: i64,
    ) -> Option<Result<Authenticated, BearerError>> {
        if let Some(vouched) = self.valid.get(hash, now) {
            return Some(Ok(authenticated(&vouched, env)));
        }
        self.refused.get(hash, now).map(Err)
    }

    fn result(
        &self,
        outcome: &Outcome,
        env: &Arc<SessionEnv>,
        now: i64,
    ) -> Result<Authenticated, BearerError> {
        match outcome {
            Outcome::Valid(vouched) => Ok(authenticated(vouched, env)),
            Outcome::Refused(e) | Outcome::Failed(e) => Err(e.clone()),
            Outcome::RateLimited { reset } => Err(rate_limited(*reset, now)),
        }
    }

    /// Starts the one check of a token, in its own task: it completes (and fills the cache)
    /// even when every request waiting for it has gone. It holds its slot until it settles.
    fn start(
        self: &Arc<Self>,
        env: Arc<SessionEnv>,
        hash: TokenHash,
        token: String,
        caller: CallerId,
        permit: OwnedSemaphorePermit,
    ) -> Flight {
        let this = self.clone();
        let task = tokio::spawn(async move {
            let outcome = this.check(&env, token).await;
            this.settle(hash, caller, &outcome, env.now());
            drop(permit);
            outcome
        });
        let this = self.clone();
        async move {
            match task.await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::warn!(error = %e, "a bearer token check was interrupted");
                    this.flights
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&hash);
                    Outcome::Failed(BearerError::Interrupted)
                }
            }
        }
        .boxed()
        .shared()
    }

    /// Records a check's outcome: the caches first, then the flight leaves the map. A 429
    /// closes the gate of the caller whose check drew it, and no one else's.
    fn settle(&self, hash: TokenHash, caller: CallerId, outcome: &Outcome, now: i64) {
        match outcome {
            Outcome::Valid(vouched) => {
                self.valid
                    .insert(hash, vouched.clone(), vouched.credential.valid_until);
            }
            Outcome::Refused(e) => {
                let until = now.saturating_add(secs(self.config.negative_ttl));
                self.refused.insert(hash, e.clone(), until);
            }
            Outcome::RateLimited { reset } => self.callers.block(caller, *reset),
            Outcome::Failed(_) => {}
        }
        self.flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&hash);
    }

    /// The provider call (or the offline ID-token check).
    async fn check(&self, env: &Arc<SessionEnv>, token: String) -> Outcome {
        let client = &env.client;
        if self.config.id_tokens && looks_like_jwt(&token) {
            let id_token = RawIdToken::new(token);
            return match client.verify_presented_id_token(&id_token).await {
                Ok(claims) => Outcome::Valid(Arc::new(self.id_token_vouched(claims, env.now()))),
                Err(e) => classify(e, env.now()),
            };
        }
        let verified = crate::metrics::timed(
            "userinfo",
            client.verify_access_token(&AccessToken::new(token)),
        )
        .await;
        crate::audit::rate_limit(client, &crate::audit::Origin::none());
        match verified {
            Ok(verified) if !authorized_for(verified.userinfo(), client.config().client_id()) => {
                Outcome::Refused(BearerError::OtherClient)
            }
            Ok(verified) => match self.access_token_vouched(verified, env.now()) {
                Some(v) => Outcome::Valid(Arc::new(v)),
                None => Outcome::Refused(BearerError::Rejected),
            },
            Err(e) => classify(e, env.now()),
        }
    }

    /// What an access token's userinfo answer vouches for; `None` when it says the token has
    /// already expired.
    fn access_token_vouched(&self, verified: VerifiedAccessToken, now: i64) -> Option<Vouched> {
        let until = now
            .saturating_add(secs(self.config.ttl))
            .min(verified.expires_at().unwrap_or(i64::MAX));
        if until <= now {
            return None;
        }
        Some(Vouched {
            principal: Principal::AccessToken {
                token: Arc::new(verified),
                validated_at: now,
            },
            credential: BearerCredential {
                kind: BearerKind::AccessToken,
                validated_at: now,
                valid_until: until,
            },
        })
    }

    fn id_token_vouched(&self, claims: IdTokenClaims, now: i64) -> Vouched {
        let until = now
            .saturating_add(secs(self.config.ttl))
            .min(claims.exp.max(now.saturating_add(1)));
        Vouched {
            // No access token: `access_token()` answers `Unauthenticated`.
            principal: Principal::IdToken {
                claims: Arc::new(claims),
                validated_at: now,
            },
            credential: BearerCredential {
                kind: BearerKind::IdToken,
                validated_at: now,
                valid_until: until,
            },
        }
    }

    #[cfg(test)]
    fn cached_len(&self) -> (usize, usize) {
        (self.valid.len(), self.refused.len())
    }
}

fn authenticated(vouched: &Vouched, env: &Arc<SessionEnv>) -> Authenticated {
    Authenticated {
        identity: DoximityIdentity::bearer(vouched.principal.clone(), env.clone()),
        credential: vouched.credential,
    }
}

fn rate_limited(reset: i64, now: i64) -> BearerError {
    BearerError::RateLimited {
        retry_after: u64::try_from(reset.saturating_sub(now)).unwrap_or(0).max(1),
    }
}

/// Sorts a provider error into what it says about the token.
fn classify(e: Error, now: i64) -> Outcome {
    match e {
        Error::RateLimited { reset, .. } => Outcome::RateLimited {
            reset: reset.map_or(now.saturating_add(RATE_LIMIT_FALLBACK_SECS), epoch),
        },
        Error::TokenRejected { .. }
        | Error::OAuth {
            status: 400 | 403, ..
        } => Outcome::Refused(BearerError::Rejected),
        e @ Error::IdToken(_) => Outcome::Refused(BearerError::InvalidIdToken(Arc::new(e))),
        // A signed answer, for a token issued to another client of the provider.
        Error::Userinfo(
            JwtError::AudienceMissingClient { .. } | JwtError::UntrustedAudience(_),
        ) => Outcome::Refused(BearerError::OtherClient),
        e if e.is_retryable() => Outcome::Failed(BearerError::Unavailable(Arc::new(e))),
        e => Outcome::Failed(BearerError::Unverifiable(Arc::new(e))),
    }
}

/// Whether a verified userinfo answer names no other authorized party than `client_id` (the
/// core has checked `aud`; `azp`, when present, must be ours too).
fn authorized_for(info: &UserInfo, client_id: &str) -> bool {
    match info.additional.get("azp") {
        None => true,
        Some(Value::String(azp)) => azp == client_id,
        Some(_) => false,
    }
}

fn epoch(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// What is known of an access token's scopes from its userinfo answer (see
/// [`BearerCredential`]).
#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    fn headers(values: &[&'static [u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn authorization_header_table() {
        use Presented::{Malformed, Token};
        let table: &[(&[&[u8]], Option<Presented<'_>>)] = &[
            (&[], None),
            (&[b"Basic dXNlcjpwYXNz"], None),
            (&[b"Bearerish abc"], None),
            (&[b"Bearer abc"], Some(Token("abc"))),
            (&[b"bearer abc"], Some(Token("abc"))),
            (&[b"BEARER  abc "], Some(Token("abc"))),
            (&[b"Bearer a-b.c_d~e+f/g=="], Some(Token("a-b.c_d~e+f/g=="))),
            (&[b"Bearer eyJ.eyJ.sig"], Some(Token("eyJ.eyJ.sig"))),
            (&[b"Bearer"], Some(Malformed)),
            (&[b"Bearer "], Some(Malformed)),
            (&[b"Bearer a b"], Some(Malformed)),
            (&[b"Bearer ="], Some(Malformed)),
            (&[b"Bearer a=b"], Some(Malformed)),
            (&[b"Bearer a,b"], Some(Malformed)),
            (&[b"Bearer \"abc\""], Some(Malformed)),
            (&[b"Bearer \xc3\xa9t\xc3\xa9"], Some(Malformed)),
            (&[b"Bearer abc", b"Bearer def"], Some(Malformed)),
            (&[b"Bearer abc", b"Basic x"], Some(Malformed)),
        ];
        for (values, expected) in table {
            assert_eq!(presented(&headers(values)), *expected, "{values:?}");
        }
        let long = format!("Bearer {}", "a".repeat(MAX_BEARER_TOKEN_LEN + 1));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, long.parse().unwrap());
        assert_eq!(presented(&h), Some(Malformed));
    }

    #[test]
    fn cache_bound_holds_under_100_000_distinct_tokens() {
        let max = 1_000;
        let cache: Cache<u32> = Cache::new(max);
        for i in 0..100_000_u32 {
            let key = TokenHash::of(&format!("token-{i}"));
            cache.insert(key, i, 1_000);
            assert!(cache.len() <= max, "{} entries after {i}", cache.len());
            // The newest is always there; the oldest beyond the bound is gone.
            assert_eq!(cache.get(&key, 0), Some(i));
            if i >= max as u32 {
                let evicted = TokenHash::of(&format!("token-{}", i - max as u32));
                assert_eq!(cache.get(&evicted, 0), None);
            }
            let state = cache.state.read().unwrap();
            assert!(state.order.len() <= 2 * max + 65);
        }
        assert_eq!(cache.len(), max);
    }

    #[test]
    fn cache_entries_expire_and_reinsertion_keeps_the_bound() {
        let cache: Cache<&str> = Cache::new(2);
        let (a, b, c) = (TokenHash::of("a"), TokenHash::of("b"), TokenHash::of("c"));
        cache.insert(a, "a", 10);
        assert_eq!(cache.get(&a, 9), Some("a"));
        assert_eq!(cache.get(&a, 10), None);
        // Re-inserting `a` many times leaves stale order items that must not evict `b`.
        cache.insert(b, "b", 10);
        for _ in 0..1_000 {
            cache.insert(a, "a2", 20);
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&b, 0), Some("b"));
        assert!(cache.state.read().unwrap().order.len() <= 2 * 2 + 65);
        cache.insert(c, "c", 10);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&b, 0), None, "the oldest goes first");
        assert_eq!(cache.get(&a, 0), Some("a2"));
    }

    #[test]
    fn token_hash_debug_shows_no_token() {
        let token = "very-secret-token";
        let debug = format!("{:?}", TokenHash::of(token));
        assert!(!debug.contains(token));
        assert!(debug.starts_with("TokenHash("));
    }

    #[test]
    fn errors_map_to_statuses_and_grpc_codes() {
        use crate::AuthError;
        let cases = [
            (BearerError::Malformed, 400, 16),
            (BearerError::Rejected, 401, 16),
            (BearerError::RateLimited { retry_after: 7 }, 503, 14),
            (BearerError::Interrupted, 503, 14),
            (BearerError::OtherClient, 401, 16),
            (
                BearerError::CallerBudgetExhausted { retry_after: 20 },
                429,
                8,
            ),
            (BearerError::Busy, 503, 14),
        ];
        for (e, status, grpc) in cases {
            let e = AuthError::from(e);
            assert_eq!(e.status().as_u16(), status, "{e}");
            assert_eq!(e.grpc_status(), grpc, "{e}");
        }
        assert_eq!(
            AuthError::from(BearerError::RateLimited { retry_after: 7 }).retry_after(),
            Some(7)
        );
        assert_eq!(BearerError::Busy.retry_after(), Some(1));
        assert_eq!(
            BearerError::CallerBudgetExhausted { retry_after: 20 }.code(),
            "too_many_new_tokens"
        );
    }

    #[test]
    fn provider_errors_are_classified() {
        let now = 1_000;
        let reset = UNIX_EPOCH + Duration::from_secs(1_042);
        let limited = classify(
            Error::RateLimited {
                endpoint: doximity::Endpoint::Userinfo,
                reset: Some(reset),
            },
            now,
        );
        assert!(matches!(limited, Outcome::RateLimited { reset: 1_042 }));
        let unknown = classify(
            Error::RateLimited {
                endpoint: doximity::Endpoint::Userinfo,
                reset: None,
            },
            now,
        );
        assert!(matches!(unknown, Outcome::RateLimited { reset: 1_060 }));
        let rejected = classify(
            Error::TokenRejected {
                endpoint: doximity::Endpoint::Userinfo,
            },
            now,
        );
        assert!(matches!(rejected, Outcome::Refused(BearerError::Rejected)));
        let down = classify(
            Error::Unavailable {
                endpoint: doximity::Endpoint::Userinfo,
                status: 503,
            },
            now,
        );
        assert!(matches!(down, Outcome::Failed(BearerError::Unavailable(_))));
        for foreign in [
            JwtError::AudienceMissingClient {
                actual: vec!["other-app".into()],
            },
            JwtError::UntrustedAudience("other-app".into()),
        ] {
            let outcome = classify(Error::Userinfo(foreign), now);
            assert!(matches!(
                outcome,
                Outcome::Refused(BearerError::OtherClient)
            ));
        }
        let bad = classify(Error::MissingIdToken, now);
        assert!(matches!(bad, Outcome::Failed(BearerError::Unverifiable(_))));
    }

    #[test]
    fn authorized_party_must_be_ours_when_named() {
        let info = |v: Value| -> UserInfo { serde_json::from_value(v).unwrap() };
        assert!(authorized_for(&info(json!({"sub": "s"})), "me"));
        assert!(authorized_for(
            &info(json!({"sub": "s", "azp": "me"})),
            "me"
        ));
        assert!(!authorized_for(
            &info(json!({"sub": "s", "azp": "other"})),
            "me"
        ));
        assert!(!authorized_for(
            &info(json!({"sub": "s", "azp": ["me"]})),
            "me"
        ));
    }

    fn budget_error(r: Result<(), BearerError>) -> Option<u64> {
        match r {
            Ok(()) => None,
            Err(BearerError::CallerBudgetExhausted { retry_after }) => Some(retry_after),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn caller_budget_is_a_token_bucket_per_caller() {
        let callers = Callers::new(100, 3, Duration::from_secs(60));
        let (a, b) = (callers.id(Some("a")), callers.id(Some("b")));
        assert_ne!(a, b);
        for _ in 0..3 {
            assert_eq!(budget_error(callers.admit(a, 0)), None);
        }
        assert_eq!(budget_error(callers.admit(a, 0)), Some(20));
        assert_eq!(budget_error(callers.admit(b, 0)), None, "b has its own");
        assert_eq!(budget_error(callers.admit(a, 19)), Some(1));
        assert_eq!(budget_error(callers.admit(a, 20)), None);
        assert_eq!(budget_error(callers.admit(a, 20)), Some(20));
        // A check that made no provider call is given back.
        callers.refund(a);
        assert_eq!(budget_error(callers.admit(a, 20)), None);
        // Refilling never goes beyond the budget.
        for _ in 0..3 {
            assert_eq!(budget_error(callers.admit(a, 100_000)), None);
        }
        assert_eq!(budget_error(callers.admit(a, 100_000)), Some(20));
        // No key at all is one caller too.
        let none = callers.id(None);
        assert_ne!(none, callers.id(Some("")));
    }

    #[test]
    fn a_provider_429_gates_only_the_caller_whose_check_drew_it() {
        let callers = Callers::new(100, 10, Duration::from_secs(60));
        let (a, b) = (callers.id(Some("a")), callers.id(Some("b")));
        callers.admit(a, 0).unwrap();
        callers.block(a, 100);
        assert!(matches!(
            callers.admit(a, 50),
            Err(BearerError::RateLimited { retry_after: 50 })
        ));
        assert!(callers.admit(b, 50).is_ok());
        assert!(callers.admit(a, 100).is_ok(), "open again at the reset");
    }

    #[test]
    fn callers_stay_bounded_under_100_000_distinct_keys() {
        let max = 1_000;
        let callers = Callers::new(max, 1, Duration::from_secs(3600));
        for i in 0..100_000_u32 {
            let id = callers.id(Some(&format!("caller-{i}")));
            assert!(callers.admit(id, 0).is_ok());
            // The newest caller is remembered: its budget is spent.
            assert!(callers.admit(id, 0).is_err());
            assert!(callers.len() <= max, "{} callers after {i}", callers.len());
            let state = callers.state.lock().unwrap();
            assert!(state.order.len() <= 2 * max + 65);
        }
    }

    #[test]
    fn idle_callers_are_dropped_as_new_ones_arrive() {
        let callers = Callers::new(100, 2, Duration::from_secs(60));
        for i in 0..10 {
            callers.admit(callers.id(Some(&format!("{i}"))), 0).unwrap();
        }
        assert_eq!(callers.len(), 10);
        // A minute later every bucket is full again: nothing to remember.
        callers.admit(callers.id(Some("new")), 60).unwrap();
        assert_eq!(callers.len(), 1);
        // A gated caller is kept until its gate opens, even with a full bucket.
        let gated = callers.id(Some("gated"));
        callers.admit(gated, 60).unwrap();
        callers.block(gated, 1_000);
        callers.admit(callers.id(Some("later")), 500).unwrap();
        assert!(matches!(
            callers.admit(gated, 500),
            Err(BearerError::RateLimited { .. })
        ));
    }

    #[test]
    fn state_starts_empty() {
        let state = BearerState::new(BearerConfig::new().with_max_entries(0));
        assert_eq!(state.config.max_entries(), 1);
        assert_eq!(state.cached_len(), (0, 0));
    }
}
