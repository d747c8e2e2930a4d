//! Databases steward creates for its own use (the scratch database of a restore or a restore
//! test): names chosen by steward and never taken over, a marker comment naming the run, and
//! a run lock that tells a live run from a crashed one. steward drops only databases that
//! carry the marker of a run of its own that is no longer alive.

use super::ctx::Ctx;
use super::error::BackupError;
use super::pg_text::{ident, literal, pg_error};
use super::pgconn::PgTarget;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// Advisory-lock class of restore runs ("SU"); the key is `hashtext(run id)`. A run holds its
/// lock on its admin session for as long as it lives, so a crashed run's lock is free.
const RUN_LOCK_CLASS: i32 = 0x5355;
/// Advisory-lock class of restore targets ("SV"); the key is `hashtext(target)`.
const TARGET_LOCK_CLASS: i32 = 0x5356;
/// How every marker comment starts.
const MARKER_PREFIX: &str = "steward:scratch run=";

/// A random run id: 12 lowercase hex digits.
pub(super) fn new_run_id() -> String {
    use std::io::Read;
    let mut b = [0u8; 6];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if read.is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mix = nanos ^ ((std::process::id() as u128) << 64);
        b.copy_from_slice(&mix.to_le_bytes()[..6]);
    }
    hex::encode(b)
}

/// The comment that marks a database as the scratch database of `run`.
pub(super) fn marker(run: &str, purpose: &str) -> String {
    format!("{MARKER_PREFIX}{run} purpose={purpose}")
}

/// The run id in a marker comment, if the comment is one.
pub(super) fn marker_run(comment: &str) -> Option<&str> {
    let rest = comment.strip_prefix(MARKER_PREFIX)?;
    let run = rest.split(' ').next()?;
    (run.len() == 12 && run.bytes().all(|c| c.is_ascii_hexdigit())).then_some(run)
}

/// A run id as it may appear in names and journal files.
pub(super) fn is_run_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// The `n`th name steward tries for a database of its own: `steward_<purpose>_<run>`, then
/// with `_2`, `_3`… (a database already under a name is never taken over).
pub(super) fn numbered(purpose: &str, run: &str, n: u32) -> String {
    match n {
        1 => format!("steward_{purpose}_{run}"),
        n => format!("steward_{purpose}_{run}_{n}"),
    }
}

/// Whether `name` is one of the names [`numbered`] gives for `purpose` in `run`.
pub(super) fn is_numbered(name: &str, purpose: &str, run: &str) -> bool {
    (1..=8).any(|n| numbered(purpose, run, n) == name)
}

/// Whether a database is a scratch database of steward's own (a restore's or a restore
/// test's): a name steward gives for a run, and that same run's marker comment. Backups of
/// every database (`backup.databases = ["*"]`) leave these out.
pub(super) fn is_scratch(name: &str, comment: Option<&str>) -> bool {
    let Some(run) = comment.and_then(marker_run) else {
        return false;
    };
    ["restore", "verify"]
        .into_iter()
        .any(|purpose| is_numbered(name, purpose, run))
}

/// A database as `pg_database` describes it.
#[derive(Debug, Clone)]
pub(super) struct DbInfo {
    pub oid: u32,
    pub name: String,
    pub allow_connections: bool,
    pub is_template: bool,
    pub comment: Option<String>,
}

/// A scratch database this run created and marked.
#[derive(Debug, Clone)]
pub(super) struct Owned {
    pub name: String,
    pub oid: u32,
    pub marker: String,
}

/// One restore (or restore test): its id, and an admin session (not on the target) that
/// holds the run's lock until it is dropped.
pub(super) struct Run {
    pub id: String,
    pub admin: Client,
}

impl Run {
    /// Opens the admin session (on a database other than `avoid`), bounds its lock waits, and
    /// takes the run lock.
    pub async fn start(ctx: &Ctx, avoid: &str) -> Result<Run, BackupError> {
        Run::start_on(ctx, &ctx.config.postgres.url, avoid).await
    }

    /// [`Run::start`] on the server of `url` (restore tests may run on a server of their own).
    pub async fn start_on(
        ctx: &Ctx,
        url: &crate::secret::SecretUrl,
        avoid: &str,
    ) -> Result<Run, BackupError> {
        let id = new_run_id();
        let admin = admin_for_url(&ctx.config, url, avoid)
            .await
            .map_err(|e| BackupError::Failed(format!("cannot connect to PostgreSQL: {e}")))?;
        let ms = ctx.config.backup.lock_timeout.as_millis().max(1);
        admin
            .batch_execute(&format!(
                "SET lock_timeout = {ms}; SET statement_timeout = 0; SET application_name = 'steward'"
            ))
            .await
            .map_err(|e| pg_failed(ctx, "cannot set up the admin session", &e))?;
        // The run lock lives as long as this session: no server-side idle limit may end it
        // (idle_session_timeout exists from PostgreSQL 14 on; older servers refuse the name).
        for setting in [
            "idle_session_timeout",
            "idle_in_transaction_session_timeout",
        ] {
            let _ = admin.batch_execute(&format!("SET {setting} = 0")).await;
        }
        admin
            .execute(
                "SELECT pg_advisory_lock($1, hashtext($2))",
                &[&RUN_LOCK_CLASS, &id],
            )
            .await
            .map_err(|e| pg_failed(ctx, "cannot take the restore run lock", &e))?;
        Ok(Run { id, admin })
    }

    /// Takes the lock that lets one restore at a time (in any steward on this server) put a
    /// database under `target`; false when another holds it.
    pub async fn claim_target(&self, ctx: &Ctx, target: &str) -> Result<bool, BackupError> {
        self.admin
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext($2))",
                &[&TARGET_LOCK_CLASS, &target],
            )
            .await
            .map(|r| r.get(0))
            .map_err(|e| pg_failed(ctx, "cannot take the restore target lock", &e))
    }

    /// Creates a database of a name no one has (`steward_<purpose>_<run>`, then `_2`, `_3`…
    /// when a database of that name exists: it is never touched) and marks it as this run's.
    pub async fn create(&self, ctx: &Ctx, purpose: &str) -> Result<Owned, BackupError> {
        self.create_with(ctx, purpose, "TEMPLATE template0")
            .await?
            .map_err(|e| created_failed(ctx, purpose, &e))
    }

    /// [`Run::create`] with `options` after `CREATE DATABASE name` (encoding, locale); the
    /// inner error is CREATE DATABASE's own, for the caller to judge (a locale this server
    /// lacks, say).
    pub async fn create_with(
        &self,
        ctx: &Ctx,
        purpose: &str,
        options: &str,
    ) -> Result<Result<Owned, tokio_postgres::Error>, BackupError> {
        let marker = marker(&self.id, purpose);
        for n in 1..=8 {
            let name = numbered(purpose, &self.id, n);
            let created = self
                .admin
                .batch_execute(&format!("CREATE DATABASE {} {options}", ident(&name)))
                .await;
            match created {
                Ok(()) => {}
                Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {
                    tracing::warn!(database = %name, "a database of steward's scratch name exists already; left alone, trying another name");
                    continue;
                }
                Err(e) => return Ok(Err(e)),
            }
            self.admin
                .batch_execute(&format!(
                    "COMMENT ON DATABASE {} IS {}",
                    ident(&name),
                    literal(&marker)
                ))
                .await
                .map_err(|e| pg_failed(ctx, &format!("cannot mark database {name:?}"), &e))?;
            let info = self.info(ctx, &name).await?.ok_or_else(|| {
                BackupError::Failed(format!("database {name:?} vanished after it was created"))
            })?;
            return Ok(Ok(Owned {
                name,
                oid: info.oid,
                marker,
            }));
        }
        Err(BackupError::Failed(
            "could not find a free name for a scratch database after 8 tries".into(),
        ))
    }

    /// Drops `db` if it still carries this run's marker under its oid; anything else is left.
    pub async fn drop_own(&self, ctx: &Ctx, db: &Owned) -> Result<bool, BackupError> {
        drop_if_marked(&self.admin, db.oid, &db.marker)
            .await
            .map_err(|e| {
                pg_failed(
                    ctx,
                    &format!("cannot drop scratch database {:?}", db.name),
                    &e,
                )
            })
    }

    /// `pg_database`'s row for `name`, if it exists.
    pub async fn info(&self, ctx: &Ctx, name: &str) -> Result<Option<DbInfo>, BackupError> {
        info_by_name(&self.admin, name)
            .await
            .map_err(|e| pg_failed(ctx, "cannot look up databases", &e))
    }
}

const INFO_SQL: &str = "SELECT oid, datname, datallowconn, datistemplate, shobj_description(oid, 'pg_database') FROM pg_database";

fn info_of(row: &tokio_postgres::Row) -> DbInfo {
    DbInfo {
        oid: row.get(0),
        name: row.get(1),
        allow_connections: row.get(2),
        is_template: row.get(3),
        comment: row.get(4),
    }
}

/// `pg_database`'s row for the database called `name`.
pub(super) async fn info_by_name(
    c: &Client,
    name: &str,
) -> Result<Option<DbInfo>, tokio_postgres::Error> {
    let row = c
        .query_opt(&format!("{INFO_SQL} WHERE datname = $1"), &[&name])
        .await?;
    Ok(row.as_ref().map(info_of))
}

/// `pg_database`'s row for the database with `oid`, whatever it is called now.
pub(super) async fn info_by_oid(
    c: &Client,
    oid: u32,
) -> Result<Option<DbInfo>, tokio_postgres::Error> {
    let row = c
        .query_opt(&format!("{INFO_SQL} WHERE oid = $1"), &[&oid])
        .await?;
    Ok(row.as_ref().map(info_of))
}

/// Drops the database with `oid` only while it carries exactly `marker`.
pub(super) async fn drop_if_marked(
    c: &Client,
    oid: u32,
    marker: &str,
) -> Result<bool, tokio_postgres::Error> {
    let Some(db) = info_by_oid(c, oid).await? else {
        return Ok(false);
    };
    if db.comment.as_deref() != Some(marker) {
        return Ok(false);
    }
    c.batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", ident(&db.name)))
        .await?;
    Ok(true)
}

/// Drops every marked database whose run is no longer alive (its run lock is free), and
/// returns their names. Unmarked databases, and those of live runs (this process's or another
/// steward's on the same server), are left alone.
pub(super) async fn sweep(c: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = c
        .query(
            &format!("{INFO_SQL} WHERE shobj_description(oid, 'pg_database') LIKE 'steward:scratch run=%'"),
            &[],
        )
        .await?;
    let mut dropped = Vec::new();
    for db in rows.iter().map(info_of) {
        let Some(comment) = db.comment.as_deref() else {
            continue;
        };
        let Some(run) = marker_run(comment) else {
            continue;
        };
        if !try_run_lock(c, run).await? {
            continue; // a live run's
        }
        let done = drop_if_marked(c, db.oid, comment).await;
        unlock_run(c, run).await?;
        if done? {
            dropped.push(db.name);
        }
    }
    Ok(dropped)
}

/// Takes `run`'s lock if no live session holds it: true means the run is over.
pub(super) async fn try_run_lock(c: &Client, run: &str) -> Result<bool, tokio_postgres::Error> {
    let row = c
        .query_one(
            "SELECT pg_try_advisory_lock($1, hashtext($2))",
            &[&RUN_LOCK_CLASS, &run],
        )
        .await?;
    Ok(row.get(0))
}

/// Gives back a lock taken by [`try_run_lock`].
pub(super) async fn unlock_run(c: &Client, run: &str) -> Result<(), tokio_postgres::Error> {
    c.execute(
        "SELECT pg_advisory_unlock($1, hashtext($2))",
        &[&RUN_LOCK_CLASS, &run],
    )
    .await
    .map(|_| ())
}

/// Whether `database` exists on the server of `postgres.url`: `Err` (scrubbed) when the
/// server cannot be asked. `backup create` asks before it records anything.
pub async fn database_exists(cfg: &crate::config::Config, database: &str) -> Result<bool, String> {
    let c = admin_for(cfg, "").await?;
    info_by_name(&c, database)
        .await
        .map(|i| i.is_some())
        .map_err(|e| cfg.scrubber().scrub(&pg_error(&e)))
}

/// A connection for CREATE/DROP/ALTER DATABASE, on a database other than `avoid` (the one
/// being replaced cannot be renamed from a session on it): `postgres`, else `template1`, else
/// the URL's own database.
pub(super) async fn admin(ctx: &Ctx, avoid: &str) -> Result<Client, BackupError> {
    admin_for(&ctx.config, avoid)
        .await
        .map_err(|e| BackupError::Failed(format!("cannot connect to PostgreSQL: {e}")))
}

/// [`admin`] without a job context (the start-up repair); the error is scrubbed.
pub(super) async fn admin_for(cfg: &crate::config::Config, avoid: &str) -> Result<Client, String> {
    admin_for_url(cfg, &cfg.postgres.url, avoid).await
}

/// [`admin_for`] on the server of `url`.
pub(super) async fn admin_for_url(
    cfg: &crate::config::Config,
    url: &crate::secret::SecretUrl,
    avoid: &str,
) -> Result<Client, String> {
    let t = PgTarget::new(url, None).map_err(|e| e.to_string())?;
    let own = t.database.clone();
    let mut last = String::from("no database other than the target to connect to");
    for db in ["postgres", "template1", own.as_str()] {
        if db == avoid {
            continue;
        }
        match t.with_database(db).connect().await {
            // Every literal steward writes (and the globals' statements, from a server where
            // it was on) assumes standard_conforming_strings: with it off, a recorded value's
            // `\'` would end a literal and run the rest as SQL.
            Ok(c) => match c
                .batch_execute("SET standard_conforming_strings = on")
                .await
            {
                Ok(()) => return Ok(c),
                Err(e) => last = format!("database {db:?}: {}", pg_error(&e)),
            },
            Err(e) => last = format!("database {db:?}: {}", pg_error(&e)),
        }
    }
    Err(cfg.scrubber().scrub(&last))
}

/// A scratch database that could not be created, with the privilege it takes.
pub(super) fn created_failed(ctx: &Ctx, purpose: &str, e: &tokio_postgres::Error) -> BackupError {
    pg_failed(
        ctx,
        &format!("cannot create the {purpose} scratch database (steward's role needs CREATEDB)"),
        e,
    )
}

pub(super) fn pg_failed(ctx: &Ctx, what: &str, e: &tokio_postgres::Error) -> BackupError {
    BackupError::Failed(ctx.scrubber.scrub(&format!("{what}: {}", pg_error(e))))
}

/// `COMMENT ON DATABASE` setting `comment`, or removing the comment.
pub(super) fn comment_sql(db: &str, comment: Option<&str>) -> String {
    format!(
        "COMMENT ON DATABASE {} IS {}",
        ident(db),
        comment.map_or_else(|| "NULL".to_string(), literal)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_name_their_run_and_nothing_else_parses() {
        let run = new_run_id();
        assert!(is_run_id(&run), "{run}");
        assert_ne!(run, new_run_id());
        let m = marker(&run, "restore");
        assert_eq!(marker_run(&m), Some(run.as_str()));
        assert_eq!(marker_run("steward:scratch run=../../x purpose=y"), None);
        assert_eq!(marker_run("my database"), None);
        assert_eq!(marker_run(""), None);
        let name = numbered("restore", &run, 2);
        assert!(is_scratch(&name, Some(&m)));
        assert!(is_scratch(
            &numbered("verify", &run, 1),
            Some(&marker(&run, "verify"))
        ));
        assert!(!is_scratch(&name, None), "unmarked: a user's database");
        assert!(
            !is_scratch("app", Some(&m)),
            "a user's name with a marker copied onto it"
        );
        assert!(
            !is_scratch(&numbered("restore", &new_run_id(), 1), Some(&m)),
            "another run's name"
        );
        assert!(!is_scratch(&numbered("aside", &run, 1), Some(&m)));
    }
}
