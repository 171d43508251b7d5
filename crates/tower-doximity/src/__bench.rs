//! The identity cookie's encode (serialise + seal) and decode (open + parse), exactly as the
//! cookie store does them on every request, for the benchmarks in `benches/`. Not part of the
//! API: it may change or disappear in any release.

use std::time::Duration;

use doximity::UserInfo;
use doximity::scope::Scopes;
use http::{HeaderMap, HeaderValue};

use crate::cookies::CookieCodec;
use crate::session::{Lazy, SessionRecord, new_session_id};

/// The hot session record the identity cookie carries.
#[derive(Clone, Debug)]
pub struct Record(SessionRecord);

impl Record {
    /// A record as a sign-in at `now` makes it for the user `sub` (fresh session id,
    /// revision 0, a token issued now that expires at `expires_at`, refreshable), with
    /// `profile` already fetched when given. The ID-token claims are not in it: they ride
    /// in the tokens cookie.
    pub fn new(
        sub: String,
        scopes: Scopes,
        profile: Option<UserInfo>,
        now: i64,
        expires_at: Option<i64>,
    ) -> Self {
        Self(SessionRecord {
            id: new_session_id(),
            rev: 0,
            created_at: now,
            last_seen: now,
            tokens_at: now,
            expires_at,
            refreshable: true,
            scopes,
            sub,
            profile: profile.map(Lazy::new),
        })
    }

    /// Decodes the plaintext an identity cookie opens to, as the cookie store does after
    /// opening it.
    pub fn from_plaintext(plaintext: &[u8]) -> Option<Self> {
        SessionRecord::from_cookie(plaintext).map(Self)
    }

    /// The user's `sub`.
    pub fn sub(&self) -> &str {
        &self.0.sub
    }
}

/// The identity cookie of the cookie store, sealed and opened with one key.
#[derive(Clone, Debug)]
pub struct IdentityCookie {
    codec: CookieCodec,
}

impl IdentityCookie {
    /// The codec for `key`, bound to a fixed issuer and client id (for encode and decode
    /// benchmarks, which need no layer); `secure` as for an https redirect URI (`__Host-`
    /// name). It opens only cookies it sealed itself: a layer's are bound to the layer's
    /// issuer and client id, see [`IdentityCookie::bound`].
    pub fn new(key: crate::Key, secure: bool) -> Self {
        Self::bound(key, secure, "https://auth.doximity.com", "bench")
    }

    /// The codec of a layer's identity cookie: `key` bound to the layer's `issuer` and
    /// `client_id` (its `Config`'s), as the layer derives the cookie subkey; `secure` as for an
    /// https redirect URI (`__Host-` name).
    #[allow(clippy::needless_pass_by_value)] // the public signature takes the key
    pub fn bound(key: crate::Key, secure: bool, issuer: &str, client_id: &str) -> Self {
        Self {
            codec: CookieCodec::new(
                std::slice::from_ref(&key),
                crate::cookies::DEFAULT_PREFIX,
                secure,
                crate::cookies::Binding { issuer, client_id },
            ),
        }
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        self.codec.names.session()
    }

    /// Encodes and seals `record` into a `Set-Cookie` value, as the cookie store writes
    /// a session (`Sessions::seal_cookies`).
    pub fn encode(&self, record: &Record, max_age: Duration) -> HeaderValue {
        self.codec.seal(
            self.codec.names.session(),
            &record.0.to_cookie(),
            Some(max_age),
        )
    }

    /// Finds the identity cookie in a request's `Cookie` headers and opens it (no
    /// decoding): the first half of [`IdentityCookie::decode`].
    pub fn open(&self, headers: &HeaderMap) -> Option<Vec<u8>> {
        let name = self.codec.names.session();
        crate::cookies::find_all(headers, name).find_map(|v| self.codec.open_bytes(name, v))
    }

    /// Reads the identity cookie from a request's `Cookie` headers as the cookie store does
    /// on every request (`SessionRecord::from_cookies`): found in one pass with the tokens
    /// cookie (left sealed), opened, decoded.
    pub fn decode(&self, headers: &HeaderMap) -> Option<Record> {
        SessionRecord::from_cookies(&self.codec, headers)
            .0
            .map(Record)
    }
}
