//! The session: what a signed-in request carries, the timeout and refresh rules (pure), and
//! [`DoximityIdentity`], the handle the layer puts in the request extensions.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use doximity::claims::Acr;
use doximity::scope::{ProfileReadBasic, Scope, Scopes};
use doximity::secret::AccessToken;
use doximity::{IdTokenClaims, TokenSet, UserInfo, VerifiedAccessToken};
use http::HeaderMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use doximity::Client;

use crate::cookies::{CookieCodec, SealedValue, find_session};
use crate::error::AuthError;
use crate::opened::OpenedCookies;

/// The hot part of a session: read on every request (from the identity cookie, or from the
/// store), small, and free of tokens. The ID-token claims are not in it: they ride with the
/// tokens (the tokens cookie, or the store), which have them already. A cached profile rides
/// along but, read from the identity cookie, stays JSON text until something asks for it
/// ([`Lazy`]): a request that only needs `sub`, the scopes and the timestamps does not parse
/// it.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    /// The session id: 128 random bits, base64url. Keys the store and the refresh
    /// single-flight.
    #[serde(rename = "i")]
    pub(crate) id: String,
    /// Bumped by every refresh; a request carrying an older revision is upgraded.
    #[serde(rename = "r")]
    pub(crate) rev: u64,
    /// When the user signed in (epoch seconds): the absolute timeout counts from here.
    #[serde(rename = "c")]
    pub(crate) created_at: i64,
    /// The last request seen (epoch seconds, updated at most once a minute).
    #[serde(rename = "l")]
    pub(crate) last_seen: i64,
    /// When the current access token was issued.
    #[serde(rename = "t")]
    pub(crate) tokens_at: i64,
    /// When the current access token expires.
    #[serde(rename = "e")]
    pub(crate) expires_at: Option<i64>,
    /// Whether there is a refresh token.
    #[serde(rename = "h")]
    pub(crate) refreshable: bool,
    #[serde(rename = "s")]
    pub(crate) scopes: Scopes,
    /// The user's `sub` (the ID token's).
    #[serde(rename = "u")]
    pub(crate) sub: String,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub(crate) profile: Option<Lazy<UserInfo>>,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("id", &"[redacted]")
            .field("rev", &self.rev)
            .field("sub", &self.sub)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The identity cookie's plaintext: the record in postcard (a compact binary serde format:
/// about half the bytes of JSON, and decoded without a text scan), strings borrowed from the
/// opened cookie while it is decoded. The cached profile rides as its JSON text, parsed only on
/// first use.
#[derive(Serialize, Deserialize)]
struct CookieWire<'a> {
    /// [`CookieWire::VERSION`]; a cookie of another format is no session.
    version: u8,
    id: &'a str,
    rev: u64,
    created_at: i64,
    last_seen: i64,
    tokens_at: i64,
    expires_at: Option<i64>,
    refreshable: bool,
    /// Space-separated, as on the wire.
    #[serde(borrow)]
    scopes: Cow<'a, str>,
    sub: &'a str,
    #[serde(borrow)]
    profile: Option<Cow<'a, str>>,
}

impl CookieWire<'_> {
    const VERSION: u8 = 1;
}

impl SessionRecord {
    pub(crate) fn new(id: String, tokens: &TokenSet, now: i64) -> Self {
        Self {
            id,
            rev: 0,
            created_at: now,
            last_seen: now,
            tokens_at: now,
            expires_at: tokens.expires_at,
            refreshable: tokens.refresh_token.is_some(),
            scopes: tokens.scopes.clone(),
            sub: tokens.claims.sub.clone(),
            profile: None,
        }
    }

    /// The record after a refresh produced `tokens`.
    pub(crate) fn refreshed(&self, tokens: &TokenSet, now: i64) -> Self {
        Self {
            rev: self.rev + 1,
            tokens_at: now,
            last_seen: now,
            expires_at: tokens.expires_at,
            refreshable: tokens.refresh_token.is_some(),
            scopes: tokens.scopes.clone(),
            sub: tokens.claims.sub.clone(),
            ..self.clone()
        }
    }

    /// The identity cookie's plaintext ([`CookieWire`]).
    pub(crate) fn to_cookie(&self) -> Vec<u8> {
        let wire = CookieWire {
            version: CookieWire::VERSION,
            id: &self.id,
            rev: self.rev,
            created_at: self.created_at,
            last_seen: self.last_seen,
            tokens_at: self.tokens_at,
            expires_at: self.expires_at,
            refreshable: self.refreshable,
            scopes: Cow::Borrowed(self.scopes.as_str()),
            sub: &self.sub,
            profile: self.profile.as_ref().and_then(Lazy::json),
        };
        postcard::to_allocvec(&wire).unwrap_or_default()
    }

    /// Reads what [`SessionRecord::to_cookie`] wrote, leaving the profile as JSON text until
    /// it is read. `None` for anything else.
    pub(crate) fn from_cookie(bytes: &[u8]) -> Option<Self> {
        let (w, rest) = postcard::take_from_bytes::<CookieWire<'_>>(bytes).ok()?;
        if w.version != CookieWire::VERSION || !rest.is_empty() {
            return None;
        }
        Some(Self {
            id: w.id.to_owned(),
            rev: w.rev,
            created_at: w.created_at,
            last_seen: w.last_seen,
            tokens_at: w.tokens_at,
            expires_at: w.expires_at,
            refreshable: w.refreshable,
            scopes: w.scopes.parse().ok()?,
            sub: w.sub.to_owned(),
            profile: w.profile.as_deref().map(Lazy::raw),
        })
    }

    /// [`from_cookies_in`](Self::from_cookies_in) without a cache: what the fuzz targets and
    /// the benchmarks' decoder read.
    #[cfg(any(feature = "fuzzing", feature = "bench"))]
    pub(crate) fn from_cookies(
        codec: &CookieCodec,
        headers: &HeaderMap,
    ) -> (Option<Self>, SealedValue) {
        Self::from_cookies_in(codec, &OpenedCookies::new(0), headers)
    }

    /// The cookie store's session as every signed-in request reads it: in one pass over the
    /// `Cookie` headers, the identity cookie opened and decoded (or answered from `memo` when
    /// it has opened the same cookie before), and the tokens cookie found but left sealed.
    pub(crate) fn from_cookies_in(
        codec: &CookieCodec,
        memo: &OpenedCookies<Self>,
        headers: &HeaderMap,
    ) -> (Option<Self>, SealedValue) {
        let names = &codec.names;
        find_session(headers, names.session(), names.tokens(), |raw| {
            memo.get_or_open(raw, |raw| {
                codec.open_with(names.session(), raw, Self::from_cookie)
            })
        })
    }

    /// The cached profile, if any (parsed on first use when read from a cookie).
    pub(crate) fn profile(&self) -> Option<&UserInfo> {
        self.profile.as_ref().map(|p| p.get_or(UserInfo::default))
    }

    /// The absolute end of the session, epoch seconds.
    pub(crate) fn deadline(&self, timeouts: Timeouts) -> i64 {
        self.created_at.saturating_add(secs(timeouts.absolute))
    }
}

/// A value that is either parsed, or still the JSON text it was read from (parsed once, on
/// first use). Serialises as the value; deserialises (in a store's format) to the value.
///
/// The value is boxed: a `UserInfo` inline made every `SessionRecord` 472 bytes, most of them
/// empty, and the hot path moves and clones records (`docs/benchmarks.md`).
#[derive(Clone)]
pub(crate) struct Lazy<T> {
    raw: Option<Box<str>>,
    value: OnceLock<Box<T>>,
}

impl<T: DeserializeOwned> Lazy<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            raw: None,
            value: OnceLock::from(Box::new(value)),
        }
    }

    /// A value still in its JSON text.
    fn raw(json: &str) -> Self {
        Self {
            raw: Some(json.into()),
            value: OnceLock::new(),
        }
    }

    /// The value, parsing the JSON text on first use; `fallback` when it does not parse.
    fn get_or(&self, fallback: impl FnOnce() -> T) -> &T {
        self.value.get_or_init(|| {
            Box::new(
                self.raw
                    .as_deref()
                    .and_then(|raw| serde_json::from_str(raw).ok())
                    .unwrap_or_else(fallback),
            )
        })
    }
}

impl<T: Serialize> Lazy<T> {
    /// The JSON text: as read, or the value written out. `None` only if the value cannot be
    /// written as JSON.
    fn json(&self) -> Option<Cow<'_, str>> {
        match (&self.raw, self.value.get()) {
            (Some(raw), _) => Some(Cow::Borrowed(raw)),
            (None, Some(value)) => serde_json::to_string(value).ok().map(Cow::Owned),
            (None, None) => None,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Serialize for Lazy<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.value.get(), &self.raw) {
            (Some(value), _) => value.serialize(serializer),
            (None, Some(raw)) => match serde_json::from_str::<T>(raw) {
                Ok(value) => value.serialize(serializer),
                Err(e) => Err(serde::ser::Error::custom(e)),
            },
            (None, None) => Err(serde::ser::Error::custom("empty lazy value")),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lazy<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Self::new)
    }
}

/// A fresh session id: 128 random bits, base64url.
pub(crate) fn new_session_id() -> String {
    use base64::Engine;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The two session timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub(crate) idle: Duration,
    pub(crate) absolute: Duration,
}

/// What the timeout rules say about a session at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Alive; `touch` when `last_seen` should be written back.
    Live { touch: bool },
    /// Past the idle or the absolute timeout.
    Expired,
}

/// The timeout rules (pure): idle since `last_seen`, absolute since `created_at`. `last_seen`
/// is written back at most every `min(60 s, idle / 4)` so the cookie is not re-sealed on
/// every request.
pub(crate) fn liveness(record: &SessionRecord, now: i64, timeouts: Timeouts) -> Liveness {
    let idle = secs(timeouts.idle);
    if now >= record.deadline(timeouts) || now >= record.last_seen.saturating_add(idle) {
        return Liveness::Expired;
    }
    // A session from the future (clock skew between instances, or a forged clock) is
    // treated as fresh but not extended.
    let touch_every = (idle / 4).clamp(1, 60);
    Liveness::Live {
        touch: now.saturating_sub(record.last_seen) >= touch_every,
    }
}

/// The refresh rule (pure): refresh once the access token is within `skew` of its expiry,
/// where `skew = min(60 s, lifetime / 4)`, so a short-lived token is not refreshed on every
/// request.
pub(crate) fn needs_refresh(expires_at: Option<i64>, issued_at: i64, now: i64) -> bool {
    let Some(expires_at) = expires_at else {
        return false;
    };
    let lifetime = expires_at.saturating_sub(issued_at).max(0);
    let skew = (lifetime / 4).min(60);
    now >= expires_at.saturating_sub(skew)
}

/// Where the tokens of a session are.
#[derive(Clone)]
pub(crate) enum TokenSource {
    /// Still sealed in the tokens cookie (cookie store): opened only when needed.
    Sealed(SealedValue),
    /// Still sealed as a server store keeps them: opened only when needed.
    Stored(Arc<str>),
    /// Already loaded (just signed in or refreshed).
    Open(Arc<TokenSet>),
}

/// Who a request comes from, as the layer verified it.
#[derive(Clone)]
pub(crate) enum Principal {
    /// A signed-in session (cookies, or a server store).
    Session(Arc<SessionPrincipal>),
    /// An `Authorization: Bearer` access token the provider vouched for (its signed userinfo
    /// answer), checked at `validated_at`.
    AccessToken {
        token: Arc<VerifiedAccessToken>,
        validated_at: i64,
    },
    /// An `Authorization: Bearer` ID token that verified (signature, issuer, audience,
    /// expiry), checked at `validated_at`.
    IdToken {
        claims: Arc<IdTokenClaims>,
        validated_at: i64,
    },
}

/// A session's part of an identity.
pub(crate) struct SessionPrincipal {
    record: SessionRecord,
    tokens: TokenSource,
    /// The sealed tokens, opened at most once per request, on first use.
    opened: OnceLock<Option<Arc<TokenSet>>>,
    /// A newer record to persist after the response (a profile fetched on demand).
    update: Mutex<Option<SessionRecord>>,
}

/// The signed-in user, as the layer puts it in the request extensions: a session, or a bearer
/// token the provider vouched for. Cheap to clone.
///
/// A session's `sub`, scopes, timestamps and cached profile come from its hot record (the small
/// identity cookie, or the store's record); its tokens are decrypted only when
/// [`DoximityIdentity::claims`], [`DoximityIdentity::access_token`],
/// [`DoximityIdentity::session_state`] or a profile fetch first needs them, at most once per
/// request. Its `Debug` shows no token and no session id.
#[derive(Clone)]
pub struct DoximityIdentity {
    principal: Principal,
    env: Arc<SessionEnv>,
}

impl std::fmt::Debug for DoximityIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.principal {
            Principal::Session(_) => "session",
            Principal::AccessToken { .. } => "bearer access token",
            Principal::IdToken { .. } => "bearer ID token",
        };
        f.debug_struct("DoximityIdentity")
            .field("sub", &self.sub())
            .field("kind", &kind)
            .field("scopes", &self.scopes())
            .field("expires_at", &self.expires_at())
            .finish_non_exhaustive()
    }
}

impl DoximityIdentity {
    /// A session's identity.
    pub(crate) fn session(
        record: SessionRecord,
        tokens: TokenSource,
        env: Arc<SessionEnv>,
    ) -> Self {
        Self {
            principal: Principal::Session(Arc::new(SessionPrincipal {
                record,
                tokens,
                opened: OnceLock::new(),
                update: Mutex::new(None),
            })),
            env,
        }
    }

    /// A bearer token's identity.
    pub(crate) fn bearer(principal: Principal, env: Arc<SessionEnv>) -> Self {
        Self { principal, env }
    }

    /// The user's Doximity id (`sub`).
    pub fn sub(&self) -> &str {
        match &self.principal {
            Principal::Session(s) => &s.record.sub,
            Principal::AccessToken { token, .. } => token.sub(),
            Principal::IdToken { claims, .. } => &claims.sub,
        }
    }

    /// The scopes granted: a session's, or what a bearer access token's userinfo answer
    /// proves (`openid` for a bearer ID token).
    pub fn scopes(&self) -> &Scopes {
        static OPENID: OnceLock<Scopes> = OnceLock::new();
        match &self.principal {
            Principal::Session(s) => &s.record.scopes,
            Principal::AccessToken { token, .. } => token.scopes(),
            Principal::IdToken { .. } => OPENID.get_or_init(Scopes::openid),
        }
    }

    /// Whether the session was granted scope `S`.
    pub fn has_scope<S: Scope>(&self) -> bool {
        self.scopes().contains(S::NAME)
    }

    /// Whether this identity comes from a bearer token (`Authorization: Bearer`) rather than a
    /// session.
    pub fn is_bearer(&self) -> bool {
        !matches!(self.principal, Principal::Session(_))
    }

    /// The verified ID-token claims: a session's latest ID token, or a bearer ID token. They
    /// ride with a session's tokens, so the first call in a request decrypts them, like
    /// [`DoximityIdentity::access_token`]; no provider call. `None` for a bearer access token
    /// (no ID token was presented), and for a session whose tokens cannot be read back (a
    /// tokens cookie the browser replaced).
    pub fn claims(&self) -> Option<&IdTokenClaims> {
        match &self.principal {
            Principal::Session(_) => self.opened_tokens().map(|t| &t.claims),
            Principal::AccessToken { .. } => None,
            Principal::IdToken { claims, .. } => Some(claims),
        }
    }

    /// The authentication context class of the sign-in (the ID token's `acr`; Doximity sends
    /// a level, 1 to 3). Decrypts a session's tokens like [`DoximityIdentity::claims`]. `None`
    /// when the provider sent none, and for a bearer access token (no ID token).
    pub fn acr(&self) -> Option<&Acr> {
        self.claims()?.acr.as_ref()
    }

    /// When the user last authenticated at the provider (the ID token's `auth_time`), epoch
    /// seconds; `None` like [`DoximityIdentity::acr`].
    pub fn auth_time(&self) -> Option<i64> {
        self.claims()?.auth_time
    }

    /// Whether the sign-in's `acr` satisfies `wanted` ([`Acr::satisfies`]: the same value, or
    /// a level at least as high). `false` without an `acr`.
    pub fn satisfies_acr(&self, wanted: &str) -> bool {
        self.acr().is_some_and(|acr| acr.satisfies(wanted))
    }

    /// Whether the user authenticated at most `max_age` ago (plus the client's clock leeway,
    /// as when the sign-in's `auth_time` was checked against `max_age`), by the layer's clock.
    /// `false` without an `auth_time`, or with one in the future.
    pub fn authenticated_within(&self, max_age: Duration) -> bool {
        let Some(auth_time) = self.auth_time() else {
            return false;
        };
        let now = self.env.now();
        let leeway = secs(self.env.client.config().leeway());
        auth_time <= now.saturating_add(leeway)
            && now.saturating_sub(auth_time) <= secs(max_age).saturating_add(leeway)
    }

    /// When the access token expires (a bearer ID token: when it expires), epoch seconds.
    pub fn expires_at(&self) -> Option<i64> {
        match &self.principal {
            Principal::Session(s) => s.record.expires_at,
            Principal::AccessToken { token, .. } => token.expires_at(),
            Principal::IdToken { claims, .. } => Some(claims.exp),
        }
    }

    /// When the user signed in (a bearer token: when the layer last checked it), epoch
    /// seconds.
    pub fn signed_in_at(&self) -> i64 {
        match &self.principal {
            Principal::Session(s) => s.record.created_at,
            Principal::AccessToken { validated_at, .. }
            | Principal::IdToken { validated_at, .. } => *validated_at,
        }
    }

    /// The profile, if it is already at hand (no provider call): fetched earlier in the
    /// session, or the userinfo answer that vouched for a bearer access token when its scopes
    /// include the profile.
    pub fn cached_profile(&self) -> Option<UserInfo> {
        match &self.principal {
            Principal::Session(s) => {
                if let Some(p) = s
                    .update
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .as_ref()
                    .and_then(|r| r.profile().cloned())
                {
                    return Some(p);
                }
                s.record.profile().cloned()
            }
            Principal::AccessToken { token, .. } => token
                .scopes()
                .contains(ProfileReadBasic::NAME)
                .then(|| token.userinfo().clone()),
            Principal::IdToken { .. } => None,
        }
    }

    /// The access token, for calling Doximity APIs. Decrypts a session's tokens; no provider
    /// call. [`AuthError::Unauthenticated`] for a bearer ID token (no access token).
    ///
    /// # Security
    ///
    /// As sensitive as a password: do not log it, do not send it to the browser.
    pub fn access_token(&self) -> Result<AccessToken, AuthError> {
        match &self.principal {
            Principal::Session(_) => Ok(self.tokens()?.access_token.clone()),
            Principal::AccessToken { token, .. } => Ok(token.access_token().clone()),
            Principal::IdToken { .. } => Err(AuthError::Unauthenticated),
        }
    }

    /// OpenID Connect Session Management's `session_state`, as the sign-in callback received
    /// it, for the session-check iframe (`doximity-share`'s `SessionCheck`). `None` when the
    /// provider sent none (Doximity sends it only with the `openid` scope), and for bearer
    /// tokens. Decrypts a session's tokens like [`DoximityIdentity::access_token`]; no
    /// provider call.
    pub fn session_state(&self) -> Option<String> {
        match &self.principal {
            Principal::Session(_) => self.tokens().ok()?.session_state.clone(),
            _ => None,
        }
    }

    /// The userinfo profile (needs `profile:read:basic`). Fetched from the provider at most
    /// once per session and then kept in the session; a session that already has it makes no
    /// call. A provider failure (a 429 included) is an error for this call only: the session
    /// stays signed in.
    pub async fn profile(&self) -> Result<UserInfo, AuthError> {
        if let Some(p) = self.cached_profile() {
            return Ok(p);
        }
        if !self.has_scope::<ProfileReadBasic>() {
            return Err(AuthError::InsufficientScope {
                missing: ProfileReadBasic::NAME.to_owned(),
                required: self
                    .scopes()
                    .union(&Scopes::openid())
                    .union(&scopes_of(ProfileReadBasic::NAME)),
            });
        }
        let Principal::Session(session) = &self.principal else {
            // A bearer access token with the scope has its profile cached already.
            return Err(AuthError::Unauthenticated);
        };
        let tokens = self.tokens()?;
        let call = self.env.client.userinfo(&*tokens, self.sub());
        let profile = crate::metrics::timed("userinfo", call)
            .await
            .map_err(|e| AuthError::Login(Arc::new(e)))?;
        let mut record = session.record.clone();
        record.profile = Some(Lazy::new(profile.clone()));
        *session
            .update
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(record);
        Ok(profile)
    }

    /// The headers for one call of `method` to `url`, a Doximity API, with this identity's
    /// access token: `Authorization: Bearer <token>`, or, for a DPoP-bound session,
    /// `Authorization: DPoP <token>` and a fresh `DPoP` proof. The handler never holds the DPoP
    /// key. A proof is single-use: ask again for every request, retries included; after a 401
    /// with `WWW-Authenticate: DPoP error="use_dpop_nonce"`, pass the answer's headers to
    /// [`doximity::Client::record_dpop_nonce`] (the client is `AuthContext::client`) and ask
    /// again.
    ///
    /// # Errors
    ///
    /// [`AuthError::Unauthenticated`] without an access token (a bearer ID token);
    /// [`AuthError::Login`] when the client cannot make the proof.
    pub async fn resource_headers(
        &self,
        method: &http::Method,
        url: &url::Url,
    ) -> Result<doximity::ResourceHeaders, AuthError> {
        let headers = match &self.principal {
            Principal::Session(_) => {
                let tokens = self.tokens()?;
                self.env
                    .client
                    .resource_headers(method, url, &*tokens)
                    .await
            }
            Principal::AccessToken { token, .. } => {
                self.env
                    .client
                    .resource_headers(method, url, token.access_token())
                    .await
            }
            Principal::IdToken { .. } => return Err(AuthError::Unauthenticated),
        };
        headers.map_err(|e| AuthError::Login(Arc::new(e)))
    }

    pub(crate) fn tokens(&self) -> Result<Arc<TokenSet>, AuthError> {
        self.opened_tokens()
            .cloned()
            .ok_or(AuthError::Unauthenticated)
    }

    /// A session's tokens; sealed ones are opened on the first call only.
    fn opened_tokens(&self) -> Option<&Arc<TokenSet>> {
        let Principal::Session(session) = &self.principal else {
            return None;
        };
        match &session.tokens {
            TokenSource::Open(t) => Some(t),
            sealed => session
                .opened
                .get_or_init(|| {
                    let opened = self.env.open_tokens(sealed, &session.record.id);
                    if opened.is_none() {
                        tracing::warn!("a session's tokens could not be read back");
                    }
                    opened.map(Arc::new)
                })
                .as_ref(),
        }
    }

    /// Where a session's tokens are (usually still sealed); `None` for a bearer token.
    pub(crate) fn token_source(&self) -> Option<&TokenSource> {
        match &self.principal {
            Principal::Session(s) => Some(&s.tokens),
            _ => None,
        }
    }

    /// A newer session record to persist (a profile fetched during the request).
    pub(crate) fn take_update(&self) -> Option<SessionRecord> {
        match &self.principal {
            Principal::Session(s) => s
                .update
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
            _ => None,
        }
    }
}

/// What an identity needs besides its record, one per layer: the client (a profile fetch) and
/// the sealing (its tokens, opened on first use).
pub(crate) struct SessionEnv {
    pub(crate) client: Client,
    pub(crate) codec: CookieCodec,
}

impl std::fmt::Debug for SessionEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionEnv")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

/// The associated data of a server store's sealed record.
pub(crate) const STORED_RECORD: &str = "doximity-store-record";
/// The associated data of a server store's sealed tokens.
pub(crate) const STORED_TOKENS: &str = "doximity-store-tokens";

impl SessionEnv {
    /// The layer's clock (the client's), epoch seconds.
    pub(crate) fn now(&self) -> i64 {
        self.client.clock().epoch_secs()
    }

    /// Opens a session's tokens, if they belong to session `id`.
    pub(crate) fn open_tokens(&self, source: &TokenSource, id: &str) -> Option<TokenSet> {
        let json = match source {
            TokenSource::Sealed(raw) => self
                .codec
                .open_bytes(self.codec.names.tokens(), raw.as_bytes())?,
            TokenSource::Stored(raw) => self.codec.open_bytes(STORED_TOKENS, raw.as_bytes())?,
            TokenSource::Open(tokens) => return Some(TokenSet::clone(tokens)),
        };
        let wire: TokensWire<String, TokenSet> = serde_json::from_slice(&json).ok()?;
        (wire.id == id).then_some(wire.tokens)
    }

    /// Seals a session's tokens, bound to its id, under `aad` (the tokens cookie's name, or
    /// [`STORED_TOKENS`]).
    pub(crate) fn seal_tokens(&self, aad: &str, id: &str, tokens: &TokenSet) -> String {
        let json = serde_json::to_string(&TokensWire { id, tokens }).unwrap_or_default();
        self.codec.seal_value(aad, &json)
    }
}

/// The sealed tokens' JSON: the tokens, bound to their session's id, so the tokens of one
/// session never serve the record of another.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct TokensWire<I, T> {
    #[serde(rename = "i")]
    pub(crate) id: I,
    #[serde(rename = "t")]
    pub(crate) tokens: T,
}

/// A [`Scopes`] of one valid scope name (`Scope::NAME`s are valid by construction).
pub(crate) fn scopes_of(name: &str) -> Scopes {
    name.parse().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(created_at: i64, last_seen: i64) -> SessionRecord {
        SessionRecord {
            id: new_session_id(),
            rev: 0,
            created_at,
            last_seen,
            tokens_at: created_at,
            expires_at: None,
            refreshable: true,
            scopes: Scopes::openid(),
            sub: "s".into(),
            profile: None,
        }
    }

    const T: Timeouts = Timeouts {
        idle: Duration::from_secs(1800),
        absolute: Duration::from_secs(12 * 3600),
    };

    #[test]
    fn timeout_table() {
        let cases = [
            // (created, last_seen, now, expected)
            (0, 0, 0, Liveness::Live { touch: false }),
            (0, 0, 59, Liveness::Live { touch: false }),
            (0, 0, 60, Liveness::Live { touch: true }),
            (0, 0, 1799, Liveness::Live { touch: true }),
            (0, 0, 1800, Liveness::Expired),
            (0, 40_000, 40_100, Liveness::Live { touch: true }),
            (0, 43_000, 43_199, Liveness::Live { touch: true }),
            (0, 43_000, 43_200, Liveness::Expired),
            (0, 100, 50, Liveness::Live { touch: false }),
        ];
        for (c, l, now, want) in cases {
            assert_eq!(liveness(&record(c, l), now, T), want, "{c} {l} {now}");
        }
    }

    #[test]
    fn refresh_skew_scales_with_lifetime() {
        // 30 minutes: refresh in the last minute.
        assert!(!needs_refresh(Some(1800), 0, 1739));
        assert!(needs_refresh(Some(1800), 0, 1740));
        // 40 seconds: refresh in the last 10 seconds, not on every request.
        assert!(!needs_refresh(Some(40), 0, 29));
        assert!(needs_refresh(Some(40), 0, 30));
        // Expired, or unknown expiry.
        assert!(needs_refresh(Some(10), 0, 100));
        assert!(!needs_refresh(None, 0, 100));
    }

    #[test]
    fn identity_cookie_round_trips_and_keeps_the_profile_lazily() {
        let mut r = record(10, 20);
        r.rev = 3;
        r.expires_at = Some(-5);
        r.scopes = "openid profile:read:basic".parse().unwrap();
        let profile: UserInfo =
            serde_json::from_value(serde_json::json!({"sub": "s", "firstName": "A"})).unwrap();
        r.profile = Some(Lazy::new(profile.clone()));
        let bytes = r.to_cookie();
        let back = SessionRecord::from_cookie(&bytes).unwrap();
        let lazy = back.profile.as_ref().unwrap();
        assert!(lazy.value.get().is_none(), "parsed eagerly");
        assert_eq!(
            (
                back.id.as_str(),
                back.rev,
                back.created_at,
                back.last_seen,
                back.tokens_at
            ),
            (r.id.as_str(), 3, 10, 20, 10)
        );
        assert_eq!((back.expires_at, back.refreshable), (Some(-5), true));
        assert_eq!((back.sub.as_str(), &back.scopes), ("s", &r.scopes));
        assert_eq!(back.profile(), Some(&profile));
        // Unparsed, it encodes the same.
        let again = SessionRecord::from_cookie(&bytes).unwrap();
        assert_eq!(again.to_cookie(), bytes);
        // A store's format (serde's data model) round-trips too, and holds no claims.
        let value = serde_json::to_value(&again).unwrap();
        assert!(value.get("k").is_none(), "{value}");
        let stored: SessionRecord = serde_json::from_value(value).unwrap();
        assert_eq!(stored.profile(), Some(&profile));
        // No profile: none read back.
        let bare = record(1, 1).to_cookie();
        assert!(
            SessionRecord::from_cookie(&bare)
                .unwrap()
                .profile()
                .is_none()
        );
        assert!(bare.len() < 80, "{} bytes", bare.len());
    }

    #[test]
    fn anything_but_this_identity_cookie_format_is_no_session() {
        let good = record(1, 1).to_cookie();
        let mut other_version = good.clone();
        other_version[0] = 2;
        let mut trailing = good.clone();
        trailing.push(0);
        let json = serde_json::to_vec(&record(1, 1)).unwrap();
        for bytes in [
            &other_version[..],
            &trailing[..],
            &good[..good.len() - 1],
            &json[..],
            b"",
            &[0xff; 40][..],
        ] {
            assert!(SessionRecord::from_cookie(bytes).is_none(), "{bytes:?}");
        }
    }

    #[test]
    fn session_ids_are_fresh_128_bits() {
        let a = new_session_id();
        assert_eq!(a.len(), 22);
        assert_ne!(a, new_session_id());
    }

    /// The hot path moves a record several times and clones it out of the session cache: a
    /// profile inline (a `UserInfo`, 336 bytes) made each record 472 bytes, most of it empty.
    #[test]
    fn a_record_keeps_its_profile_out_of_line() {
        assert!(std::mem::size_of::<Lazy<UserInfo>>() <= 32);
        assert!(std::mem::size_of::<SessionRecord>() <= 200);
    }
}
