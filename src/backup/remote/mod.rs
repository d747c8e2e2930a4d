//! Off-site copies of backups in an S3-compatible bucket (`[backup.remote]`): the client and
//! key layout, the durable upload queue and its actor, the bucket's own catalog, `local_keep`
//! and retention in the bucket.

mod error;
pub mod fetch;
pub mod fetch_error;
mod gauges;
pub mod index;
pub mod local_keep;
pub mod offsite_copy;
pub mod prune;
pub mod queue;
mod requests;
mod snapshot;
pub mod store;
mod upload;
pub mod uploader;

pub use crate::backup::api::UploadStatus;
pub use error::RemoteError;
pub use offsite_copy::{counts, counts_for};
pub use requests::{fetch_by_id, listing, record_restore_test};
pub use snapshot::PruneArgs;
pub use store::RemoteStore;
pub use uploader::{start, UploadHandle};
