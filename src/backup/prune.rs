//! Applying retention to the catalog: what `retention::select` picks is deleted (metadata renamed to a
//! `.deleting` marker first, then the file, so a crash never leaves a listed backup without its file); nothing steward did not write is ever touched.

use super::api::{PruneReply, Pruned};
use super::catalog;
use super::manager::BackupError;
use super::retention::{self, Candidate, Policy};
use super::Ctx;
use chrono::Utc;

/// Runs retention now; with `dry_run`, only reports.
pub(super) async fn run(ctx: &Ctx, dry_run: bool) -> Result<PruneReply, BackupError> {
    let cfg = ctx.config.clone();
    let metrics = ctx.metrics.clone();
    tokio::task::spawn_blocking(move || {
        let root = &cfg.backup.dir;
        let (all, _) = catalog::load_all(root);
        let candidates: Vec<Candidate> = all
            .iter()
            .map(|m| Candidate { id: m.id.clone(), database: m.database.clone(), kind: m.kind, good: m.is_good(), started_at: m.started_at })
            .collect();
        let decisions = retention::select(&candidates, &Policy::from_config(&cfg.backup), Utc::now());
        let mut deleted = Vec::new();
        for d in &decisions {
            let Some(meta) = all.iter().find(|m| m.id == d.id) else { continue };
            if !dry_run {
                if let Err(e) = catalog::delete(root, meta) {
                    tracing::warn!(id = %meta.id, error = %e, "retention could not delete a backup");
                    continue;
                }
                metrics.backup.prune_deleted.with_label_values(&[&meta.database, meta.kind.as_str()]).inc();
                tracing::info!(id = %meta.id, database = %meta.database, reason = %d.reason, "backup deleted by retention");
            }
            deleted.push(Pruned { id: meta.id.clone(), database: meta.database.clone(), kind: meta.kind, reason: d.reason.clone(), stored_bytes: meta.stored_bytes });
        }
        if !dry_run {
            metrics.backup.last_prune.set(crate::unix_now());
        }
        Ok(PruneReply { dry_run, kept: all.len() - deleted.len(), deleted })
    })
    .await
    .map_err(|e| BackupError::Failed(format!("retention stopped: {e}")))?
}

/// Records each backup retention deleted, one audit line per backup.
pub(super) async fn audit(
    audit: &crate::audit::AuditHandle,
    reply: &PruneReply,
    on_request: bool,
    started: std::time::Instant,
) {
    for p in &reply.deleted {
        let args = serde_json::json!({
            "id": p.id,
            "database": p.database,
            "kind": p.kind,
            "reason": p.reason,
            "stored_bytes": p.stored_bytes,
            "trigger": if on_request { "backup_prune" } else { "after_backup" },
        });
        let entry = crate::audit::Entry::new("backup.retention", "backup_delete", args, started);
        // The deletion has happened; a failure to record it is logged and counted.
        let _ = audit.record(entry).await;
    }
}

/// `backup delete ID [--force]`: one backup, failed or damaged entry out of the catalog (the
/// same crash-safe deletion as retention). The newest intact backup of its database goes only
/// with `force`; an entry whose metadata cannot be trusted is removed by its ID's file names.
pub(super) fn delete_one(
    root: &std::path::Path,
    id: &str,
    force: bool,
) -> Result<Pruned, BackupError> {
    let meta = match catalog::find(root, id) {
        Ok(m) => m,
        Err(catalog::CatalogError::Corrupt { .. }) => {
            let m = catalog::delete_untrusted(root, id)?;
            tracing::warn!(id = %id, database = %m.database, "damaged entry deleted by request");
            return Ok(pruned(
                &m,
                "deleted by request (its metadata could not be trusted)",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if meta.is_good() && !force {
        let newest = catalog::load_all(root)
            .0
            .into_iter()
            .find(|m| m.database == meta.database && m.is_good());
        if newest.is_some_and(|n| n.id == meta.id) {
            return Err(BackupError::Refused(format!(
                "backup {id} is the newest intact backup of database {:?}; pass --force to delete it anyway",
                meta.database
            )));
        }
    }
    catalog::delete(root, &meta)?;
    tracing::info!(id = %id, database = %meta.database, status = ?meta.status, "backup deleted by request");
    Ok(pruned(&meta, "deleted by request"))
}

fn pruned(m: &catalog::BackupMeta, reason: &str) -> Pruned {
    Pruned {
        id: m.id.clone(),
        database: m.database.clone(),
        kind: m.kind,
        reason: reason.into(),
        stored_bytes: m.stored_bytes,
    }
}
