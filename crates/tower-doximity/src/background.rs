//! Background work that must never block or fail a user's request (revocation at logout),
//! with a way to wait for it (graceful shutdown, tests).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Counts spawned tasks and wakes [`Background::drain`] when none is left.
#[derive(Debug, Default)]
pub(crate) struct Background {
    pending: AtomicUsize,
    idle: Notify,
}

impl Background {
    /// Runs `task` on the current tokio runtime (dropped, with a warning, outside one).
    pub(crate) fn spawn(self: &Arc<Self>, task: impl Future<Output = ()> + Send + 'static) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no tokio runtime: background task (token revocation) skipped");
            return;
        };
        self.pending.fetch_add(1, Ordering::SeqCst);
        let this = self.clone();
        runtime.spawn(async move {
            task.await;
            if this.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                this.idle.notify_waiters();
            }
        });
    }

    /// Waits until no background task is running.
    pub(crate) async fn drain(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}
