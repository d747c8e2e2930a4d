//! The bucket's catalog as last read, shared by the upload actor and its handles, and the one
//! place retention in the bucket runs from (so a run after an upload and one on request never
//! overlap, and what they delete is read again before anyone lists it).

use super::gauges::set_remote_metrics;
use super::index::{Index, RemoteBackup};
use super::prune::{self, Trigger};
use super::store::RemoteStore;
use crate::backup::api::Pruned;
use crate::config::Config;
use crate::metrics::Metrics;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The longest one reading of the bucket's catalog may take: an unanswering bucket (requests
/// hang until the client's 300 s timeout, then are retried) must not hold the catalog's lock,
/// and so the actor (`local_keep`, a reload), for many minutes.
const REFRESH_BOUND: Duration = Duration::from_secs(60);

/// A reader that finds the last reading older than it wants reads the bucket again while
/// holding the lock, so readers queue behind one refresh instead of each sending its own.
#[derive(Default)]
pub(super) struct Snapshot {
    pub store: Option<RemoteStore>,
    pub index: Index,
    pub read: Option<(Instant, Result<Vec<RemoteBackup>, String>)>,
    pub scrubber: crate::secret::Scrubber,
}

impl Snapshot {
    pub async fn get(&mut self, max_age: Duration) -> Result<Vec<RemoteBackup>, String> {
        let Some(store) = self.store.clone() else {
            return Ok(Vec::new());
        };
        if let Some((at, r)) = &self.read {
            if at.elapsed() <= max_age {
                return r.clone();
            }
        }
        let r = match tokio::time::timeout(REFRESH_BOUND, self.index.refresh(&store)).await {
            Ok(r) => r.map_err(|e| self.scrubber.scrub(&e.to_string())),
            Err(_) => Err(format!(
                "the bucket at {} did not answer within {} s",
                store.endpoint,
                REFRESH_BOUND.as_secs()
            )),
        };
        self.read = Some((Instant::now(), r.clone()));
        r
    }
}

/// What a retention run in the bucket needs besides the catalog.
pub struct PruneArgs<'a> {
    pub cfg: &'a Config,
    pub audit: &'a crate::audit::AuditHandle,
    pub metrics: &'a Metrics,
    pub trigger: Trigger,
    pub dry_run: bool,
}

/// Retention in the bucket on a fresh reading of its catalog (a stale one could name a backup
/// another run already took), one run at a time (`one`); nothing when no bucket is
/// configured. After deletions the catalog is read again and the off-site gauges set from it,
/// so `backup list` and `/metrics` show what went.
pub(super) async fn prune_bucket(
    snapshot: &Mutex<Snapshot>,
    one: &Mutex<()>,
    a: PruneArgs<'_>,
) -> Result<Vec<Pruned>, String> {
    let _one = one.lock().await;
    let (store, remote) = {
        let mut s = snapshot.lock().await;
        let Some(store) = s.store.clone() else {
            return Ok(Vec::new());
        };
        let remote = s.get(Duration::ZERO).await?;
        (store, remote)
    };
    let out = prune::run(
        &store, &remote, a.cfg, a.audit, a.metrics, a.trigger, a.dry_run,
    )
    .await;
    let changed = out.as_ref().map_or(true, |d| !d.is_empty());
    if !a.dry_run && changed {
        let mut s = snapshot.lock().await;
        s.read = None;
        if let Ok(all) = s.get(Duration::ZERO).await {
            set_remote_metrics(a.metrics, &all);
        }
    }
    out
}
