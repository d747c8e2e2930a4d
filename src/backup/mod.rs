//! PostgreSQL backups: the pipeline (pg_dump → compress → encrypt → file), the catalog of
//! checksummed metadata, schedules, retention, verify and restore, run by one actor.

pub mod catalog;
pub mod pgconn;
pub mod pipeline;
pub mod restore;
pub mod retention;
pub mod schedule;

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
