//! Synchronous calls into async clients (the PostgreSQL catalog, the S3 pack store).
//!
//! The engine's catalog and pack calls are synchronous: they run on blocking threads, and in
//! `Drop`, which may run on an async worker. So each remote backend drives its async client
//! on a small runtime of its own, and a caller waits for the answer on a plain channel. No
//! executor runs on the calling thread, which makes the wait safe from any thread. Polling a
//! tokio future from a thread inside another runtime's context spins on the coop budget;
//! the crash test found that.

use std::future::Future;

use crate::error::{Result, StoreError};

pub(crate) struct Bridge {
    rt: Option<tokio::runtime::Runtime>,
}

impl Bridge {
    pub(crate) fn new(name: &str) -> Result<Bridge> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
            .map_err(|e| StoreError::Task(format!("{name} runtime: {e}")))?;
        Ok(Bridge { rt: Some(rt) })
    }

    pub(crate) fn runtime(&self) -> &tokio::runtime::Runtime {
        self.rt
            .as_ref()
            .expect("the runtime lives as long as the bridge")
    }

    /// Runs `fut` on the bridge's runtime and waits for its output.
    pub(crate) fn wait<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime().spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| StoreError::Task("remote backend task stopped".into()))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // May run on an async worker thread: never block there.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
