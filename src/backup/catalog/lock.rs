//! One writer at a time rewrites or deletes metadata under a backup directory, across steward
//! instances sharing it: an exclusive `flock` on `<root>/.steward-catalog.lock`. Without it a
//! verify's or restore test's read-modify-write could bring back an entry retention had just
//! deleted (a listed backup without its file), or two rewrites could lose one.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The lock file's name, in the backup directory's root (never a database directory: those
/// names never start with a dot).
pub const LOCK_FILE: &str = ".steward-catalog.lock";

/// Held while it lives; released when dropped (the file is closed).
pub struct CatalogLock {
    _file: Option<File>,
}

/// Takes the catalog lock of `root`, waiting for another writer to finish. When the lock file
/// cannot be opened or created (a full or read-only filesystem), the caller goes on unlocked
/// rather than not at all: a deletion that frees space must still be possible.
pub fn lock(root: &Path) -> CatalogLock {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(root.join(LOCK_FILE));
    let Ok(file) = file else {
        return CatalogLock { _file: None };
    };
    loop {
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return CatalogLock { _file: Some(file) };
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return CatalogLock { _file: None };
        }
    }
}
