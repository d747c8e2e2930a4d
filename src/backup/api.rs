//! What backup commands answer: the payloads of the control protocol's `backup_*` replies.

use super::catalog::BackupMeta;
use super::kind::BackupKind;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a running job is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    Backup,
    Verify,
    Restore,
    RestoreTest,
    /// `backup fetch`: a download from the bucket.
    Fetch,
}

/// A job in progress, with the bytes it has moved so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    pub job: String,
    pub kind: JobKind,
    pub database: String,
    #[serde(default)]
    pub backup_id: Option<String>,
    pub bytes: u64,
    pub started_at: DateTime<Utc>,
}

/// Reply to `backup create` without `--wait`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Started {
    pub id: String,
    pub database: String,
}

/// The newest good backup of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastGood {
    pub kind: BackupKind,
    pub id: String,
    pub finished_at: DateTime<Utc>,
    pub age_seconds: f64,
    pub stored_bytes: u64,
}

/// One database's backups at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseStatus {
    pub database: String,
    pub last_good: Vec<LastGood>,
    #[serde(default)]
    pub last_failure: Option<BackupMeta>,
    /// Damaged backups of this database (never counted as good).
    #[serde(default)]
    pub damaged: usize,
    pub good_backups: usize,
    pub stored_bytes: u64,
    /// The newest restore test of any of its backups (drill or `verify --restore-test`).
    #[serde(default)]
    pub last_restore_test: Option<super::catalog::RestoreTestRecord>,
    /// Age of the newest intact backup: at most this much would be lost.
    #[serde(default)]
    pub recovery_point_age_seconds: Option<f64>,
    /// How long the newest passing restore test took: a measured time to come back.
    #[serde(default)]
    pub recovery_time_seconds: Option<f64>,
    /// Good backups with a copy in the bucket (with `[backup.remote]`).
    #[serde(default)]
    pub remote_backups: usize,
}

/// A scheduled run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextRun {
    pub kind: BackupKind,
    pub at: DateTime<Utc>,
}

/// Reply to `backup status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReply {
    pub dir: String,
    /// Why `dir` cannot hold backups (a file, a read-only filesystem), when it cannot.
    #[serde(default)]
    pub dir_problem: Option<String>,
    #[serde(default)]
    pub free_bytes: Option<u64>,
    pub databases: Vec<DatabaseStatus>,
    pub next_runs: Vec<NextRun>,
    pub running: Vec<JobInfo>,
    pub total_backups: usize,
    pub total_bytes: u64,
    /// Metadata files that could not be trusted (altered or unreadable).
    pub problems: Vec<String>,
    /// The off-site copies' queue, with `[backup.remote]`.
    #[serde(default)]
    pub offsite: Option<UploadStatus>,
}

/// One check made by `verify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// What a restore (or restore test) produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreSummary {
    pub database: String,
    pub tables: i64,
    pub rows: i64,
    pub bytes: u64,
    pub duration_seconds: f64,
    /// WARNING lines psql or pg_restore printed (they do not fail a restore).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Reply to `backup verify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReply {
    pub id: String,
    pub ok: bool,
    /// The checks covered the content: the dump inside was decrypted, decompressed and read to
    /// its end. False when only the file's hash and size could be checked (an encrypted
    /// backup without `backup.encryption.identity_file`: `ok` may still be true, since nothing
    /// was found wrong) or when the stream could not be read, so a script can tell "intact as
    /// far as checked" from "verified".
    pub fully_verified: bool,
    pub checks: Vec<Check>,
    #[serde(default)]
    pub restore_test: Option<RestoreSummary>,
}

/// How `backup restore` treats what a dump carries besides the data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreOptions {
    /// Replace an existing database (its sessions are ended, a pre-restore backup is taken).
    #[serde(default)]
    pub force: bool,
    /// Leave every object owned by steward's role instead of its owner in the backup, for a
    /// restore under another role (custom format only: a plain dump sets owners in its SQL).
    #[serde(default)]
    pub no_owner: bool,
    /// Skip gathering planner statistics: without them the first queries plan blind.
    #[serde(default)]
    pub no_analyze: bool,
    /// Where this server cannot create the backup's encoding or locale, take its defaults
    /// (and say what differs) instead of refusing.
    #[serde(default)]
    pub any_locale: bool,
    /// Do not create the roles the backup refers to that this server lacks.
    #[serde(default)]
    pub skip_roles: bool,
}

/// Reply to `backup restore`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreReply {
    pub id: String,
    pub target: String,
    /// The database existed and was replaced.
    pub replaced: bool,
    #[serde(default)]
    pub pre_restore_backup: Option<String>,
    /// Sessions on the replaced database that steward ended before its pre-restore backup.
    #[serde(default)]
    pub sessions_ended: u64,
    /// Objects kept their owners from the backup (false with `--no-owner`).
    #[serde(default)]
    pub owners_kept: bool,
    /// ANALYZE ran on the restored database before it was put under its name.
    #[serde(default)]
    pub analyzed: bool,
    /// Roles the backup refers to that this server lacked, created from its globals.
    #[serde(default)]
    pub roles_created: Vec<String>,
    pub summary: RestoreSummary,
}

/// One backup retention removes (or would remove).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pruned {
    pub id: String,
    pub database: String,
    pub kind: BackupKind,
    pub reason: String,
    pub stored_bytes: u64,
    /// Which copy went: the local one or the bucket's (`[backup.remote]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<super::catalog::Location>,
}

/// Reply to `backup prune`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PruneReply {
    pub dry_run: bool,
    /// Local deletions, then (with a bucket) the bucket's.
    pub deleted: Vec<Pruned>,
    /// Local backups kept.
    pub kept: usize,
}

/// The off-site side of `backup status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UploadStatus {
    /// `s3://bucket/prefix`.
    pub url: String,
    pub endpoint: String,
    /// Backups waiting for their off-site copy.
    pub queued: usize,
    /// Failed attempts in a row since the last upload that succeeded.
    pub consecutive_failures: u32,
    /// When the current run of failures began.
    #[serde(default)]
    pub failing_since: Option<DateTime<Utc>>,
    /// Why the last attempt failed (scrubbed).
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub last_success_at: Option<DateTime<Utc>>,
    /// The backup uploading now.
    #[serde(default)]
    pub uploading: Option<String>,
}
