//! The catalog seen as a whole: `backup status`, the catalog and last-success gauges, and the
//! free space of the backup directory.

use super::api::{DatabaseStatus, JobInfo, LastGood, NextRun, StatusReply, UploadStatus};
use super::catalog::{self, BackupMeta};
use super::kind::BackupKind;
use super::remote::offsite_copy::counts_for;
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

/// The newest restore test of any backup of `db` (only passing ones with `passed`).
fn newest_restore_test(
    all: &[BackupMeta],
    db: &str,
    passed: bool,
) -> Option<catalog::RestoreTestRecord> {
    all.iter()
        .filter(|m| m.database == db)
        .filter_map(|m| m.restore_test.as_ref())
        .filter(|t| t.ok || !passed)
        .max_by_key(|t| t.at)
        .cloned()
}

/// Whether a good backup is a recovery point: any, without a bucket; with one, only those with
/// a copy there (listed as there, or recorded as checked there).
fn counts_for_recovery(cfg: &Config, m: &BackupMeta) -> bool {
    use catalog::Location;
    let r = &cfg.backup.remote;
    if !r.enabled() {
        return true;
    }
    match m.location {
        Some(Location::Remote | Location::Both) => true,
        Some(Location::Local) => false,
        None => m.offsite.as_ref().is_some_and(|o| counts_for(o, r)),
    }
}

/// The reply to `backup status`.
/// `merged` is the listing with the bucket's backups when a bucket is configured.
pub(super) fn build(
    cfg: &Config,
    running: Vec<JobInfo>,
    next: &[(BackupKind, DateTime<Utc>)],
    merged: Option<Vec<BackupMeta>>,
    offsite: Option<UploadStatus>,
) -> StatusReply {
    let root = &cfg.backup.dir;
    let (local, problems) = catalog::listing_with_problems(root);
    let all = merged.unwrap_or(local);
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
            last_restore_test: newest_restore_test(&all, db, false),
            recovery_point_age_seconds: all
                .iter()
                .find(|m| m.is_good() && &m.database == db && counts_for_recovery(cfg, m))
                .map(|m| {
                    (now - m.finished_at.unwrap_or(m.started_at)).num_milliseconds() as f64 / 1000.0
                }),
            remote_backups: all
                .iter()
                .filter(|m| m.is_good() && &m.database == db)
                .filter(|m| {
                    matches!(
                        m.location,
                        Some(catalog::Location::Remote | catalog::Location::Both)
                    )
                })
                .count(),
            recovery_time_seconds: newest_restore_test(&all, db, true).map(|t| t.duration_seconds),
            good_backups: *good,
            stored_bytes: *bytes,
        })
        .collect::<Vec<_>>();
    StatusReply {
        dir_problem: super::dir_check::dir_problem(root),
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
        offsite,
    }
}

/// The recovery point (newest intact backup) of each database, and its newest passing
/// restore test's time and duration, from the catalog.
/// With a bucket configured, only backups with a checked copy there count for the recovery
/// point: a backup on the database's own disk does not survive the loss of that disk.
fn restore_test_metrics(cfg: &Config, all: &[BackupMeta], metrics: &Metrics) {
    let mut newest_good = std::collections::BTreeMap::new();
    let mut newest_test = std::collections::BTreeMap::new();
    for m in all.iter().filter(|m| m.is_good()) {
        let at = crate::unix_seconds(m.finished_at.unwrap_or(m.started_at));
        if counts_for_recovery(cfg, m) {
            let e = newest_good.entry(m.database.clone()).or_insert(at);
            *e = e.max(at);
        }
        if let Some(t) = m.restore_test.as_ref().filter(|t| t.ok) {
            let at = crate::unix_seconds(t.at);
            let e = newest_test
                .entry(m.database.clone())
                .or_insert((at, t.duration_seconds));
            if at > e.0 {
                *e = (at, t.duration_seconds);
            }
        }
    }
    let r = &metrics.restore_test;
    for (db, (at, seconds)) in &newest_test {
        r.last_success.with_label_values(&[db.as_str()]).set(*at);
        r.duration.with_label_values(&[db.as_str()]).set(*seconds);
    }
    r.set_recovery_points(newest_good);
}

/// Sets the catalog gauges and the newest good backup's gauges from the catalog on disk.
pub(crate) fn refresh_metrics(cfg: &Config, metrics: &Metrics) {
    let all = catalog::listing(&cfg.backup.dir);
    let s = summarize(&all);
    let b = &metrics.backup;
    b.damaged.reset();
    for db in s.per_db.keys() {
        metrics.know_backup_database(db);
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
            .set(crate::unix_seconds(finished));
        b.last_duration
            .with_label_values(&labels)
            .set(m.duration_seconds);
        b.last_size
            .with_label_values(&labels)
            .set(m.stored_bytes as i64);
    }
    restore_test_metrics(cfg, &all, metrics);
    if !cfg.backup.remote.enabled() {
        metrics
            .restore_test
            .set_offsite_recovery_points(BTreeMap::new());
    }
    if let Some(free) = free_bytes(&cfg.backup.dir) {
        b.dir_free.set(free as i64);
    }
    let problem = super::dir_check::dir_problem(&cfg.backup.dir);
    b.dir_usable.set(i64::from(problem.is_none()));
    if let Ok(mut p) = b.dir_problem.write() {
        *p = problem;
    }
}
