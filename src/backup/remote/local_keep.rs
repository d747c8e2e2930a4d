//! `backup.remote.local_keep`: once a backup's off-site copy is checked, the local copies of
//! its database beyond the newest `local_keep` good ones go, each audited first. A local copy
//! whose off-site copy is not checked (in the configured bucket), or is no longer listed there
//! as good (the bucket's retention or someone else removed it), is never deleted here.

use super::store::RemoteStore;
use super::upload::counts;
use crate::backup::catalog::{self, BackupMeta};
use std::path::Path;

/// The local backups of `database` that `keep` lets go: good, beyond the newest `keep`, and
/// with a checked copy in `store`'s bucket.
pub fn select(
    all: &[BackupMeta],
    database: &str,
    keep: u32,
    store: &RemoteStore,
    in_bucket: &std::collections::HashSet<String>,
) -> Vec<BackupMeta> {
    let mut good: Vec<&BackupMeta> = all
        .iter()
        .filter(|m| m.database == database && m.is_good())
        .collect();
    good.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
    good.into_iter()
        .skip(keep as usize)
        .filter(|m| m.offsite.as_ref().is_some_and(|o| counts(o, store)))
        .filter(|m| in_bucket.contains(&m.id))
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
    audit: &crate::audit::AuditHandle,
    in_bucket: &std::collections::HashSet<String>,
) -> Result<usize, String> {
    let started = std::time::Instant::now();
    let r = root.to_path_buf();
    let all = tokio::task::spawn_blocking(move || catalog::load_all(&r).0)
        .await
        .map_err(|e| e.to_string())?;
    let mut gone = 0;
    for m in select(&all, database, keep, store, in_bucket) {
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
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::catalog::{BackupStatus, OffsiteCopy};
    use crate::backup::BackupKind;

    #[test]
    fn only_copies_the_bucket_lists_now_let_a_local_copy_go() {
        let r = crate::config::RemoteConfig {
            url: "s3://some-bucket/prod".into(),
            endpoint: "http://127.0.0.1:9".into(),
            ..Default::default()
        };
        let store = RemoteStore::from_config(&r).unwrap().unwrap();
        let copy = |m: &mut BackupMeta, url: &str| {
            m.offsite = Some(OffsiteCopy {
                url: url.into(),
                endpoint: store.endpoint.clone(),
                checked_at: chrono::Utc::now(),
            })
        };
        let mut all = Vec::new();
        for (i, url) in [
            "s3://some-bucket/prod",
            "s3://some-bucket/prod",
            "s3://other/x",
            "",
        ]
        .iter()
        .enumerate()
        {
            let mut m = BackupMeta::sample(
                &format!("2026110{i}T020000Z-daily-000{i}"),
                "app",
                BackupKind::Daily,
                BackupStatus::Good,
            );
            m.started_at -= chrono::Duration::days(i as i64);
            if !url.is_empty() {
                copy(&mut m, url);
            }
            all.push(m);
        }
        // Newest first: 0 is kept by keep = 1; 1 has a checked copy but the bucket lost it;
        // 2's copy is in another bucket; 3 was never uploaded.
        let in_bucket: std::collections::HashSet<String> = [all[0].id.clone()].into();
        assert!(select(&all, "app", 1, &store, &in_bucket).is_empty());
        let in_bucket: std::collections::HashSet<String> =
            all.iter().map(|m| m.id.clone()).collect();
        let gone: Vec<String> = select(&all, "app", 1, &store, &in_bucket)
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(gone, vec![all[1].id.clone()]);
    }
}
