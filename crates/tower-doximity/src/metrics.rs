//! The layer's metrics through the `metrics` facade (feature `metrics`); without the feature
//! every function here is empty. Names and labels: `docs/metrics.md`.

/// Adds one to counter `name`, with one label when given.
#[cfg(feature = "metrics")]
pub(crate) fn count(name: &'static str, label: Option<(&'static str, &'static str)>) {
    match label {
        Some((key, value)) => ::metrics::counter!(name, key => value).increment(1),
        None => ::metrics::counter!(name).increment(1),
    }
}

#[cfg(not(feature = "metrics"))]
pub(crate) fn count(_: &'static str, _: Option<(&'static str, &'static str)>) {}

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
