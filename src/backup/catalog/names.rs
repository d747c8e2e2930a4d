//! What the catalog calls things: backup IDs (made and strictly checked), the names of a
//! backup's files and the paths of its directory, data, globals and metadata. Nothing here
//! touches the disk.

use super::dir_name;
use super::error::CatalogError;
use super::meta::BackupMeta;
use crate::backup::kind::BackupKind;
use crate::config::{Compression, DumpFormat};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

/// A new ID: UTC start time, kind, and four random hex digits.
pub fn new_id(started: DateTime<Utc>, kind: BackupKind) -> String {
    let rand = std::collections::hash_map::RandomState::new();
    let n = std::hash::BuildHasher::hash_one(&rand, (started, std::process::id())) as u16;
    format!(
        "{}-{}-{n:04x}",
        started.format("%Y%m%dT%H%M%SZ"),
        kind.as_str()
    )
}

/// Accepts only IDs of the form `new_id` makes: no separators, no dots, nothing else.
pub fn validate_id(id: &str) -> Result<(), CatalogError> {
    let bad = || CatalogError::BadId(id.chars().take(80).collect());
    let (stamp, rest) = id.split_at_checked(16).ok_or_else(bad)?;
    let stamp_ok = stamp.len() == 16
        && stamp.as_bytes()[8] == b'T'
        && stamp.as_bytes()[15] == b'Z'
        && stamp
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 8 || i == 15 || b.is_ascii_digit());
    let rest = rest.strip_prefix('-').ok_or_else(bad)?;
    let (kind, suffix) = rest.rsplit_once('-').ok_or_else(bad)?;
    let kind_ok = BackupKind::ALL.iter().any(|k| k.as_str() == kind);
    let suffix_ok = suffix.len() == 4
        && suffix
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    if stamp_ok && kind_ok && suffix_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// The data file's name: `<id>.sql.gz`, `<id>.dump.zst`, `… .age` when encrypted.
pub fn data_file_name(
    id: &str,
    format: DumpFormat,
    compression: Compression,
    encrypted: bool,
) -> String {
    let f = match format {
        DumpFormat::Plain => "sql",
        DumpFormat::Custom => "dump",
    };
    let age = if encrypted { ".age" } else { "" };
    format!("{id}.{f}.{}{age}", compression.extension())
}

/// The name of the globals file stored beside backup `id`.
pub fn globals_file_name(id: &str, compression: Compression, encrypted: bool) -> String {
    let age = if encrypted { ".age" } else { "" };
    format!("{id}.globals.sql.{}{age}", compression.extension())
}

/// The globals file of a backup, when it has one under the name steward gives it.
pub fn globals_path(root: &Path, meta: &BackupMeta) -> Option<PathBuf> {
    let g = meta.globals.as_ref()?;
    let expected = globals_file_name(&meta.id, meta.compression, meta.encryption.is_some());
    (g.file == expected).then(|| db_dir(root, &meta.database).join(&g.file))
}

/// The directory of one database's backups: its name escaped by [`dir_name::encode`]
/// (`Sales DB` → `Sales%20DB`; plain names as they are).
pub fn db_dir(root: &Path, database: &str) -> PathBuf {
    root.join(dir_name::encode(database))
}

pub fn meta_path(root: &Path, meta: &BackupMeta) -> PathBuf {
    db_dir(root, &meta.database).join(format!("{}.json", meta.id))
}

pub(super) fn marker_path(root: &Path, meta: &BackupMeta) -> PathBuf {
    db_dir(root, &meta.database).join(format!("{}.running.json", meta.id))
}

/// The data file of a good backup.
pub fn data_path(root: &Path, meta: &BackupMeta) -> Option<PathBuf> {
    let name = meta.file.as_ref()?;
    // Only the name steward gives its files; anything else in metadata is not followed.
    let expected = data_file_name(
        &meta.id,
        meta.format,
        meta.compression,
        meta.encryption.is_some(),
    );
    (name == &expected).then(|| db_dir(root, &meta.database).join(name))
}

pub(super) fn deleting_path(root: &Path, meta: &BackupMeta) -> PathBuf {
    db_dir(root, &meta.database).join(format!("{}.deleting.json", meta.id))
}
