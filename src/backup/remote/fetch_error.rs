//! Why `backup fetch ID` did not happen: a leaf (it holds the bucket's and the catalog's
//! errors, and imports nothing else), so that the backup module's error can hold it.

use super::error::RemoteError;
use crate::backup::catalog::error::CatalogError;

/// Why a fetch did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no backup with ID {0:?} in the bucket; see `steward backup list`")]
    Unknown(String),
    #[error("backup {0} is already in the local backup dir")]
    AlreadyLocal(String),
    #[error("backup {id} in the bucket is {status}, not good: {why}")]
    NotGood {
        id: String,
        status: String,
        why: String,
    },
    #[error("no bucket is configured ([backup.remote] url)")]
    NoBucket,
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}
