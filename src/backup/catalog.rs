//! The catalog: one checksummed JSON metadata file per backup, the commit marker that makes
//! a backup exist; IDs, file names, listing and deletion (the start-up sweep is in `sweep`,
//! the escaping of database names into directory names in `dir_name`).

use super::BackupKind;
use crate::config::{Compression, DumpFormat};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the catalog could not be read or written, or an ID was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0:?} is not a backup ID (IDs look like 20261126T020000Z-daily-3fa2; see `steward backup list`)")]
    BadId(String),
    #[error("no backup with ID {0:?}; see `steward backup list`")]
    Unknown(String),
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metadata {path} is unreadable or was altered: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CatalogError + 'a {
    move |source| CatalogError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Whether a backup is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupStatus {
    /// Complete, durable, hashed: counts as a backup.
    Good,
    /// Did not complete; kept as a record of why.
    Failed,
    /// In progress (only in the marker written at start).
    Running,
    /// Written complete, but a later verify (or restore's check) found it does not match its
    /// metadata, or its metadata fails its own checksum: never a good backup, never kept as
    /// one, never restored; `BackupDamaged` fires while one is in the catalog.
    Damaged,
    /// Not taken because another steward instance was backing up the same database at that
    /// moment: never committed to the catalog, never an alert.
    Skipped,
}

/// How the file is encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    pub method: String,
    /// The recipients' public keys (never a secret key).
    pub recipients: Vec<String>,
}

/// The cluster's globals stored beside a backup (`pg_dumpall --globals-only`: roles with
/// their attributes, memberships and settings, and tablespaces), compressed and encrypted
/// like the data, so that a restore on a new server can create the roles the dump needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalsFile {
    /// Its name inside the database's directory.
    pub file: String,
    pub sha256: String,
    pub stored_bytes: u64,
    pub dump_bytes: u64,
    /// Taken without password hashes (steward's role may not read them): roles created from
    /// it have no password.
    #[serde(default)]
    pub without_passwords: bool,
}

/// The outcome of the last restore test of a backup (`verify --restore-test`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreTestRecord {
    pub at: DateTime<Utc>,
    pub ok: bool,
    pub duration_seconds: f64,
    /// What failed, scrubbed; empty when it passed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Where a backup's off-site copy is, and when its upload was checked (size and SHA-256 of
/// each file against this metadata): a copy in another bucket than the configured one does
/// not count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsiteCopy {
    /// `s3://bucket/prefix`.
    pub url: String,
    /// The service, as shown (never with credentials).
    pub endpoint: String,
    pub checked_at: DateTime<Utc>,
}

/// Where a backup's copies are: the local directory, the bucket, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    Local,
    Remote,
    Both,
}

impl Location {
    /// The word `backup list` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Local => "local",
            Location::Remote => "remote",
            Location::Both => "local+remote",
        }
    }
}

/// One backup's metadata: the JSON beside the file, and the row of `backup list`. Its
/// checksum is over its own serialization, so a field added later must be left out when empty
/// (`skip_serializing_if`), or every older file would fail its checksum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupMeta {
    pub id: String,
    pub database: String,
    pub kind: BackupKind,
    #[serde(default)]
    pub label: Option<String>,
    pub status: BackupStatus,
    #[serde(default)]
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub duration_seconds: f64,
    /// The data file's name inside the database's directory (absent for failed backups).
    #[serde(default)]
    pub file: Option<String>,
    pub format: DumpFormat,
    pub compression: Compression,
    pub level: u32,
    #[serde(default)]
    pub encryption: Option<Encryption>,
    #[serde(default)]
    pub dump_bytes: u64,
    #[serde(default)]
    pub stored_bytes: u64,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub pg_dump_version: Option<String>,
    #[serde(default)]
    pub server_version: Option<String>,
    pub steward_version: String,
    /// When `verify` last checked it (its result is the status: good or damaged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<DateTime<Utc>>,
    /// Where the backup came from and the database's own properties (absent in backups taken
    /// before steward recorded them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<super::source_info::SourceInfo>,
    /// Rows per table (`"schema"."table"`), counted from the dump as it streamed past: what a
    /// restore drill compares the restored copy with (absent when they could not be counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_rows: Option<super::row_count::TableRows>,
    /// The cluster's globals, stored beside the data file (absent in older backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub globals: Option<GlobalsFile>,
    /// The last restore test of this backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_test: Option<RestoreTestRecord>,
    /// Its copy in the bucket of `[backup.remote]`, once that copy was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsite: Option<OffsiteCopy>,
    /// Where the backup is, as `backup list` answers it (never stored, never checksummed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// SHA-256 of this JSON written with an empty checksum.
    #[serde(default)]
    pub checksum: String,
}

impl BackupMeta {
    fn computed_checksum(&self) -> String {
        let mut unsigned = self.clone();
        unsigned.checksum = String::new();
        unsigned.location = None;
        let bytes = serde_json::to_vec(&unsigned).unwrap_or_default();
        hex::encode(Sha256::digest(bytes))
    }

    /// Fills in the checksum over everything else.
    pub fn seal(&mut self) {
        self.checksum = self.computed_checksum();
    }

    /// True when nothing changed since `seal`.
    pub fn checksum_ok(&self) -> bool {
        !self.checksum.is_empty() && self.checksum == self.computed_checksum()
    }

    /// Good and complete.
    pub fn is_good(&self) -> bool {
        self.status == BackupStatus::Good
    }
}

impl BackupMeta {
    /// A record with nothing written: the base of a damaged entry for metadata that cannot be
    /// read (and of test records).
    pub(crate) fn placeholder(
        id: &str,
        database: &str,
        kind: BackupKind,
        status: BackupStatus,
        started_at: DateTime<Utc>,
    ) -> Self {
        BackupMeta {
            id: id.into(),
            database: database.into(),
            kind,
            label: None,
            status,
            error: None,
            started_at,
            finished_at: None,
            duration_seconds: 0.0,
            file: None,
            format: DumpFormat::Plain,
            compression: Compression::Gzip,
            level: 6,
            encryption: None,
            dump_bytes: 0,
            stored_bytes: 0,
            sha256: None,
            pg_dump_version: None,
            server_version: None,
            steward_version: crate::VERSION.into(),
            verified_at: None,
            source: None,
            restore_test: None,
            globals: None,
            table_rows: None,
            offsite: None,
            location: None,
            checksum: String::new(),
        }
    }
}

#[cfg(test)]
impl BackupMeta {
    /// A metadata record for tests: started now, nothing written, unsealed.
    pub(crate) fn sample(id: &str, database: &str, kind: BackupKind, status: BackupStatus) -> Self {
        Self::placeholder(id, database, kind, status, Utc::now())
    }
}

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

fn write_json(path: &Path, meta: &BackupMeta) -> Result<(), CatalogError> {
    let mut stored = meta.clone();
    stored.location = None;
    let mut bytes = serde_json::to_vec_pretty(&stored).unwrap_or_default();
    bytes.push(b'\n');
    crate::durable::write_atomic(path, &bytes).map_err(io("write metadata", path))
}

pub fn meta_path(root: &Path, meta: &BackupMeta) -> PathBuf {
    db_dir(root, &meta.database).join(format!("{}.json", meta.id))
}

fn marker_path(root: &Path, meta: &BackupMeta) -> PathBuf {
    db_dir(root, &meta.database).join(format!("{}.running.json", meta.id))
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

fn read_meta(path: &Path, id: &str) -> Result<BackupMeta, CatalogError> {
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
fn check_names(path: &Path, meta: &BackupMeta) -> Result<(), String> {
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

/// Deletes a backup. Its metadata is first renamed to `<id>.deleting.json` (the backup leaves
/// the catalog at once, atomically), then the data file and that marker are removed; a crash
/// in between leaves the marker, and the next start's [`sweep`] finishes the deletion, so a
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
fn finish_delete(root: &Path, meta: &BackupMeta, doomed: &Path) -> Result<(), CatalogError> {
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

fn deleting_path(root: &Path, meta: &BackupMeta) -> PathBuf {
    db_dir(root, &meta.database).join(format!("{}.deleting.json", meta.id))
}

pub mod dir_name;
mod listing;
pub mod lock;
mod sweep;
pub use listing::{
    delete_untrusted, listing, listing_with_problems, parse_id, record_offsite,
    record_restore_test, record_verify,
};
pub use sweep::sweep;

#[cfg(test)]
mod tests;
