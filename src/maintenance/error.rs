//! Why a maintenance request is refused, and the limits on its reason and duration.

use super::store;
use std::time::Duration;

/// Longest reason accepted, in characters: it travels in the Redis key and the state file.
pub const MAX_REASON: usize = 500;
/// Longest `--for` accepted: a maintenance meant to last longer is better left on until
/// `maintenance off`.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// A `--for` over [`MAX_DURATION`] as the operator will recognise it (seconds and days).
pub fn too_long(seconds: f64) -> String {
    format!("{seconds} seconds ({:.0} days)", seconds / 86_400.0)
}

/// Why a maintenance request could not be carried out; every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("--for must be longer than zero, e.g. --for 30m")]
    ZeroDuration,
    #[error("--for (for_seconds) is {0}; maintenance can be set for at most 30 days (--for 30d, for_seconds 2592000); give a shorter one, or leave --for out to stay on until `steward maintenance off`")]
    TooLong(String),
    #[error("the reason is {0} characters long; keep it to {MAX_REASON}")]
    ReasonTooLong(usize),
    #[error("the maintenance actor has stopped (steward is shutting down)")]
    Gone,
}
