use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use doximity::Clock;

/// A clock the tests move forward instead of sleeping: the wall clock plus an offset shared
/// by every copy.
#[derive(Clone, Default, Debug)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    /// Moves the clock `secs` seconds (back when negative); returns the new offset.
    pub fn advance(&self, secs: i64) -> i64 {
        self.0.fetch_add(secs, Ordering::SeqCst) + secs
    }

    /// The offset from the wall clock, in seconds.
    pub fn offset(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    /// The clock, for `Client::discover_with_clock`.
    pub fn clock(&self) -> Clock {
        let offset = self.0.clone();
        Clock::new(move || {
            let secs = offset.load(Ordering::SeqCst);
            let delta = Duration::from_secs(secs.unsigned_abs());
            if secs >= 0 {
                SystemTime::now() + delta
            } else {
                SystemTime::now() - delta
            }
        })
    }
}
