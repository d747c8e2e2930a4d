//! The cloneable handle to the backup actor: one method per request, each answered on a oneshot.

use super::api::{
    JobInfo, PruneReply, Pruned, RestoreOptions, RestoreReply, Started, StatusReply, VerifyReply,
};
use super::catalog::BackupMeta;
use super::error::BackupError;
use super::kind::BackupKind;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

/// A request to the backup actor, each with the oneshot its answer goes back on.
pub(super) enum Cmd {
    Create {
        database: String,
        /// The database to dump when it is not `database` (see `BackupHandle::create_from`).
        source: Option<String>,
        kind: BackupKind,
        label: Option<String>,
        reply: oneshot::Sender<Result<(Started, oneshot::Receiver<BackupMeta>), BackupError>>,
    },
    List {
        database: Option<String>,
        reply: oneshot::Sender<Result<Vec<BackupMeta>, BackupError>>,
    },
    Status {
        reply: oneshot::Sender<StatusReply>,
    },
    Verify {
        id: String,
        restore_test: bool,
        reply: oneshot::Sender<Result<VerifyReply, BackupError>>,
    },
    Restore {
        id: String,
        target: Option<String>,
        options: RestoreOptions,
        reply: oneshot::Sender<Result<RestoreReply, BackupError>>,
    },
    Prune {
        dry_run: bool,
        reply: oneshot::Sender<Result<PruneReply, BackupError>>,
    },
    Delete {
        id: String,
        force: bool,
        reply: oneshot::Sender<Result<super::api::Pruned, BackupError>>,
    },
    Jobs {
        reply: oneshot::Sender<Vec<JobInfo>>,
    },
    Fetch {
        id: String,
        reply: oneshot::Sender<Result<BackupMeta, BackupError>>,
    },
    NextRuns(Vec<(BackupKind, DateTime<Utc>)>),
    /// The databases `["*"]` stood for at the scheduler's last answer from the server.
    SetCovered(Vec<String>),
    Covered {
        reply: oneshot::Sender<Option<Vec<String>>>,
    },
    /// The off-site upload queue's state; `None` without a bucket.
    UploadStatus {
        reply: oneshot::Sender<Option<super::api::UploadStatus>>,
    },
    /// A job finished; `backup` carries the metadata when it was a backup.
    Done {
        job: String,
        backup: Option<Box<BackupMeta>>,
    },
    /// Retention deleted backups: the catalog gauges need refreshing.
    Pruned,
}

/// The cloneable way to ask for backups.
#[derive(Clone)]
pub struct BackupHandle {
    pub(super) tx: mpsc::Sender<Cmd>,
    /// Bumped whenever a job ends or retention deleted something.
    pub(super) events: tokio::sync::watch::Receiver<u64>,
}

impl BackupHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Result<T, BackupError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| BackupError::Gone)?;
        rx.await.map_err(|_| BackupError::Gone)
    }

    /// Starts a backup; the receiver yields its metadata (good or failed) when it ends.
    pub async fn create(
        &self,
        database: String,
        kind: BackupKind,
        label: Option<String>,
    ) -> Result<(Started, oneshot::Receiver<BackupMeta>), BackupError> {
        self.ask(|reply| Cmd::Create {
            database,
            source: None,
            kind,
            label,
            reply,
        })
        .await?
    }

    /// Starts a backup of the database now called `source`, catalogued under `database`: the
    /// pre-restore backup of a database that `restore --force` has renamed aside.
    pub(super) async fn create_from(
        &self,
        database: String,
        source: String,
        kind: BackupKind,
        label: Option<String>,
    ) -> Result<(Started, oneshot::Receiver<BackupMeta>), BackupError> {
        self.ask(|reply| Cmd::Create {
            database,
            source: Some(source),
            kind,
            label,
            reply,
        })
        .await?
    }

    /// The catalog, newest first, optionally for one database.
    pub async fn list(&self, database: Option<String>) -> Result<Vec<BackupMeta>, BackupError> {
        self.ask(|reply| Cmd::List { database, reply }).await?
    }

    /// Last good backups, next runs, running jobs, totals, free space.
    pub async fn status(&self) -> Result<StatusReply, BackupError> {
        self.ask(|reply| Cmd::Status { reply }).await
    }

    /// Verifies a backup, optionally by restoring it into a scratch database.
    pub async fn verify(&self, id: String, restore_test: bool) -> Result<VerifyReply, BackupError> {
        self.ask(|reply| Cmd::Verify {
            id,
            restore_test,
            reply,
        })
        .await?
    }

    /// Restores a backup after verifying it.
    pub async fn restore(
        &self,
        id: String,
        target: Option<String>,
        options: RestoreOptions,
    ) -> Result<RestoreReply, BackupError> {
        self.ask(|reply| Cmd::Restore {
            id,
            target,
            options,
            reply,
        })
        .await?
    }

    /// Applies retention now (or shows what it would delete).
    pub async fn prune(&self, dry_run: bool) -> Result<PruneReply, BackupError> {
        self.ask(|reply| Cmd::Prune { dry_run, reply }).await?
    }

    /// Deletes one backup or failed/damaged entry; the newest intact backup of its database
    /// only with `force`.
    pub async fn delete(&self, id: String, force: bool) -> Result<Pruned, BackupError> {
        self.ask(|reply| Cmd::Delete { id, force, reply }).await?
    }

    /// Jobs in progress.
    /// `backup fetch ID`: a backup in the bucket downloaded and checked into the local dir.
    pub async fn fetch(&self, id: String) -> Result<BackupMeta, BackupError> {
        self.ask(|reply| Cmd::Fetch { id, reply }).await?
    }

    pub async fn jobs(&self) -> Result<Vec<JobInfo>, BackupError> {
        self.ask(|reply| Cmd::Jobs { reply }).await
    }

    /// Waits (at most `timeout`) until no job is running, e.g. at shutdown after cancelling.
    pub async fn wait_idle(&self, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.jobs().await {
                Ok(j) if !j.is_empty() && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await
                }
                Ok(j) => return j.is_empty(),
                Err(_) => return true,
            }
        }
    }

    /// Changes whenever the catalog may have changed (a backup ended, retention ran), so the
    /// alert engine re-reads it then rather than on a guess.
    pub fn events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.clone()
    }

    /// Tells the actor which databases `backup.databases = ["*"]` stood for when the server
    /// was last asked, for the alert rules and for a run when the server cannot be asked.
    pub async fn set_covered(&self, databases: Vec<String>) {
        let _ = self.tx.send(Cmd::SetCovered(databases)).await;
    }

    /// The databases `["*"]` stood for at the server's last answer; `None` before any.
    pub async fn covered(&self) -> Result<Option<Vec<String>>, BackupError> {
        self.ask(|reply| Cmd::Covered { reply }).await
    }

    /// The off-site upload queue's state (queued, failures in a row, the last error); `None`
    /// when no bucket is configured.
    pub async fn upload_status(&self) -> Result<Option<super::api::UploadStatus>, BackupError> {
        self.ask(|reply| Cmd::UploadStatus { reply }).await
    }

    /// Tells the actor the scheduler's next run times, for status and metrics.
    pub async fn set_next_runs(&self, runs: Vec<(BackupKind, DateTime<Utc>)>) {
        let _ = self.tx.send(Cmd::NextRuns(runs)).await;
    }
}
