//! One backup's metadata record, as plain data: what `backup list` shows and the JSON beside
//! each file holds, sealed with a checksum over its own serialization. The catalog's
//! operations (in the parent module) read and write it.

use super::source::{SourceInfo, TableRows};
use crate::backup::kind::BackupKind;
use crate::config::{Compression, DumpFormat};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
    pub source: Option<SourceInfo>,
    /// Rows per table (`"schema"."table"`), counted from the dump as it streamed past: what a
    /// restore drill compares the restored copy with (absent when they could not be counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_rows: Option<TableRows>,
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
