//! The control protocol: one JSON request per line, one JSON reply per line, and the typed
//! payloads both sides (daemon and `steward` client, and scripts using `--json`) agree on.

use serde::{Deserialize, Serialize};

mod commands;
mod payloads;
pub use crate::model::check::*;
pub use crate::model::task::*;
pub use commands::Access;
pub use payloads::*;

/// Longest request line the daemon reads; longer ones get an error reply.
pub const MAX_LINE: usize = 64 * 1024;

/// The name the control socket's own task is registered under, which `steward task … control`
/// names: the daemon treats it apart (it cannot be paused, its restart closes the socket).
pub const CONTROL_TASK: &str = "control";

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

/// The command names, for the error reply to an unknown one.
pub const COMMANDS: &[&str] = &[
    "status",
    "health",
    "check",
    "tasks",
    "task",
    "reload",
    "info",
    "alerts",
    "history",
    "backup_create",
    "backup_list",
    "backup_status",
    "backup_verify",
    "backup_restore",
    "backup_prune",
    "backup_delete",
    "backup_jobs",
    "backup_fetch",
    "maintenance_on",
    "maintenance_off",
    "maintenance_status",
    "cache_clear",
    "cache_clear_jobs",
    "cache_stats",
    "cache_warm_up",
];

/// A reply line: `{"ok":true,"data":…}` or `{"ok":false,"error":"…"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Reply {
    /// A success carrying a payload.
    pub fn data<T: Serialize>(data: &T) -> Reply {
        match serde_json::to_value(data) {
            Ok(v) => Reply {
                ok: true,
                error: None,
                data: v,
            },
            Err(e) => Reply::error(format!("cannot encode reply: {e}")),
        }
    }

    /// A failure with a message for the user.
    pub fn error(msg: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(msg.into()),
            data: serde_json::Value::Null,
        }
    }
}

/// Parses one request line, turning every way it can be wrong into a message for the user.
pub fn parse_request(line: &str) -> Result<Request, String> {
    let v: serde_json::Value = serde_json::from_str(line)
        .map_err(|e| format!("malformed request: not JSON ({e}); send one JSON object per line, e.g. {{\"cmd\":\"status\"}}"))?;
    let Some(cmd) = v.get("cmd") else {
        return Err("malformed request: missing \"cmd\" field".into());
    };
    let Some(cmd) = cmd.as_str().map(str::to_string) else {
        return Err("malformed request: \"cmd\" must be a string".into());
    };
    if !COMMANDS.contains(&cmd.as_str()) {
        return Err(format!(
            "unknown command {cmd:?}; known commands: {}",
            COMMANDS.join(", ")
        ));
    }
    serde_json::from_value(v).map_err(|e| format!("bad arguments for {cmd:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::Status,
            Request::Health {
                service: Some(Service::Redis),
            },
            Request::Check { service: None },
            Request::Task {
                action: TaskAction::Pause,
                name: "monitor.redis".into(),
            },
            Request::CacheWarmUp { namespace: None },
            Request::CacheWarmUp {
                namespace: Some("analytics".into()),
            },
        ] {
            let line = serde_json::to_string(&r).unwrap();
            assert_eq!(parse_request(&line).unwrap(), r);
        }
        assert_eq!(
            parse_request(r#"{"cmd":"health"}"#).unwrap(),
            Request::Health { service: None }
        );
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        assert!(parse_request("not json").unwrap_err().contains("not JSON"));
        assert!(parse_request("{}").unwrap_err().contains("missing \"cmd\""));
        assert!(parse_request(r#"{"cmd":1}"#)
            .unwrap_err()
            .contains("must be a string"));
        assert!(parse_request(r#"{"cmd":"explode"}"#)
            .unwrap_err()
            .contains("unknown command \"explode\""));
        assert!(parse_request(r#"{"cmd":"health","service":"mysql"}"#)
            .unwrap_err()
            .contains("bad arguments"));
        assert!(parse_request(r#"{"cmd":"task","action":"kill","name":"x"}"#).is_err());
    }
}
