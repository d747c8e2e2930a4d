//! Maintenance mode: an operator's (or a restore's) "we are working on it", persisted in the state
//! directory, ended by itself at `until`, published in Redis for the application, and read by the
//! backup scheduler and the alert engine.

mod actor;
mod publish;
mod store;

pub use publish::REDIS_KEY;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::board::Board;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// Longest reason accepted, in characters: it travels in the Redis key and the state file.
pub const MAX_REASON: usize = 500;
/// Longest `--for` accepted: a maintenance meant to last longer is better left on until
/// `maintenance off`.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// A `--for` over [`MAX_DURATION`] as the operator will recognise it (seconds and days).
pub fn too_long(seconds: f64) -> String {
    format!("{seconds} seconds ({:.0} days)", seconds / 86_400.0)
}

/// Who turned maintenance mode on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `steward maintenance on`.
    Operator,
    /// A restore replacing an existing database, for its duration.
    Restore,
}

/// Maintenance as it is on now: the Redis key's JSON, the state file's entry, what the alert
/// engine and the backup scheduler see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Maintenance {
    #[serde(default)]
    pub reason: Option<String>,
    /// When it was turned on, Unix seconds.
    pub since: f64,
    /// When it ends by itself (`--for`), Unix seconds; `None` until turned off.
    #[serde(default)]
    pub until: Option<f64>,
    pub by: Origin,
}

/// How a maintenance period ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndedBy {
    /// `steward maintenance off`.
    Operator,
    /// Its `until` passed (also while steward was stopped).
    Expired,
    /// The restore that turned it on finished (or failed).
    RestoreFinished,
}

/// A maintenance period that has ended; the newest ones are kept for `maintenance status`, so
/// that a short one (a quick restore) can still be seen afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ended {
    #[serde(flatten)]
    pub period: Maintenance,
    pub ended_at: f64,
    pub ended_by: EndedBy,
}

/// Where the Redis key stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    pub key: String,
    /// Redis holds what the mode says (the key while on, no key while off).
    pub published: bool,
    /// When Redis last accepted it, Unix seconds.
    #[serde(default)]
    pub published_at: Option<f64>,
    /// Why the last attempt failed; it is retried as soon as a Redis check succeeds.
    #[serde(default)]
    pub error: Option<String>,
}

/// Reply to `maintenance on|off|status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceStatus {
    pub on: bool,
    #[serde(default)]
    pub current: Option<Maintenance>,
    /// `[maintenance] run_backups`: scheduled backups still run during maintenance.
    pub run_backups: bool,
    pub redis: Publication,
    /// Ended periods, newest first.
    pub history: Vec<Ended>,
    /// The state file.
    pub file: String,
}

/// Why a maintenance request could not be carried out; every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("--for must be longer than zero, e.g. --for 30m")]
    ZeroDuration,
    #[error("--for (for_seconds) is {0}; maintenance can be set for at most 30 days (--for 30d, for_seconds 2592000); give a shorter one, or leave --for out to stay on until `steward maintenance off`")]
    TooLong(String),
    #[error("the reason is {0} characters long; keep it to {MAX_REASON}")]
    ReasonTooLong(usize),
    #[error("the maintenance actor has stopped (steward is shutting down)")]
    Gone,
}

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
