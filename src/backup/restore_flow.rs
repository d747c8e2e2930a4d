//! Verify and restore as the commands run them: look the ID up in the catalog, verify first,
//! then restore into a scratch database of steward's own and put it under the target's name
//! only once complete — a new name, or with `--force` in place of an existing database after
//! fencing it and taking a pre-restore backup (journalled: see `swap`).

use super::api::{Check, RestoreOptions, RestoreReply, RestoreSummary, VerifyReply};
use super::catalog::BackupMeta;
use super::ctx::Ctx;
use super::error::BackupError;
use super::journal::{self, Journal, Phase, Replaced};
use super::kind::BackupKind;
use super::pgconn::PgTarget;
use super::restore;
use super::restore_checks::{check, identities, lookup, quick_check, record, stored};
use super::scratch::{pg_failed, Owned, Run};
use super::swap;
use std::time::Instant;

/// `backup verify ID [--restore-test]`.
pub(super) async fn verify(
    ctx: &Ctx,
    id: &str,
    restore_test: bool,
) -> Result<VerifyReply, BackupError> {
    let meta = lookup(ctx, id, "verified").await?;
    let (ok, checks) = check(ctx, &meta).await?;
    record(ctx, &meta, &checks);
    let mut reply = VerifyReply {
        id: id.into(),
        ok,
        fully_verified: super::restore_checks::fully_verified(&checks),
        checks,
        restore_test: None,
    };
    if ok && restore_test {
        let started = Instant::now();
        let out = restore_test_run(ctx, &meta).await;
        note_restore_test(ctx, &meta, &out, started.elapsed().as_secs_f64()).await;
        match out {
            Ok(summary) => reply.restore_test = Some(summary),
            Err(e) => {
                // Reported and recorded as the restore test's result, never as damage: a
                // restore test fails for reasons that are not the backup's (a lost
                // connection, a stop, a privilege).
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

/// Records a restore test's outcome in the catalog and the metrics (the drill's duration is
/// a measured recovery time).
async fn note_restore_test(
    ctx: &Ctx,
    meta: &BackupMeta,
    out: &Result<RestoreSummary, BackupError>,
    seconds: f64,
) {
    let now = chrono::Utc::now();
    let record = super::catalog::RestoreTestRecord {
        at: now,
        ok: out.is_ok(),
        duration_seconds: seconds,
        detail: out
            .as_ref()
            .err()
            .map(|e| ctx.scrubber.scrub(&e.to_string()))
            .unwrap_or_default(),
    };
    let recorded = if super::restore_checks::is_remote(meta) {
        // Only the bucket holds it (`local_keep = 0`): the result goes into its metadata there.
        super::remote::record_restore_test(&ctx.config, &ctx.uploads, meta, record).await
    } else {
        super::catalog::record_restore_test(&ctx.config.backup.dir, &meta.id, record)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    if let Err(e) = recorded {
        tracing::warn!(id = %meta.id, error = %e, "cannot record the restore test in the catalog");
    }
    let m = &ctx.metrics.restore_test;
    let db = meta.database.as_str();
    let result = if out.is_ok() { "success" } else { "failure" };
    m.tests.with_label_values(&[db, result]).inc();
    match out {
        Ok(s) => {
            m.last_success
                .with_label_values(&[db])
                .set(crate::unix_seconds(now));
            m.duration.with_label_values(&[db]).set(seconds);
            tracing::info!(id = %meta.id, database = db, tables = s.tables, rows = s.rows, duration_seconds = seconds, "restore test passed");
        }
        Err(e) => {
            tracing::warn!(id = %meta.id, database = db, error = %ctx.scrubber.scrub(&e.to_string()), "restore test failed")
        }
    }
}

/// Restores into a scratch database of this run's, compares each table's rows with those
/// counted when the backup was taken, and drops it again (only it: by its oid and marker). A
/// crash leaves it marked, and the next start drops it.
async fn restore_test_run(ctx: &Ctx, meta: &BackupMeta) -> Result<RestoreSummary, BackupError> {
    let url = ctx.config.restore_test_url();
    let run = Run::start_on(ctx, url, "").await?;
    // On a server kept for drills the backup's roles may be missing: created as a restore
    // would (none is missing on the backup's own server).
    let roles = super::restore_roles::create_missing(ctx, &run, meta, false, false).await?;
    let (scratch, differs) =
        match super::restore_props::create_scratch(ctx, &run, "verify", meta, false).await {
            Ok(s) => s,
            Err(e) => {
                roles.release(ctx, &run).await;
                return Err(e);
            }
        };
    let out = match fill(ctx, meta, &scratch, false, url).await {
        Ok(mut s) => {
            s.warnings.extend(roles.warnings.iter().cloned());
            s.warnings.extend(differs);
            super::row_compare::compare(ctx, meta, &scratch.name, url)
                .await
                .map(|()| s)
        }
        Err(e) => Err(e),
    };
    // The copy goes first, while steward's role still holds what it borrowed.
    if let Err(e) = run.drop_own(ctx, &scratch).await {
        tracing::warn!(database = %scratch.name, error = %e, "cannot drop the restore test's scratch database; the next start drops it");
    }
    roles.release(ctx, &run).await;
    out
}

/// `backup restore ID [--target-db NAME] [--force] [--no-owner] [--no-analyze]`.
pub(super) async fn restore(
    ctx: &Ctx,
    id: &str,
    target: Option<String>,
    options: RestoreOptions,
) -> Result<RestoreReply, BackupError> {
    let out = restore_inner(ctx, id, target, options).await;
    let result = if out.is_ok() { "success" } else { "failure" };
    ctx.metrics
        .backup
        .restores
        .with_label_values(&[result])
        .inc();
    match &out {
        Ok(r) => {
            tracing::info!(id = %id, target = %r.target, tables = r.summary.tables, rows = r.summary.rows, sessions_ended = r.sessions_ended, "backup restored")
        }
        Err(e) => tracing::warn!(id = %id, error = %e, "restore failed"),
    }
    out
}

async fn restore_inner(
    ctx: &Ctx,
    id: &str,
    target: Option<String>,
    options: RestoreOptions,
) -> Result<RestoreReply, BackupError> {
    let meta = lookup(ctx, id, "restored").await?;
    if options.no_owner && meta.format == crate::config::DumpFormat::Plain {
        return Err(BackupError::Refused(format!(
            "{id} is a plain-format backup: its SQL sets every owner, so --no-owner cannot leave them out; restore it as a role that may take those owners (a superuser), or take custom-format backups ([backup] format = \"custom\")"
        )));
    }
    // The hash proves the file is the one written; the stream inside is checked as it is
    // restored, into a scratch database that is dropped if anything goes wrong. A backup only
    // the bucket holds is downloaded once: its hash and size are checked as it streams into
    // the restore, whose input does not end (so nothing commits) until they matched.
    let (ok, checks) = if super::restore_checks::is_remote(&meta) {
        let c = super::restore_checks::metadata_check(&meta);
        (c.ok, vec![c])
    } else {
        quick_check(ctx, &meta).await?
    };
    if !ok {
        record(ctx, &meta, &checks);
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
    let target = target.unwrap_or_else(|| default_target(&meta.database, chrono::Utc::now()));
    if !crate::config::is_backup_database_name(&target) {
        return Err(BackupError::Refused(format!(
            "{target:?} cannot be a restore target: a database name is 1 to 63 bytes without NUL"
        )));
    }

    if matches!(target.as_str(), "template0" | "template1") {
        return Err(BackupError::Refused(format!(
            "{target:?} is a template database PostgreSQL needs; steward never restores into it"
        )));
    }
    // A run cut short on this target is repaired first; if it cannot be, nothing starts.
    repair_pending(ctx).await;
    let run = Run::start(ctx, &target).await?;
    if !run.claim_target(ctx, &target).await? {
        return Err(BackupError::Refused(format!(
            "another restore into {target:?} is running (in this or another steward on the same server); wait for it to end"
        )));
    }
    // Checked once the target is ours: a live run's journal is not one cut short.
    if let Some(why) = journal::pending_for(&ctx.config.state.dir, &target) {
        return Err(BackupError::Refused(format!(
            "{why}; steward repairs it when PostgreSQL is reachable — see the log, then try again"
        )));
    }
    let existing = run.info(ctx, &target).await?;
    if let Some(db) = &existing {
        if db.is_template {
            return Err(BackupError::Refused(format!(
                "{target:?} is a template database; steward never restores into one"
            )));
        }
        if !options.force {
            return Err(BackupError::Refused(format!(
                "database {target:?} exists; pass --force to replace it (its sessions are ended, new connections refused until the swap, and a pre-restore backup of it is taken first), or restore into a new database with --target-db"
            )));
        }
    }
    // Roles first: the dump's owners and grantees must exist before anything is restored.
    let roles = super::restore_roles::create_missing(
        ctx,
        &run,
        &meta,
        options.skip_roles,
        options.no_owner,
    )
    .await?;
    // While a database is replaced, the application sees maintenance mode.
    let _maintenance = match existing {
        Some(_) => match ctx
            .maintenance
            .hold_for_restore(format!("restore of {id} into {target}"))
            .await
        {
            Ok(hold) => Some(hold),
            Err(e) => {
                roles.release(ctx, &run).await;
                return Err(roles_stay(
                    BackupError::Refused(format!(
                        "cannot turn maintenance mode on for the restore ({e}); nothing was restored"
                    )),
                    &roles.roles,
                ));
            }
        },
        None => None,
    };
    let mut journal = Journal {
        run: run.id.clone(),
        backup_id: id.into(),
        target: target.clone(),
        replaced: existing.as_ref().map(|db| Replaced {
            oid: db.oid,
            allow_connections: db.allow_connections,
        }),
        scratch: super::scratch::numbered("restore", &run.id, 1),
        scratch_oid: None,
        scratch_marker: super::scratch::marker(&run.id, "restore"),
        comment: meta
            .source
            .as_ref()
            .and_then(|s| s.database.comment.clone()),
        phase: Phase::Restoring,
        started_at: chrono::Utc::now(),
        borrowed: roles.borrowed().to_vec(),
    };
    if let Err(e) = journal.save(ctx) {
        roles.release(ctx, &run).await;
        return Err(roles_stay(e, &roles.roles));
    }
    let out = replace(ctx, &run, &meta, &mut journal, options).await;
    // Settled before the borrowed memberships go: the scratch database may already belong
    // to a role steward's role is a member of only for this restore.
    if out.is_err() {
        settle_now(ctx, &run, &journal).await;
    }
    roles.release(ctx, &run).await;
    if out.is_ok() {
        journal.finish(ctx);
    }
    let out = out.map_err(|e| roles_stay(e, &roles.roles));
    out.map(|mut r| {
        r.roles_created = roles.roles;
        r.summary.warnings.splice(0..0, roles.warnings);
        r
    })
}

/// A failed restore's error, saying which roles it created and left (they are the backup's
/// roles, not steward's: never dropped behind the user's back).
fn roles_stay(e: BackupError, created: &[String]) -> BackupError {
    if created.is_empty() {
        return e;
    }
    let note = format!(
        " (roles created for it from the backup's globals stay: {})",
        created.join(", ")
    );
    match e {
        BackupError::Refused(m) => BackupError::Refused(m + &note),
        BackupError::Failed(m) => BackupError::Failed(m + &note),
        e => BackupError::Failed(format!("{e}{note}")),
    }
}

/// The steps after the journal exists; on error the caller settles the journal.
async fn replace(
    ctx: &Ctx,
    run: &Run,
    meta: &BackupMeta,
    journal: &mut Journal,
    options: RestoreOptions,
) -> Result<RestoreReply, BackupError> {
    let (scratch, differs) =
        super::restore_props::create_scratch(ctx, run, "restore", meta, options.any_locale).await?;
    journal.scratch = scratch.name.clone();
    journal.scratch_oid = Some(scratch.oid);
    journal.save(ctx)?;
    let mut summary = fill(
        ctx,
        meta,
        &scratch,
        options.no_owner,
        &ctx.config.postgres.url,
    )
    .await?;
    summary.warnings.extend(differs);
    let analyzed = !options.no_analyze;
    if analyzed {
        // Statistics are gathered before the swap, so the application's first queries after
        // it are planned with them.
        if let Some(warning) = analyze(ctx, &scratch).await? {
            summary.warnings.push(warning);
        }
    }
    let not_applied = super::restore_props::apply(ctx, run, &scratch, meta, options.no_owner).await;
    summary.warnings.extend(not_applied);
    swap::pause_point("restored").await;
    let target = journal.target.clone();
    let (mut sessions_ended, mut pre) = (0, None);
    if let Some(oid) = journal.replaced.as_ref().map(|r| r.oid) {
        journal.phase = Phase::Fenced;
        journal.save(ctx)?;
        let (ended, aside) = swap::fence(ctx, run, &target, oid).await?;
        sessions_ended = ended;
        swap::pause_point("fenced").await;
        pre = Some(pre_restore_backup(ctx, run, &target, &aside).await?);
    }
    journal.phase = Phase::Swapping;
    journal.save(ctx)?;
    swap::pause_point("swapping").await;
    swap::rename_in(ctx, run, &scratch, &target, journal.comment.as_deref()).await?;
    journal.phase = Phase::Swapped;
    journal.save(ctx)?;
    swap::pause_point("swapped").await;
    swap::drop_replaced(ctx, run, journal).await?;
    Ok(RestoreReply {
        id: journal.backup_id.clone(),
        target: target.clone(),
        replaced: journal.replaced.is_some(),
        pre_restore_backup: pre,
        sessions_ended,
        owners_kept: !options.no_owner,
        roles_created: Vec::new(),
        analyzed,
        summary: RestoreSummary {
            database: target,
            ..summary
        },
    })
}

/// Finishes or rolls back a run that failed part-way, on a fresh session (the run's own may
/// be the one that broke); if that fails too, the journal stays for the next attempt.
async fn settle_now(ctx: &Ctx, run: &Run, journal: &Journal) {
    let fresh = super::scratch::admin(ctx, &journal.target).await;
    let c = match &fresh {
        Ok(c) => c,
        Err(_) => &run.admin,
    };
    match journal::settle(c, journal).await {
        Ok(outcome) => {
            tracing::warn!(run = %journal.run, target = %journal.target, outcome = %outcome, "restore did not complete");
            journal.finish(ctx);
        }
        Err(e) => {
            tracing::error!(run = %journal.run, target = %journal.target, error = %ctx.scrubber.scrub(&e), "restore did not complete and could not be settled; steward retries at its next start and before the next restore")
        }
    }
}

/// Repairs interrupted runs and drops dead runs' scratch databases, logging what it did.
pub(super) async fn repair_pending(ctx: &Ctx) {
    repair_and_log(&ctx.config).await;
}

/// [`repair_pending`] with only a config (the manager's start-up); true when nothing is left.
pub(super) async fn repair_and_log(cfg: &crate::config::Config) -> bool {
    let (done, dropped, problems) = journal::repair_all(cfg).await;
    for r in &done {
        tracing::warn!(run = %r.run, target = %r.target, outcome = %r.outcome, "repaired a restore that was cut short");
    }
    for name in &dropped {
        tracing::warn!(database = %name, "dropped a scratch database left by a run of steward that did not finish");
    }
    for p in &problems {
        tracing::error!(problem = %p, "interrupted restore not repaired");
    }
    problems.is_empty()
}

/// Drops the scratch databases that dead runs left on the server restore tests run on, when
/// that is not the server of `postgres.url` (the manager's periodic repair runs it beside
/// [`repair_and_log`]; a restore, which never uses that server, does not wait for it).
pub(super) async fn sweep_drill_server(cfg: &crate::config::Config) {
    let url = cfg.restore_test_url();
    if url.expose() == cfg.postgres.url.expose() {
        return;
    }
    let swept = match super::scratch::admin_for_url(cfg, url, "").await {
        Ok(c) => super::scratch::sweep(&c).await.map_err(|e| {
            cfg.scrubber()
                .scrub(&super::pg_text::pg_error(&e).to_string())
        }),
        Err(e) => Err(e),
    };
    match swept {
        Ok(dropped) => {
            for name in dropped {
                tracing::warn!(database = %name, "dropped a scratch database a restore test left on backup.restore_test.url's server");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot sweep the restore-test server (backup.restore_test.url) for scratch databases left behind")
        }
    }
}

/// Restores the backup into `scratch` (created and marked by this run) and counts what arrived.
async fn fill(
    ctx: &Ctx,
    meta: &BackupMeta,
    scratch: &Owned,
    no_owner: bool,
    url: &crate::secret::SecretUrl,
) -> Result<RestoreSummary, BackupError> {
    // Progress now counts this restore's reading of the file, not the check before it.
    ctx.progress.store(0, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let name = &scratch.name;
    let target = PgTarget::new(url, Some(name)).map_err(|e| BackupError::Failed(e.to_string()))?;
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
    let out = restore::restore(
        &b,
        &ids,
        &tool,
        &target,
        no_owner,
        ctx.progress.clone(),
        cancel,
    )
    .await
    .map_err(|e| {
        BackupError::Failed(format!(
            "restore failed, nothing was kept: {}",
            ctx.scrubber.scrub(&e.to_string())
        ))
    })?;
    let (tables, rows) = count(ctx, &target).await?;
    Ok(RestoreSummary {
        database: name.clone(),
        tables,
        rows,
        bytes: out.bytes_fed,
        duration_seconds: started.elapsed().as_secs_f64(),
        warnings: out.warnings,
    })
}

/// Backs up the fenced target (renamed aside to `aside`, where no application connects),
/// catalogued under the target's own name.
async fn pre_restore_backup(
    ctx: &Ctx,
    run: &Run,
    target: &str,
    aside: &str,
) -> Result<String, BackupError> {
    run.admin
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            super::pg_text::ident(aside)
        ))
        .await
        .map_err(|e| pg_failed(ctx, "cannot open the fenced database to pg_dump", &e))?;
    let (started, done) = ctx
        .handle
        .create_from(
            target.into(),
            aside.into(),
            BackupKind::PreRestore,
            Some("before restore".into()),
        )
        .await?;
    let meta = done.await.map_err(|_| BackupError::Gone)?;
    if !meta.is_good() {
        return Err(BackupError::Refused(format!(
            "the pre-restore backup of {target:?} failed ({}); nothing was replaced",
            meta.error.unwrap_or_default()
        )));
    }
    Ok(started.id)
}

/// Runs ANALYZE on the restored `scratch` database. A failure is a warning (the data is all
/// there; autovacuum gathers statistics later), a stop of steward cancels the restore.
async fn analyze(ctx: &Ctx, scratch: &Owned) -> Result<Option<String>, BackupError> {
    let target = PgTarget::new(&ctx.config.postgres.url, Some(&scratch.name))
        .map_err(|e| BackupError::Failed(e.to_string()))?;
    let c = match target.connect().await {
        Ok(c) => c,
        Err(e) => return Ok(Some(analyze_warning(ctx, &e))),
    };
    let run = c.batch_execute("SET statement_timeout = 0; ANALYZE");
    tokio::select! {
        biased;
        _ = ctx.cancel.cancelled() => Err(BackupError::Failed(
            "the restore was cancelled while gathering statistics; nothing was kept".into(),
        )),
        r = run => Ok(r.err().map(|e| analyze_warning(ctx, &e))),
    }
}

fn analyze_warning(ctx: &Ctx, e: &tokio_postgres::Error) -> String {
    ctx.scrubber.scrub(&format!(
        "ANALYZE of the restored database failed ({}); run it by hand before heavy use",
        super::pg_text::pg_error(e)
    ))
}

/// The target of a restore without `--target-db`: `<db>_restored_<UTC timestamp>`, with the
/// source name cut (at a character boundary) so that the whole fits PostgreSQL's 63 bytes,
/// and every character a target name may not hold replaced by `_`.
fn default_target(database: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let suffix = format!("_restored_{}", now.format("%Y%m%d%H%M%S"));
    let mut base = String::new();
    for ch in database.chars() {
        let ch = if ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.') {
            ch
        } else {
            '_'
        };
        if base.len() + ch.len_utf8() + suffix.len() > MAX_IDENTIFIER_BYTES {
            break;
        }
        base.push(ch);
    }
    if base.is_empty() {
        base.push_str("db");
    } else if base.starts_with('.') {
        base.replace_range(..1, "_");
    }
    base + &suffix
}

/// PostgreSQL's NAMEDATALEN - 1: longer names are cut, so two could meet under one.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// Tables and exact row count of a database's user tables (a partitioned or inherited table's
/// rows are counted once, in the table that holds them).
async fn count(ctx: &Ctx, target: &PgTarget) -> Result<(i64, i64), BackupError> {
    let c = target
        .connect()
        .await
        .map_err(|e| pg_failed(ctx, "cannot connect to the restored database", &e))?;
    let row = c
        .query_one(
            "SELECT count(*), coalesce(sum((xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM ONLY %I.%I', schemaname, tablename), false, true, '')))[1]::text::bigint), 0)::int8
             FROM pg_tables WHERE schemaname NOT IN ('pg_catalog','information_schema')",
            &[],
        )
        .await
        .map_err(|e| pg_failed(ctx, "cannot count the restored rows", &e))?;
    Ok((row.get(0), row.get(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn default_target_fits_63_bytes_and_keeps_what_it_can() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 12, 5, 6, 0, 0).unwrap();
        assert_eq!(default_target("app", now), "app_restored_20261205060000");
        let long = "a".repeat(60);
        let t = default_target(&long, now);
        assert_eq!(t.len(), 63, "{t}");
        assert!(t.starts_with(&"a".repeat(39)) && t.ends_with("_restored_20261205060000"));
        assert!(crate::config::is_database_dir_name(&t), "{t}");
        let t = default_target("Sales DB über", now);
        assert_eq!(t, "Sales_DB__ber_restored_20261205060000");
        let t = default_target(&"ü".repeat(40), now);
        assert!(
            t.len() <= 63 && crate::config::is_database_dir_name(&t),
            "{t}"
        );
        assert!(crate::config::is_database_dir_name(&default_target(
            ".x", now
        )));
    }
}
