//! Each command's name and what it needs from the peer (read-only or admin), kept next to the
//! request type so that a new command cannot be added without being classified.

use super::request::Request;
use serde::{Deserialize, Serialize};

/// What a request needs from the peer: read-only requests show state, admin ones change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// `[control] allow_uids/allow_gids` (or the admin lists) suffice.
    Read,
    /// Needs `[control] admin_uids/admin_gids`; audited, and refused when the audit log is
    /// not writable.
    Admin,
}

impl Request {
    /// The `cmd` name, as in [`COMMANDS`].
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Health { .. } => "health",
            Request::Check { .. } => "check",
            Request::Tasks => "tasks",
            Request::Task { .. } => "task",
            Request::Reload => "reload",
            Request::Info => "info",
            Request::Alerts => "alerts",
            Request::History { .. } => "history",
            Request::BackupCreate { .. } => "backup_create",
            Request::BackupList { .. } => "backup_list",
            Request::BackupStatus => "backup_status",
            Request::BackupVerify { .. } => "backup_verify",
            Request::BackupRestore { .. } => "backup_restore",
            Request::BackupPrune { .. } => "backup_prune",
            Request::BackupDelete { .. } => "backup_delete",
            Request::BackupJobs => "backup_jobs",
            Request::BackupFetch { .. } => "backup_fetch",
            Request::MaintenanceOn { .. } => "maintenance_on",
            Request::MaintenanceOff => "maintenance_off",
            Request::MaintenanceStatus => "maintenance_status",
            Request::CacheClear { .. } => "cache_clear",
            Request::CacheClearJobs => "cache_clear_jobs",
            Request::CacheStats => "cache_stats",
            Request::CacheWarmUp { .. } => "cache_warm_up",
        }
    }

    /// Whether the request only reads state or changes it; every variant is classified here,
    /// so a new command cannot slip through unclassified. `check` probes the services (as the
    /// monitors do anyway) and changes nothing, so it is read-only; a dry-run prune or clear is
    /// still admin, like the command it previews.
    pub fn access(&self) -> Access {
        match self {
            Request::Status
            | Request::Health { .. }
            | Request::Check { .. }
            | Request::Tasks
            | Request::Info
            | Request::Alerts
            | Request::History { .. }
            | Request::BackupList { .. }
            | Request::BackupStatus
            | Request::BackupJobs
            | Request::MaintenanceStatus
            | Request::CacheClearJobs
            | Request::CacheStats => Access::Read,
            Request::Task { .. }
            | Request::Reload
            | Request::BackupCreate { .. }
            | Request::BackupVerify { .. }
            | Request::BackupRestore { .. }
            | Request::BackupPrune { .. }
            | Request::BackupDelete { .. }
            | Request::BackupFetch { .. }
            | Request::MaintenanceOn { .. }
            | Request::MaintenanceOff
            | Request::CacheClear { .. }
            | Request::CacheWarmUp { .. } => Access::Admin,
        }
    }

    /// Whether the command can destroy data and run long enough to be cut short (a restore
    /// over a database, a cache clear): its start gets an audit line of its own before it acts.
    pub fn announces_start(&self) -> bool {
        matches!(
            self,
            Request::BackupRestore { .. }
                | Request::BackupDelete { .. }
                | Request::CacheClear { dry_run: false, .. }
        )
    }

    /// The request's arguments (its JSON without `cmd`), for the audit log.
    pub fn arguments(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("cmd");
        }
        v
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::check::Service;
    use crate::model::task::TaskAction;

    /// One request of every kind, with made-up arguments.
    fn one_of_each() -> Vec<Request> {
        let id = || "20261126T000000Z-manual".to_string();
        vec![
            Request::Status,
            Request::Health { service: None },
            Request::Check { service: None },
            Request::Tasks,
            Request::Task {
                action: TaskAction::Restart,
                name: "http".into(),
            },
            Request::Reload,
            Request::Info,
            Request::Alerts,
            Request::History {
                service: Service::Postgres,
                since_seconds: None,
                last: Some(5),
            },
            Request::BackupCreate {
                database: None,
                label: None,
                wait: false,
            },
            Request::BackupList { database: None },
            Request::BackupStatus,
            Request::BackupVerify {
                id: id(),
                restore_test: false,
            },
            Request::BackupRestore {
                id: id(),
                target_db: None,
                force: false,
                no_owner: false,
                no_analyze: false,
                any_locale: false,
                skip_roles: false,
            },
            Request::BackupPrune { dry_run: true },
            Request::BackupDelete {
                id: id(),
                force: false,
            },
            Request::BackupJobs,
            Request::BackupFetch { id: id() },
            Request::MaintenanceOn {
                reason: None,
                for_seconds: None,
            },
            Request::MaintenanceOff,
            Request::MaintenanceStatus,
            Request::CacheClear {
                pattern: None,
                namespace: None,
                dry_run: true,
                force: false,
            },
            Request::CacheClearJobs,
            Request::CacheStats,
            Request::CacheWarmUp { namespace: None },
        ]
    }

    #[test]
    fn every_command_is_named_and_classified() {
        let all = one_of_each();
        for cmd in COMMANDS {
            let r = all.iter().find(|r| r.name() == *cmd);
            assert!(r.is_some(), "{cmd} has no sample request");
        }
        for r in &all {
            let line = serde_json::to_value(r).unwrap();
            assert_eq!(line["cmd"], r.name(), "name() matches the wire name");
            assert!(COMMANDS.contains(&r.name()));
            assert!(r.arguments().get("cmd").is_none());
        }
        let admin: Vec<&str> = all
            .iter()
            .filter(|r| r.access() == Access::Admin)
            .map(Request::name)
            .collect();
        assert_eq!(
            admin,
            [
                "task",
                "reload",
                "backup_create",
                "backup_verify",
                "backup_restore",
                "backup_prune",
                "backup_delete",
                "backup_fetch",
                "maintenance_on",
                "maintenance_off",
                "cache_clear",
                "cache_warm_up"
            ]
        );
    }
}
