//! The layer's metrics through the `metrics` facade (feature `metrics`); without the feature
//! every function here is empty. Names and labels: `docs/metrics.md`.

use crate::audit::{Event, Record};

/// Counts an audit event in the metric it belongs to.
#[cfg(feature = "metrics")]
pub(crate) fn count(event: Event, record: &Record<'_>) {
    let reason = record.reason.unwrap_or("");
    let (name, label): (&'static str, Option<(&'static str, &'static str)>) = match event {
        Event::SignInStarted => ("doximity_sign_ins_total", Some(("outcome", "started"))),
        Event::SignInCompleted => ("doximity_sign_ins_total", Some(("outcome", "completed"))),
        Event::SignInFailed => ("doximity_sign_ins_total", Some(("outcome", "failed"))),
        Event::StepUp => ("doximity_step_ups_total", None),
        Event::RefreshSucceeded => ("doximity_refreshes_total", Some(("outcome", "succeeded"))),
        Event::RefreshFailedTransient => (
            "doximity_refreshes_total",
            Some(("outcome", "failed_transient")),
        ),
        Event::RefreshFailedConclusive => (
            "doximity_refreshes_total",
            Some(("outcome", "failed_conclusive")),
        ),
        Event::Refused => ("doximity_refusals_total", Some(("reason", reason))),
        Event::SignOut => (
            "doximity_sign_outs_total",
            Some(("by", record.by.unwrap_or(""))),
        ),
        Event::SessionEnded => ("doximity_sessions_ended_total", Some(("reason", reason))),
        Event::BearerAccepted => ("doximity_bearer_checks_total", Some(("result", "accepted"))),
        Event::BearerRefused => ("doximity_bearer_checks_total", Some(("result", "refused"))),
        // The gauge says it: `rate_limit_remaining`.
        Event::RateLimitLow | Event::RateLimitExhausted => return,
    };
    match label {
        Some((key, value)) => ::metrics::counter!(name, key => value).increment(1),
        None => ::metrics::counter!(name).increment(1),
    }
}

#[cfg(not(feature = "metrics"))]
pub(crate) fn count(_: Event, _: &Record<'_>) {}

/// The provider's remaining rate-limit budget, as last seen.
#[cfg(feature = "metrics")]
pub(crate) fn rate_limit_remaining(remaining: u64) {
    #[allow(clippy::cast_precision_loss)] // a budget is far below 2^52
    ::metrics::gauge!("doximity_provider_rate_limit_remaining").set(remaining as f64);
}

#[cfg(not(feature = "metrics"))]
pub(crate) fn rate_limit_remaining(_: u64) {}

/// A bearer token answered from the cache (`hit`) or checked at the provider (`miss`).
#[cfg(feature = "metrics")]
pub(crate) fn bearer_cache(hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    ::metrics::counter!("doximity_bearer_cache_total", "result" => result).increment(1);
}

#[cfg(not(feature = "metrics"))]
pub(crate) fn bearer_cache(_: bool) {}

/// Times one provider call: `endpoint` is `token`, `userinfo` or `revocation`.
pub(crate) async fn timed<T>(endpoint: &'static str, call: impl Future<Output = T>) -> T {
    #[cfg(feature = "metrics")]
    {
        let start = std::time::Instant::now();
        let out = call.await;
        ::metrics::histogram!("doximity_provider_latency_seconds", "endpoint" => endpoint)
            .record(start.elapsed().as_secs_f64());
        out
    }
    #[cfg(not(feature = "metrics"))]
    {
        let _ = endpoint;
        call.await
    }
}
