//! The backup actor: owns what is running (one backup per database), starts backups, verify,
//! restore and retention as jobs, and keeps the backup metrics in step with the catalog.

use super::api::{JobInfo, JobKind, PruneReply, Started};
use super::catalog::{self, BackupMeta};
use super::error::BackupError;
pub use super::handle::BackupHandle;
use super::handle::Cmd;
use super::kind::BackupKind;
use crate::config::Config;
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

struct Job {
    info: JobInfo,
    progress: Arc<AtomicU64>,
}

/// The actor's private state.
pub(super) struct Manager {
    pub config: watch::Receiver<Arc<Config>>,
    pub metrics: Arc<Metrics>,
    pub handle: BackupHandle,
    cancel: CancellationToken,
    /// A restore replacing a database turns maintenance mode on for its duration.
    maintenance: crate::maintenance::MaintenanceHandle,
    /// Every backup retention deletes is recorded there; no log, no deletion.
    audit: crate::audit::AuditHandle,
    /// Off-site copies: every good backup is queued there.
    uploads: super::remote::UploadHandle,
    running: HashMap<String, String>,
    jobs: HashMap<String, Job>,
    next_runs: Vec<(BackupKind, DateTime<Utc>)>,
    /// What `backup.databases = ["*"]` stood for at the server's last answer.
    covered: Option<Vec<String>>,
    seq: u64,
    events: watch::Sender<u64>,
}

/// Starts the actor: sweeps interrupted runs, then serves requests.
/// `cancel` stops running jobs at shutdown (they record themselves as failed).
pub fn start(
    config: watch::Receiver<Arc<Config>>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
    maintenance: crate::maintenance::MaintenanceHandle,
    audit: crate::audit::AuditHandle,
) -> BackupHandle {
    let (tx, rx) = mpsc::channel(64);
    let (events, events_rx) = watch::channel(0);
    let handle = BackupHandle {
        tx,
        events: events_rx,
    };
    let uploads = super::remote::start(
        config.clone(),
        metrics.clone(),
        audit.clone(),
        cancel.clone(),
    );
    // An upload's end changes what the catalog says (where a backup is): watchers hear it as
    // a backup event.
    let (mut uploaded, to_self) = (uploads.events(), handle.tx.clone());
    tokio::spawn(async move {
        while uploaded.changed().await.is_ok() {
            if to_self.send(Cmd::Pruned).await.is_err() {
                return;
            }
        }
    });
    let m = Manager {
        uploads,
        config,
        metrics,
        handle: handle.clone(),
        cancel,
        maintenance,
        audit,
        running: HashMap::new(),
        jobs: HashMap::new(),
        next_runs: Vec::new(),
        covered: None,
        seq: 0,
        events,
    };
    tokio::spawn(m.run(rx));
    handle
}

impl Manager {
    fn cfg(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let root = self.cfg().backup.dir.clone();
        for m in tokio::task::spawn_blocking(move || catalog::sweep(&root))
            .await
            .unwrap_or_default()
        {
            tracing::warn!(id = %m.id, database = %m.database, kind = %m.kind, "backup was interrupted by a stop of steward; recorded as failed");
            self.metrics
                .backup
                .total
                .with_label_values(&[&m.database, m.kind.as_str(), "failure"])
                .inc();
        }
        self.refresh_metrics();
        // The counters of every database backed up exist at 0 before its first backup, so
        // that increase() sees it (["*"] asks the server, bounded by postgres.timeout).
        let (cfg, metrics) = (self.cfg(), self.metrics.clone());
        tokio::spawn(async move {
            for db in super::selection::resolve(&cfg).await.unwrap_or_default() {
                metrics.know_backup_database(&db);
            }
        });
        // Restores cut short by a stop are finished or rolled back, and scratch databases of
        // dead runs dropped, as soon as PostgreSQL answers; later, a restore that could not be
        // settled when it failed (PostgreSQL gone at that moment) is repaired once it is back.
        let config = self.config.clone();
        let cancel = self.cancel.clone();
        tokio::spawn(async move {
            // Every 10 s while something is pending; every 5 minutes anyway, for a restore
            // test's scratch database whose drop failed.
            let (mut clean, mut ticks) = (false, 0u32);
            loop {
                let cfg = config.borrow().clone();
                ticks = ticks.wrapping_add(1);
                if !clean || ticks % 30 == 0 || super::journal::any_pending(&cfg.state.dir) {
                    clean = super::restore_flow::repair_and_log(&cfg).await;
                    super::restore_flow::sweep_drill_server(&cfg).await;
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
                }
            }
        });
        // Free space and the catalog change behind steward's back too (other writers, deletions).
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        tick.tick().await;
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle_cmd(cmd),
                    None => return,
                },
                _ = tick.tick() => self.refresh_metrics(),
            }
        }
    }

    fn handle_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Create {
                database,
                source,
                kind,
                label,
                reply,
            } => {
                let _ = reply.send(self.create(database, source, kind, label));
            }
            Cmd::List { database, reply } => {
                let (cfg, uploads) = (self.cfg(), self.uploads.clone());
                tokio::spawn(async move {
                    let all = super::remote::listing(&cfg, &uploads).await;
                    let _ = reply.send(Ok(all
                        .into_iter()
                        .filter(|m| database.as_ref().is_none_or(|d| &m.database == d))
                        .collect()));
                });
            }
            Cmd::Status { reply } => {
                // Reading the catalog is file I/O: off the actor, like `List`.
                let (cfg, jobs, next) = (self.cfg(), self.job_infos(), self.next_runs.clone());
                let uploads = self.uploads.clone();
                tokio::spawn(async move {
                    let (merged, offsite) = if cfg.backup.remote.enabled() {
                        (
                            Some(super::remote::listing(&cfg, &uploads).await),
                            uploads.status().await,
                        )
                    } else {
                        (None, None)
                    };
                    let built = tokio::task::spawn_blocking(move || {
                        super::status::build(&cfg, jobs, &next, merged, offsite)
                    });
                    if let Ok(status) = built.await {
                        let _ = reply.send(status);
                    }
                });
            }
            Cmd::Verify {
                id,
                restore_test,
                reply,
            } => {
                let kind = if restore_test {
                    JobKind::RestoreTest
                } else {
                    JobKind::Verify
                };
                let (job, progress) = self.add_job(kind, "", Some(id.clone()));
                let ctx = self.ctx(progress);
                let tx = self.handle.tx.clone();
                tokio::spawn(async move {
                    let out = super::restore_flow::verify(&ctx, &id, restore_test).await;
                    let _ = reply.send(out);
                    let _ = tx.send(Cmd::Done { job, backup: None }).await;
                });
            }
            Cmd::Restore {
                id,
                target,
                options,
                reply,
            } => {
                let (job, progress) = self.add_job(
                    JobKind::Restore,
                    target.as_deref().unwrap_or(""),
                    Some(id.clone()),
                );
                let ctx = self.ctx(progress);
                let tx = self.handle.tx.clone();
                tokio::spawn(async move {
                    let out = super::restore_flow::restore(&ctx, &id, target, options).await;
                    let _ = reply.send(out);
                    let _ = tx.send(Cmd::Done { job, backup: None }).await;
                });
            }
            Cmd::Prune { dry_run, reply } => self.prune(dry_run, Some(reply)),
            Cmd::Delete { id, force, reply } => {
                let root = self.cfg().backup.dir.clone();
                let tx = self.handle.tx.clone();
                tokio::spawn(async move {
                    let out = tokio::task::spawn_blocking(move || {
                        super::prune::delete_one(&root, &id, force)
                    })
                    .await
                    .unwrap_or_else(|e| Err(BackupError::Failed(e.to_string())));
                    if out.is_ok() {
                        let _ = tx.send(Cmd::Pruned).await;
                    }
                    let _ = reply.send(out);
                });
            }
            Cmd::Fetch { id, reply } => {
                let (job, progress) = self.add_job(JobKind::Fetch, "", Some(id.clone()));
                let (cfg, uploads, tx) = (self.cfg(), self.uploads.clone(), self.handle.tx.clone());
                tokio::spawn(async move {
                    let out = super::remote::fetch_by_id(&cfg, &uploads, &id, &progress).await;
                    let _ = reply.send(out.map_err(BackupError::from));
                    let _ = tx.send(Cmd::Done { job, backup: None }).await;
                });
            }
            Cmd::Jobs { reply } => {
                let _ = reply.send(self.job_infos());
            }
            Cmd::NextRuns(runs) => {
                for (kind, at) in &runs {
                    self.metrics
                        .backup
                        .next_run
                        .with_label_values(&[kind.as_str()])
                        .set(at.timestamp() as f64);
                }
                self.next_runs = runs;
            }
            Cmd::SetCovered(dbs) => self.covered = Some(dbs),
            Cmd::Covered { reply } => {
                let _ = reply.send(self.covered.clone());
            }
            Cmd::UploadStatus { reply } => {
                // Off the actor: the upload actor answers on its own time.
                let uploads = self.uploads.clone();
                tokio::spawn(async move {
                    let _ = reply.send(uploads.status().await);
                });
            }
            Cmd::Done { job, backup } => {
                self.done(job, backup);
                self.events.send_modify(|n| *n += 1);
            }
            Cmd::Pruned => {
                self.refresh_metrics();
                self.events.send_modify(|n| *n += 1);
            }
        }
    }

    fn create(
        &mut self,
        database: String,
        source: Option<String>,
        kind: BackupKind,
        label: Option<String>,
    ) -> Result<(Started, oneshot::Receiver<BackupMeta>), BackupError> {
        if !crate::config::is_backup_database_name(&database) {
            return Err(BackupError::BadDatabase(
                database.chars().take(80).collect(),
            ));
        }
        if let Some(id) = self.running.get(&database) {
            return Err(BackupError::AlreadyRunning {
                database,
                id: id.clone(),
            });
        }
        let started = Utc::now();
        let id = catalog::new_id(started, kind);
        let (job, progress) = self.add_job(JobKind::Backup, &database, Some(id.clone()));
        self.running.insert(database.clone(), id.clone());
        self.metrics.know_backup_database(&database);
        self.metrics
            .backup
            .running
            .with_label_values(&[&database])
            .set(1);
        let ctx = self.ctx(progress);
        let (done_tx, done_rx) = oneshot::channel();
        let tx = self.handle.tx.clone();
        let run = super::run::BackupRun {
            id: id.clone(),
            database: database.clone(),
            source,
            kind,
            label,
            started,
        };
        tokio::spawn(async move {
            let meta = run.execute(&ctx).await;
            let _ = done_tx.send(meta.clone());
            let _ = tx
                .send(Cmd::Done {
                    job,
                    backup: Some(Box::new(meta)),
                })
                .await;
        });
        Ok((Started { id, database }, done_rx))
    }

    fn done(&mut self, job: String, backup: Option<Box<BackupMeta>>) {
        self.jobs.remove(&job);
        if let Some(meta) = backup {
            self.running.remove(&meta.database);
            self.metrics
                .backup
                .running
                .with_label_values(&[&meta.database])
                .set(0);
            let result = match meta.status {
                catalog::BackupStatus::Good => "success",
                catalog::BackupStatus::Skipped => "skipped",
                _ => "failure",
            };
            self.metrics
                .backup
                .total
                .with_label_values(&[&meta.database, meta.kind.as_str(), result])
                .inc();
            if meta.is_good() {
                let (uploads, id, db) =
                    (self.uploads.clone(), meta.id.clone(), meta.database.clone());
                tokio::spawn(async move { uploads.enqueue(&id, &db).await });
                // Retention runs after each good backup.
                self.prune(false, None);
            }
        }
        // A verify or restore may have marked a backup damaged.
        self.refresh_metrics();
    }

    /// Runs retention as a job of its own; `reply` is the requester's, if any.
    fn prune(
        &self,
        dry_run: bool,
        reply: Option<oneshot::Sender<Result<PruneReply, BackupError>>>,
    ) {
        let ctx = self.ctx(Arc::new(AtomicU64::new(0)));
        let tx = self.handle.tx.clone();
        let (audit, uploads) = (self.audit.clone(), self.uploads.clone());
        tokio::spawn(async move {
            let out = match (dry_run, audit.ready().await) {
                (false, Err(e)) => Err(BackupError::Failed(format!(
                    "retention deleted nothing: {e}"
                ))),
                _ => super::prune::run(&ctx, dry_run, &audit, reply.is_some(), &uploads).await,
            };
            if let (Err(e), None) = (&out, &reply) {
                tracing::warn!(error = %e, "retention after backup failed");
            }
            if !dry_run {
                let _ = tx.send(Cmd::Pruned).await;
            }
            if let Some(reply) = reply {
                let _ = reply.send(out);
            }
        });
    }

    fn add_job(
        &mut self,
        kind: JobKind,
        database: &str,
        backup_id: Option<String>,
    ) -> (String, Arc<AtomicU64>) {
        self.seq += 1;
        let job = format!(
            "{}-{}",
            match kind {
                JobKind::Backup => "backup",
                JobKind::Verify => "verify",
                JobKind::Restore => "restore",
                JobKind::RestoreTest => "restore-test",
                JobKind::Fetch => "fetch",
            },
            self.seq
        );
        let progress = Arc::new(AtomicU64::new(0));
        let info = JobInfo {
            job: job.clone(),
            kind,
            database: database.into(),
            backup_id,
            bytes: 0,
            started_at: Utc::now(),
        };
        self.jobs.insert(
            job.clone(),
            Job {
                info,
                progress: progress.clone(),
            },
        );
        (job, progress)
    }

    fn job_infos(&self) -> Vec<JobInfo> {
        let mut v: Vec<JobInfo> = self
            .jobs
            .values()
            .map(|j| JobInfo {
                bytes: j.progress.load(Ordering::Relaxed),
                ..j.info.clone()
            })
            .collect();
        v.sort_by_key(|j| j.started_at);
        v
    }

    fn ctx(&self, progress: Arc<AtomicU64>) -> super::ctx::Ctx {
        let cfg = self.cfg();
        super::ctx::Ctx {
            scrubber: cfg.scrubber(),
            config: cfg,
            metrics: self.metrics.clone(),
            handle: self.handle.clone(),
            progress,
            cancel: self.cancel.clone(),
            maintenance: self.maintenance.clone(),
            uploads: self.uploads.clone(),
        }
    }

    /// Sets the catalog and last-success gauges from what is on disk.
    fn refresh_metrics(&self) {
        let cfg = self.cfg();
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || super::status::refresh_metrics(&cfg, &metrics));
    }
}
