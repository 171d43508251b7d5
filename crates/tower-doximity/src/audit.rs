//! The audit trail: one `tracing` event per security-relevant moment, under the target
//! [`TARGET`], with stable field names and values (`docs/audit.md` is the schema), and, with
//! the feature `metrics`, the counters and gauges of `docs/metrics.md`.
//!
//! Free of secrets and patient data by construction: an event is built only from the values
//! below, none of which can hold a token, a code, a `state`, a cookie or a key. The user is
//! their Doximity `sub`; the session is a keyed hash of its id (HMAC-SHA256 under a key derived
//! from the cookie key, so the same session has the same hash on every instance and the id
//! cannot be recovered or guessed from it); text from the request (a request id) is bounded
//! and escaped.

use std::net::SocketAddr;

use hmac::Mac as _;
use http::HeaderMap;
use http::request::Parts;

use crate::response::ClientKind;

/// The `tracing` target of every audit event.
pub const TARGET: &str = "doximity::audit";

/// The longest request id or `traceparent` kept (longer ones are cut).
const MAX_REQUEST_ID: usize = 128;

/// What happened (the `event` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The login route sent a browser to the provider.
    SignInStarted,
    /// The callback made a session.
    SignInCompleted,
    /// The callback failed (`reason`).
    SignInFailed,
    /// The login route asked for more scopes than configured (the layer's step-up link).
    StepUp,
    RefreshSucceeded,
    /// A refresh failed and the session stays (an outage, a timeout, a rate limit).
    RefreshFailedTransient,
    /// The provider refused the refresh: the session ends.
    RefreshFailedConclusive,
    /// A request was refused (`client`, `reason`).
    Refused,
    /// A user signed out (`by`: `user`, `operator`).
    SignOut,
    /// A session the request carried is over (`reason`: `idle`, `absolute`, `revoked`,
    /// `token_expired`).
    SessionEnded,
    BearerAccepted,
    /// A bearer credential was refused (`reason`).
    BearerRefused,
    /// The provider's rate-limit budget is low (`remaining`).
    RateLimitLow,
    /// The provider's rate-limit budget is spent.
    RateLimitExhausted,
}

impl Event {
    /// The stable name, the `event` field's value.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::SignInStarted => "sign_in.started",
            Self::SignInCompleted => "sign_in.completed",
            Self::SignInFailed => "sign_in.failed",
            Self::StepUp => "step_up",
            Self::RefreshSucceeded => "refresh.succeeded",
            Self::RefreshFailedTransient => "refresh.failed_transient",
            Self::RefreshFailedConclusive => "refresh.failed_conclusive",
            Self::Refused => "refused",
            Self::SignOut => "sign_out",
            Self::SessionEnded => "session.ended",
            Self::BearerAccepted => "bearer.accepted",
            Self::BearerRefused => "bearer.refused",
            Self::RateLimitLow => "rate_limit.low",
            Self::RateLimitExhausted => "rate_limit.exhausted",
        }
    }
}

impl Event {
    /// The counter an event adds one to (`docs/metrics.md`), and its label; `None` for the
    /// rate-limit events (the gauge says it).
    fn metric(
        self,
        record: &Record<'_>,
    ) -> Option<(&'static str, Option<(&'static str, &'static str)>)> {
        let reason = record.reason.unwrap_or("");
        Some(match self {
            Self::SignInStarted => ("doximity_sign_ins_total", Some(("outcome", "started"))),
            Self::SignInCompleted => ("doximity_sign_ins_total", Some(("outcome", "completed"))),
            Self::SignInFailed => ("doximity_sign_ins_total", Some(("outcome", "failed"))),
            Self::StepUp => ("doximity_step_ups_total", None),
            Self::RefreshSucceeded => ("doximity_refreshes_total", Some(("outcome", "succeeded"))),
            Self::RefreshFailedTransient => (
                "doximity_refreshes_total",
                Some(("outcome", "failed_transient")),
            ),
            Self::RefreshFailedConclusive => (
                "doximity_refreshes_total",
                Some(("outcome", "failed_conclusive")),
            ),
            Self::Refused => ("doximity_refusals_total", Some(("reason", reason))),
            Self::SignOut => (
                "doximity_sign_outs_total",
                Some(("by", record.by.unwrap_or(""))),
            ),
            Self::SessionEnded => ("doximity_sessions_ended_total", Some(("reason", reason))),
            Self::BearerAccepted => ("doximity_bearer_checks_total", Some(("result", "accepted"))),
            Self::BearerRefused => ("doximity_bearer_checks_total", Some(("result", "refused"))),
            Self::RateLimitLow | Self::RateLimitExhausted => return None,
        })
    }
}

/// Where a request came from: the facts an event may carry about it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Origin {
    client: Option<ClientKind>,
    request_id: Option<String>,
    traceparent: Option<String>,
    peer: Option<SocketAddr>,
}

impl Origin {
    /// The facts of a request: its client kind, `x-request-id` and `traceparent` (bounded,
    /// escaped), and the peer address when the app put a `SocketAddr` in the extensions.
    pub(crate) fn of(parts: &Parts) -> Self {
        Self {
            client: Some(ClientKind::of(&parts.headers)),
            request_id: header_text(&parts.headers, "x-request-id"),
            traceparent: header_text(&parts.headers, "traceparent"),
            peer: parts.extensions.get::<SocketAddr>().copied(),
        }
    }

    /// No request (an operator's action).
    pub(crate) fn none() -> Self {
        Self::default()
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?;
    let cut = value
        .char_indices()
        .nth(MAX_REQUEST_ID)
        .map_or(value, |(i, _)| &value[..i]);
    Some(doximity::text::escape(cut))
}

/// The key of the sessions' hashes, derived from the cookie key (never the sealing key).
#[derive(Clone)]
pub(crate) struct SessionHasher([u8; 32]);

impl SessionHasher {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// The session's hash: HMAC-SHA256 of its id, first 16 bytes, hex.
    pub(crate) fn hash(&self, session_id: &str) -> String {
        use std::fmt::Write as _;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(session_id.as_bytes());
        mac.finalize().into_bytes()[..16]
            .iter()
            .fold(String::with_capacity(32), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    }
}

impl std::fmt::Debug for SessionHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionHasher([redacted])")
    }
}

/// One audit record: the event and its fields. Unset fields are left out.
#[derive(Debug, Default)]
pub(crate) struct Record<'a> {
    pub(crate) sub: Option<&'a str>,
    /// The session's keyed hash ([`SessionHasher::hash`]).
    pub(crate) session: Option<String>,
    /// A normalised reason (an `AuthError`/`BearerError` code, or a session's end).
    pub(crate) reason: Option<&'static str>,
    /// `user` or `operator` (sign-out).
    pub(crate) by: Option<&'static str>,
    /// The provider's remaining rate-limit budget.
    pub(crate) remaining: Option<u64>,
}

/// Writes an audit event (and, with the feature `metrics`, counts it).
pub(crate) fn emit(event: Event, origin: &Origin, record: &Record<'_>) {
    if let Some((name, label)) = event.metric(record) {
        crate::metrics::count(name, label);
    }
    // Every field is recorded, empty when unset, so the schema is the same for every event.
    let client = origin.client.map_or("", ClientKind::name);
    let sub = record.sub.map(doximity::text::escape);
    tracing::info!(
        target: TARGET,
        event = event.name(),
        sub = sub.as_deref().unwrap_or(""),
        session = record.session.as_deref().unwrap_or(""),
        client,
        reason = record.reason.unwrap_or(""),
        by = record.by.unwrap_or(""),
        remaining = record.remaining,
        request_id = origin.request_id.as_deref().unwrap_or(""),
        traceparent = origin.traceparent.as_deref().unwrap_or(""),
        peer = origin.peer.map(tracing::field::display),
        "{}",
        event.name()
    );
}

/// The provider's rate-limit budget after a call: an event when it is low (under a tenth of
/// the window) or spent.
pub(crate) fn rate_limit(client: &doximity::Client, origin: &Origin) {
    let Some(status) = client.rate_limit() else {
        return;
    };
    crate::metrics::rate_limit_remaining(status.remaining);
    let event = if status.remaining == 0 {
        Event::RateLimitExhausted
    } else if status.limit > 0 && status.remaining.saturating_mul(10) < status.limit {
        Event::RateLimitLow
    } else {
        return;
    };
    emit(
        event,
        origin,
        &Record {
            remaining: Some(status.remaining),
            ..Record::default()
        },
    );
}
