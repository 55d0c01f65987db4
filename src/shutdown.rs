//! One owner for everything the server runs in the background — connections, the scrubber,
//! imports — so that a stop is orderly: a cancellation token every task watches, and a task
//! tracker to wait for them. `Running::shutdown` (lib.rs) cancels, then waits a bounded
//! drain time.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub struct Background {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Background {
    pub fn new() -> Background {
        Background::default()
    }

    /// Runs `task` under this owner (waited for at shutdown).
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Completes when a stop has begun.
    pub async fn stopping(&self) {
        self.token.cancelled().await
    }

    pub fn is_stopping(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Begins the stop and waits up to `drain` for every task to end; whether all did.
    pub async fn stop(&self, drain: std::time::Duration) -> bool {
        self.token.cancel();
        self.tracker.close();
        tokio::time::timeout(drain, self.tracker.wait())
            .await
            .is_ok()
    }
}
