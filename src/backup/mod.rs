//! PostgreSQL backups: the pipeline (pg_dump → compress → encrypt → file), the catalog of
//! checksummed metadata, schedules, retention, verify and restore, run by one actor.

pub mod api;
pub mod catalog;
mod dir_check;
mod drills;
mod error;
mod globals;
pub mod globals_script;
mod handle;
mod journal;
mod manager;
pub mod pgconn;
pub mod pipeline;
mod pipeline_io;
mod pipeline_tools;
mod pipeline_write;
mod prune;
pub mod remote;
pub mod restore;
mod restore_checks;
mod restore_flow;
mod restore_props;
mod restore_roles;
mod restore_stream;
pub mod retention;
mod row_compare;
mod row_count;
mod run;
pub mod schedule;
pub mod scheduler;
mod scratch;
pub mod selection;
pub mod source_info;
mod status;
mod swap;

pub use dir_check::dir_problem;
pub use error::BackupError;
pub use manager::{start, BackupHandle};
pub use status::free_bytes;

/// Whether `database` exists on the server of `postgres.url`: `Err` (scrubbed) when the
/// server cannot be asked. `backup create` asks before it records anything.
pub async fn database_exists(cfg: &Config, database: &str) -> Result<bool, String> {
    let c = scratch::admin_for(cfg, "").await?;
    scratch::info_by_name(&c, database)
        .await
        .map(|i| i.is_some())
        .map_err(|e| cfg.scrubber().scrub(&run::pg_error(&e)))
}

/// Environment variable naming a step at which a restore or an upload stops for good (tests
/// kill steward there); unset in production, where this costs one lookup per step.
const PAUSE_VAR: &str = "STEWARD_TEST_PAUSE_AT";

/// With it, a pause point waits that many milliseconds instead of forever (a test changes the
/// world meanwhile, say stops the bucket, and watches steward carry on).
const PAUSE_FOR_VAR: &str = "STEWARD_TEST_PAUSE_MS";

/// Waits forever (or [`PAUSE_FOR_VAR`] milliseconds) when [`PAUSE_VAR`] names `step`, after
/// logging that it got there.
pub(crate) async fn pause_point(step: &str) {
    if std::env::var(PAUSE_VAR).is_ok_and(|v| v == step) {
        tracing::warn!(step, "paused at a test pause point ({PAUSE_VAR})");
        match std::env::var(PAUSE_FOR_VAR)
            .ok()
            .and_then(|v| v.parse().ok())
        {
            Some(ms) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
            None => std::future::pending::<()>().await,
        }
    }
}

use crate::config::Config;
use crate::metrics::Metrics;
use crate::secret::Scrubber;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// What a job (backup, verify, restore, prune) works with: a config snapshot taken when it
/// started, the metrics, the actor (a restore asks it for a pre-restore backup), its progress.
pub(crate) struct Ctx {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub handle: BackupHandle,
    pub progress: Arc<AtomicU64>,
    pub scrubber: Scrubber,
    /// Cancelled at shutdown: a running dump or restore stops and cleans up after itself.
    pub cancel: tokio_util::sync::CancellationToken,
    /// A restore replacing a database holds maintenance mode on while it runs.
    pub maintenance: crate::maintenance::MaintenanceHandle,
    /// The bucket's catalog, for a verify or restore of a backup only the bucket holds.
    pub uploads: remote::UploadHandle,
}

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a backup was taken; retention and schedules are per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupKind {
    Manual,
    Daily,
    Weekly,
    PreRestore,
}

impl BackupKind {
    /// Every kind, in display order.
    pub const ALL: [BackupKind; 4] = [
        BackupKind::Manual,
        BackupKind::Daily,
        BackupKind::Weekly,
        BackupKind::PreRestore,
    ];

    /// The label value and the word used in IDs.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Manual => "manual",
            BackupKind::Daily => "daily",
            BackupKind::Weekly => "weekly",
            BackupKind::PreRestore => "pre-restore",
        }
    }
}

impl fmt::Display for BackupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
