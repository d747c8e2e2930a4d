//! Maintenance mode: an operator's (or a restore's) "we are working on it", persisted in the state
//! directory, ended by itself at `until`, published in Redis for the application, and read by the
//! backup scheduler and the alert engine.

mod actor;
mod error;
mod period;
mod publish;
mod store;

pub use error::{too_long, MaintenanceError, MAX_DURATION, MAX_REASON};
pub use period::{Ended, EndedBy, Maintenance, MaintenanceStatus, Origin, Publication};
pub use publish::REDIS_KEY;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::board::Board;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// The cloneable way to read and change maintenance mode.
#[derive(Clone)]
pub struct MaintenanceHandle {
    tx: mpsc::Sender<actor::Cmd>,
    state: watch::Receiver<Option<Maintenance>>,
    config: watch::Receiver<Arc<Config>>,
}

/// Keeps maintenance on while a restore runs; dropping it ends the maintenance the restore
/// turned on (none if it was already on, or if an operator has since taken it over).
pub struct RestoreHold {
    release: Option<(mpsc::Sender<actor::Cmd>, u64)>,
}

impl Drop for RestoreHold {
    fn drop(&mut self) {
        if let Some((tx, id)) = self.release.take() {
            // Also on a restore's error paths; the actor may be gone at shutdown.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { tx.send(actor::Cmd::Release { id }).await });
            }
        }
    }
}

impl MaintenanceHandle {
    /// Maintenance as it changes (`None` while off), for the alert engine and the scheduler.
    pub fn subscribe(&self) -> watch::Receiver<Option<Maintenance>> {
        self.state.clone()
    }

    /// Maintenance as it is now.
    pub fn current(&self) -> Option<Maintenance> {
        self.state.borrow().clone()
    }

    /// The maintenance a scheduled backup due now gives way to: on, and `[maintenance]
    /// run_backups` is false (read now, so a reload applies at once).
    pub fn skips_scheduled_backups(&self) -> Option<Maintenance> {
        if self.config.borrow().maintenance.run_backups {
            return None;
        }
        self.current()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> actor::Cmd,
    ) -> Result<T, MaintenanceError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| MaintenanceError::Gone)?;
        rx.await.map_err(|_| MaintenanceError::Gone)
    }

    /// Turns maintenance on (or changes the reason and end of the current one).
    pub async fn on(
        &self,
        reason: Option<String>,
        duration: Option<Duration>,
    ) -> Result<MaintenanceStatus, MaintenanceError> {
        if duration.is_some_and(|d| d.is_zero()) {
            return Err(MaintenanceError::ZeroDuration);
        }
        if let Some(d) = duration.filter(|d| *d > MAX_DURATION) {
            return Err(MaintenanceError::TooLong(too_long(d.as_secs_f64())));
        }
        let reason = reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        if let Some(n) = reason.as_ref().map(|r| r.chars().count()) {
            if n > MAX_REASON {
                return Err(MaintenanceError::ReasonTooLong(n));
            }
        }
        self.ask(|reply| actor::Cmd::On {
            reason,
            duration,
            reply,
        })
        .await?
    }

    /// Turns maintenance off (a no-op when it is off).
    pub async fn off(&self) -> Result<MaintenanceStatus, MaintenanceError> {
        self.ask(|reply| actor::Cmd::Off { reply }).await?
    }

    /// The mode, the Redis key's state and the recent periods.
    pub async fn status(&self) -> Result<MaintenanceStatus, MaintenanceError> {
        self.ask(|reply| actor::Cmd::Status { reply }).await
    }

    /// Turns maintenance on for a restore replacing a database, unless it is on already; the
    /// returned hold ends it when dropped.
    pub async fn hold_for_restore(&self, reason: String) -> Result<RestoreHold, MaintenanceError> {
        let id = self
            .ask(|reply| actor::Cmd::Hold { reason, reply })
            .await??;
        Ok(RestoreHold {
            release: id.map(|id| (self.tx.clone(), id)),
        })
    }
}

/// Loads the state file (an expired period counts as ended), then starts the actor. The state
/// is known when this returns, so the scheduler's first decision already sees it.
pub fn start(
    config: watch::Receiver<Arc<Config>>,
    metrics: Arc<Metrics>,
    board: &Board,
    cancel: CancellationToken,
) -> MaintenanceHandle {
    let dir: PathBuf = config.borrow().state.dir.clone();
    let (stored, expired, scrubbed) = match store::load(&dir) {
        Ok(mut s) => {
            let scrubbed = s.scrub(&config.borrow().scrubber());
            let expired = s.expire(crate::unix_now());
            (s, expired, scrubbed)
        }
        Err(e) => {
            tracing::warn!(error = %e, "maintenance state unreadable; starting with maintenance off (the file is rewritten at the next change)");
            (store::Stored::default(), None, false)
        }
    };
    if let Some(e) = &expired {
        tracing::info!(
            reason = e.period.reason.as_deref(),
            until = e.period.until,
            "maintenance mode ended while steward was stopped"
        );
    }
    if let Some(m) = stored.current.as_ref().filter(|m| m.by == Origin::Restore) {
        tracing::warn!(reason = m.reason.as_deref(), "maintenance mode was turned on by a restore that a stop of steward interrupted; it stays on: check the database, then `steward maintenance off`");
    }
    let (state_tx, state_rx) = watch::channel(stored.current.clone());
    let (tx, rx) = mpsc::channel(32);
    let a = actor::Actor::new(actor::Parts {
        dir,
        stored,
        dirty_file: expired.is_some() || scrubbed,
        state: state_tx,
        config: config.clone(),
        metrics,
        redis: board.subscribe(crate::model::check::Service::Redis),
        tx: tx.clone(),
    });
    tokio::spawn(a.run(rx, cancel));
    MaintenanceHandle {
        tx,
        state: state_rx,
        config,
    }
}

#[cfg(test)]
mod tests;
