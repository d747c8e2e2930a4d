//! The start-up sweep: what a crash left in the catalog is settled before anything else runs —
//! interrupted runs become failed entries, half-done deletions are finished, temporary files of
//! steward's own naming are removed. Files steward did not name are never touched.

use super::files::{check_names, commit, finish_delete, read_meta};
use super::meta::{BackupMeta, BackupStatus};
use super::names::{data_file_name, db_dir, globals_file_name, meta_path, validate_id};
use std::fs;
use std::path::Path;

/// At start: turns runs that were interrupted into failed entries, finishes deletions a crash
/// cut short, and removes temporary files; returns the failed entries recorded.
pub fn sweep(root: &Path) -> Vec<BackupMeta> {
    let _lock = super::lock::lock(root);
    let mut failed = Vec::new();
    let Ok(dbs) = fs::read_dir(root) else {
        return failed;
    };
    for db in dbs.flatten().filter(|e| e.path().is_dir()) {
        let Ok(files) = fs::read_dir(db.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".running.json") {
                if validate_id(id).is_ok() {
                    if let Some(m) = fail_interrupted(root, &f.path(), id) {
                        failed.push(m);
                    }
                }
            } else if let Some(id) = name.strip_suffix(".deleting.json") {
                if validate_id(id).is_ok() {
                    finish_interrupted_delete(root, &f.path(), id);
                }
            } else if name.ends_with(".tmp")
                && validate_id(name.get(..name.find('.').unwrap_or(0)).unwrap_or("")).is_ok()
            {
                let _ = fs::remove_file(f.path());
            }
        }
    }
    failed
}

fn fail_interrupted(root: &Path, marker: &Path, id: &str) -> Option<BackupMeta> {
    let text = fs::read_to_string(marker).ok()?;
    let mut meta: BackupMeta = serde_json::from_str(&text).ok()?;
    // Nothing in the marker becomes a path before it is checked like a configured name.
    if let Err(why) = (meta.id == id)
        .then_some(())
        .ok_or_else(|| {
            format!(
                "it names ID {:?}",
                meta.id.chars().take(80).collect::<String>()
            )
        })
        .and_then(|()| check_names(marker, &meta))
    {
        tracing::warn!(marker = %marker.display(), problem = %why, "running marker left alone: it cannot be trusted");
        return None;
    }
    // Killed after the commit but before the marker was removed: the backup is complete and
    // recorded; only the marker is left over.
    if read_meta(&meta_path(root, &meta), &meta.id).is_ok() {
        let _ = fs::remove_file(marker);
        return None;
    }
    // A file completed but never committed is not a backup: remove it with the marker.
    let encrypted = meta.encryption.is_some();
    let orphan = db_dir(root, &meta.database).join(data_file_name(
        &meta.id,
        meta.format,
        meta.compression,
        encrypted,
    ));
    let _ = fs::remove_file(orphan);
    let _ = fs::remove_file(db_dir(root, &meta.database).join(globals_file_name(
        &meta.id,
        meta.compression,
        encrypted,
    )));
    meta.globals = None;
    meta.status = BackupStatus::Failed;
    meta.error = Some("interrupted: steward stopped before the backup completed".into());
    meta.finished_at = None;
    meta.file = None;
    commit(root, &mut meta).ok()?;
    Some(meta)
}

/// A deletion cut short after its metadata was renamed away: remove the rest. A marker that
/// cannot be trusted is left alone (and logged), since it cannot say which file is the backup's.
fn finish_interrupted_delete(root: &Path, doomed: &Path, id: &str) {
    let done = read_meta(doomed, id)
        .map_err(|e| e.to_string())
        .and_then(|meta| finish_delete(root, &meta, doomed).map_err(|e| e.to_string()));
    match done {
        Ok(()) => tracing::info!(%id, "finished deleting a backup whose deletion was interrupted"),
        Err(e) => tracing::warn!(%id, error = %e, "cannot finish an interrupted deletion"),
    }
}
