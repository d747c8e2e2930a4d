//! The kinds of backup (manual, daily, weekly, pre-restore): plain data that IDs, schedules,
//! retention and the catalog all name.

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
