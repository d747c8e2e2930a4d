//! The catalog seen as a whole: `backup status`, the catalog and last-success gauges, and the
//! free space of the backup directory.

use super::api::{DatabaseStatus, JobInfo, LastGood, NextRun, StatusReply};
use super::catalog::{self, BackupMeta};
use super::BackupKind;
use crate::config::Config;
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::Path;

/// Free bytes for an unprivileged writer on the filesystem holding `path` (or its nearest
/// existing parent).
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let mut p = path;
    while !p.exists() {
        p = p.parent()?;
    }
    let p = if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    };
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// The newest good backup per (database, kind), per-database totals, and damaged backups
/// per database.
struct Summary {
    newest: BTreeMap<(String, BackupKind), BackupMeta>,
    per_db: BTreeMap<String, (usize, u64, Option<BackupMeta>)>,
    damaged: BTreeMap<String, usize>,
}

fn summarize(all: &[BackupMeta]) -> Summary {
    let mut newest: BTreeMap<(String, BackupKind), BackupMeta> = BTreeMap::new();
    let mut per_db: BTreeMap<String, (usize, u64, Option<BackupMeta>)> = BTreeMap::new();
    let mut damaged: BTreeMap<String, usize> = BTreeMap::new();
    // `all` is newest first, so the first seen of each key is the newest.
    for m in all {
        if m.status == catalog::BackupStatus::Damaged {
            *damaged.entry(m.database.clone()).or_default() += 1;
        }
        let e = per_db.entry(m.database.clone()).or_default();
        if m.is_good() {
            e.0 += 1;
            e.1 += m.stored_bytes;
            newest
                .entry((m.database.clone(), m.kind))
                .or_insert_with(|| m.clone());
        } else if e.2.is_none() {
            e.2 = Some(m.clone());
        }
    }
    Summary {
        newest,
        per_db,
        damaged,
    }
}

/// The reply to `backup status`.
pub(super) fn build(
    cfg: &Config,
    running: Vec<JobInfo>,
    next: &[(BackupKind, DateTime<Utc>)],
) -> StatusReply {
    let root = &cfg.backup.dir;
    let (all, problems) = catalog::listing_with_problems(root);
    let s = summarize(&all);
    let now = Utc::now();
    let databases = s
        .per_db
        .iter()
        .map(|(db, (good, bytes, failure))| DatabaseStatus {
            database: db.clone(),
            last_good: s
                .newest
                .iter()
                .filter(|((d, _), _)| d == db)
                .map(|((_, kind), m)| {
                    let finished = m.finished_at.unwrap_or(m.started_at);
                    LastGood {
                        kind: *kind,
                        id: m.id.clone(),
                        finished_at: finished,
                        age_seconds: (now - finished).num_milliseconds() as f64 / 1000.0,
                        stored_bytes: m.stored_bytes,
                    }
                })
                .collect(),
            last_failure: failure.clone(),
            damaged: s.damaged.get(db).copied().unwrap_or(0),
            good_backups: *good,
            stored_bytes: *bytes,
        })
        .collect::<Vec<_>>();
    StatusReply {
        dir_problem: super::dir_problem(root),
        dir: root.display().to_string(),
        free_bytes: free_bytes(root),
        total_backups: databases.iter().map(|d| d.good_backups).sum(),
        total_bytes: databases.iter().map(|d| d.stored_bytes).sum(),
        databases,
        next_runs: next
            .iter()
            .map(|(kind, at)| NextRun {
                kind: *kind,
                at: *at,
            })
            .collect(),
        running,
        problems: problems.iter().map(|p| p.to_string()).collect(),
    }
}

/// Sets the catalog gauges and the newest good backup's gauges from the catalog on disk.
pub(super) fn refresh_metrics(cfg: &Config, metrics: &Metrics) {
    let all = catalog::listing(&cfg.backup.dir);
    let s = summarize(&all);
    let b = &metrics.backup;
    b.damaged.reset();
    for db in s.per_db.keys() {
        let n = s.damaged.get(db).copied().unwrap_or(0);
        b.damaged.with_label_values(&[db.as_str()]).set(n as i64);
    }
    b.catalog_backups.reset();
    b.catalog_bytes.reset();
    for (db, (good, bytes, _)) in &s.per_db {
        b.catalog_backups
            .with_label_values(&[db.as_str()])
            .set(*good as i64);
        b.catalog_bytes
            .with_label_values(&[db.as_str()])
            .set(*bytes as i64);
    }
    for ((db, kind), m) in &s.newest {
        let labels = [db.as_str(), kind.as_str()];
        let finished = m.finished_at.unwrap_or(m.started_at);
        b.last_success
            .with_label_values(&labels)
            .set(finished.timestamp_millis() as f64 / 1000.0);
        b.last_duration
            .with_label_values(&labels)
            .set(m.duration_seconds);
        b.last_size
            .with_label_values(&labels)
            .set(m.stored_bytes as i64);
    }
    if let Some(free) = free_bytes(&cfg.backup.dir) {
        b.dir_free.set(free as i64);
    }
    let problem = super::dir_problem(&cfg.backup.dir);
    b.dir_usable.set(i64::from(problem.is_none()));
    if let Ok(mut p) = b.dir_problem.write() {
        *p = problem;
    }
}
