//! `backup.remote.local_keep`: once a backup's off-site copy is checked, the local copies of
//! its database beyond the newest `local_keep` good ones go, each audited first. A local copy
//! whose off-site copy is not checked (in the configured bucket) is never deleted here.

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
) -> Vec<BackupMeta> {
    let mut good: Vec<&BackupMeta> = all
        .iter()
        .filter(|m| m.database == database && m.is_good())
        .collect();
    good.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
    good.into_iter()
        .skip(keep as usize)
        .filter(|m| m.offsite.as_ref().is_some_and(|o| counts(o, store)))
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
) -> Result<usize, String> {
    let started = std::time::Instant::now();
    let r = root.to_path_buf();
    let all = tokio::task::spawn_blocking(move || catalog::load_all(&r).0)
        .await
        .map_err(|e| e.to_string())?;
    let mut gone = 0;
    for m in select(&all, database, keep, store) {
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
