//! Applying retention to the catalog: what `retention::select` picks is deleted (metadata renamed to a
//! `.deleting` marker first, then the file, so a crash never leaves a listed backup without its file); nothing steward did not write is ever touched.
//! On request, retention in the bucket (`[backup.remote]`) runs after it, and the reply names
//! which copy each deletion took.

use super::api::{PruneReply, Pruned};
use super::catalog;
use super::ctx::Ctx;
use super::error::BackupError;
use super::retention::{self, Candidate, Policy};
use chrono::Utc;

/// Runs retention now; with `dry_run`, only reports. Each deletion's audit line is written
/// and flushed before the deletion; when it cannot be, retention stops there (what was
/// deleted before is reported in the error). On request (`backup prune`) the bucket's copies
/// are pruned too; after a backup they are not, since the bucket's run follows that backup's
/// checked upload.
pub(super) async fn run(
    ctx: &Ctx,
    dry_run: bool,
    audit: &crate::audit::AuditHandle,
    on_request: bool,
    uploads: &super::remote::UploadHandle,
) -> Result<PruneReply, BackupError> {
    let started = std::time::Instant::now();
    let cfg = ctx.config.clone();
    let (all, decisions) = tokio::task::spawn_blocking(move || {
        let (all, _) = catalog::load_all(&cfg.backup.dir);
        let candidates: Vec<Candidate> = all
            .iter()
            .map(|m| Candidate {
                id: m.id.clone(),
                database: m.database.clone(),
                kind: m.kind,
                good: m.is_good(),
                started_at: m.started_at,
            })
            .collect();
        let decisions =
            retention::select(&candidates, &Policy::from_config(&cfg.backup), Utc::now());
        (all, decisions)
    })
    .await
    .map_err(|e| BackupError::Failed(format!("retention stopped: {e}")))?;
    let root = ctx.config.backup.dir.clone();
    let mut deleted = Vec::new();
    for d in &decisions {
        let Some(meta) = all.iter().find(|m| m.id == d.id) else {
            continue;
        };
        let p = pruned(meta, &d.reason);
        if !dry_run {
            if let Err(e) = audit.record(entry(&p, on_request, started)).await {
                return Err(BackupError::Failed(format!(
                    "retention stopped before deleting {} ({} deleted before it): {e}",
                    p.id,
                    deleted.len()
                )));
            }
            let (root, m) = (root.clone(), meta.clone());
            let out = tokio::task::spawn_blocking(move || catalog::delete(&root, &m))
                .await
                .map_err(|e| BackupError::Failed(format!("retention stopped: {e}")))?;
            if let Err(e) = out {
                tracing::warn!(id = %meta.id, error = %e, "retention could not delete a backup");
                let failed = entry(&p, on_request, started)
                    .outcome(crate::audit::Outcome::Error, Some(e.to_string()));
                let _ = audit.record(failed).await;
                continue;
            }
            ctx.metrics
                .backup
                .prune_deleted
                .with_label_values(&[&meta.database, meta.kind.as_str()])
                .inc();
            tracing::info!(id = %meta.id, database = %meta.database, reason = %d.reason, "backup deleted by retention");
        }
        deleted.push(p);
    }
    if !dry_run {
        ctx.metrics.backup.last_prune.set(crate::unix_now());
    }
    let kept = all.len() - deleted.len();
    if on_request {
        let args = super::remote::PruneArgs {
            cfg: &ctx.config,
            audit,
            metrics: &ctx.metrics,
            trigger: super::remote::prune::Trigger::Request,
            dry_run,
        };
        let remote = uploads.prune(args).await.map_err(|e| {
            BackupError::Failed(format!(
                "{e} (locally, {} backups {})",
                deleted.len(),
                if dry_run { "would go" } else { "were deleted" }
            ))
        })?;
        deleted.extend(remote);
    }
    Ok(PruneReply {
        dry_run,
        kept,
        deleted,
    })
}

/// The audit line of one retention deletion.
fn entry(p: &Pruned, on_request: bool, started: std::time::Instant) -> crate::audit::Entry {
    let args = serde_json::json!({
        "id": p.id,
        "database": p.database,
        "kind": p.kind,
        "reason": p.reason,
        "stored_bytes": p.stored_bytes,
        "trigger": if on_request { "backup_prune" } else { "after_backup" },
    });
    crate::audit::Entry::new("backup.retention", "backup_delete", args, started)
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
        location: Some(catalog::Location::Local),
    }
}
