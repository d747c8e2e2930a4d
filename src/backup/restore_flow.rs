//! Verify and restore as the commands run them: look the ID up in the catalog, verify first,
//! then restore into a new database, or replace an existing one only with `--force` and after
//! a pre-restore backup of it.

use super::api::{Check, RestoreReply, RestoreSummary, VerifyReply};
use super::catalog::BackupMeta;
use super::manager::BackupError;
use super::pgconn::PgTarget;
use super::restore;
use super::restore_checks::{check, identities, lookup, quick_check, stored};
use super::run::pg_error;
use super::{BackupKind, Ctx};
use std::time::Instant;

/// `backup verify ID [--restore-test]`.
pub(super) async fn verify(
    ctx: &Ctx,
    id: &str,
    restore_test: bool,
) -> Result<VerifyReply, BackupError> {
    let meta = lookup(ctx, id, "verified")?;
    let (ok, checks) = check(ctx, &meta).await?;
    let mut reply = VerifyReply {
        id: id.into(),
        ok,
        checks,
        restore_test: None,
    };
    if ok && restore_test {
        let scratch = format!("steward_verify_{}", &id[id.len() - 4..]);
        let result = restore_into_new(ctx, &meta, &scratch).await;
        let admin = admin(ctx).await?;
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {}", ident(&scratch)))
            .await;
        match result {
            Ok(summary) => reply.restore_test = Some(summary),
            Err(e) => {
                reply.ok = false;
                reply.checks.push(Check {
                    name: "restore test".into(),
                    ok: false,
                    detail: e.to_string(),
                });
            }
        }
    }
    let result = if reply.ok { "success" } else { "failure" };
    ctx.metrics
        .backup
        .verifies
        .with_label_values(&[result])
        .inc();
    tracing::info!(id = %id, ok = reply.ok, restore_test, "backup verified");
    Ok(reply)
}

/// `backup restore ID [--target-db NAME] [--force]`.
pub(super) async fn restore(
    ctx: &Ctx,
    id: &str,
    target: Option<String>,
    force: bool,
) -> Result<RestoreReply, BackupError> {
    let out = restore_inner(ctx, id, target, force).await;
    let result = if out.is_ok() { "success" } else { "failure" };
    ctx.metrics
        .backup
        .restores
        .with_label_values(&[result])
        .inc();
    match &out {
        Ok(r) => {
            tracing::info!(id = %id, target = %r.target, tables = r.summary.tables, rows = r.summary.rows, "backup restored")
        }
        Err(e) => tracing::warn!(id = %id, error = %e, "restore failed"),
    }
    out
}

async fn restore_inner(
    ctx: &Ctx,
    id: &str,
    target: Option<String>,
    force: bool,
) -> Result<RestoreReply, BackupError> {
    let meta = lookup(ctx, id, "restored")?;
    // The hash proves the file is the one written; the stream inside is checked as it is
    // restored, into a database that is dropped if anything goes wrong.
    let (ok, checks) = quick_check(ctx, &meta).await?;
    if !ok {
        let detail = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(BackupError::VerifyFailed {
            id: id.into(),
            detail,
        });
    }
    let target = target.unwrap_or_else(|| {
        format!(
            "{}_restored_{}",
            meta.database,
            chrono::Utc::now().format("%Y%m%d%H%M%S")
        )
    });
    if !crate::config::is_database_dir_name(&target) {
        return Err(BackupError::Refused(format!(
            "{target:?} cannot be a restore target: use letters, digits, '_', '-' and '.'"
        )));
    }
    let admin = admin(ctx).await?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&target])
        .await
        .map_err(|e| pg_failed(ctx, "cannot look up the target database", &e))?
        .is_some();
    if !exists {
        let summary = restore_into_new(ctx, &meta, &target).await?;
        return Ok(RestoreReply {
            id: id.into(),
            target,
            replaced: false,
            pre_restore_backup: None,
            summary,
        });
    }
    let objects = user_objects(ctx, &target).await?;
    if objects > 0 && !force {
        return Err(BackupError::Refused(format!(
            "database {target:?} exists and is not empty ({objects} tables, views or sequences); pass --force to replace it (a pre-restore backup of it is taken first), or restore into a new database with --target-db"
        )));
    }
    // Until this function returns, the application sees maintenance mode (steward:maintenance).
    let _maintenance = ctx
        .maintenance
        .hold_for_restore(format!("restore of {id} into {target}"))
        .await
        .map_err(|e| {
            BackupError::Refused(format!(
                "cannot turn maintenance mode on for the restore ({e}); nothing was restored"
            ))
        })?;
    let pre = if objects > 0 {
        Some(pre_restore_backup(ctx, &target).await?)
    } else {
        None
    };
    // Restore beside the target, then swap: a failed restore leaves the target as it was.
    let scratch: String = format!("{}_steward_new", &target[..target.len().min(45)]);
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {}", ident(&scratch)))
        .await;
    let summary = restore_into_new(ctx, &meta, &scratch).await?;
    let swap_failed = |e| {
        pg_failed(
            ctx,
            &format!("restored into {scratch:?} but could not swap it in for {target:?}"),
            &e,
        )
    };
    admin
        .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", ident(&target)))
        .await
        .map_err(swap_failed)?;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} RENAME TO {}",
            ident(&scratch),
            ident(&target)
        ))
        .await
        .map_err(swap_failed)?;
    Ok(RestoreReply {
        id: id.into(),
        target: target.clone(),
        replaced: true,
        pre_restore_backup: pre,
        summary: RestoreSummary {
            database: target,
            ..summary
        },
    })
}

/// Creates `name`, restores into it, counts what arrived; drops it again if the restore fails.
async fn restore_into_new(
    ctx: &Ctx,
    meta: &BackupMeta,
    name: &str,
) -> Result<RestoreSummary, BackupError> {
    // Progress now counts this restore's reading of the file, not the check before it.
    ctx.progress.store(0, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let admin = admin(ctx).await?;
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0",
            ident(name)
        ))
        .await
        .map_err(|e| {
            pg_failed(
                ctx,
                &format!("cannot create database {name:?} (steward's role needs CREATEDB)"),
                &e,
            )
        })?;
    let target = PgTarget::new(&ctx.config.postgres.url, Some(name))
        .map_err(|e| BackupError::Failed(e.to_string()))?;
    let tool_name = match meta.format {
        crate::config::DumpFormat::Plain => "psql",
        crate::config::DumpFormat::Custom => "pg_restore",
    };
    let hint = ctx
        .config
        .backup
        .pg_dump_path
        .as_deref()
        .and_then(|p| p.parent())
        .map(|d| d.join(tool_name));
    let tool =
        super::pipeline::find_client_tool(tool_name, hint.as_deref().filter(|p| p.is_file()), None)
            .ok_or_else(|| {
                BackupError::Failed(format!(
                    "{tool_name} not found; install the PostgreSQL client"
                ))
            })?;
    let b = stored(ctx, meta)?;
    let ids = identities(ctx)?;
    let cancel = ctx.cancel.clone();
    match restore::restore(&b, &ids, &tool, &target, ctx.progress.clone(), cancel).await {
        Ok(out) => {
            let (tables, rows) = count(ctx, &target).await?;
            Ok(RestoreSummary {
                database: name.into(),
                tables,
                rows,
                bytes: out.bytes_fed,
                duration_seconds: started.elapsed().as_secs_f64(),
            })
        }
        Err(e) => {
            let _ = admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    ident(name)
                ))
                .await;
            Err(BackupError::Failed(format!(
                "restore into {name:?} failed, nothing was kept: {}",
                ctx.scrubber.scrub(&e.to_string())
            )))
        }
    }
}

async fn pre_restore_backup(ctx: &Ctx, target: &str) -> Result<String, BackupError> {
    let (started, done) = ctx
        .handle
        .create(
            target.into(),
            BackupKind::PreRestore,
            Some("before restore".into()),
        )
        .await?;
    let meta = done.await.map_err(|_| BackupError::Gone)?;
    if !meta.is_good() {
        return Err(BackupError::Refused(format!(
            "the pre-restore backup of {target:?} failed ({}); nothing was restored",
            meta.error.unwrap_or_default()
        )));
    }
    Ok(started.id)
}

/// A connection for CREATE/DROP/ALTER DATABASE: to the `postgres` maintenance database, so
/// that the database being replaced is not the one connected to; else to the URL's database.
async fn admin(ctx: &Ctx) -> Result<tokio_postgres::Client, BackupError> {
    let t = PgTarget::new(&ctx.config.postgres.url, None)
        .map_err(|e| BackupError::Failed(e.to_string()))?;
    if let Ok(c) = t.with_database("postgres").connect().await {
        return Ok(c);
    }
    t.connect()
        .await
        .map_err(|e| pg_failed(ctx, "cannot connect to PostgreSQL", &e))
}

async fn user_objects(ctx: &Ctx, db: &str) -> Result<i64, BackupError> {
    let t = PgTarget::new(&ctx.config.postgres.url, Some(db))
        .map_err(|e| BackupError::Failed(e.to_string()))?;
    let c = t
        .connect()
        .await
        .map_err(|e| pg_failed(ctx, &format!("cannot connect to {db:?}"), &e))?;
    let row = c
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r','p','v','m','S','f')
               AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
            &[],
        )
        .await
        .map_err(|e| pg_failed(ctx, &format!("cannot inspect {db:?}"), &e))?;
    Ok(row.get(0))
}

/// Tables and exact row count of a database's user tables.
async fn count(ctx: &Ctx, target: &PgTarget) -> Result<(i64, i64), BackupError> {
    let c = target
        .connect()
        .await
        .map_err(|e| pg_failed(ctx, "cannot connect to the restored database", &e))?;
    let row = c
        .query_one(
            "SELECT count(*), coalesce(sum((xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', schemaname, tablename), false, true, '')))[1]::text::bigint), 0)::int8
             FROM pg_tables WHERE schemaname NOT IN ('pg_catalog','information_schema')",
            &[],
        )
        .await
        .map_err(|e| pg_failed(ctx, "cannot count the restored rows", &e))?;
    Ok((row.get(0), row.get(1)))
}

fn pg_failed(ctx: &Ctx, what: &str, e: &tokio_postgres::Error) -> BackupError {
    BackupError::Failed(ctx.scrubber.scrub(&format!("{what}: {}", pg_error(e))))
}

/// A quoted identifier (names were checked to hold no quote).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
