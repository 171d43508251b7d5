//! What the layer remembers between requests, bounded: the login `state`s already used (a
//! replayed callback), the sessions signed out here (copies of their cookies), and the users
//! an operator signed out.

use std::sync::Arc;

use crate::backend::Backend;
use crate::error::AuthError;
use crate::memory::ExpiringSet;
use crate::session::{SessionRecord, Timeouts, secs};

#[derive(Debug)]
pub(crate) struct Ledger {
    pub(crate) used_states: Arc<ExpiringSet>,
    /// Sessions signed out here, remembered until their absolute timeout.
    pub(crate) signed_out: Arc<ExpiringSet>,
    /// Users an operator signed out ([`DoximityAuth::sign_out_user`](crate::DoximityAuth::sign_out_user)):
    /// their sessions created until `deadline - absolute timeout` are refused.
    pub(crate) users_signed_out: Arc<ExpiringSet>,
}

impl Ledger {
    /// Records a login `state` as used; false when it already was (a replayed transaction).
    /// Remembered for as long as a transaction may be completed; bounded.
    /// With a server store that shares it ([`SessionStore::mark_used`]), the memory is
    /// shared by every instance; a store error fails closed.
    ///
    /// [`SessionStore::mark_used`]: crate::SessionStore::mark_used
    pub(crate) async fn mark_state_used(
        &self,
        backend: &Backend,
        state: &str,
        now: i64,
    ) -> Result<bool, AuthError> {
        let ttl = doximity::callback::MAX_LOGIN_AGE_SECS + 60;
        let key = ExpiringSet::key(state.as_bytes());
        let here = self.used_states.insert(key, now + ttl, now);
        if let Backend::Server(store) = backend {
            use std::fmt::Write as _;
            let hex = key.iter().fold(String::with_capacity(64), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            });
            let ttl = std::time::Duration::from_secs(u64::try_from(ttl).unwrap_or(0));
            match store.mark_used(&hex, ttl).await {
                Ok(Some(shared)) => return Ok(here && shared),
                Ok(None) => {}
                Err(e) => return Err(AuthError::Store(Arc::new(e))),
            }
        }
        Ok(here)
    }

    /// Remembers that session `record` was signed out, until its absolute timeout, so a copy
    /// of its cookies made before is refused (the cookie store keeps nothing server-side).
    pub(crate) fn mark_signed_out(&self, record: &SessionRecord, timeouts: Timeouts, now: i64) {
        self.signed_out.insert(
            ExpiringSet::key(record.id.as_bytes()),
            record.deadline(timeouts),
            now,
        );
    }

    /// Whether session `record` was signed out here, or its user was signed out everywhere
    /// after it began.
    pub(crate) fn is_signed_out(
        &self,
        record: &SessionRecord,
        timeouts: Timeouts,
        now: i64,
    ) -> bool {
        // Nearly always both are empty: no hash on the hot path then.
        if self.signed_out.len() == 0 && self.users_signed_out.len() == 0 {
            return false;
        }
        self.signed_out
            .contains(&ExpiringSet::key(record.id.as_bytes()), now)
            || self
                .users_signed_out
                .deadline(&ExpiringSet::key(record.sub.as_bytes()), now)
                .is_some_and(|deadline| {
                    record.created_at <= deadline.saturating_sub(secs(timeouts.absolute))
                })
    }
}
