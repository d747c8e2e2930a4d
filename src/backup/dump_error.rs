//! Why a dump failed: a leaf shared by the pipeline and the client-tool lookup
//! (`pipeline_tools`), re-exported as `pipeline::DumpError`.

use super::pipeline_io as io_util;
use std::path::{Path, PathBuf};

/// Why a dump failed. Messages are meant for users and never hold the password.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("cannot run {tool}: {source}{}", spawn_hint(source))]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} --version gave an unexpected answer: {output}")]
    Version { tool: String, output: String },
    #[error("pg_dump failed ({status}): {stderr}")]
    PgDump { status: String, stderr: String },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the disk is full: cannot write {} (no space left on device)", path.display())]
    DiskFull { path: PathBuf },
    #[error("age encryption failed: {0}")]
    Encrypt(String),
    #[error("the backup was cancelled")]
    Cancelled,
}

fn spawn_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::NotFound {
        " (is the PostgreSQL client installed? set backup.pg_dump_path to its pg_dump)"
    } else {
        ""
    }
}

impl DumpError {
    /// An I/O error about `path`; a full disk gets its own, clearer error.
    pub fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        if io_util::is_disk_full(&source) {
            DumpError::DiskFull {
                path: path.to_path_buf(),
            }
        } else {
            DumpError::Io {
                what,
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_full_is_named() {
        let e = DumpError::io(
            "cannot write",
            Path::new("/b/app/x.sql.gz.tmp"),
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        );
        let msg = e.to_string();
        assert!(msg.contains("disk is full"), "{msg}");
        assert!(msg.contains("/b/app/x.sql.gz.tmp"), "{msg}");
        let e = DumpError::io(
            "cannot write",
            Path::new("/b"),
            std::io::Error::from_raw_os_error(libc::EACCES),
        );
        assert!(e.to_string().starts_with("cannot write /b: "), "{e}");
    }
}
