//! Doximity's rate-limit headers: `X-Rate-Limit-Limit`, `-Remaining` and `-Reset`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The budget the provider reported on its last response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitStatus {
    /// Requests allowed per hour (`X-Rate-Limit-Limit`).
    pub limit: u64,
    /// Requests left in the window (`X-Rate-Limit-Remaining`).
    pub remaining: u64,
    /// When the window resets, UTC epoch seconds (`X-Rate-Limit-Reset`).
    pub reset: u64,
}

impl RateLimitStatus {
    /// Reads the three headers; `None` unless all three are present and numeric.
    ///
    /// ```
    /// let mut h = http::HeaderMap::new();
    /// h.insert("x-rate-limit-limit", "5000".parse().unwrap());
    /// h.insert("x-rate-limit-remaining", "4999".parse().unwrap());
    /// h.insert("x-rate-limit-reset", "1372700873".parse().unwrap());
    /// let s = doximity::RateLimitStatus::from_headers(&h).unwrap();
    /// assert_eq!((s.limit, s.remaining, s.reset), (5000, 4999, 1372700873));
    /// ```
    pub fn from_headers(headers: &http::HeaderMap) -> Option<Self> {
        Some(Self {
            limit: header_u64(headers, "x-rate-limit-limit")?,
            remaining: header_u64(headers, "x-rate-limit-remaining")?,
            reset: header_u64(headers, "x-rate-limit-reset")?,
        })
    }

    /// The reset time as a `SystemTime`.
    pub fn reset_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.reset)
    }
}

/// Reads `X-Rate-Limit-Reset` alone (a 429 may carry only that).
pub(crate) fn reset_from_headers(headers: &http::HeaderMap) -> Option<SystemTime> {
    header_u64(headers, "x-rate-limit-reset").map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

fn header_u64(headers: &http::HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

pub(crate) fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_or_garbage_headers_are_none() {
        let mut h = http::HeaderMap::new();
        h.insert("x-rate-limit-limit", "5000".parse().unwrap());
        assert!(RateLimitStatus::from_headers(&h).is_none());
        h.insert("x-rate-limit-remaining", "many".parse().unwrap());
        h.insert("x-rate-limit-reset", "1".parse().unwrap());
        assert!(RateLimitStatus::from_headers(&h).is_none());
        assert_eq!(
            reset_from_headers(&h),
            Some(UNIX_EPOCH + Duration::from_secs(1))
        );
    }
}
