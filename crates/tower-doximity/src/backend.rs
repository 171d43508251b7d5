//! The layer's side of session storage: where a session is read from and written to (the
//! cookies, or a [`SessionStore`] with the id in a cookie), sealed the same way for both.
//!
//! A store only ever sees [`StoredSession`]s, sealed here with the cookie key ring: one sealing
//! path for cookies and stores, and no store (the layer's or a third party's) can keep tokens
//! in clear.

use std::sync::Arc;
use std::time::Duration;

use doximity::TokenSet;
use http::HeaderMap;
use http::header::HeaderValue;

use crate::cookies::find_all;
use crate::error::AuthError;
use crate::opened::OpenedCookies;
use crate::session::{
    STORED_RECORD, STORED_TOKENS, SessionEnv, SessionRecord, Timeouts, TokenSource, secs,
};
use crate::store::{SessionId, SessionStore, StoredSession};

/// The layer's storage choice.
#[derive(Clone)]
pub(crate) enum Backend {
    Cookie,
    Server(Arc<dyn SessionStore>),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cookie => f.write_str("CookieStore"),
            Self::Server(_) => f.write_str("SessionStore"),
        }
    }
}

/// Reads and writes sessions for the layer.
#[derive(Debug)]
pub(crate) struct Sessions {
    pub(crate) env: Arc<SessionEnv>,
    pub(crate) backend: Backend,
    pub(crate) timeouts: Timeouts,
    /// The records of identity cookies opened recently (cookie store).
    pub(crate) opened_cookies: OpenedCookies<SessionRecord>,
    /// The records of stored hot records opened recently (a store across a network).
    pub(crate) opened_records: OpenedCookies<SessionRecord>,
    /// The session ids of id cookies opened recently (a store across a network).
    pub(crate) opened_ids: OpenedCookies<String>,
}

/// A session as a request carries it: the hot record, and its tokens (usually still sealed).
pub(crate) type Carried = (SessionRecord, TokenSource);

impl Sessions {
    pub(crate) fn is_cookie(&self) -> bool {
        matches!(self.backend, Backend::Cookie)
    }

    /// The cookie store's session (no `await`): the identity cookie opened and parsed, the
    /// tokens cookie found but left sealed. One pass over the `Cookie` headers.
    pub(crate) fn read_cookies(&self, headers: &HeaderMap) -> Option<Carried> {
        let (record, sealed) =
            SessionRecord::from_cookies_in(&self.env.codec, &self.opened_cookies, headers);
        Some((record?, TokenSource::Sealed(sealed)))
    }

    /// Reads the session a request carries, without refreshing.
    pub(crate) async fn read(&self, headers: &HeaderMap) -> Result<Option<Carried>, AuthError> {
        let store = match &self.backend {
            Backend::Cookie => return Ok(self.read_cookies(headers)),
            Backend::Server(store) => store,
        };
        let codec = &self.env.codec;
        let name = codec.names.session();
        let opened = find_all(headers, name).find_map(|raw| {
            self.opened_ids
                .get_or_open(raw, |raw| codec.open_value(name, raw))
        });
        let Some(opened) = opened else {
            return Ok(None);
        };
        let id = SessionId(opened);
        let stored = store
            .load(&id)
            .await
            .map_err(|e| AuthError::Store(Arc::new(e)))?;
        Ok(stored.and_then(|s| self.open_stored(&id, s)))
    }

    /// A stored session's hot record, opened; its tokens stay sealed until needed.
    pub(crate) fn open_stored(&self, id: &SessionId, stored: StoredSession) -> Option<Carried> {
        if stored.format != StoredSession::FORMAT {
            return None;
        }
        let codec = &self.env.codec;
        let record = self
            .opened_records
            .get_or_open(stored.record.as_bytes(), |sealed| {
                codec.open_with(STORED_RECORD, sealed, SessionRecord::from_cookie)
            });
        let Some(record) = record.filter(|r| r.id == id.0) else {
            tracing::warn!(
                "a stored session does not open with the cookie keys (another key, or altered); \
                 it counts as signed out"
            );
            return None;
        };
        Some((record, TokenSource::Stored(stored.tokens.into())))
    }

    /// Writes a session: cookies (cookie store) or the store plus the id cookie. `tokens` is
    /// required for a new or refreshed session; without it a server store keeps the sealed
    /// tokens it has (`sealed`), and the cookie store writes the identity cookie alone.
    pub(crate) async fn persist(
        &self,
        record: &SessionRecord,
        tokens: Option<&TokenSet>,
        sealed: Option<&TokenSource>,
        now: i64,
    ) -> Result<Vec<HeaderValue>, AuthError> {
        let store = match &self.backend {
            Backend::Cookie => return Ok(self.seal_cookies(record, tokens, now)),
            Backend::Server(store) => store,
        };
        let codec = &self.env.codec;
        let tokens = match (tokens, sealed) {
            (Some(t), _) => self.env.seal_tokens(STORED_TOKENS, &record.id, t),
            (None, Some(TokenSource::Stored(raw))) => raw.to_string(),
            (None, Some(TokenSource::Open(t))) => {
                self.env.seal_tokens(STORED_TOKENS, &record.id, t)
            }
            _ => return Ok(Vec::new()),
        };
        let deadline = record.deadline(self.timeouts);
        let stored = StoredSession {
            format: StoredSession::FORMAT,
            sub: record.sub.clone(),
            rev: record.rev,
            deadline,
            idle_deadline: record
                .last_seen
                .saturating_add(secs(self.timeouts.idle))
                .min(deadline),
            written_at: now,
            record: codec.seal_value(STORED_RECORD, &record.to_cookie()),
            tokens,
        };
        store
            .store(&SessionId(record.id.clone()), &stored)
            .await
            .map_err(|e| AuthError::Store(Arc::new(e)))?;
        Ok(vec![codec.seal(
            codec.names.session(),
            &record.id,
            Some(self.cookie_max_age(record, now)),
        )])
    }

    /// The cookie store's write (no `await`): the identity cookie, and the tokens cookie when
    /// `tokens` is given.
    pub(crate) fn seal_cookies(
        &self,
        record: &SessionRecord,
        tokens: Option<&TokenSet>,
        now: i64,
    ) -> Vec<HeaderValue> {
        let max_age = self.cookie_max_age(record, now);
        let codec = &self.env.codec;
        let mut out = Vec::with_capacity(2);
        out.push(codec.seal(codec.names.session(), &record.to_cookie(), Some(max_age)));
        if let Some(tokens) = tokens {
            let sealed = self
                .env
                .seal_tokens(codec.names.tokens(), &record.id, tokens);
            out.push(codec.header(codec.names.tokens(), &sealed, Some(max_age)));
        }
        out
    }

    /// A session cookie lives until the session's absolute deadline.
    fn cookie_max_age(&self, record: &SessionRecord, now: i64) -> Duration {
        let deadline = record.deadline(self.timeouts);
        Duration::from_secs(u64::try_from(deadline.saturating_sub(now).max(0)).unwrap_or(0))
    }

    /// `Set-Cookie` values that delete every session cookie.
    pub(crate) fn clear_cookies(&self) -> Vec<HeaderValue> {
        let codec = &self.env.codec;
        let mut v = vec![codec.removal(codec.names.session())];
        if self.is_cookie() {
            v.push(codec.removal(codec.names.tokens()));
        }
        v
    }

    /// Whether the request carried session cookies, readable or not.
    pub(crate) fn had_cookie(&self, headers: &HeaderMap) -> bool {
        let names = &self.env.codec.names;
        find_all(headers, names.session()).next().is_some()
            || find_all(headers, names.tokens()).next().is_some()
    }

    /// Deletes a server-side session, logging a failure (nothing to do for the cookie store).
    pub(crate) async fn delete(&self, record: &SessionRecord) {
        if let Err(e) = self.try_delete(record).await {
            tracing::warn!(error = %e, "could not delete a session from the store");
        }
    }

    /// Deletes a server-side session (nothing to do for the cookie store).
    pub(crate) async fn try_delete(&self, record: &SessionRecord) -> Result<(), AuthError> {
        if let Backend::Server(store) = &self.backend {
            store
                .delete(&SessionId(record.id.clone()))
                .await
                .map_err(|e| AuthError::Store(Arc::new(e)))?;
        }
        Ok(())
    }
}
