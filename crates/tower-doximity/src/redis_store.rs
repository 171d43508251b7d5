//! [`RedisStore`]: sessions in Redis, shared by any number of app instances (feature `redis`).

use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::store::{
    RefreshGuard, RefreshLock, SessionId, SessionStore, StoreError, StoreFuture, StoredSession,
};

/// The default key prefix.
pub const DEFAULT_REDIS_PREFIX: &str = "doximity:";
/// The default lease of a refresh lock: longer than a provider call may take (the core
/// client's default timeout is 10 s), so a lock outlives the refresh it guards.
pub const DEFAULT_REFRESH_LEASE: Duration = Duration::from_secs(15);
/// How long a deleted session's tombstone stays at least, so that a write already in flight
/// on another instance (a refresh, a `last_seen` update) cannot bring the session back.
const MIN_TOMBSTONE: Duration = Duration::from_secs(60);

/// Writes a session unless it was deleted (a tombstone) or a newer revision is there, extends
/// its time to live, and indexes it under its `sub` (pruning ids whose sessions are gone when
/// a new one is added). The index lives at least as long as its longest session.
///
/// KEYS: session, sub index. ARGV: revision, hot record, TTL (ms), id, session key prefix,
/// tokens.
const STORE: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'r', 'gone')
if cur[2] then return 0 end
if cur[1] and tonumber(cur[1]) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'r', ARGV[1], 'd', ARGV[2], 't', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if redis.call('SADD', KEYS[2], ARGV[4]) == 1 then
  for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    if m ~= ARGV[4] and redis.call('HEXISTS', ARGV[5] .. m, 'd') == 0 then
      redis.call('SREM', KEYS[2], m)
    end
  end
end
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
";

/// Replaces a session by a tombstone; 1 when a live session was there.
///
/// KEYS: session. ARGV: tombstone TTL (ms).
const DELETE: &str = r"
local live = redis.call('HEXISTS', KEYS[1], 'd')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'gone', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return live
";

/// Replaces every session of a `sub` by a tombstone and drops the index; the number of live
/// sessions it ended.
///
/// KEYS: sub index. ARGV: session key prefix, tombstone TTL (ms).
const SIGN_OUT_EVERYWHERE: &str = r"
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[1] .. id
  n = n + redis.call('HEXISTS', k, 'd')
  redis.call('DEL', k)
  redis.call('HSET', k, 'gone', '1')
  redis.call('PEXPIRE', k, ARGV[2])
end
redis.call('DEL', KEYS[1])
return n
";

/// `SET NX PX`, or what is left of the holder's lease: `{1, 0}` when acquired, `{0, pttl}`
/// otherwise (`pttl` is -2 when the lock vanished in between, -1 when it has no expiry).
///
/// KEYS: lock. ARGV: owner, lease (ms).
const LOCK: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, 0} end
return {0, redis.call('PTTL', KEYS[1])}
";

/// Deletes the lock only if `owner` still holds it (compare and delete).
///
/// KEYS: lock. ARGV: owner.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

struct Scripts {
    store: Script,
    delete: Script,
    sign_out_everywhere: Script,
    lock: Script,
    unlock: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            store: Script::new(STORE),
            delete: Script::new(DELETE),
            sign_out_everywhere: Script::new(SIGN_OUT_EVERYWHERE),
            lock: Script::new(LOCK),
            unlock: Script::new(UNLOCK),
        }
    }
}

/// Sessions in Redis: the cookie carries only the (encrypted) random session id, and every
/// instance that shares the Redis server and the cookie key shares the sessions.
///
/// - **Keys.** `doximity:session:<id>` (a hash: `r` the revision, `d` the hot record and the
///   facts the store needs, `t` the tokens; the layer sealed the record and the tokens before
///   the store saw them), `doximity:sub:<sub>` (the set of a user's session
///   ids, for [`RedisStore::sign_out_everywhere`]), `doximity:lock:<id>` (the refresh lock).
///   The prefix is [`RedisStore::with_prefix`].
/// - **Expiry.** Each write sets the entry's time to live to what is left of the idle timeout
///   (counted from the last request the layer recorded), never past the absolute timeout;
///   activity extends it. The index lives as long as its longest session.
/// - **Tokens at rest** are sealed by the layer with the app's cookie key, the same
///   AES-256-GCM sealing as its cookies, bound to the session id: a dump of Redis reveals no
///   token and no profile, only `sub`s (in the index keys' names and the hot field). The store
///   itself holds no key.
/// - **Refresh across instances.** [`SessionStore::lock_refresh`] takes
///   `SET doximity:lock:<id> <random owner> NX PX <lease>`; only the owner deletes it (a Lua
///   compare-and-delete); a holder that dies frees it when the lease ends. The other instances
///   wait and read the refreshed session instead of refreshing with a retired token.
/// - **Deletion** (logout, sign-in over an old session, expiry, sign out everywhere) leaves a
///   short-lived tombstone, so that a write already in flight on another instance cannot bring
///   the session back, and a write never replaces a newer revision with an older one.
///
/// Commands go through a [`ConnectionManager`] (one multiplexed connection that reconnects by
/// itself). A failing or unreachable Redis makes the requests that need it answer 503 (gRPC
/// 14); their cookies are kept, and they work again once Redis is back. A single server (or a
/// primary with replicas and Sentinel) is assumed, not Redis Cluster: the scripts touch keys
/// of one user in different slots.
///
/// ```no_run
/// # async fn f(client: doximity::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use tower_doximity::{DoximityAuth, RedisStore, parse_cookie_key};
///
/// // The same key on every instance: it seals the cookies and the sessions in Redis.
/// let key = parse_cookie_key(&std::env::var("DOXIMITY_COOKIE_KEY")?)?;
/// let store = RedisStore::connect("redis://127.0.0.1:6379/").await?;
/// let auth = DoximityAuth::new(client)
///     .with_cookie_key(key)
///     .with_store(store.clone());
/// let layer = auth.layer(); // axum: `Router::layer`; tonic: `Server::builder().layer`
///
/// // Later, e.g. from an admin endpoint: end every session of a user, on every instance.
/// let ended = store.sign_out_everywhere("1234567").await?;
/// # Ok(()) }
/// ```
///
/// # Security
///
/// Anyone who can write to Redis can delete sessions; anyone who can also read the cookie key
/// can forge them. Give Redis a password (`redis://:password@host/`) or ACL user and TLS when
/// it is not on a private network. Errors and `Debug` never show the URL, the key or a
/// session.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
    lease: Duration,
    scripts: Arc<Scripts>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("refresh_lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the Redis server at `url` (`redis://[:password@]host[:port][/db]`). Fails
    /// when the server does not answer.
    ///
    /// The connection reconnects by itself; each command gives up after one second, and a
    /// lost connection is retried twice (50 ms, then up to 1 s apart) before the request that
    /// needed it gets its 503.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client =
            redis::Client::open(url).map_err(|_| StoreError::new("the Redis URL is not valid"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(StoreError::new)?;
        Ok(Self::new(conn))
    }

    /// A store over a connection you configured yourself.
    pub fn new(conn: ConnectionManager) -> Self {
        Self {
            conn,
            prefix: DEFAULT_REDIS_PREFIX.into(),
            lease: DEFAULT_REFRESH_LEASE,
            scripts: Arc::new(Scripts::new()),
        }
    }

    /// The prefix of every key (default `doximity:`), to share a Redis database with other
    /// data or other apps.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self
    }

    /// The lease of a refresh lock (default 15 s): how long other instances wait at most for
    /// a refresh before a dead holder's lock ends. Keep it longer than a provider call can
    /// take (`doximity::Config::with_timeout`, 10 s by default), or two instances may refresh
    /// the same session.
    #[must_use]
    pub fn with_refresh_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(1));
        self
    }

    /// The Redis key of session `id`.
    pub fn session_key(&self, id: &SessionId) -> String {
        format!("{}session:{}", self.prefix, id.as_str())
    }

    /// The Redis key of the set of `sub`'s session ids.
    pub fn sub_key(&self, sub: &str) -> String {
        format!("{}sub:{sub}", self.prefix)
    }

    /// The Redis key of session `id`'s refresh lock.
    pub fn lock_key(&self, id: &SessionId) -> String {
        format!("{}lock:{}", self.prefix, id.as_str())
    }

    /// Ends every session of user `sub`, on every instance: their cookies are "not signed
    /// in" from the next request on. Returns how many live sessions it ended. The tokens are
    /// not revoked at the provider (revoke them there too if they may have leaked).
    pub async fn sign_out_everywhere(&self, sub: &str) -> Result<usize, StoreError> {
        let ended: i64 = self
            .scripts
            .sign_out_everywhere
            .key(self.sub_key(sub))
            .arg(format!("{}session:", self.prefix))
            .arg(millis(self.tombstone()))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(StoreError::new)?;
        Ok(usize::try_from(ended).unwrap_or(0))
    }

    fn tombstone(&self) -> Duration {
        (self.lease * 2).max(MIN_TOMBSTONE)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl SessionStore for RedisStore {
    fn load<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, Option<StoredSession>> {
        Box::pin(async move {
            let (hot, tokens): (Option<String>, Option<String>) = redis::cmd("HMGET")
                .arg(self.session_key(id))
                .arg("d")
                .arg("t")
                .query_async(&mut self.conn.clone())
                .await
                .map_err(StoreError::new)?;
            let (Some(hot), Some(tokens)) = (hot, tokens) else {
                return Ok(None);
            };
            let session = serde_json::from_str::<StoredSession>(&hot)
                .ok()
                .map(|hot| StoredSession { tokens, ..hot });
            if session.is_none() {
                tracing::warn!(
                    "a session in Redis is not in this version's format; it counts as signed out"
                );
            }
            Ok(session)
        })
    }

    fn store<'a>(&'a self, id: &'a SessionId, session: &'a StoredSession) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // The hot field without the tokens: they have a field of their own.
            let hot = StoredSession {
                tokens: String::new(),
                ..session.clone()
            };
            let hot = serde_json::to_string(&hot).map_err(StoreError::new)?;
            let _written: i64 = self
                .scripts
                .store
                .key(self.session_key(id))
                .key(self.sub_key(session.sub()))
                .arg(session.revision())
                .arg(hot)
                .arg(millis(session.time_to_live()))
                .arg(id.as_str())
                .arg(format!("{}session:", self.prefix))
                .arg(&session.tokens)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(StoreError::new)?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _live: i64 = self
                .scripts
                .delete
                .key(self.session_key(id))
                .arg(millis(self.tombstone()))
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(StoreError::new)?;
            Ok(())
        })
    }

    fn lock_refresh<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, RefreshLock> {
        Box::pin(async move {
            let lock_key = self.lock_key(id);
            let owner = crate::session::new_session_id();
            let (acquired, pttl): (i64, i64) = self
                .scripts
                .lock
                .key(&lock_key)
                .arg(&owner)
                .arg(millis(self.lease))
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(StoreError::new)?;
            if acquired == 1 {
                let (conn, scripts) = (self.conn.clone(), self.scripts.clone());
                return Ok(RefreshLock::Acquired(RefreshGuard::new(move || {
                    Box::pin(async move {
                        let _deleted: i64 = scripts
                            .unlock
                            .key(lock_key)
                            .arg(owner)
                            .invoke_async(&mut conn.clone())
                            .await
                            .map_err(StoreError::new)?;
                        Ok(())
                    })
                })));
            }
            let remaining = match pttl {
                // No expiry (set by hand): as long as a lease.
                -1 => self.lease,
                ms => Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
            };
            Ok(RefreshLock::Held { remaining })
        })
    }

    fn delete_user<'a>(&'a self, sub: &'a str) -> StoreFuture<'a, usize> {
        Box::pin(self.sign_out_everywhere(sub))
    }

    fn mark_used<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Option<bool>> {
        Box::pin(async move {
            let set: Option<String> = redis::cmd("SET")
                .arg(format!("{}used:{key}", self.prefix))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl).max(1))
                .query_async(&mut self.conn.clone())
                .await
                .map_err(StoreError::new)?;
            Ok(Some(set.is_some()))
        })
    }
}
