//! [`DoximityAuth`]: the one value built from configuration, and its options.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use doximity::{Client, Config};

use tower_cookies::Key;

use crate::audit::SessionHasher;
use crate::backend::{Backend, Sessions};
use crate::background::Background;
use crate::bearer::{BearerConfig, BearerState};
use crate::cookies::{Binding, CookieCodec, DEFAULT_PREFIX, is_valid_prefix};
use crate::decide::{Mode, Routes};
use crate::engine::{PublicFn, Shared};
use crate::layer::DoximityLayer;
use crate::ledger::Ledger;
use crate::links::Links;
use crate::memory::ExpiringSet;
use crate::opened::OpenedCookies;
use crate::refresh::Flights;
use crate::response::{DefaultRefuse, Refuse};
use crate::session::{SessionEnv, Timeouts};
use crate::store::SessionStore;

/// Default login route.
pub const DEFAULT_LOGIN_PATH: &str = "/auth/doximity/login";
/// Default callback route (when the redirect URI's path is not used).
pub const DEFAULT_CALLBACK_PATH: &str = "/auth/doximity/callback";
/// Default logout route.
pub const DEFAULT_LOGOUT_PATH: &str = "/auth/doximity/logout";
/// The default of [`DoximityAuth::with_session_cache_bytes`]: 4 MiB per layer.
pub const DEFAULT_SESSION_CACHE_BYTES: u64 = OpenedCookies::<()>::DEFAULT_BYTES;
/// Default idle timeout: 30 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How many used login `state`s the replay guard remembers at most (each for the
/// transaction's lifetime).
const USED_STATES_CAPACITY: usize = 100_000;
/// How many signed-out sessions the layer remembers at most (each until its absolute
/// timeout), so copies of their cookies are refused.
const SIGNED_OUT_CAPACITY: usize = 1 << 20;

/// Default absolute timeout: 12 hours.
pub const DEFAULT_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);

/// [`DoximityAuth::with_cookie_prefix`]: not 1 to 32 of `A-Z a-z 0-9 - _ .`, or starting with
/// `__`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a cookie prefix is 1 to 32 of A-Z a-z 0-9 - _ . and does not start with __")]
pub struct CookiePrefixError;

/// `DoximityAuth::from_env` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FromEnvError {
    /// The core configuration is unusable.
    #[error(transparent)]
    Config(#[from] doximity::ConfigError),
    /// Discovery failed.
    #[error(transparent)]
    Discovery(#[from] doximity::Error),
    /// `DOXIMITY_COOKIE_KEY` is not a comma-separated list of base64 keys of 64 bytes.
    #[error(transparent)]
    CookieKey(#[from] CookieKeyError),
}

/// A cookie key that is not 64 bytes of base64.
#[derive(Debug, thiserror::Error)]
#[error("the cookie key must be 64 bytes, base64-encoded ({reason})")]
pub struct CookieKeyError {
    reason: &'static str,
}

/// Parses a cookie key: base64 (standard or URL-safe, padded or not) of exactly 64 bytes, the
/// format of `DOXIMITY_COOKIE_KEY`.
///
/// ```
/// use base64::Engine;
/// let encoded = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
/// assert!(tower_doximity::parse_cookie_key(&encoded).is_ok());
/// assert!(tower_doximity::parse_cookie_key("c2hvcnQ=").is_err());
/// assert!(tower_doximity::parse_cookie_key("not base64!").is_err());
/// ```
pub fn parse_cookie_key(encoded: &str) -> Result<Key, CookieKeyError> {
    let encoded = encoded.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('='))
        })
        .map_err(|_| CookieKeyError {
            reason: "not base64",
        })?;
    if bytes.len() != 64 {
        return Err(CookieKeyError {
            reason: "wrong length",
        });
    }
    Key::try_from(bytes.as_slice()).map_err(|_| CookieKeyError {
        reason: "wrong length",
    })
}

/// Parses a key ring: one or more cookie keys ([`parse_cookie_key`]) separated by commas,
/// newest first, the format of `DOXIMITY_COOKIE_KEY`. The first key seals everything new;
/// every listed key opens what it sealed, so a key is rotated by putting a new one first and
/// dropping the old one once no session it sealed is still alive (the absolute timeout).
///
/// ```
/// use base64::Engine;
/// let (a, b) = (base64::engine::general_purpose::STANDARD.encode([7u8; 64]),
///               base64::engine::general_purpose::STANDARD.encode([8u8; 64]));
/// assert_eq!(tower_doximity::parse_cookie_keys(&format!("{a}, {b}")).unwrap().len(), 2);
/// assert!(tower_doximity::parse_cookie_keys(&format!("{a},")).is_err());
/// assert!(tower_doximity::parse_cookie_keys("").is_err());
/// ```
pub fn parse_cookie_keys(encoded: &str) -> Result<Vec<Key>, CookieKeyError> {
    let keys = encoded
        .split(',')
        .map(parse_cookie_key)
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(CookieKeyError { reason: "no key" });
    }
    Ok(keys)
}

/// Sign in with Doximity: one value built from configuration, turned into a
/// [`DoximityLayer`] with [`DoximityAuth::layer`]. Cheap to clone; its `Debug` shows no key.
#[derive(Clone)]
#[must_use]
pub struct DoximityAuth {
    client: Client,
    routes: Routes,
    keys: Vec<Key>,
    key_configured: bool,
    mode: Mode,
    backend: Backend,
    timeouts: Timeouts,
    refuse: Arc<dyn Refuse>,
    public_paths: Vec<String>,
    public: Vec<PublicFn>,
    cookie_prefix: String,
    profile_at_login: bool,
    bearer_only: bool,
    flights: Arc<Flights>,
    background: Arc<Background>,
    used_states: Arc<ExpiringSet>,
    signed_out: Arc<ExpiringSet>,
    users_signed_out: Arc<ExpiringSet>,
    bearer: Option<Arc<BearerState>>,
    clear_site_data: bool,
    step_up_scopes: doximity::scope::Scopes,
    session_cache_bytes: u64,
}

impl std::fmt::Debug for DoximityAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoximityAuth")
            .field("client", &self.client)
            .field("routes", &self.routes)
            .field("cookie_key", &"[redacted]")
            .field("cookie_key_configured", &self.key_configured)
            .field("mode", &self.mode)
            .field("backend", &self.backend)
            .field("timeouts", &self.timeouts)
            .field("public_paths", &self.public_paths)
            .field("bearer", &self.bearer)
            .finish_non_exhaustive()
    }
}

impl DoximityAuth {
    /// Sign-in with this client and the defaults: routes under `/auth/doximity/` (the callback
    /// at the redirect URI's path), [`CookieStore`](crate::CookieStore) sessions,
    /// [`Mode::Enforce`], 30 minutes idle and 12 hours absolute timeout. Without
    /// [`DoximityAuth::with_cookie_key`] a random key is made (sessions then do not survive a
    /// restart nor span instances), with a warning.
    pub fn new(client: Client) -> Self {
        let callback = match client.config().redirect_uri().path() {
            "" | "/" => DEFAULT_CALLBACK_PATH.to_owned(),
            p => p.to_owned(),
        };
        Self {
            client,
            routes: Routes {
                login: DEFAULT_LOGIN_PATH.to_owned(),
                callback,
                logout: DEFAULT_LOGOUT_PATH.to_owned(),
            },
            keys: vec![Key::generate()],
            key_configured: false,
            mode: Mode::Enforce,
            backend: Backend::Cookie,
            timeouts: Timeouts {
                idle: DEFAULT_IDLE_TIMEOUT,
                absolute: DEFAULT_ABSOLUTE_TIMEOUT,
            },
            refuse: Arc::new(DefaultRefuse),
            public_paths: Vec::new(),
            public: Vec::new(),
            cookie_prefix: DEFAULT_PREFIX.to_owned(),
            profile_at_login: true,
            bearer_only: false,
            flights: Arc::default(),
            background: Arc::default(),
            used_states: Arc::new(ExpiringSet::new(USED_STATES_CAPACITY, "used login states")),
            signed_out: Arc::new(ExpiringSet::new(SIGNED_OUT_CAPACITY, "signed-out sessions")),
            users_signed_out: Arc::new(ExpiringSet::new(SIGNED_OUT_CAPACITY, "signed-out users")),
            bearer: None,
            clear_site_data: false,
            step_up_scopes: doximity::scope::Scopes::default(),
            session_cache_bytes: DEFAULT_SESSION_CACHE_BYTES,
        }
    }

    /// Reads the configuration contract (`doximity::Config::from_env`), discovers the provider,
    /// and takes the cookie keys from `DOXIMITY_COOKIE_KEY` (base64 keys of 64 bytes,
    /// comma-separated, newest first; random, with a warning, when unset).
    /// [`DoximityAuth::from_lookup`] over the process environment.
    pub async fn from_env() -> Result<Self, FromEnvError> {
        Self::from_lookup(|name| std::env::var(name).ok()).await
    }

    /// [`DoximityAuth::from_env`] with the variables read through `lookup` (a map, a secrets
    /// manager, a test): the configuration, the cookie keys, then discovery, at once.
    ///
    /// ```
    /// # async fn f() {
    /// use std::collections::HashMap;
    /// let vars = HashMap::from([("DOXIMITY_CLIENT_ID", "id"), ("DOXIMITY_CLIENT_SECRET", "secret")]);
    /// let auth = tower_doximity::DoximityAuth::from_lookup(|k| vars.get(k).map(|v| v.to_string())).await;
    /// # }
    /// ```
    pub async fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, FromEnvError> {
        let auth = Self::lazy_from_lookup(lookup)?;
        auth.client.ready().await?;
        Ok(auth)
    }

    /// [`DoximityAuth::from_lookup`] without any I/O: the provider is discovered on first use
    /// ([`Client::lazy`]: single-flight, with a backoff). While it cannot be reached, sign-in
    /// and bearer checks answer 503 with `Retry-After` (gRPC 14); signed-in sessions keep
    /// working, since the layer calls the provider only to sign in, refresh or check a bearer
    /// token.
    pub fn lazy_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, FromEnvError> {
        let config = Config::from_lookup(&lookup)?;
        let keys = lookup("DOXIMITY_COOKIE_KEY").filter(|k| !k.trim().is_empty());
        let auth = Self::new(Client::lazy(config)?);
        Ok(match keys {
            Some(k) => auth.with_cookie_key_base64(&k)?,
            None => auth,
        })
    }

    /// The cookie key (64 bytes). Every instance serving the same users needs the same key.
    /// The same as [`DoximityAuth::with_cookie_keys`] with one key.
    pub fn with_cookie_key(self, key: Key) -> Self {
        self.with_cookie_keys([key])
    }

    /// The cookie key ring, newest first: the first key seals everything new, every key opens
    /// what it sealed; a cookie sealed by a key not in the ring is "not signed in". An empty
    /// ring keeps the current keys.
    ///
    /// Whatever the keys, a cookie opens only for the provider (issuer) and the client id it
    /// was sealed for: the AES key is derived from the cookie key, the issuer and the client id
    /// with HKDF-SHA256.
    pub fn with_cookie_keys(mut self, keys: impl IntoIterator<Item = Key>) -> Self {
        let keys: Vec<Key> = keys.into_iter().collect();
        if !keys.is_empty() {
            self.keys = keys;
            self.key_configured = true;
        }
        self
    }

    /// The cookie keys from `DOXIMITY_COOKIE_KEY`'s format ([`parse_cookie_keys`]): base64
    /// (standard or URL-safe, padded or not) keys of 64 bytes, comma-separated, newest first.
    pub fn with_cookie_key_base64(self, encoded: &str) -> Result<Self, CookieKeyError> {
        Ok(self.with_cookie_keys(parse_cookie_keys(encoded)?))
    }

    /// The login route (default `/auth/doximity/login`).
    pub fn with_login_path(mut self, path: impl Into<String>) -> Self {
        self.routes.login = path.into();
        self
    }

    /// The callback route (default: the redirect URI's path). It must match the redirect
    /// URI registered at Doximity.
    pub fn with_callback_path(mut self, path: impl Into<String>) -> Self {
        self.routes.callback = path.into();
        self
    }

    /// The logout route (default `/auth/doximity/logout`).
    pub fn with_logout_path(mut self, path: impl Into<String>) -> Self {
        self.routes.logout = path.into();
        self
    }

    /// [`Mode::Enforce`] (default) or [`Mode::Optional`].
    ///
    /// # Security
    ///
    /// With [`Mode::Optional`] nothing is protected by the layer: every handler must ask for
    /// a `DoximityUser` (or check the identity) itself.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// A path that needs no session in [`Mode::Enforce`] (exact match, e.g. `/` or
    /// `/healthz`). The identity is still attached when present.
    pub fn add_public_path(mut self, path: impl Into<String>) -> Self {
        self.public_paths.push(path.into());
        self
    }

    /// Requests whose path `is_public` accepts need no session in [`Mode::Enforce`] (prefixes,
    /// patterns: anything [`DoximityAuth::add_public_path`] cannot say). The identity is still
    /// attached when present.
    ///
    /// ```
    /// # fn f(auth: tower_doximity::DoximityAuth) -> tower_doximity::DoximityAuth {
    /// auth.with_public(|path: &str| path.starts_with("/assets/") || path == "/healthz")
    /// # }
    /// ```
    ///
    /// # Security
    ///
    /// Everything the predicate accepts is open to anyone: keep it narrow.
    pub fn with_public(mut self, is_public: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.public.push(Arc::new(is_public));
        self
    }

    /// Keep sessions server-side in `store`; the cookie then carries only the encrypted id.
    pub fn with_store(mut self, store: impl SessionStore) -> Self {
        self.backend = Backend::Server(Arc::new(store));
        self
    }

    /// Keep sessions in encrypted cookies (the default).
    pub fn with_cookie_store(mut self) -> Self {
        self.backend = Backend::Cookie;
        self
    }

    /// How much memory (bytes, by an estimate) each layer may use to remember the sessions it
    /// has opened, so that a cookie a browser sends again is not decrypted again (default
    /// [`DEFAULT_SESSION_CACHE_BYTES`], about 5,000 sessions). With a store across a network
    /// (`RedisStore`) the records it loads are the ones kept, and as much again for the id
    /// cookies; a store in this process (`MemoryStore`, [`SessionStore::in_process`]) gets no
    /// cache. 0 turns it off. Only values that opened under the layer's keys are kept, a
    /// lookup matches the whole sealed value (in constant time), and the store is read, and
    /// the timeouts and sign-outs are checked, on every request as before: see
    /// `docs/security.md`.
    pub fn with_session_cache_bytes(mut self, bytes: u64) -> Self {
        self.session_cache_bytes = bytes;
        self
    }

    /// The idle timeout (default 30 minutes).
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.idle = timeout;
        self
    }

    /// The absolute timeout (default 12 hours).
    pub fn with_absolute_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.absolute = timeout;
        self
    }

    /// Replaces the refusal strategy (any `Fn(&Refusal<'_>) -> Response<Full<Bytes>>`).
    pub fn with_refuse(mut self, refuse: impl Refuse) -> Self {
        self.refuse = Arc::new(refuse);
        self
    }

    /// Whether to fetch the profile at sign-in when `profile:read:basic` was granted
    /// (default true; a failure, a 429 included, never fails the sign-in).
    pub fn with_profile_at_login(mut self, fetch: bool) -> Self {
        self.profile_at_login = fetch;
        self
    }

    /// Bearer mode: a request with `Authorization: Bearer <token>` is authenticated by its
    /// token (checked through Doximity's signed userinfo answer, then cached by the token's
    /// SHA-256), not by cookies; browser sessions keep working alongside. See
    /// [`BearerConfig`] and [`BearerCredential`](crate::BearerCredential) for what a bearer
    /// caller's [`DoximityIdentity`](crate::DoximityIdentity) holds.
    ///
    /// A request whose bearer token is refused is refused (401, gRPC 16) in either
    /// [`Mode`], except on a public path, where it goes on without an identity. When the
    /// provider cannot be asked (rate limit, outage) the answer is 503 (gRPC 14).
    ///
    /// ```
    /// # async fn f(client: doximity::Client) {
    /// use std::time::Duration;
    /// use tower_doximity::{BearerConfig, DoximityAuth};
    ///
    /// let auth = DoximityAuth::new(client)
    ///     .with_bearer(BearerConfig::new().with_ttl(Duration::from_secs(120)));
    /// let layer = auth.layer(); // axum: `Router::layer`; tonic: `Server::builder().layer`
    /// # }
    /// ```
    ///
    /// # Security
    ///
    /// A token revoked at Doximity is still accepted until its cache entry ends
    /// ([`BearerConfig::with_ttl`]). Each token the layer has not seen costs one userinfo call
    /// against the app's hourly Doximity budget, including made-up tokens: each caller has a
    /// budget of such checks ([`BearerConfig::with_caller_budget`]), told apart by its peer
    /// address unless [`BearerConfig::with_caller_key`] says otherwise. Set the caller key
    /// when the server does not put a `std::net::SocketAddr` in the request extensions.
    pub fn with_bearer(mut self, config: BearerConfig) -> Self {
        self.bearer = Some(Arc::new(BearerState::new(config)));
        self
    }

    /// Scopes the login route may add to the configured ones when a request asks for them
    /// (`?scope=…`), for step-up links the app builds itself. The layer's own step-up
    /// redirects (a handler refused for a missing scope) carry a tag made with the cookie key
    /// and need no listing. Any other scope in a login URL is not requested: someone else
    /// may have added it.
    pub fn with_step_up_scopes(mut self, scopes: &doximity::scope::Scopes) -> Self {
        self.step_up_scopes = self.step_up_scopes.union(scopes);
        self
    }

    /// Whether logout also sends `Clear-Site-Data: "cookies"` (default false).
    ///
    /// # Security
    ///
    /// The header wipes every cookie of the site's registrable domain, those of sibling apps
    /// included; the layer already deletes its own cookies. Turn it on only when the app owns
    /// the whole site.
    pub fn with_clear_site_data(mut self, clear: bool) -> Self {
        self.clear_site_data = clear;
        self
    }

    /// The prefix of the layer's cookie names (default `doximity`): the cookies are
    /// `<prefix>-session`, `<prefix>-tokens` and `<prefix>-login` (after `__Host-` when the
    /// redirect URI is https). Give each app its own prefix when two apps share a host name:
    /// cookies do not keep ports apart, so two apps on one host with one prefix would overwrite
    /// each other's sessions. 1 to 32 of `A-Z a-z 0-9 - _ .`, not starting with `__`.
    ///
    /// # Errors
    ///
    /// [`CookiePrefixError`] for any other prefix.
    pub fn with_cookie_prefix(mut self, prefix: &str) -> Result<Self, CookiePrefixError> {
        if !is_valid_prefix(prefix) {
            return Err(CookiePrefixError);
        }
        self.cookie_prefix = prefix.to_owned();
        Ok(self)
    }

    /// The protocol client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A layer for APIs and tonic services that accept only `Authorization: Bearer` tokens:
    /// no auth routes, no cookies read or written (so no cookie key is needed, and none is
    /// warned about). Bearer mode uses the [`BearerConfig`] given to
    /// [`DoximityAuth::with_bearer`], or the default one.
    ///
    /// ```
    /// # async fn f(client: doximity::Client) {
    /// let layer = tower_doximity::DoximityAuth::new(client).bearer_layer();
    /// // tonic::transport::Server::builder().layer(layer).add_service(..)
    /// # }
    /// ```
    pub fn bearer_layer(&self) -> DoximityLayer {
        let mut auth = self.clone();
        if auth.bearer.is_none() {
            auth.bearer = Some(Arc::new(BearerState::new(BearerConfig::new())));
        }
        auth.bearer_only = true;
        auth.key_configured = true;
        auth.layer()
    }

    /// The layer. Every layer made from one `DoximityAuth` (and its clones) shares the
    /// refresh single-flight and the background tasks.
    pub fn layer(&self) -> DoximityLayer {
        if !self.key_configured {
            tracing::warn!(
                "no cookie key configured (DOXIMITY_COOKIE_KEY): using a random one; sessions \
                 will not survive a restart nor work across instances"
            );
        }
        let config = self.client.config();
        let secure = config.is_https();
        let binding = Binding {
            issuer: config.issuer(),
            client_id: config.client_id(),
        };
        // A store across a network gets a cache of what it returns; a store in process holds
        // every session in memory already.
        let remote_cache = match &self.backend {
            Backend::Server(store) if !store.in_process() => self.session_cache_bytes,
            _ => 0,
        };
        let env = SessionEnv {
            client: self.client.clone(),
            codec: CookieCodec::new(&self.keys, &self.cookie_prefix, secure, binding),
        };
        DoximityLayer {
            shared: Arc::new(Shared {
                routes: self.routes.clone(),
                sessions: Sessions {
                    env: Arc::new(env),
                    backend: self.backend.clone(),
                    timeouts: self.timeouts,
                    opened_cookies: OpenedCookies::new(match &self.backend {
                        Backend::Cookie => self.session_cache_bytes,
                        Backend::Server(_) => 0,
                    }),
                    opened_records: OpenedCookies::new(remote_cache),
                    opened_ids: OpenedCookies::new(remote_cache),
                },
                origin: config.redirect_uri().origin().ascii_serialization(),
                audit: SessionHasher::new(crate::cookies::audit_key(&self.keys, binding)),
                links: Links {
                    login: self.routes.login.clone(),
                    step_up_key: crate::cookies::step_up_key(&self.keys, binding),
                },
                step_up_scopes: self.step_up_scopes.clone(),
                clear_site_data: self.clear_site_data,
                ledger: Ledger {
                    used_states: self.used_states.clone(),
                    signed_out: self.signed_out.clone(),
                    users_signed_out: self.users_signed_out.clone(),
                },
                mode: self.mode,
                refuse: self.refuse.clone(),
                flights: self.flights.clone(),
                background: self.background.clone(),
                public_paths: self.public_paths.clone().into(),
                public: self.public.clone().into(),
                bearer_only: self.bearer_only,
                profile_at_login: self.profile_at_login,
                bearer: self.bearer.clone(),
            }),
        }
    }

    /// Ends every session of user `sub` that exists now, on every layer made from this
    /// `DoximityAuth`: an operator's answer to a compromised account. With a server store the
    /// sessions are deleted there ([`SessionStore::delete_user`], so every instance sharing a
    /// Redis store sees it at once); in every mode, sessions of `sub` created up to now are
    /// refused by this process until the absolute timeout has passed, which covers the
    /// cookie store, where nothing is kept server-side. The user can sign in again. Returns how
    /// many stored sessions were deleted (0 for the cookie store). Logged as an audit event.
    /// The tokens are not revoked at the provider.
    ///
    /// # Errors
    ///
    /// [`AuthError::Store`](crate::AuthError::Store) when the store fails; the in-process refusal is in place anyway.
    pub async fn sign_out_user(&self, sub: &str) -> Result<usize, crate::AuthError> {
        let now = self.client.clock().epoch_secs();
        let absolute = crate::session::secs(self.timeouts.absolute);
        self.users_signed_out.upsert(
            ExpiringSet::key(sub.as_bytes()),
            now.saturating_add(absolute),
            now,
        );
        let deleted = match &self.backend {
            Backend::Server(store) => store
                .delete_user(sub)
                .await
                .map_err(|e| crate::AuthError::Store(Arc::new(e)))?,
            Backend::Cookie => 0,
        };
        crate::audit::emit(
            crate::audit::Event::SignOut,
            &crate::audit::Origin::none(),
            &crate::audit::Record {
                sub: Some(sub),
                by: Some("operator"),
                reason: Some("everywhere"),
                ..crate::audit::Record::default()
            },
        );
        Ok(deleted)
    }

    /// Waits for background work (token revocation at logout) to finish: call it on graceful
    /// shutdown.
    pub async fn drain(&self) {
        self.background.drain().await;
    }
}
