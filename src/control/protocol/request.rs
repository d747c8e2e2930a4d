//! The request a control-socket line carries, one variant per command.

use crate::model::check::Service;
use crate::model::task::TaskAction;
use serde::{Deserialize, Serialize};

/// A request line, e.g. `{"cmd":"health","service":"redis"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Status,
    Health {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<Service>,
    },
    Check {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<Service>,
    },
    Tasks,
    Task {
        action: TaskAction,
        name: String,
    },
    Reload,
    Info,
    /// Every alert rule instance with its state, value and threshold.
    Alerts,
    /// A service's check history and its summary.
    History {
        service: Service,
        /// How far back, in seconds; everything kept when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_seconds: Option<f64>,
        /// Only the newest this many checks (the summary still covers the whole range).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last: Option<usize>,
    },
    /// Back up one database, or each configured one; with `wait`, reply when done.
    BackupCreate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        database: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
        #[serde(default)]
        wait: bool,
    },
    BackupList {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        database: Option<String>,
    },
    BackupStatus,
    BackupVerify {
        id: String,
        #[serde(default)]
        restore_test: bool,
    },
    BackupRestore {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_db: Option<String>,
        #[serde(default)]
        force: bool,
        /// Objects owned by steward's role, not their owners in the backup.
        #[serde(default)]
        no_owner: bool,
        /// No ANALYZE of the restored database.
        #[serde(default)]
        no_analyze: bool,
        /// The server's default encoding and locale where it cannot create the backup's.
        #[serde(default)]
        any_locale: bool,
        /// Do not create missing roles from the backup's globals.
        #[serde(default)]
        skip_roles: bool,
    },
    BackupPrune {
        #[serde(default)]
        dry_run: bool,
    },
    /// Delete one backup or failed/damaged entry; the newest intact backup of a database only
    /// with `force`.
    BackupDelete {
        id: String,
        #[serde(default)]
        force: bool,
    },
    /// Backup, verify and restore jobs in progress, with their byte counts.
    BackupJobs,
    /// Download a backup the bucket holds into the local backup dir (checked).
    BackupFetch {
        id: String,
    },
    /// Turn maintenance mode on (or change the current one's reason and end).
    MaintenanceOn {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Ends by itself after this many seconds; stays on until `off` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_seconds: Option<f64>,
    },
    MaintenanceOff,
    MaintenanceStatus,
    /// Delete the keys matching `pattern`, or a namespace's keys (SCAN + UNLINK); `force`
    /// allows `*`, an empty pattern, or one outside every namespace.
    CacheClear {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pattern: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        #[serde(default)]
        dry_run: bool,
        #[serde(default)]
        force: bool,
    },
    /// The cache clears running now, with their counts so far (the client's progress line).
    CacheClearJobs,
    /// Hit ratio, memory, evictions, eviction policy, and per namespace the last complete
    /// statistics pass (keys, keys without TTL, TTL spread, estimated memory).
    CacheStats,
    /// Fill a namespace (every namespace with a warm-up query when absent) from its
    /// `warmup.query` on PostgreSQL; replies when done, with rows, keys, bytes and time.
    CacheWarmUp {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
}
