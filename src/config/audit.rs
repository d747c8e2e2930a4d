//! `[audit]`: where the audit log (one JSON line per admin command or destructive action) goes.

use super::problem::Problem;
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
pub(super) fn check(c: &AuditConfig, out: &mut Vec<Problem>) {
    let p = &c.path;
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
    } else if let Some(kind) = not_a_regular_file(p) {
        out.push(Problem::new(
            "audit.path",
            format!(
                "{:?} is {kind}; the audit log must be a regular file (steward creates it): remove it or give another path such as \"var/audit.log\"",
                p.display().to_string()
            ),
        ));
    }
}

/// What stands at `path` when it exists and is not a regular file (the log is opened without
/// following a symlink, so a symlink counts too).
fn not_a_regular_file(path: &std::path::Path) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let kind = std::fs::symlink_metadata(path).ok()?.file_type();
    Some(if kind.is_file() {
        return None;
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_device_or_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
        for (path, kind) in [
            (fifo, "a FIFO"),
            ("/dev/null".into(), "a device"),
            (link, "a symbolic link"),
        ] {
            let c = AuditConfig { path };
            let mut out = Vec::new();
            check(&c, &mut out);
            assert_eq!(out.len(), 1, "{out:?}");
            assert_eq!(out[0].key, "audit.path");
            assert!(out[0].reason.contains(kind), "{}", out[0].reason);
        }
        let c = AuditConfig {
            path: dir.path().join("audit.log"),
        };
        let mut out = Vec::new();
        check(&c, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
