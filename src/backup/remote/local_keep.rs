//! `backup.remote.local_keep`: once a backup's off-site copy is checked, the local copies of
//! its database beyond the newest `local_keep` good ones go, each audited first. A local copy
//! whose off-site copy is not checked (in the configured bucket) is never deleted here, nor
//! one the bucket's catalog as just read does not hold whole: the local record of a checked
//! copy is no proof that the bucket still holds it (emptied or changed behind steward's back).

use super::index::RemoteBackup;
use super::offsite_copy::counts;
use super::store::RemoteStore;
use crate::backup::catalog::{self, BackupMeta};
use std::path::Path;

/// The local backups of `database` that `keep` lets go: good, beyond the newest `keep`, with
/// a checked copy in `store`'s bucket, and held whole in `remote` (that bucket's catalog as
/// just read).
pub fn select(
    all: &[BackupMeta],
    database: &str,
    keep: u32,
    store: &RemoteStore,
    remote: &[RemoteBackup],
) -> Vec<BackupMeta> {
    let mut good: Vec<&BackupMeta> = all
        .iter()
        .filter(|m| m.database == database && m.is_good())
        .collect();
    good.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
    good.into_iter()
        .skip(keep as usize)
        .filter(|m| m.offsite.as_ref().is_some_and(|o| counts(o, store)))
        .filter(|m| remote.iter().any(|b| super::index::holds(b, m)))
        .cloned()
        .collect()
}

/// Applies `keep` to `database`'s local copies; returns how many went. Stops at the first
/// audit line that cannot be written (no line, no deletion).
pub async fn apply(
    root: &Path,
    database: &str,
    keep: u32,
    store: &RemoteStore,
    remote: &[RemoteBackup],
    audit: &crate::audit::AuditHandle,
) -> Result<usize, String> {
    let started = std::time::Instant::now();
    let r = root.to_path_buf();
    let all = tokio::task::spawn_blocking(move || catalog::load_all(&r).0)
        .await
        .map_err(|e| e.to_string())?;
    let mut gone = 0;
    for m in select(&all, database, keep, store, remote) {
        let args = serde_json::json!({
            "id": m.id,
            "database": m.database,
            "kind": m.kind,
            "reason": format!("backup.remote.local_keep = {keep}: its checked copy stays in {}", store.url),
            "stored_bytes": m.stored_bytes,
            "where": "local",
        });
        audit
            .record(crate::audit::Entry::new(
                "backup.remote",
                "backup_delete",
                args,
                started,
            ))
            .await
            .map_err(|e| format!("local copies kept: {e}"))?;
        let (r, meta) = (root.to_path_buf(), m.clone());
        match tokio::task::spawn_blocking(move || catalog::delete(&r, &meta)).await {
            Ok(Ok(())) => {
                gone += 1;
                tracing::info!(id = %m.id, database = %m.database, keep, "local copy removed; the backup stays in the bucket");
            }
            Ok(Err(e)) => tracing::warn!(id = %m.id, error = %e, "could not remove a local copy"),
            Err(e) => return Err(e.to_string()),
        }
    }
    tracing::debug!(database, keep, gone, "backup.remote.local_keep applied");
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::catalog::{BackupStatus, OffsiteCopy};
    use crate::backup::kind::BackupKind;

    fn store() -> RemoteStore {
        let r = crate::config::RemoteConfig {
            url: "s3://some-bucket/prod".into(),
            endpoint: "http://127.0.0.1:9".into(),
            path_style: true,
            ..Default::default()
        };
        RemoteStore::from_config(&r).unwrap().unwrap()
    }

    fn local(id: &str, minute: i64, store: &RemoteStore) -> BackupMeta {
        let mut m = BackupMeta::sample(id, "app", BackupKind::Manual, BackupStatus::Good);
        m.started_at = chrono::Utc::now() - chrono::Duration::minutes(60 - minute);
        m.file = Some(format!("{id}.sql.gz"));
        m.stored_bytes = 100 + minute as u64;
        m.sha256 = Some(format!("{minute:064}"));
        m.offsite = Some(OffsiteCopy {
            url: store.url.clone(),
            endpoint: store.endpoint.clone(),
            checked_at: chrono::Utc::now(),
        });
        m
    }

    fn in_bucket(m: &BackupMeta) -> RemoteBackup {
        let mut meta = m.clone();
        meta.offsite = None;
        RemoteBackup {
            objects: vec![
                (
                    format!("prod/app/{}", m.file.clone().unwrap()),
                    m.stored_bytes,
                ),
                (format!("prod/app/{}.json", m.id), 900),
            ],
            meta,
            deleting: false,
        }
    }

    #[test]
    fn a_local_copy_goes_only_when_the_bucket_as_read_holds_it_whole() {
        let s = store();
        let old = local("20260101T000000Z-manual-0001", 1, &s);
        let new = local("20260101T000100Z-manual-0002", 2, &s);
        let all = vec![old.clone(), new.clone()];
        let ids = |r: &[RemoteBackup]| -> Vec<String> {
            select(&all, "app", 1, &s, r)
                .into_iter()
                .map(|m| m.id)
                .collect()
        };
        let whole = vec![in_bucket(&old), in_bucket(&new)];
        assert_eq!(ids(&whole), vec![old.id.clone()]);
        // The bucket was emptied behind steward's back: the local record proves nothing.
        assert!(ids(&[in_bucket(&new)]).is_empty());
        assert!(ids(&[]).is_empty());
        // Its data object gone or cut short, its deletion begun, or another backup's
        // metadata under its key: not held.
        let mut no_data = in_bucket(&old);
        no_data.objects.retain(|(k, _)| k.ends_with(".json"));
        let mut short = in_bucket(&old);
        short.objects[0].1 -= 1;
        let mut deleting = in_bucket(&old);
        deleting.deleting = true;
        let mut other = in_bucket(&old);
        other.meta.sha256 = Some("f".repeat(64));
        let mut damaged = in_bucket(&old);
        damaged.meta.status = BackupStatus::Damaged;
        for b in [no_data, short, deleting, other, damaged] {
            assert!(ids(&[b.clone(), in_bucket(&new)]).is_empty(), "{b:?}");
        }
    }
}
