//! Retention in the bucket: the local rules (`retention::select`) applied to the bucket's own
//! catalog, with `[backup.remote] retention_days` / `weekly_retention_weeks` where set. Damaged
//! and failed entries never count as backups, the newest intact copy of each database stays,
//! only keys steward names are touched, and every deletion is audited before it begins.

use super::error::RemoteError;
use super::index::{parse_key, RemoteBackup, Role, META_CAP};
use super::store::RemoteStore;
use crate::backup::api::Pruned;
use crate::backup::catalog::{self, BackupStatus, Location};
use crate::backup::retention::{self, Candidate, Policy};
use crate::config::Config;
use crate::metrics::Metrics;
use object_store::path::Path as Key;

/// What started a run, as its audit lines say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `backup prune`.
    Request,
    /// A checked upload (a new copy may let older ones go).
    AfterUpload,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Request => "backup_prune",
            Trigger::AfterUpload => "after_upload",
        }
    }
}

/// The local policy, with the bucket's own keep where `[backup.remote]` sets one (the bucket
/// is often where backups are kept longer).
pub fn policy(cfg: &Config) -> Policy {
    let mut p = Policy::from_config(&cfg.backup);
    let r = &cfg.backup.remote;
    if let Some(days) = r.retention_days {
        p.daily_days = days;
    }
    if let Some(weeks) = r.weekly_retention_weeks {
        p.weekly_weeks = weeks;
    }
    p
}

/// A bucket entry as retention sees it. A damaged entry is dated and kinded by its ID (its
/// metadata cannot be trusted), and a good one counts only when every file its metadata names
/// is there with its size: a copy missing its data must not stand in for the newest backup.
fn candidate(store: &RemoteStore, b: &RemoteBackup) -> Option<Candidate> {
    let m = &b.meta;
    let (started_at, kind) = match m.status {
        BackupStatus::Damaged => catalog::parse_id(&m.id)?,
        _ => (m.started_at, m.kind),
    };
    Some(Candidate {
        id: m.id.clone(),
        database: m.database.clone(),
        kind,
        good: m.is_good() && intact(store, b),
        started_at,
    })
}

/// Every file a good entry's metadata names is in the bucket with the size it records.
fn intact(store: &RemoteStore, b: &RemoteBackup) -> bool {
    let m = &b.meta;
    let mut wanted: Vec<(&str, u64)> = Vec::new();
    match &m.file {
        Some(f) => wanted.push((f, m.stored_bytes)),
        None => return false,
    }
    if let Some(g) = &m.globals {
        wanted.push((&g.file, g.stored_bytes));
    }
    wanted.iter().all(|(file, size)| {
        store.key(&m.database, file).is_ok_and(|k| {
            b.objects
                .iter()
                .any(|(key, n)| key == k.as_ref() && n == size)
        })
    })
}

/// The data and globals objects of `b`: only keys that parse as this ID's files in its
/// database's directory (never the metadata, never anything steward does not name).
fn files(store: &RemoteStore, b: &RemoteBackup) -> Vec<(Key, u64)> {
    b.objects
        .iter()
        .filter(|(key, _)| {
            parse_key(store, key).is_some_and(|(db, id, role)| {
                role == Role::File && id == b.meta.id && db == b.meta.database
            })
        })
        .filter_map(|(key, n)| Key::parse(key).ok().map(|k| (k, *n)))
        .collect()
}

/// Runs retention in the bucket over `remote` (a fresh reading of its catalog): first finishes
/// deletions a stop cut short, then deletes what the policy selects. With `dry_run`, only
/// reports. Each deletion's audit line is written before it begins; when it cannot be, the
/// run stops there. A deletion that fails stops the run too (the bucket is likely unreachable):
/// the error says how many went before it.
pub async fn run(
    store: &RemoteStore,
    remote: &[RemoteBackup],
    cfg: &Config,
    audit: &crate::audit::AuditHandle,
    metrics: &Metrics,
    trigger: Trigger,
    dry_run: bool,
) -> Result<Vec<Pruned>, String> {
    let started = std::time::Instant::now();
    let mut due: Vec<(&RemoteBackup, Pruned)> = remote
        .iter()
        .filter(|b| b.deleting)
        .map(|b| (b, unfinished(store, b)))
        .collect();
    let live: Vec<&RemoteBackup> = remote.iter().filter(|b| !b.deleting).collect();
    let candidates: Vec<Candidate> = live.iter().filter_map(|b| candidate(store, b)).collect();
    for d in retention::select(&candidates, &policy(cfg), chrono::Utc::now()) {
        if let Some(b) = live.iter().find(|b| b.meta.id == d.id) {
            due.push((b, pruned(b, d.kind, d.reason, b.meta.stored_bytes)));
        }
    }
    let mut deleted = Vec::new();
    for (b, p) in due {
        if dry_run {
            deleted.push(p);
            continue;
        }
        let line = entry(&p, store, trigger, started);
        if let Err(e) = audit.record(line.clone()).await {
            return Err(format!(
                "retention in the bucket stopped before deleting {} ({} deleted before it): {e}",
                p.id,
                deleted.len()
            ));
        }
        if let Err(e) = delete(store, b).await {
            let e = cfg.scrubber().scrub(&e.to_string());
            let failed = line.outcome(crate::audit::Outcome::Error, Some(e.clone()));
            let _ = audit.record(failed).await;
            return Err(format!(
                "retention in the bucket stopped at {} ({} deleted before it): {e}",
                p.id,
                deleted.len()
            ));
        }
        metrics
            .backup
            .prune_deleted
            .with_label_values(&[&p.database, p.kind.as_str()])
            .inc();
        tracing::info!(id = %p.id, database = %p.database, reason = %p.reason, url = %store.url, "off-site copy deleted by retention");
        deleted.push(p);
    }
    Ok(deleted)
}

/// The record of an entry whose deletion a stop cut short (its metadata may be gone already:
/// its kind is its ID's, its size what is left of its files).
fn unfinished(store: &RemoteStore, b: &RemoteBackup) -> Pruned {
    let kind = catalog::parse_id(&b.meta.id).map_or(b.meta.kind, |(_, k)| k);
    let left = files(store, b).iter().map(|(_, n)| n).sum();
    pruned(
        b,
        kind,
        "its deletion was begun before and is finished now".into(),
        left,
    )
}

fn pruned(
    b: &RemoteBackup,
    kind: crate::backup::kind::BackupKind,
    reason: String,
    stored_bytes: u64,
) -> Pruned {
    Pruned {
        id: b.meta.id.clone(),
        database: b.meta.database.clone(),
        kind,
        reason,
        stored_bytes,
        location: Some(Location::Remote),
    }
}

/// The audit line of one deletion in the bucket.
fn entry(
    p: &Pruned,
    store: &RemoteStore,
    trigger: Trigger,
    started: std::time::Instant,
) -> crate::audit::Entry {
    let args = serde_json::json!({
        "id": p.id,
        "database": p.database,
        "kind": p.kind,
        "reason": p.reason,
        "stored_bytes": p.stored_bytes,
        "trigger": trigger.as_str(),
        "where": "remote",
        "url": store.url,
    });
    crate::audit::Entry::new("backup.retention", "backup_delete", args, started)
}

/// Deletes one backup from the bucket so that a stop at any step leaves no listed backup
/// without its files: a `<id>.deleting.json` marker (a copy of the metadata) first, then the
/// metadata, the data and globals objects, and the marker last. An entry found with its
/// marker is taken up where it stopped.
async fn delete(store: &RemoteStore, b: &RemoteBackup) -> Result<(), RemoteError> {
    let (db, id) = (&b.meta.database, &b.meta.id);
    let meta_key = store.key(db, &format!("{id}.json"))?;
    let marker = store.key(db, &format!("{id}.deleting.json"))?;
    if !b.deleting {
        let bytes = match store.get_small(&meta_key, META_CAP).await {
            Ok(bytes) => bytes,
            // Unreadable or gone: the marker records what the catalog made of it.
            Err(RemoteError::NotFound { .. } | RemoteError::Mismatch { .. }) => {
                serde_json::to_vec(&b.meta).unwrap_or_default().into()
            }
            Err(e) => return Err(e),
        };
        store.put_small(&marker, bytes).await?;
    }
    store.delete(&meta_key).await?;
    for (key, _) in files(store, b) {
        store.delete(&key).await?;
    }
    store.delete(&marker).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buckets_own_keep_replaces_the_local_one_only_where_set() {
        let mut cfg = Config::default();
        cfg.backup.retention_days = 7;
        cfg.backup.weekly_retention_weeks = 4;
        assert_eq!(policy(&cfg), Policy::from_config(&cfg.backup));
        cfg.backup.remote.retention_days = Some(30);
        let p = policy(&cfg);
        assert_eq!((p.daily_days, p.weekly_weeks), (30, 4));
        cfg.backup.remote.weekly_retention_weeks = Some(52);
        assert_eq!(policy(&cfg).weekly_weeks, 52);
    }
}
