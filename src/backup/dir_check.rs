//! Whether the backup directory can be used at all (it is a directory, or can be created as
//! one, and steward may write in it), so that a read-only filesystem or a file in its place is
//! reported by `backup create`, `backup status`, `/health` and an alert instead of failing
//! backups that cannot even be recorded.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Why `dir` cannot hold backups, or `None` when it can (or will be created where it can).
pub fn dir_problem(dir: &Path) -> Option<String> {
    let shown = dir.display();
    let mut p = dir;
    loop {
        match std::fs::metadata(p) {
            Ok(m) if !m.is_dir() => {
                return Some(if p == dir {
                    format!("backup.dir {shown} is not a directory; point backup.dir at a directory")
                } else {
                    format!(
                        "backup.dir {shown} cannot be created: {} is not a directory",
                        p.display()
                    )
                })
            }
            Ok(_) => {
                return writable(p).err().map(|e| {
                    format!(
                        "backup.dir {shown} is not writable ({}: {e}); fix its permissions or filesystem, or point backup.dir elsewhere",
                        p.display()
                    )
                })
            }
            // ENOTDIR: a file sits where a parent directory should be; walk up to it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => match p.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => p = parent,
                _ => return writable(Path::new(".")).err().map(|e| format!("backup.dir {shown} cannot be created: {e}")),
            },
            Err(e) => return Some(format!("backup.dir {shown} cannot be read: {e}")),
        }
    }
}

/// `access(W_OK | X_OK)`: true to what the kernel would allow (a read-only mount says EROFS).
fn writable(p: &Path) -> std::io::Result<()> {
    let c = CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_in_the_way_is_named_and_a_missing_dir_is_fine() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(dir_problem(t.path()), None);
        assert_eq!(dir_problem(&t.path().join("a/b/c")), None);
        let f = t.path().join("file");
        std::fs::write(&f, "").unwrap();
        let p = dir_problem(&f).unwrap();
        assert!(p.contains("not a directory"), "{p}");
        let p = dir_problem(&f.join("below")).unwrap();
        assert!(p.contains("cannot be created"), "{p}");
    }
}
