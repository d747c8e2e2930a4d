//! What a job (backup, verify, restore, prune) works with, handed to it by the backup actor.

use super::handle::BackupHandle;
use super::remote::UploadHandle;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::secret::Scrubber;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// What a job (backup, verify, restore, prune) works with: a config snapshot taken when it
/// started, the metrics, the actor (a restore asks it for a pre-restore backup), its progress.
pub(crate) struct Ctx {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub handle: BackupHandle,
    pub progress: Arc<AtomicU64>,
    pub scrubber: Scrubber,
    /// Cancelled at shutdown: a running dump or restore stops and cleans up after itself.
    pub cancel: tokio_util::sync::CancellationToken,
    /// A restore replacing a database holds maintenance mode on while it runs.
    pub maintenance: crate::maintenance::MaintenanceHandle,
    /// The bucket's catalog, for a verify or restore of a backup only the bucket holds.
    pub uploads: UploadHandle,
}
