//! A backup file as verify and restore read it (where it is, how it is encoded, the hash and
//! sizes it must have) and what a verify of it found: plain data shared by `restore` and
//! `restore_stream`, re-exported from `restore`.

use crate::config::{Compression, DumpFormat};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A backup file as the catalog describes it.
#[derive(Debug, Clone)]
pub struct StoredBackup {
    pub path: PathBuf,
    pub format: DumpFormat,
    pub compression: Compression,
    pub encrypted: bool,
    /// Expected SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// Expected size of the file.
    pub stored_bytes: u64,
    /// Expected size of the dump inside.
    pub dump_bytes: u64,
    /// Where to stream it from when it is only in the bucket (`path` then only names it).
    pub remote: Option<crate::backup::remote::store::RemoteObject>,
}

impl StoredBackup {
    /// The stored file, from the local disk or streamed from the bucket. A bucket's reader
    /// blocks: read it on a blocking thread.
    pub async fn open_raw(&self) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        match &self.remote {
            Some(r) => r.open().await,
            None => Ok(Box::new(std::fs::File::open(&self.path)?)),
        }
    }
}

/// What was done about encryption during a verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decryption {
    /// The backup is not encrypted.
    NotEncrypted,
    /// Decrypted with one of the given identities.
    Decrypted,
    /// Encrypted, and no identity was given: the stream inside was not checked.
    Skipped,
    /// Encrypted, and none of the given identities decrypts it: the stream inside was not read.
    Failed,
}

/// The outcome of each check of a verify; `ok` is true when none failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyOutput {
    pub ok: bool,
    /// The file's SHA-256 matches the catalog.
    pub hash_ok: bool,
    pub actual_sha256: String,
    /// The file's size matches the catalog.
    pub size_ok: bool,
    pub actual_stored_bytes: u64,
    /// The stream decoded to its end: `Some(true)`; it did not: `Some(false)`; not checked
    /// (encrypted, no identity): `None`.
    pub stream_ok: Option<bool>,
    pub decryption: Decryption,
    /// Why decryption failed ([`Decryption::Failed`]), for display.
    #[serde(default)]
    pub decryption_error: Option<String>,
    /// Size of the decoded dump, when the stream was read to its end.
    pub dump_bytes: Option<u64>,
    /// The decoded size matches the catalog (`None` when not read).
    pub dump_bytes_ok: Option<bool>,
    /// One sentence per failed (or skipped) check, for display.
    pub problems: Vec<String>,
}

/// Why a verify could not run at all (a failed check is not an error: see [`VerifyOutput`]).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read backup file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("verify stopped unexpectedly: {0}")]
    Internal(String),
}
