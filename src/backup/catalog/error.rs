//! Why the catalog could not be read or written, or an ID was refused: a leaf, so that the
//! backup module's own error can hold it without importing the catalog's operations.

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

pub(super) fn io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> CatalogError + 'a {
    move |source| CatalogError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}
