//! A small tmpfs for full-disk tests, unmounted on drop whatever happened.

use super::{is_root, short_tempdir};
use std::path::Path;
use std::process::{Command, Stdio};

/// A small tmpfs mounted on a temp dir; unmounted (then removed) on drop, even on panic.
pub struct Tmpfs {
    dir: Option<tempfile::TempDir>,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size`; `None` (with a notice) when not root, a clear panic when root
    /// and the mount fails.
    pub fn mount(size: &str) -> Option<Tmpfs> {
        if !is_root() {
            eprintln!("SKIPPED: mounting a tmpfs needs root; CI runs as root (tests/run.sh)");
            return None;
        }
        let dir = short_tempdir("stw-fault-fs-");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "running as root but `mount -t tmpfs` failed ({}): {} (in a container: CAP_SYS_ADMIN)",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Tmpfs { dir: Some(dir) })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let ok = Command::new("umount")
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                // Busy (a straggling child): detach it, so nothing stays mounted.
                let _ = Command::new("umount").arg("-l").arg(dir.path()).status();
            }
            drop(dir);
        }
    }
}
