//! Why a backup command could not be carried out: one error type for the backup actor, its
//! jobs and its handle, kept apart so that none of them imports another for it.

use super::catalog::error::CatalogError;
use super::remote::fetch_error::FetchError;

/// Why a backup command could not be carried out; every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("a backup of database {database:?} is already running ({id}); wait for it (`steward backup status`)")]
    AlreadyRunning { database: String, id: String },
    #[error("{0:?} cannot be backed up: it is not a PostgreSQL database name (1 to 63 bytes, without NUL)")]
    BadDatabase(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("backup {id} is {status}, not a good backup; only good backups can be {action}")]
    NotGood {
        id: String,
        status: String,
        action: &'static str,
    },
    #[error("{0}")]
    Refused(String),
    #[error("backup {id} failed verification ({detail}); nothing was restored")]
    VerifyFailed { id: String, detail: String },
    #[error("{0}")]
    Failed(String),
    #[error("the backup manager has stopped (steward is shutting down)")]
    Gone,
    #[error(transparent)]
    Fetch(#[from] FetchError),
}
