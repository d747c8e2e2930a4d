//! The way in to the `cache.stats` task: a cloneable handle around a bounded channel, served
//! by whichever run of the task is current, so it outlives restarts.

use crate::cache::report::CacheStatsReply;
use crate::cache::CacheError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};

pub(super) enum Cmd {
    Stats(oneshot::Sender<CacheStatsReply>),
}

/// The cloneable way to ask the `cache.stats` task; it outlives restarts of the task.
#[derive(Clone)]
pub struct StatsHandle {
    tx: mpsc::Sender<Cmd>,
    pub(super) rx: Arc<Mutex<mpsc::Receiver<Cmd>>>,
}

impl Default for StatsHandle {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(16);
        Self {
            tx,
            rx: Arc::new(Mutex::new(rx)),
        }
    }
}

impl StatsHandle {
    /// The current statistics; `wait` bounds how long the task may take to answer (it
    /// answers between scan steps, each bounded by the scan budget and the Redis timeout).
    pub async fn stats(&self, wait: Duration) -> Result<CacheStatsReply, CacheError> {
        let not_running = || {
            CacheError::Refused(
                "cache.stats is not running (paused or backing off); see `steward tasks`".into(),
            )
        };
        let (tx, rx) = oneshot::channel();
        tokio::time::timeout(wait, self.tx.send(Cmd::Stats(tx)))
            .await
            .map_err(|_| not_running())?
            .map_err(|_| not_running())?;
        tokio::time::timeout(wait, rx)
            .await
            .map_err(|_| not_running())?
            .map_err(|_| not_running())
    }
}
