//! The upload actor: keeps the queue moving (one upload at a time, failed ones retried with
//! backoff), answers with the bucket's catalog and the queue's state, applies `local_keep`
//! after each checked upload, and keeps the off-site metrics in step.

use super::gauges::set_remote_metrics;
use super::index::RemoteBackup;
use super::offsite_copy::counts;
use super::prune::Trigger;
use super::queue::{self, Entry};
use super::snapshot::{prune_bucket, PruneArgs, Snapshot};
use super::store::RemoteStore;
use super::upload::{self, Outcome};
use crate::backup::api::{Pruned, UploadStatus};
use crate::backup::catalog;
use crate::config::{Config, RemoteConfig};
use crate::metrics::Metrics;
use chrono::Utc;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Mutex};
use tokio_util::sync::CancellationToken;

enum Msg {
    Enqueue {
        id: String,
        database: String,
    },
    Finished {
        entry: Box<Entry>,
        out: Result<Outcome, String>,
    },
}

/// Talks to the upload actor.
#[derive(Clone)]
pub struct UploadHandle {
    tx: mpsc::Sender<Msg>,
    snapshot: Arc<Mutex<Snapshot>>,
    events: watch::Receiver<u64>,
    /// Held by a retention run in the bucket.
    pruning: Arc<Mutex<()>>,
    /// The queue's state as the actor last published it: read without asking the actor, which
    /// may be waiting on the bucket.
    shown: watch::Receiver<Option<UploadStatus>>,
}

impl UploadHandle {
    /// Queues a good backup for its off-site copy (nothing when no bucket is configured).
    pub async fn enqueue(&self, id: &str, database: &str) {
        let _ = self
            .tx
            .send(Msg::Enqueue {
                id: id.into(),
                database: database.into(),
            })
            .await;
    }

    /// The bucket's catalog, read again when the last reading is older than `max_age`;
    /// `Ok(empty)` when no bucket is configured.
    pub async fn index(&self, max_age: std::time::Duration) -> Result<Vec<RemoteBackup>, String> {
        self.snapshot.lock().await.get(max_age).await
    }

    /// Bumped after each upload attempt, so that watchers (the alert engine, through the
    /// backup actor) read the catalogs again at once.
    pub fn events(&self) -> watch::Receiver<u64> {
        self.events.clone()
    }

    /// Retention in the bucket (`backup prune`); nothing when no bucket is configured.
    pub async fn prune(&self, args: PruneArgs<'_>) -> Result<Vec<Pruned>, String> {
        prune_bucket(&self.snapshot, &self.pruning, args).await
    }

    /// The queue's state; `None` when no bucket is configured. Never waits for the actor
    /// (it may be waiting on an unanswering bucket).
    pub async fn status(&self) -> Option<UploadStatus> {
        self.shown.borrow().clone()
    }
}

struct Uploader {
    config: watch::Receiver<Arc<Config>>,
    metrics: Arc<Metrics>,
    audit: crate::audit::AuditHandle,
    cancel: CancellationToken,
    tx: mpsc::Sender<Msg>,
    /// The client and the settings it was built from.
    store: Option<(RemoteConfig, RemoteStore)>,
    snapshot: Arc<Mutex<Snapshot>>,
    pruning: Arc<Mutex<()>>,
    status: UploadStatus,
    busy: bool,
    events: watch::Sender<u64>,
    shown: watch::Sender<Option<UploadStatus>>,
}

/// Starts the actor; it idles while no bucket is configured and follows reloads.
pub fn start(
    config: watch::Receiver<Arc<Config>>,
    metrics: Arc<Metrics>,
    audit: crate::audit::AuditHandle,
    cancel: CancellationToken,
) -> UploadHandle {
    let (tx, rx) = mpsc::channel(64);
    let snapshot = Arc::new(Mutex::new(Snapshot::default()));
    let (events, events_rx) = watch::channel(0);
    let pruning = Arc::new(Mutex::new(()));
    let (shown, shown_rx) = watch::channel(None);
    let u = Uploader {
        config,
        metrics,
        audit,
        cancel,
        tx: tx.clone(),
        store: None,
        snapshot: snapshot.clone(),
        pruning: pruning.clone(),
        status: UploadStatus::default(),
        busy: false,
        events,
        shown,
    };
    tokio::spawn(u.run(rx));
    UploadHandle {
        tx,
        snapshot,
        events: events_rx,
        pruning,
        shown: shown_rx,
    }
}

impl Uploader {
    fn cfg(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        self.configure().await;
        self.publish();
        // The bucket changes behind steward's back too (another host's uploads, deletions).
        let mut reread = tokio::time::interval(std::time::Duration::from_secs(300));
        reread.tick().await;
        loop {
            let wait = self.next_due();
            tokio::select! {
                _ = reread.tick() => self.refresh_remote_metrics(),
                _ = self.cancel.cancelled() => return,
                msg = rx.recv() => match msg {
                    Some(m) => self.handle(m).await,
                    None => return,
                },
                changed = self.config.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    self.configure().await;
                }
                _ = tokio::time::sleep(wait) => self.start_next().await,
            }
            self.publish();
        }
    }

    /// Makes the queue's state what [`UploadHandle::status`] answers.
    fn publish(&self) {
        let now = self.store.as_ref().map(|_| self.status.clone());
        self.shown.send_if_modified(|s| {
            let changed = *s != now;
            *s = now;
            changed
        });
    }

    /// Rebuilds the client when `[backup.remote]` changed, and queues every good local
    /// backup without a checked copy in the configured bucket (a backup committed just
    /// before a stop, or every backup when a bucket is first configured).
    async fn configure(&mut self) {
        let cfg = self.cfg();
        let r = &cfg.backup.remote;
        if self.store.as_ref().is_some_and(|(old, _)| old == r) {
            return;
        }
        self.store = match RemoteStore::from_config(r) {
            Ok(Some(s)) => Some((r.clone(), s)),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %cfg.scrubber().scrub(&e.to_string()), "backup.remote cannot be used; backups stay local");
                None
            }
        };
        *self.snapshot.lock().await = Snapshot {
            store: self.store.as_ref().map(|(_, s)| s.clone()),
            scrubber: cfg.scrubber(),
            ..Default::default()
        };
        self.status = match &self.store {
            Some((_, s)) => UploadStatus {
                url: s.url.clone(),
                endpoint: s.endpoint.clone(),
                ..Default::default()
            },
            None => UploadStatus::default(),
        };
        let Some((_, store)) = self.store.clone() else {
            self.metrics.offsite.queue.set(0);
            return;
        };
        let (root, state) = (cfg.backup.dir.clone(), cfg.state.dir.clone());
        let queued = tokio::task::spawn_blocking(move || reconcile(&root, &state, &store))
            .await
            .unwrap_or(0);
        if queued > 0 {
            tracing::info!(
                queued,
                "backups without a checked off-site copy queued for upload"
            );
        }
        self.refresh_queue_metric().await;
        self.refresh_remote_metrics();
    }

    async fn handle(&mut self, m: Msg) {
        match m {
            Msg::Enqueue { id, database } => {
                if self.store.is_none() {
                    return;
                }
                let state = self.cfg().state.dir.clone();
                let e = Entry::new(&id, &database);
                let saved = tokio::task::spawn_blocking(move || queue::save(&state, &e)).await;
                if let Ok(Err(e)) = saved {
                    tracing::error!(id = %id, error = %e, "cannot queue the backup for upload; it is queued again at the next start");
                }
                self.refresh_queue_metric().await;
            }
            Msg::Finished { entry, out } => self.finished(*entry, out).await,
        }
    }

    /// How long until the next queued backup is due (long when nothing is queued: an
    /// enqueue or a reload wakes the loop anyway).
    fn next_due(&self) -> std::time::Duration {
        if self.busy || self.store.is_none() {
            return std::time::Duration::from_secs(3600);
        }
        let (entries, _) = queue::load(&self.cfg().state.dir);
        let now = Utc::now();
        entries
            .iter()
            .map(|e| (e.next_at - now).to_std().unwrap_or_default())
            .min()
            .unwrap_or(std::time::Duration::from_secs(3600))
    }

    async fn start_next(&mut self) {
        let Some((_, store)) = self.store.clone() else {
            return;
        };
        if self.busy {
            return;
        }
        let cfg = self.cfg();
        let now = Utc::now();
        let Some(mut entry) = queue::load(&cfg.state.dir)
            .0
            .into_iter()
            .filter(|e| e.next_at <= now)
            .min_by_key(|e| (e.next_at, e.queued_at))
        else {
            return;
        };
        self.busy = true;
        self.status.uploading = Some(entry.id.clone());
        let tx = self.tx.clone();
        let cancel = self.cancel.clone();
        tokio::spawn(async move {
            let progress = AtomicU64::new(0);
            let work = upload::upload(
                &store,
                &cfg.backup.dir,
                &cfg.state.dir,
                &mut entry,
                &progress,
            );
            let out = tokio::select! {
                // A stop mid-upload: the entry keeps the multipart upload to abort at the
                // next start.
                _ = cancel.cancelled() => return,
                out = work => out,
            };
            let out = out.map_err(|e| cfg.scrubber().scrub(&e.to_string()));
            let _ = tx
                .send(Msg::Finished {
                    entry: Box::new(entry),
                    out,
                })
                .await;
        });
    }

    async fn finished(&mut self, mut entry: Entry, out: Result<Outcome, String>) {
        self.busy = false;
        self.status.uploading = None;
        let cfg = self.cfg();
        let state = cfg.state.dir.clone();
        match out {
            Ok(Outcome::Uploaded(meta)) => {
                // A reload may have pointed `[backup.remote]` at another bucket while this
                // upload ran (to the bucket it began with): the backup waits for its copy in
                // the configured one, instead of leaving the queue with none there.
                let elsewhere = self
                    .store
                    .as_ref()
                    .is_some_and(|(_, s)| !meta.offsite.as_ref().is_some_and(|o| counts(o, s)));
                if elsewhere {
                    let again = Entry::new(&entry.id, &entry.database);
                    let _ = queue::save(&state, &again);
                    tracing::info!(id = %entry.id, "backup.remote changed during its upload; queued again for the configured bucket");
                } else {
                    let _ = queue::remove(&state, &entry.id);
                }
                // The gauge follows the queue at once, not after the follow-up work below
                // (listing and pruning the bucket may take a while).
                self.refresh_queue_metric().await;
                self.metrics
                    .offsite
                    .uploads
                    .with_label_values(&["success"])
                    .inc();
                self.status.consecutive_failures = 0;
                self.status.failing_since = None;
                self.status.last_error = None;
                self.status.last_success_at = Some(Utc::now());
                self.metrics.offsite.consecutive_failures.set(0);
                tracing::info!(id = %meta.id, database = %meta.database, bytes = meta.stored_bytes, url = %self.status.url, "backup copied off-site and checked");
                // The bucket holds a new backup: no listing may answer from a reading taken
                // before it, once `local_keep` has removed the local copy.
                self.snapshot.lock().await.read = None;
                self.publish();
                self.after_upload(&meta.database).await;
            }
            Ok(Outcome::Gone(why)) => {
                let _ = queue::remove(&state, &entry.id);
                tracing::info!(id = %entry.id, reason = %why, "upload dropped from the queue");
            }
            Err(error) => {
                let base = cfg.backup.remote.retry_interval;
                entry.failed(error.clone(), base);
                let _ = queue::save(&state, &entry);
                self.metrics
                    .offsite
                    .uploads
                    .with_label_values(&["failure"])
                    .inc();
                self.status.consecutive_failures =
                    self.status.consecutive_failures.saturating_add(1);
                self.status.failing_since.get_or_insert_with(Utc::now);
                self.status.last_error = Some(error.clone());
                self.metrics
                    .offsite
                    .consecutive_failures
                    .set(self.status.consecutive_failures as i64);
                tracing::warn!(id = %entry.id, attempts = entry.attempts, next_at = %entry.next_at, error = %error, "upload to the bucket failed; the backup is kept locally and the upload retried");
            }
        }
        self.refresh_queue_metric().await;
        self.events.send_modify(|n| *n += 1);
    }

    /// After a checked upload: `local_keep`, retention in the bucket (a new copy there may
    /// let older ones go), then the metrics of both catalogs.
    async fn after_upload(&mut self, database: &str) {
        let cfg = self.cfg();
        // The bucket's catalog is read again first: a listing must never miss a backup whose
        // local copy `local_keep` removes next. When it cannot be read, the local copies stay
        // until the next upload.
        let fresh = self
            .snapshot
            .lock()
            .await
            .get(std::time::Duration::ZERO)
            .await;
        if let Ok(all) = &fresh {
            set_remote_metrics(&self.metrics, all);
        }
        if let (Some(keep), Some((_, store)), Ok(remote)) =
            (cfg.backup.remote.local_keep, &self.store, &fresh)
        {
            if let Err(e) = super::local_keep::apply(
                &cfg.backup.dir,
                database,
                keep,
                store,
                remote,
                &self.audit,
            )
            .await
            {
                tracing::warn!(database, error = %e, "backup.remote.local_keep not applied");
            }
        }
        let args = PruneArgs {
            cfg: &cfg,
            audit: &self.audit,
            metrics: &self.metrics,
            trigger: Trigger::AfterUpload,
            dry_run: false,
        };
        if let Err(e) = prune_bucket(&self.snapshot, &self.pruning, args).await {
            tracing::warn!(error = %e, "retention in the bucket not applied");
        }
        let (c, m) = (cfg.clone(), self.metrics.clone());
        let _ = tokio::task::spawn_blocking(move || crate::backup::status::refresh_metrics(&c, &m))
            .await;
    }

    async fn refresh_queue_metric(&mut self) {
        let state = self.cfg().state.dir.clone();
        let n = tokio::task::spawn_blocking(move || queue::load(&state).0.len())
            .await
            .unwrap_or(0);
        self.status.queued = n;
        self.metrics.offsite.queue.set(n as i64);
    }

    /// Reads the bucket's catalog in the background and sets the per-database gauges.
    fn refresh_remote_metrics(&self) {
        if self.store.is_none() {
            return;
        }
        let (snapshot, metrics) = (self.snapshot.clone(), self.metrics.clone());
        tokio::spawn(async move {
            let Ok(all) = snapshot.lock().await.get(std::time::Duration::ZERO).await else {
                return;
            };
            set_remote_metrics(&metrics, &all);
        });
    }
}

/// Queues every good local backup without a checked copy in `store`'s bucket and without an
/// entry; returns how many were queued.
fn reconcile(root: &std::path::Path, state: &std::path::Path, store: &RemoteStore) -> usize {
    let (all, _) = catalog::load_all(root);
    let (entries, _) = queue::load(state);
    let mut n = 0;
    for m in all.iter().filter(|m| m.is_good()) {
        let checked = m.offsite.as_ref().is_some_and(|o| counts(o, store));
        if checked || entries.iter().any(|e| e.id == m.id) {
            continue;
        }
        if queue::save(state, &Entry::new(&m.id, &m.database)).is_ok() {
            n += 1;
        }
    }
    n
}
