//! The steps that put a restored database under a user's name: fence the target (no new
//! connections, its sessions ended within `backup.lock_timeout`), rename it aside, rename the
//! restored database in (marker cleared first), drop the replaced one last. Each is taken
//! after the journal (`journal`) announces it.

use super::ctx::Ctx;
use super::error::BackupError;
use super::journal::Journal;
use super::pg_text::ident;
use super::scratch::{self, info_by_oid, Owned, Run};
use std::time::{Duration, Instant};

/// Closes `target` to new connections and ends its client sessions, waiting at most
/// `backup.lock_timeout` for them to go; then renames it aside. Returns the sessions ended
/// and the aside name. On error the caller rolls back (which opens it again).
pub(super) async fn fence(
    ctx: &Ctx,
    run: &Run,
    target: &str,
    oid: u32,
) -> Result<(u64, String), BackupError> {
    let c = &run.admin;
    let failed = |what: &str, e: tokio_postgres::Error| scratch::pg_failed(ctx, what, &e);
    same_database(ctx, run, target, oid).await?;
    c.batch_execute(&format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS false",
        ident(target)
    ))
    .await
    .map_err(|e| failed(&format!("cannot close {target:?} to new connections"), e))?;
    let limit = ctx.config.backup.lock_timeout;
    let started = Instant::now();
    let mut ended = std::collections::BTreeSet::new();
    let mut refused = None;
    loop {
        let rows = c
            .query(
                "SELECT pid, coalesce(usename, ''), coalesce(application_name, ''), coalesce(state, '') FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()
                   AND coalesce(backend_type, 'client backend') = 'client backend'",
                &[&target],
            )
            .await
            .map_err(|e| failed("cannot list the sessions on the target", e))?;
        if rows.is_empty() {
            break;
        }
        if started.elapsed() >= limit {
            let who: Vec<String> = rows
                .iter()
                .map(|r| {
                    format!(
                        "pid {} (user {:?}, application {:?}, {})",
                        r.get::<_, i32>(0),
                        r.get::<_, String>(1),
                        r.get::<_, String>(2),
                        r.get::<_, String>(3)
                    )
                })
                .collect();
            return Err(BackupError::Failed(format!(
                "sessions on {target:?} did not end within backup.lock_timeout ({}): {}{}; nothing was replaced",
                humantime::format_duration(limit),
                who.join(", "),
                refused
                    .as_ref()
                    .map(|e| format!(" — steward could not end them: {e} (grant steward's role pg_signal_backend)"))
                    .unwrap_or_default()
            )));
        }
        for r in &rows {
            let pid: i32 = r.get(0);
            match c
                .query_one("SELECT pg_terminate_backend($1)", &[&pid])
                .await
            {
                Ok(row) if row.get::<_, bool>(0) => {
                    ended.insert(pid);
                }
                Ok(_) => {}
                Err(e) => refused = Some(ctx.scrubber.scrub(&super::pg_text::pg_error(&e))),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    same_database(ctx, run, target, oid).await?;
    let aside = rename_aside(ctx, run, target).await?;
    // What was renamed must be the database the journal names; else put it back and stop.
    let renamed = info_by_oid(c, oid)
        .await
        .map_err(|e| failed("cannot look up the renamed database", e))?;
    if renamed.is_none_or(|r| r.name != aside) {
        let _ = c
            .batch_execute(&format!(
                "ALTER DATABASE {} RENAME TO {}",
                ident(&aside),
                ident(target)
            ))
            .await;
        return Err(replaced_meanwhile(target));
    }
    Ok((ended.len() as u64, aside))
}

/// Fails when `target` is no longer the database (by `oid`) this run set out to replace: it
/// was dropped and created again during the restore.
async fn same_database(ctx: &Ctx, run: &Run, target: &str, oid: u32) -> Result<(), BackupError> {
    match run.info(ctx, target).await? {
        Some(db) if db.oid == oid => Ok(()),
        _ => Err(replaced_meanwhile(target)),
    }
}

fn replaced_meanwhile(target: &str) -> BackupError {
    BackupError::Failed(format!(
        "database {target:?} was dropped or created again while the backup was being restored; nothing was replaced — run the restore again"
    ))
}

/// Renames `target` to `steward_aside_<run>` (another suffix when that name is taken).
async fn rename_aside(ctx: &Ctx, run: &Run, target: &str) -> Result<String, BackupError> {
    for n in 1..=8 {
        let aside = scratch::numbered("aside", &run.id, n);
        let r = run
            .admin
            .batch_execute(&format!(
                "ALTER DATABASE {} RENAME TO {}",
                ident(target),
                ident(&aside)
            ))
            .await;
        match r {
            Ok(()) => return Ok(aside),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {
                continue
            }
            Err(e) => {
                return Err(scratch::pg_failed(
                    ctx,
                    &format!("cannot rename {target:?} aside (within backup.lock_timeout)"),
                    &e,
                ))
            }
        }
    }
    Err(BackupError::Failed(
        "no free name to rename the target aside to".into(),
    ))
}

/// Renames the scratch database to the target after replacing its marker with the source's
/// own comment (so that no sweep ever takes the user's new database for a leftover).
pub(super) async fn rename_in(
    ctx: &Ctx,
    run: &Run,
    s: &Owned,
    target: &str,
    comment: Option<&str>,
) -> Result<(), BackupError> {
    let c = &run.admin;
    let failed = |e: tokio_postgres::Error| {
        scratch::pg_failed(
            ctx,
            &format!(
                "restored into {:?} but could not rename it to {target:?}",
                s.name
            ),
            &e,
        )
    };
    c.batch_execute(&scratch::comment_sql(&s.name, comment))
        .await
        .map_err(failed)?;
    c.batch_execute(&format!(
        "ALTER DATABASE {} RENAME TO {}",
        ident(&s.name),
        ident(target)
    ))
    .await
    .map_err(failed)
}

/// Drops the replaced database (now under its aside name, found by oid).
pub(super) async fn drop_replaced(ctx: &Ctx, run: &Run, j: &Journal) -> Result<(), BackupError> {
    j.drop_aside(&run.admin).await.map(|_| ()).map_err(|e| {
        scratch::pg_failed(
            ctx,
            "the restore is in place, but the replaced database could not be dropped",
            &e,
        )
    })
}

pub(super) use super::pause::pause_point;
