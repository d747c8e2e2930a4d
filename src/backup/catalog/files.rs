//! The catalog on disk: metadata written atomically (the commit marker of a backup) or as a
//! running marker, read back and checked, looked up by ID, and deleted (metadata first, so a
//! listed backup never lacks its file).

use super::error::{io, CatalogError};
use super::meta::BackupMeta;
use super::names::{
    data_path, db_dir, deleting_path, globals_path, marker_path, meta_path, validate_id,
};
use super::{dir_name, lock};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Creates a directory (and parents) with mode 0700.
pub fn ensure_dir(dir: &Path) -> Result<(), CatalogError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("create directory", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io("set the mode of", dir))
}

/// Fsyncs a directory so a rename or removal in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), CatalogError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync directory", dir))
}

pub(super) fn write_json(path: &Path, meta: &BackupMeta) -> Result<(), CatalogError> {
    let mut stored = meta.clone();
    stored.location = None;
    let mut bytes = serde_json::to_vec_pretty(&stored).unwrap_or_default();
    bytes.push(b'\n');
    crate::durable::write_atomic(path, &bytes).map_err(io("write metadata", path))
}

/// Seals and writes the metadata: the commit marker, written only once the file is durable.
pub fn commit(root: &Path, meta: &mut BackupMeta) -> Result<(), CatalogError> {
    meta.seal();
    write_json(&meta_path(root, meta), meta)?;
    let _ = fs::remove_file(marker_path(root, meta));
    Ok(())
}

/// Removes the running marker of a run that recorded nothing (it was skipped).
pub fn unmark_running(root: &Path, meta: &BackupMeta) {
    let _ = fs::remove_file(marker_path(root, meta));
}

/// Records that a backup started, so a crash leaves a trace the next start turns into a failure.
pub fn mark_running(root: &Path, meta: &BackupMeta) -> Result<(), CatalogError> {
    ensure_dir(&db_dir(root, &meta.database))?;
    write_json(&marker_path(root, meta), meta)
}

/// Every backup in the catalog (newest first), plus metadata files that could not be trusted.
pub fn load_all(root: &Path) -> (Vec<BackupMeta>, Vec<CatalogError>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let Ok(dbs) = fs::read_dir(root) else {
        return (out, problems);
    };
    for db in dbs.flatten().filter(|e| e.path().is_dir()) {
        let Ok(files) = fs::read_dir(db.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            if validate_id(id).is_err() {
                continue;
            }
            match read_meta(&f.path(), id) {
                Ok(m) => out.push(m),
                Err(e) => problems.push(e),
            }
        }
    }
    out.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
    (out, problems)
}

pub(super) fn read_meta(path: &Path, id: &str) -> Result<BackupMeta, CatalogError> {
    let text = fs::read_to_string(path).map_err(io("read", path))?;
    let corrupt = |reason: String| CatalogError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let meta: BackupMeta = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    if meta.id != id {
        return Err(corrupt(format!("it names ID {:?}", meta.id)));
    }
    check_names(path, &meta).map_err(corrupt)?;
    if !meta.checksum_ok() {
        return Err(corrupt("its checksum does not match its content".into()));
    }
    Ok(meta)
}

/// Names read from a metadata or marker file are data, not paths: the database must be a
/// valid name whose escaping is the directory the file is in, before any path is built from it.
pub(super) fn check_names(path: &Path, meta: &BackupMeta) -> Result<(), String> {
    let dir = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    if !crate::config::is_backup_database_name(&meta.database)
        || dir != Some(dir_name::encode(&meta.database).as_str())
    {
        return Err(format!(
            "it names database {:?}, not the directory it is in ({})",
            meta.database.chars().take(80).collect::<String>(),
            dir.unwrap_or("?")
        ));
    }
    validate_id(&meta.id).map_err(|e| e.to_string())
}

/// Looks an ID up; only well-formed IDs are looked for, and only inside the catalog.
pub fn find(root: &Path, id: &str) -> Result<BackupMeta, CatalogError> {
    validate_id(id)?;
    let Ok(dbs) = fs::read_dir(root) else {
        return Err(CatalogError::Unknown(id.into()));
    };
    for db in dbs.flatten().filter(|e| e.path().is_dir()) {
        let path = db.path().join(format!("{id}.json"));
        if path.is_file() {
            return read_meta(&path, id);
        }
    }
    Err(CatalogError::Unknown(id.into()))
}

/// Deletes a backup. Its metadata is first renamed to `<id>.deleting.json` (the backup leaves
/// the catalog at once, atomically), then the data file and that marker are removed; a crash
/// in between leaves the marker, and the next start's `sweep` finishes the deletion, so a
/// listed backup never lacks its file. Nothing else is touched.
pub fn delete(root: &Path, meta: &BackupMeta) -> Result<(), CatalogError> {
    let _lock = lock::lock(root);
    let m = meta_path(root, meta);
    let doomed = deleting_path(root, meta);
    fs::rename(&m, &doomed).map_err(io("delete", &m))?;
    sync_dir(&db_dir(root, &meta.database))?;
    finish_delete(root, meta, &doomed)
}

/// Removes the data file, then the deletion marker, of a backup already out of the catalog.
pub(super) fn finish_delete(
    root: &Path,
    meta: &BackupMeta,
    doomed: &Path,
) -> Result<(), CatalogError> {
    let gone = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    for p in data_path(root, meta)
        .into_iter()
        .chain(globals_path(root, meta))
    {
        gone(fs::remove_file(&p)).map_err(io("delete", &p))?;
    }
    gone(fs::remove_file(doomed)).map_err(io("delete", doomed))?;
    sync_dir(&db_dir(root, &meta.database))
}
