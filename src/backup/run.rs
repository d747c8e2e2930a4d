//! One backup run: lock, version check, the pipeline, and the metadata that commits it (or
//! records why it failed).

use super::catalog::SourceInfo;
use super::catalog::{self, BackupMeta, BackupStatus, Encryption};
use super::ctx::Ctx;
use super::globals::GlobalsJob;
use super::kind::BackupKind;
use super::pg_text::pg_error;
use super::pgconn::PgTarget;
use super::pipeline::{self, DumpJob};
use super::source_info;
use chrono::{DateTime, Utc};
use std::str::FromStr;
use std::time::Duration;

/// Advisory-lock namespace shared by every steward instance ("ST").
const LOCK_CLASS: i32 = 0x5354;

/// A backup about to run.
pub(super) struct BackupRun {
    pub id: String,
    pub database: String,
    /// The database pg_dump connects to when it is not `database` (a database renamed aside
    /// by `restore --force`, backed up under its own name).
    pub source: Option<String>,
    pub kind: BackupKind,
    pub label: Option<String>,
    pub started: DateTime<Utc>,
}

impl BackupRun {
    /// Runs the backup to its end and returns its committed metadata, good or failed.
    pub async fn execute(self, ctx: &Ctx) -> BackupMeta {
        let b = &ctx.config.backup;
        let encrypted = !b.encryption.recipients.is_empty();
        let mut meta = BackupMeta {
            label: self.label.clone(),
            format: b.format,
            compression: b.compression,
            level: b.level(),
            encryption: encrypted.then(|| Encryption {
                method: "age".into(),
                recipients: b.encryption.recipients.clone(),
            }),
            ..BackupMeta::placeholder(
                &self.id,
                &self.database,
                self.kind,
                BackupStatus::Running,
                self.started,
            )
        };
        tracing::info!(id = %self.id, database = %self.database, kind = %self.kind, "backup started");
        let root = b.dir.clone();
        let outcome = match catalog::mark_running(&root, &meta) {
            Ok(()) => self.dump(ctx, &mut meta).await,
            Err(e) => Err(DumpFail::Failed(e.to_string())),
        };
        let outcome = match outcome {
            Err(DumpFail::Skipped(why)) => {
                catalog::unmark_running(&root, &meta);
                meta.status = BackupStatus::Skipped;
                meta.error = Some(why);
                meta.finished_at = Some(Utc::now());
                tracing::info!(id = %meta.id, database = %meta.database, kind = %meta.kind, reason = meta.error.as_deref().unwrap_or(""), "backup skipped");
                return meta;
            }
            Err(DumpFail::Failed(e)) => Err(e),
            Ok(()) => Ok(()),
        };
        let finished = Utc::now();
        meta.finished_at = Some(finished);
        meta.duration_seconds = (finished - self.started).num_milliseconds() as f64 / 1000.0;
        match outcome {
            Ok(()) => meta.status = BackupStatus::Good,
            Err(e) => {
                meta.status = BackupStatus::Failed;
                meta.error = Some(ctx.scrubber.scrub(&e));
                meta.file = None;
            }
        }
        if let Err(e) = catalog::commit(&root, &mut meta) {
            // The data file may be complete, but without its metadata it is not a backup.
            meta.status = BackupStatus::Failed;
            // Keep the first cause (say, a full disk that also refused the metadata).
            let why = ctx.scrubber.scrub(&e.to_string());
            meta.error = Some(match meta.error.take() {
                Some(first) => format!("{first}; nor could the failure be recorded: {why}"),
                None => format!("cannot record the backup: {why}"),
            });
            let dir = catalog::db_dir(&root, &meta.database);
            if let Some(name) = meta.file.take() {
                let _ = std::fs::remove_file(dir.join(name));
            }
            if let Some(g) = meta.globals.take() {
                let _ = std::fs::remove_file(dir.join(g.file));
            }
        }
        match meta.status {
            BackupStatus::Good => tracing::info!(
                id = %meta.id, database = %meta.database, kind = %meta.kind,
                stored_bytes = meta.stored_bytes, dump_bytes = meta.dump_bytes,
                duration_seconds = meta.duration_seconds, "backup done"
            ),
            _ => tracing::warn!(
                id = %meta.id, database = %meta.database, kind = %meta.kind,
                error = meta.error.as_deref().unwrap_or(""), "backup failed"
            ),
        }
        meta
    }

    async fn dump(&self, ctx: &Ctx, meta: &mut BackupMeta) -> Result<(), DumpFail> {
        let cfg = &ctx.config;
        let b = &cfg.backup;
        let source = self.source.as_deref().unwrap_or(&self.database);
        let target = PgTarget::new(&cfg.postgres.url, Some(source)).map_err(|e| e.to_string())?;
        let connect = tokio::time::timeout(
            cfg.postgres.timeout.max(Duration::from_secs(5)),
            target.connect(),
        );
        let client = match connect.await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(format!(
                    "cannot connect to database {:?}: {}",
                    self.database,
                    pg_error(&e)
                )
                .into())
            }
            Err(_) => {
                return Err(
                    format!("cannot connect to database {:?}: timed out", self.database).into(),
                )
            }
        };
        let row = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext(current_database())), current_setting('server_version'), current_setting('server_version_num')::int",
                &[&LOCK_CLASS],
            )
            .await
            .map_err(|e| format!("cannot query database {:?}: {}", self.database, pg_error(&e)))?;
        let locked: bool = row.get(0);
        let server_version: String = row.get(1);
        let server_num: i32 = row.get(2);
        if !locked {
            return Err(DumpFail::Skipped(format!("another steward instance is backing up database {:?} right now (its advisory lock is held); this run was skipped", self.database)));
        }
        meta.server_version = Some(server_version.clone());
        meta.source = Some(self.source_info(ctx, &client, &target).await?);
        let server_major = (server_num / 10000) as u32;
        let pg_dump = pipeline::find_client_tool("pg_dump", b.pg_dump_path.as_deref(), Some(server_major)).ok_or_else(|| {
            format!("pg_dump not found; install the PostgreSQL {server_major} client (postgresql-client-{server_major}) or set backup.pg_dump_path")
        })?;
        let (dump_major, dump_version) = pipeline::pg_dump_version(&pg_dump)
            .await
            .map_err(|e| e.to_string())?;
        meta.pg_dump_version = Some(dump_version.clone());
        if dump_major < server_major {
            return Err(format!(
                "pg_dump {dump_version} ({}) is older than the server ({server_version}); pg_dump must be at least version {server_major}: install postgresql-client-{server_major} or set backup.pg_dump_path",
                pg_dump.display()
            )
            .into());
        }
        let recipients = b
            .encryption
            .recipients
            .iter()
            .map(|r| {
                age::x25519::Recipient::from_str(r)
                    .map_err(|e| format!("backup.encryption.recipients: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dir = catalog::db_dir(&b.dir, &self.database);
        let name =
            catalog::data_file_name(&self.id, b.format, b.compression, !recipients.is_empty());
        let job = DumpJob {
            pg_dump: pg_dump.clone(),
            args: pipeline::pg_dump_args(b.format, b.lock_timeout),
            target: target.clone(),
            compression: b.compression,
            level: b.level(),
            recipients: recipients.clone(),
            tmp_path: dir.join(format!("{name}.tmp")),
            final_path: dir.join(&name),
            progress: ctx.progress.clone(),
            count_rows: Some(b.format),
        };
        let out = pipeline::dump(job, ctx.cancel.clone())
            .await
            .map_err(|e| lock_wait_hint(&e.to_string(), b.lock_timeout))?;
        let globals = super::globals::dump(
            ctx,
            GlobalsJob {
                id: &self.id,
                database: &self.database,
                source,
                target: &target,
                pg_dump: &pg_dump,
                server_major,
                recipients: &recipients,
            },
        )
        .await;
        let globals = match globals {
            Ok(g) => g,
            Err(e) => {
                // The data file is complete but will have no metadata: it goes too.
                let _ = std::fs::remove_file(dir.join(&name));
                return Err(e.into());
            }
        };
        meta.file = Some(name);
        meta.dump_bytes = out.dump_bytes;
        meta.stored_bytes = out.stored_bytes;
        meta.sha256 = Some(out.sha256);
        meta.table_rows = out.table_rows;
        meta.globals = Some(globals);
        drop(client);
        Ok(())
    }
}

impl BackupRun {
    /// What a restore needs to know of the source, read on the dump's own session.
    async fn source_info(
        &self,
        ctx: &Ctx,
        client: &tokio_postgres::Client,
        target: &PgTarget,
    ) -> Result<SourceInfo, DumpFail> {
        let (mut database, size_bytes) = source_info::read_props(client).await.map_err(|e| {
            format!(
                "cannot read the properties of database {:?}: {}",
                self.database,
                pg_error(&e)
            )
        })?;
        if self.source.is_some() {
            // A database renamed aside for a pre-restore backup: its comment was its own
            // (steward marks only scratch databases), kept as it was.
            database.comment = database.comment.filter(|c| !c.starts_with("steward:"));
        }
        let roles = source_info::referenced_roles(client).await.map_err(|e| {
            format!(
                "cannot list the roles database {:?} refers to: {}",
                self.database,
                pg_error(&e)
            )
        })?;
        let b = &ctx.config.backup;
        Ok(SourceInfo {
            roles,
            system_identifier: source_info::system_identifier(client).await,
            host: target.endpoint(),
            size_bytes,
            pg_dump_args: pipeline::pg_dump_args(b.format, b.lock_timeout),
            database,
        })
    }
}

/// Why a run produced no backup: a failure (recorded, alerted) or another instance's turn.
enum DumpFail {
    Failed(String),
    Skipped(String),
}

impl From<String> for DumpFail {
    fn from(e: String) -> Self {
        DumpFail::Failed(e)
    }
}

/// pg_dump reports a lock it waited for in vain as a statement timeout on its `LOCK TABLE`:
/// say so in words, with the setting that bounded the wait.
fn lock_wait_hint(error: &str, limit: Duration) -> String {
    if error.contains("LOCK TABLE") && error.contains("timeout") {
        format!(
            "{error}\n(another session held a lock on that table longer than backup.lock_timeout, {}; nothing was written)",
            humantime::format_duration(limit)
        )
    } else {
        error.to_string()
    }
}
