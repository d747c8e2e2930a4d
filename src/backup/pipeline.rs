//! The backup pipeline: pg_dump's output streamed through compression (and age encryption)
//! into a temporary file, hashed and counted on the way, then made durable under its final name.

use super::pgconn::PgTarget;
use crate::config::{Compression, DumpFormat};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Everything one dump needs.
pub struct DumpJob {
    /// The pg_dump binary.
    pub pg_dump: PathBuf,
    /// Connection settings, database included (passed to pg_dump through its environment).
    pub target: PgTarget,
    pub format: DumpFormat,
    pub compression: Compression,
    pub level: u32,
    /// age recipients; empty means no encryption.
    pub recipients: Vec<age::x25519::Recipient>,
    /// Where bytes are written while the dump runs (`<dir>/<db>/<file>.tmp`).
    pub tmp_path: PathBuf,
    /// Where the file ends up once complete and durable.
    pub final_path: PathBuf,
    /// Bytes read from pg_dump so far, for progress display.
    pub progress: Arc<AtomicU64>,
}

/// What a successful dump produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpOutput {
    /// Bytes pg_dump wrote (before compression).
    pub dump_bytes: u64,
    /// Bytes stored on disk.
    pub stored_bytes: u64,
    /// SHA-256 of the stored file, lowercase hex.
    pub sha256: String,
}
