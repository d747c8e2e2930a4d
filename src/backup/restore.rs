//! Reading a stored backup back: verify (hash, stream integrity, decryption) and restore
//! (decrypt → decompress → psql or pg_restore, streamed).

use crate::config::{Compression, DumpFormat};
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
}
