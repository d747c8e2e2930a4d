//! `[audit]`: where the audit log (one JSON line per admin command or destructive action) goes.

use super::{Config, Problem};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[audit]`: the append-only record of who changed what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// The log file; relative paths are taken from steward's working directory, like
    /// `[state] dir`. Created (with its directory) on first use, mode 0600.
    pub path: PathBuf,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("var/audit.log"),
        }
    }
}

/// Checks `[audit]` beyond what serde does; whether the file is writable is found out when an
/// entry is written (admin commands then fail closed), not here.
pub(super) fn check(c: &Config, out: &mut Vec<Problem>) {
    let p = &c.audit.path;
    if p.as_os_str().is_empty() {
        out.push(Problem::new(
            "audit.path",
            "is empty; give a file path such as \"var/audit.log\"",
        ));
    } else if p.file_name().is_none()
        || p.as_os_str().to_string_lossy().ends_with('/')
        || p.is_dir()
    {
        out.push(Problem::new(
            "audit.path",
            format!(
                "{:?} names a directory; give a file path such as \"var/audit.log\" (or a file inside that directory)",
                p.display().to_string()
            ),
        ));
    }
}
