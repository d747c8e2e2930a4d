//! Fault injection, disk: the backup dir on a small tmpfs that fills up. A backup that runs out
//! of space fails with a clear "no space" message naming where it was writing, leaves no
//! partial file, earlier backups still verify, and once space is freed the next backup works.
//! Needs root to mount the tmpfs (CI runs as root); skipped with a notice otherwise.

mod common;

use common::faults::*;
use common::tmpfs::Tmpfs;
use common::*;
use std::fs;
use std::io::Write;
use std::path::Path;
use steward::backup::catalog::BackupStatus;

/// Free bytes on the filesystem holding `p`.
fn free_bytes(p: &Path) -> u64 {
    let c = std::ffi::CString::new(p.to_string_lossy().as_bytes()).unwrap();
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
    s.f_bavail as u64 * s.f_frsize as u64
}

/// Writes a file of about `bytes` bytes at `path` (stops quietly when the disk is full).
fn ballast(path: &Path, bytes: u64) {
    let mut f = fs::File::create(path).unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if f.write_all(&chunk[..n]).is_err() {
            break;
        }
        left -= n as u64;
    }
}

#[test]
fn full_disk_under_the_backup_dir() {
    let Some(tmpfs) = Tmpfs::mount("4m") else {
        return;
    };
    let pg = Postgres::start();
    let redis = Redis::start();
    // About 1 MB of dump once compressed.
    add_big_table(&pg, 20_000);
    let root = tmpfs.path().to_path_buf();
    let st = Steward::builder(&pg, &redis)
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            s.backup = backup_section(&root, "");
        })
        .start();
    let first = create_good(&st);
    assert!(first.stored_bytes > 512 * 1024, "{first:?}");

    // Someone else fills the disk, leaving less than a backup needs.
    let ballast_path = root.join("ballast");
    ballast(&ballast_path, free_bytes(&root).saturating_sub(256 * 1024));
    let free = free_bytes(&root);
    assert!(free < first.stored_bytes / 2, "{free} bytes still free");

    let out = st.ctl(&["backup", "create", "--wait"]);
    let err = error_of(&out);
    eprintln!("backup on a full disk: {err}");
    assert!(
        err.to_lowercase().contains("no space left"),
        "the error should say the disk is full: {err}"
    );
    assert!(
        err.contains(&*root.to_string_lossy()),
        "the error should name where it was writing ({}): {err}",
        root.display()
    );
    let all = assert_nothing_lost(&st, &root);
    assert_eq!(all.iter().filter(|m| m.is_good()).count(), 1, "{all:?}");
    assert!(
        all.iter().any(|m| m.status == BackupStatus::Failed),
        "the failed run is recorded: {all:?}"
    );

    // Not a byte left: not even the run's marker fits. Still a clear error, nothing left over.
    fs::remove_file(&ballast_path).unwrap();
    ballast(&ballast_path, u64::MAX);
    assert!(
        free_bytes(&root) < 64 * 1024,
        "{} bytes still free",
        free_bytes(&root)
    );
    let out = st.ctl(&["backup", "create", "--wait"]);
    let err = error_of(&out);
    eprintln!("backup on a disk without a byte left: {err}");
    assert!(
        err.to_lowercase().contains("no space left") && err.contains(&*root.to_string_lossy()),
        "the error should say the disk is full and where: {err}"
    );
    let after = assert_nothing_lost(&st, &root);
    assert_eq!(after.iter().filter(|m| m.is_good()).count(), 1, "{after:?}");

    // Space freed: the next backup works, the first one still verifies.
    fs::remove_file(&ballast_path).unwrap();
    let next = create_good(&st);
    let all = assert_nothing_lost(&st, &root);
    assert_good_are(&all, &[&first.id, &next.id]);
    drop(st);
}
