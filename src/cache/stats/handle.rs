//! The way in to the `cache.stats` task: a cloneable handle around a bounded channel, served
//! by whichever run of the task is current, so it outlives restarts.

use crate::cache::report::CacheStatsReply;
use crate::cache::CacheError;
use crate::mailbox::Mailbox;
use std::time::Duration;
use tokio::sync::oneshot;

pub(super) enum Cmd {
    Stats(oneshot::Sender<CacheStatsReply>),
}

/// The cloneable way to ask the `cache.stats` task; it outlives restarts of the task.
#[derive(Clone)]
pub struct StatsHandle {
    pub(super) mailbox: Mailbox<Cmd>,
}

impl Default for StatsHandle {
    fn default() -> Self {
        Self {
            mailbox: Mailbox::new(16),
        }
    }
}

impl StatsHandle {
    /// The current statistics; `wait` bounds how long the task may take to answer (it
    /// answers between scan steps, each bounded by the scan budget and the Redis timeout).
    pub async fn stats(&self, wait: Duration) -> Result<CacheStatsReply, CacheError> {
        self.mailbox
            .ask(Cmd::Stats, Some(wait))
            .await
            .ok_or_else(|| {
                CacheError::Refused(
                    "cache.stats is not running (paused or backing off); see `steward tasks`"
                        .into(),
                )
            })
    }
}
