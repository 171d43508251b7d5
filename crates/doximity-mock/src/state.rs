//! The provider's mutable state, shared by the handle and every request.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::faults::{Endpoint, Fault};
use crate::keys::{KeySet, random_token};
use crate::model::{ClientRegistration, Clinician};
use crate::routes::authorize::AuthorizeRequest;

/// How long an authorization code lives, in seconds.
pub(crate) const CODE_TTL: i64 = 120;
/// How long a rendered authorization page stays usable, in seconds.
pub(crate) const PENDING_TTL: i64 = 600;
/// The length of a rate-limit window, in seconds.
pub(crate) const RATE_WINDOW: i64 = 3600;

/// Everything the server tasks share with the [`MockProvider`](crate::MockProvider) handle.
pub(crate) struct Shared {
    /// `https://127.0.0.1:PORT`, no trailing slash.
    pub(crate) issuer: String,
    /// The base of the pages a browser opens (authorization, sign-out, `check_session_iframe`,
    /// share, photos): the issuer, or `http://127.0.0.1:OTHER_PORT` when they are also served
    /// over plain HTTP. No trailing slash.
    pub(crate) browser_base: String,
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(issuer: String, browser_base: String, state: State) -> Self {
        Self {
            issuer,
            browser_base,
            state: Mutex::new(state),
        }
    }

    /// Locks the state. A poisoned lock is recovered: the state stays usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An authorization code waiting to be exchanged.
pub(crate) struct AuthCode {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) sub: String,
    pub(crate) scope: Vec<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) code_challenge: String,
    pub(crate) auth_time: i64,
    /// The session's authentication level when the code was issued.
    pub(crate) acr: u8,
    pub(crate) expires_at: i64,
    /// Set once the code has been presented by its client.
    pub(crate) used: bool,
    /// The grant the code's exchange created, revoked if the code is replayed.
    pub(crate) grant: Option<u64>,
}

/// One user's authorization of one client: the root of a chain of refreshes.
pub(crate) struct Grant {
    pub(crate) client_id: String,
    pub(crate) sub: String,
    /// The scope originally granted; refreshes may only narrow it.
    pub(crate) scope: Vec<String>,
    pub(crate) auth_time: i64,
    /// The authentication level the grant's ID tokens carry in `acr`.
    pub(crate) acr: u8,
}

/// An access token and the refresh token issued with it. They die together.
pub(crate) struct TokenPair {
    pub(crate) grant: u64,
    pub(crate) access_token: String,
    pub(crate) refresh_token: String,
    pub(crate) scope: Vec<String>,
    pub(crate) access_expires_at: i64,
    pub(crate) revoked: bool,
    /// `cnf.jkt`: the thumbprint of the DPoP key both tokens are bound to, if any.
    pub(crate) jkt: Option<String>,
}

/// Which half of a pair a token string is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Access,
    Refresh,
}

/// A browser's signed-in session at the provider.
pub(crate) struct Session {
    pub(crate) sub: String,
    /// The OpenID Connect Session Management browser state (readable by the iframe).
    pub(crate) browser_state: String,
    /// When the person last authenticated (Unix seconds, provider clock).
    pub(crate) auth_time: i64,
    /// The level (`acr`, 1..=3) the person last authenticated at.
    pub(crate) acr: u8,
    /// Clients this user approved during this session (no page needed again).
    pub(crate) approved_clients: HashSet<String>,
}

/// An authorization page that was shown and awaits Approve or Deny.
pub(crate) struct PendingAuthorization {
    pub(crate) request: AuthorizeRequest,
    /// The value of the `mock_op_csrf` cookie the POST must come with.
    pub(crate) browser_binding: String,
    pub(crate) expires_at: i64,
}

/// A client's rate-limit window.
pub(crate) struct Bucket {
    pub(crate) window_start: i64,
    pub(crate) used: u32,
}

/// The outcome of a rate-limit check.
pub(crate) struct RateStatus {
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    pub(crate) reset: i64,
    pub(crate) exceeded: bool,
}

/// The provider's whole mutable state.
pub(crate) struct State {
    pub(crate) clients: HashMap<String, ClientRegistration>,
    pub(crate) clinicians: Vec<Clinician>,
    pub(crate) auto_approve: Option<String>,
    pub(crate) faults: HashSet<Fault>,
    pub(crate) clock_offset: i64,
    pub(crate) keys: KeySet,
    pub(crate) counters: HashMap<Endpoint, u64>,
    pub(crate) rate_limit: u32,
    pub(crate) buckets: HashMap<String, Bucket>,
    pub(crate) access_token_ttl: i64,
    pub(crate) legacy_client_secret_post: bool,
    pub(crate) codes: HashMap<String, AuthCode>,
    pub(crate) grants: HashMap<u64, Grant>,
    pub(crate) pairs: HashMap<u64, TokenPair>,
    pub(crate) tokens: HashMap<String, (TokenKind, u64)>,
    /// Keyed by the value of the `mock_op_session` cookie.
    pub(crate) sessions: HashMap<String, Session>,
    /// Keyed by the page's CSRF token.
    pub(crate) pending: HashMap<String, PendingAuthorization>,
    /// Device authorizations (RFC 8628).
    pub(crate) devices: crate::routes::device::Devices,
    /// DPoP nonces and the replay cache.
    pub(crate) dpop: crate::dpop::DpopState,
    next_id: u64,
}

/// The settings a [`State`] starts from.
pub(crate) struct StateConfig {
    pub(crate) demo_client: ClientRegistration,
    pub(crate) auto_approve: Option<String>,
    pub(crate) rate_limit: u32,
    pub(crate) access_token_ttl: i64,
    pub(crate) legacy_client_secret_post: bool,
    pub(crate) clinicians: Vec<Clinician>,
    pub(crate) require_dpop_nonce: bool,
}

impl State {
    pub(crate) fn new(config: StateConfig, keys: KeySet) -> Self {
        let mut clients = HashMap::new();
        clients.insert(config.demo_client.client_id.clone(), config.demo_client);
        Self {
            clients,
            clinicians: config.clinicians,
            auto_approve: config.auto_approve,
            faults: HashSet::new(),
            clock_offset: 0,
            keys,
            counters: HashMap::new(),
            rate_limit: config.rate_limit,
            buckets: HashMap::new(),
            access_token_ttl: config.access_token_ttl,
            legacy_client_secret_post: config.legacy_client_secret_post,
            codes: HashMap::new(),
            grants: HashMap::new(),
            pairs: HashMap::new(),
            tokens: HashMap::new(),
            sessions: HashMap::new(),
            pending: HashMap::new(),
            devices: crate::routes::device::Devices::default(),
            dpop: crate::dpop::DpopState {
                require_nonce: config.require_dpop_nonce,
                ..Default::default()
            },
            next_id: 1,
        }
    }

    /// The provider's clock: Unix seconds plus the configured offset.
    pub(crate) fn now(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        real.saturating_add(self.clock_offset)
    }

    pub(crate) fn has_fault(&self, fault: Fault) -> bool {
        self.faults.contains(&fault)
    }

    /// The status of the first active fault `pick` recognises.
    pub(crate) fn fault_status(&self, pick: impl Fn(Fault) -> Option<u16>) -> Option<u16> {
        self.faults.iter().copied().find_map(pick)
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(crate) fn clinician(&self, sub: &str) -> Option<&Clinician> {
        self.clinicians.iter().find(|c| c.sub == sub)
    }

    /// Checks (and, when `consume`, spends one request of) a client's hourly budget.
    /// The window starts at the bucket's first counted request.
    pub(crate) fn rate(&mut self, bucket: &str, consume: bool) -> RateStatus {
        let now = self.now();
        let limit = self.rate_limit;
        let exhausted = self.has_fault(Fault::RateLimitExhausted);
        // `RateLimitNearlyExhausted` caps what is left at one request.
        let cap = if self.has_fault(Fault::RateLimitNearlyExhausted) {
            1
        } else {
            u32::MAX
        };
        if consume && !self.buckets.contains_key(bucket) {
            self.buckets.insert(
                bucket.to_owned(),
                Bucket {
                    window_start: now,
                    used: 0,
                },
            );
        }
        let Some(b) = self.buckets.get_mut(bucket) else {
            return RateStatus {
                limit,
                remaining: if exhausted { 0 } else { limit.min(cap) },
                reset: now + RATE_WINDOW,
                exceeded: exhausted,
            };
        };
        if now >= b.window_start + RATE_WINDOW || now < b.window_start {
            b.window_start = now;
            b.used = 0;
        }
        let exceeded = exhausted || b.used >= limit;
        if consume && !exceeded {
            b.used += 1;
        }
        RateStatus {
            limit,
            remaining: if exhausted {
                0
            } else {
                limit.saturating_sub(b.used).min(cap)
            },
            reset: b.window_start + RATE_WINDOW,
            exceeded,
        }
    }

    /// Records a new grant and returns its id.
    pub(crate) fn new_grant(&mut self, grant: Grant) -> u64 {
        let id = self.next_id();
        self.grants.insert(id, grant);
        id
    }

    /// Issues a fresh access/refresh pair under `grant`, bound to the DPoP key `jkt` when
    /// given; returns the pair id.
    pub(crate) fn issue_pair(
        &mut self,
        grant: u64,
        scope: Vec<String>,
        jkt: Option<String>,
    ) -> u64 {
        let id = self.next_id();
        let access_token = random_token();
        let refresh_token = random_token();
        self.tokens
            .insert(access_token.clone(), (TokenKind::Access, id));
        self.tokens
            .insert(refresh_token.clone(), (TokenKind::Refresh, id));
        let access_expires_at = self.now() + self.access_token_ttl;
        self.pairs.insert(
            id,
            TokenPair {
                grant,
                access_token,
                refresh_token,
                scope,
                access_expires_at,
                revoked: false,
                jkt,
            },
        );
        id
    }

    pub(crate) fn revoke_pair(&mut self, pair: u64) {
        if let Some(p) = self.pairs.get_mut(&pair) {
            p.revoked = true;
        }
    }

    /// Revokes every pair issued under `grant`.
    pub(crate) fn revoke_grant(&mut self, grant: u64) {
        for pair in self.pairs.values_mut().filter(|p| p.grant == grant) {
            pair.revoked = true;
        }
    }

    /// Revokes every token of a user.
    pub(crate) fn revoke_all_for(&mut self, sub: &str) {
        let grants: HashSet<u64> = self
            .grants
            .iter()
            .filter(|(_, g)| g.sub == sub)
            .map(|(id, _)| *id)
            .collect();
        for pair in self
            .pairs
            .values_mut()
            .filter(|p| grants.contains(&p.grant))
        {
            pair.revoked = true;
        }
    }

    /// A token's kind and pair id, whatever its state.
    pub(crate) fn token(&self, token: &str) -> Option<(TokenKind, u64)> {
        self.tokens.get(token).copied()
    }

    /// The pair and grant of a live (known, unrevoked, unexpired) access token.
    pub(crate) fn live_access(&self, token: &str) -> Option<(&TokenPair, &Grant)> {
        let (kind, pair_id) = self.token(token)?;
        if kind != TokenKind::Access {
            return None;
        }
        let pair = self.pairs.get(&pair_id)?;
        if pair.revoked || self.now() >= pair.access_expires_at {
            return None;
        }
        let grant = self.grants.get(&pair.grant)?;
        Some((pair, grant))
    }

    /// The client an access token was issued to, live or not (for rate-limit buckets).
    pub(crate) fn token_client(&self, token: &str) -> Option<String> {
        let (_, pair_id) = self.token(token)?;
        let pair = self.pairs.get(&pair_id)?;
        self.grants.get(&pair.grant).map(|g| g.client_id.clone())
    }

    /// Creates a session for a person who just authenticated at level `acr`; returns its
    /// cookie value.
    pub(crate) fn new_session(&mut self, sub: &str, acr: u8) -> String {
        let id = random_token();
        let now = self.now();
        self.sessions.insert(
            id.clone(),
            Session {
                sub: sub.to_owned(),
                browser_state: random_token(),
                auth_time: now,
                acr,
                approved_clients: HashSet::new(),
            },
        );
        id
    }

    /// Records that the person of a session authenticated again, now, at level `acr`.
    /// [`Fault::StaleAuthTime`] keeps the old `auth_time`.
    pub(crate) fn reauthenticate(&mut self, session_id: &str, acr: u8) {
        let now = self.now();
        let stale = self.has_fault(Fault::StaleAuthTime);
        if let Some(session) = self.sessions.get_mut(session_id) {
            if !stale {
                session.auth_time = now;
            }
            session.acr = acr;
        }
    }

    /// Drops expired codes and pages so the maps do not grow without bound.
    pub(crate) fn prune(&mut self) {
        let now = self.now();
        self.codes
            .retain(|_, c| now < c.expires_at + CODE_TTL || c.grant.is_some());
        self.pending.retain(|_, p| now < p.expires_at);
    }
}
