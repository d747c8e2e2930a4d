//! What the alert rules look at: the facts the engine gathers (checks, the backup catalog,
//! task restarts, the PostgreSQL collector groups), one snapshot per evaluation.

use crate::backup::catalog::BackupMeta;
use crate::backup::BackupKind;
use crate::model::check::CheckResult;
use std::sync::Arc;

/// What the backup catalog says, read off the backup actor.
#[derive(Debug, Clone, Default)]
pub struct BackupFacts {
    /// Every backup's metadata, newest first.
    pub metas: Vec<BackupMeta>,
    /// Free bytes where backups are written.
    pub free_bytes: Option<u64>,
    /// Why the backup directory cannot be used (BackupFailed fires: every backup would fail).
    pub dir_problem: Option<String>,
    /// The databases the schedules cover.
    pub databases: Vec<String>,
    /// Each scheduled kind and its period in seconds.
    pub periods: Vec<(BackupKind, f64)>,
    /// Seconds between two restore drills, when they are scheduled.
    pub drill_period: Option<f64>,
    /// A bucket is configured (`backup.remote.url`): `metas` carry their location.
    pub remote: bool,
    /// The off-site upload queue's state; `None` without a bucket or before it answered.
    pub upload: Option<crate::backup::remote::UploadStatus>,
}

/// Everything the rules look at, gathered by the engine.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub now: f64,
    /// When the engine started: the reference for "no good backup yet".
    pub started_at: f64,
    pub postgres: Option<Arc<CheckResult>>,
    pub redis: Option<Arc<CheckResult>>,
    /// Keyspace lookups per second between the last two Redis checks.
    pub redis_lookups_per_second: Option<f64>,
    /// `None` until the catalog has been read once.
    pub backups: Option<BackupFacts>,
    /// Restarts of each task within the TaskRestarting window.
    pub restarts_in_window: Vec<(String, u64)>,
    /// `cache.expect_eviction_policy`: the `maxmemory-policy` Redis should have.
    pub expect_eviction_policy: Option<String>,
    /// What the PostgreSQL collector groups found; `None` before their first round.
    pub pg: Option<Arc<crate::model::pg_facts::PgFacts>>,
    /// Deadlocks per database within the Deadlocks window; `None` before two readings.
    pub pg_deadlocks: Option<std::collections::BTreeMap<String, u64>>,
}
