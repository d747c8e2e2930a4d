//! The catalog as users see it: `backup list` with damaged entries for metadata that cannot
//! be trusted, and the result of a verify recorded in a backup's metadata.

use super::error::CatalogError;
use super::files::{find, load_all, sync_dir, write_json};
use super::meta::{BackupMeta, BackupStatus, OffsiteCopy, RestoreTestRecord};
use super::names::{data_file_name, globals_file_name, meta_path, validate_id};
use crate::backup::kind::BackupKind;
use crate::config::{Compression, DumpFormat};
use chrono::{DateTime, Utc};
use std::fs;
use std::path::Path;

/// What `backup list` shows: the catalog plus, as `damaged` entries, metadata files that fail
/// their own checks (altered, unreadable) — listed, not dropped.
pub fn listing(root: &Path) -> Vec<BackupMeta> {
    listing_with_problems(root).0
}

/// [`listing`] plus the metadata files that could not be trusted, from one read of the
/// catalog (`backup status` shows both).
pub fn listing_with_problems(root: &Path) -> (Vec<BackupMeta>, Vec<CatalogError>) {
    let (mut all, problems) = load_all(root);
    for p in &problems {
        if let CatalogError::Corrupt { path, reason } = p {
            if let Some(m) = damaged_entry(path, reason) {
                all.push(m);
            }
        }
    }
    all.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
    (all, problems)
}

/// A damaged entry for a metadata file that cannot be trusted: what it says where it still
/// parses, else what its name and directory say; its data file is never named from it.
fn damaged_entry(path: &Path, reason: &str) -> Option<BackupMeta> {
    let id = path.file_name()?.to_str()?.strip_suffix(".json")?;
    validate_id(id).ok()?;
    let database = super::dir_name::decode(path.parent()?.file_name()?.to_str()?)?;
    let database = database.as_str();
    let (started_at, kind) = parse_id(id)?;
    let parsed = fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<BackupMeta>(&t).ok())
        .filter(|m| m.id == id && m.database == database);
    let mut m = parsed.unwrap_or_else(|| {
        BackupMeta::placeholder(id, database, kind, BackupStatus::Damaged, started_at)
    });
    m.status = BackupStatus::Damaged;
    m.error = Some(format!("its metadata cannot be trusted: {reason}"));
    m.file = None;
    Some(m)
}

/// The start time and kind an ID carries: what an entry whose metadata cannot be trusted is
/// dated and kinded by (the ID is the name steward gave it).
pub fn parse_id(id: &str) -> Option<(DateTime<Utc>, BackupKind)> {
    let stamp = chrono::NaiveDateTime::parse_from_str(id.get(..16)?, "%Y%m%dT%H%M%SZ").ok()?;
    let kind_word = id.get(17..)?.rsplit_once('-')?.0;
    let kind = BackupKind::ALL
        .into_iter()
        .find(|k| k.as_str() == kind_word)?;
    Some((stamp.and_utc(), kind))
}

/// Records what a verify (or a restore's check) found: `problems` marks the backup damaged;
/// none marks it verified now (a damaged one that now checks out is good again).
pub fn record_verify(
    root: &Path,
    id: &str,
    problems: Option<String>,
) -> Result<BackupMeta, CatalogError> {
    let _lock = super::lock::lock(root);
    let mut meta = find(root, id)?;
    match problems {
        Some(p) => {
            meta.status = BackupStatus::Damaged;
            meta.error = Some(p);
        }
        None if meta.status == BackupStatus::Damaged => {
            meta.status = BackupStatus::Good;
            meta.error = None;
        }
        None => {}
    }
    meta.verified_at = Some(Utc::now());
    meta.seal();
    write_json(&meta_path(root, &meta), &meta)?;
    Ok(meta)
}

/// Records the outcome of a restore test of backup `id` (its status is left as it is: a restore
/// test fails for reasons that are not the backup's, such as a lost connection).
pub fn record_restore_test(
    root: &Path,
    id: &str,
    record: RestoreTestRecord,
) -> Result<BackupMeta, CatalogError> {
    let _lock = super::lock::lock(root);
    let mut meta = find(root, id)?;
    meta.restore_test = Some(record);
    meta.seal();
    write_json(&meta_path(root, &meta), &meta)?;
    Ok(meta)
}

/// Records that backup `id`'s off-site copy was checked.
pub fn record_offsite(
    root: &Path,
    id: &str,
    copy: OffsiteCopy,
) -> Result<BackupMeta, CatalogError> {
    let _lock = super::lock::lock(root);
    let mut meta = find(root, id)?;
    meta.offsite = Some(copy);
    meta.seal();
    write_json(&meta_path(root, &meta), &meta)?;
    Ok(meta)
}

/// Removes an entry whose metadata cannot be trusted: its `<id>.json` and any data file of the
/// names steward gives that ID, in the directory holding it; nothing else.
pub fn delete_untrusted(root: &Path, id: &str) -> Result<BackupMeta, CatalogError> {
    validate_id(id)?;
    let _lock = super::lock::lock(root);
    let dir = fs::read_dir(root)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|d| d.join(format!("{id}.json")).is_file())
        .ok_or_else(|| CatalogError::Unknown(id.into()))?;
    let json = dir.join(format!("{id}.json"));
    let entry = damaged_entry(&json, "deleted").ok_or_else(|| CatalogError::Unknown(id.into()))?;
    for format in [DumpFormat::Plain, DumpFormat::Custom] {
        for compression in [Compression::Gzip, Compression::Zstd] {
            for encrypted in [false, true] {
                let _ =
                    fs::remove_file(dir.join(data_file_name(id, format, compression, encrypted)));
                let _ = fs::remove_file(dir.join(globals_file_name(id, compression, encrypted)));
            }
        }
    }
    fs::remove_file(&json).map_err(|e| CatalogError::Io {
        what: "delete",
        path: json.clone(),
        source: e,
    })?;
    sync_dir(&dir)?;
    Ok(entry)
}
