//! The journal of a restore that puts a database under a user's name, and the repair of one
//! cut short. Each step of `swap` is written to `<state.dir>/restores/<run>.json` before it is
//! taken; a run cut short (a crash, a lost connection, a PostgreSQL restart) is repaired at the
//! next start, before the next restore, or as soon as PostgreSQL is back: finished when the
//! restored database already holds the name, rolled back otherwise. The replaced database is
//! found by its oid, which a rename does not change.

use super::ctx::Ctx;
use super::error::BackupError;
use super::pg_text::ident;
use super::scratch::{self, info_by_name, info_by_oid, DbInfo};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tokio_postgres::Client;

/// The database a `--force` restore replaces.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Replaced {
    pub oid: u32,
    /// `datallowconn` before steward fenced it, put back on a roll-back.
    pub allow_connections: bool,
}

/// How far a run got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Phase {
    /// Restoring into the scratch database; the target is untouched.
    Restoring,
    /// The target takes no connections, and may be renamed aside.
    Fenced,
    /// The scratch database is being renamed to the target.
    Swapping,
    /// The restored database holds the name; the old one may still need dropping.
    Swapped,
}

/// One restore's journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Journal {
    pub run: String,
    pub backup_id: String,
    pub target: String,
    pub replaced: Option<Replaced>,
    /// The scratch database: the name planned, its oid once created, its marker.
    pub scratch: String,
    pub scratch_oid: Option<u32>,
    pub scratch_marker: String,
    /// The source database's comment, which replaces the marker when the restore is in place.
    #[serde(default)]
    pub comment: Option<String>,
    pub phase: Phase,
    pub started_at: DateTime<Utc>,
    /// Roles steward's role was made a member of for this restore (`restore_roles`): a run cut
    /// short has them taken back by its repair.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub borrowed: Vec<String>,
}

fn journal_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("restores")
}

impl Journal {
    /// Writes the journal durably (fsynced file and directory) before the step it announces.
    pub fn save(&self, ctx: &Ctx) -> Result<(), BackupError> {
        let dir = journal_dir(&ctx.config.state.dir);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
            crate::durable::write_atomic(&dir.join(format!("{}.json", self.run)), &json)
        };
        write().map_err(|e| {
            BackupError::Failed(format!(
                "cannot write the restore journal in {} ({e}); nothing was changed — fix state.dir",
                dir.display()
            ))
        })
    }

    fn remove(&self, state_dir: &Path) {
        let path = journal_dir(state_dir).join(format!("{}.json", self.run));
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a finished restore journal");
        }
    }

    /// Ends a run that got through: the journal goes.
    pub fn finish(&self, ctx: &Ctx) {
        self.remove(&ctx.config.state.dir);
    }

    /// Drops the replaced database once the restored one holds the name: found by its oid,
    /// and only while it is under this run's aside name (a journal's oids alone are not proof
    /// enough: a forged or stale journal, an oid reused by a new cluster). Returns its name.
    pub async fn drop_aside(&self, c: &Client) -> Result<Option<String>, tokio_postgres::Error> {
        let Some(r) = &self.replaced else {
            return Ok(None);
        };
        let old = info_by_oid(c, r.oid).await?;
        let Some(old) = old.filter(|o| scratch::is_numbered(&o.name, "aside", &self.run)) else {
            return Ok(None);
        };
        c.batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", ident(&old.name)))
            .await?;
        Ok(Some(old.name))
    }

    /// The checks a journal read back from disk must pass before any name in it is used.
    fn validate(&self, file_stem: &str) -> Result<(), String> {
        if !scratch::is_run_id(&self.run) || self.run != file_stem {
            return Err(format!("run id {:?} is not one steward writes", self.run));
        }
        if !crate::config::is_backup_database_name(&self.target) {
            return Err(format!(
                "target {:?} is not a valid database name",
                self.target
            ));
        }
        if !self.scratch.starts_with("steward_") || !self.scratch.contains(&self.run) {
            return Err(format!(
                "scratch name {:?} is not one steward picks",
                self.scratch
            ));
        }
        if scratch::marker_run(&self.scratch_marker) != Some(self.run.as_str()) {
            return Err("its marker does not name its run".into());
        }
        Ok(())
    }
}

/// Journals left by runs that did not finish, each with its path; a file that cannot be read
/// or fails the checks is reported and left alone.
fn pending(state_dir: &Path) -> Vec<(PathBuf, Result<Journal, String>)> {
    let Ok(entries) = std::fs::read_dir(journal_dir(state_dir)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .map(str::to_string)
        else {
            continue;
        };
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Journal>(&b).map_err(|e| e.to_string()))
            .and_then(|j| j.validate(&stem).map(|()| j));
        out.push((path, parsed));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Whether a valid journal is waiting for repair (one that fails its checks was reported
/// once and is left alone).
pub(super) fn any_pending(state_dir: &Path) -> bool {
    pending(state_dir).iter().any(|(_, j)| j.is_ok())
}

/// Whether an unfinished run's journal names `target` (a new restore into it must wait).
pub(super) fn pending_for(state_dir: &Path, target: &str) -> Option<String> {
    pending(state_dir)
        .into_iter()
        .find_map(|(path, j)| match j {
            Ok(j) if j.target == target => Some(format!(
                "a restore of {} into {target:?} (run {}) was cut short and is not repaired yet ({})",
                j.backup_id,
                j.run,
                path.display()
            )),
            _ => None,
        })
}

/// What the repair of one run did, for the log.
pub(super) struct Repaired {
    pub run: String,
    pub target: String,
    pub outcome: String,
}

/// Repairs every run cut short whose run lock is free (a live run, here or in another
/// steward, holds its lock), then drops marked scratch databases of dead runs. Errors are
/// returned as sentences; the journals they concern stay for the next attempt.
pub(super) async fn repair_all(
    cfg: &crate::config::Config,
) -> (Vec<Repaired>, Vec<String>, Vec<String>) {
    let (mut done, mut dropped, mut problems) = (Vec::new(), Vec::new(), Vec::new());
    let journals = pending(&cfg.state.dir);
    let c = match scratch::admin_for(cfg, "").await {
        Ok(c) => c,
        Err(e) => {
            if !journals.is_empty() {
                problems.push(format!(
                    "cannot connect to PostgreSQL to repair an interrupted restore: {e}"
                ));
            }
            return (done, dropped, problems);
        }
    };
    for (path, j) in journals {
        let j = match j {
            Ok(j) => j,
            Err(e) => {
                problems.push(format!(
                    "restore journal {} left alone: {e}",
                    path.display()
                ));
                continue;
            }
        };
        match repair_one(&c, &j).await {
            Ok(Some(outcome)) => {
                j.remove(&cfg.state.dir);
                done.push(Repaired {
                    run: j.run.clone(),
                    target: j.target.clone(),
                    outcome,
                });
            }
            Ok(None) => {} // live run
            Err(e) => problems.push(cfg.scrubber().scrub(&format!(
                "cannot repair the interrupted restore of {} into {:?} (run {}, journal {}): {e}",
                j.backup_id,
                j.target,
                j.run,
                path.display()
            ))),
        }
    }
    match scratch::sweep(&c).await {
        Ok(names) => dropped = names,
        Err(e) => problems.push(format!(
            "cannot look for leftover scratch databases: {}",
            super::pg_text::pg_error(&e)
        )),
    }
    (done, dropped, problems)
}

/// Repairs one run if it is dead: `Some(what was done)`, `None` when it is alive.
async fn repair_one(c: &Client, j: &Journal) -> Result<Option<String>, String> {
    let pg = |e: tokio_postgres::Error| super::pg_text::pg_error(&e);
    if !scratch::try_run_lock(c, &j.run).await.map_err(pg)? {
        return Ok(None);
    }
    // After the settling, which may drop a scratch database owned by a borrowed role.
    let out = settle(c, j).await;
    release_borrowed(c, j).await;
    scratch::unlock_run(c, &j.run).await.map_err(pg)?;
    out.map(Some)
}

/// Takes back the memberships a dead run borrowed for its restore (only steward's own role's
/// membership changes); a failure is logged and retried with the journal.
async fn release_borrowed(c: &Client, j: &Journal) {
    for r in &j.borrowed {
        let sql = format!("REVOKE {} FROM CURRENT_USER", ident(r));
        if let Err(e) = c.batch_execute(&sql).await {
            tracing::warn!(role = %r, run = %j.run, error = %super::pg_text::pg_error(&e), "cannot take back steward's membership of a role an interrupted restore created");
        }
    }
}

/// Finishes or rolls back `j` on `c`, and says which.
pub(super) async fn settle(c: &Client, j: &Journal) -> Result<String, String> {
    let pg = |e: tokio_postgres::Error| super::pg_text::pg_error(&e);
    let scratch = match j.scratch_oid {
        Some(oid) => info_by_oid(c, oid).await.map_err(pg)?,
        None => None,
    };
    if let Some(s) = scratch.filter(|s| s.name == j.target) {
        roll_forward(c, j, &s).await.map_err(pg)?;
        return Ok(format!(
            "finished: {:?} holds backup {}; the database it replaced was dropped (a pre-restore backup of it is in the catalog)",
            j.target, j.backup_id
        ));
    }
    roll_back(c, j).await
}

async fn roll_forward(c: &Client, j: &Journal, s: &DbInfo) -> Result<(), tokio_postgres::Error> {
    if s.comment.as_deref() == Some(j.scratch_marker.as_str()) {
        c.batch_execute(&scratch::comment_sql(&s.name, j.comment.as_deref()))
            .await?;
    }
    j.drop_aside(c).await.map(|_| ())
}

/// Puts the replaced database back under its name, open to connections as it was, and drops
/// the scratch database (by the oid and marker in the journal).
pub(super) async fn roll_back(c: &Client, j: &Journal) -> Result<String, String> {
    let pg = |e: tokio_postgres::Error| super::pg_text::pg_error(&e);
    let mut said = Vec::new();
    // steward drops the replaced database only after the restored one holds the name (a
    // roll-forward); gone before that, someone else dropped it, and there is nothing to put
    // back.
    let replaced = match &j.replaced {
        Some(r) => info_by_oid(c, r.oid).await.map_err(pg)?.map(|old| (r, old)),
        None => None,
    };
    if let (Some(r), None) = (&j.replaced, &replaced) {
        said.push(format!(
            "the database {:?} had when the restore started (oid {}) was dropped by someone else meanwhile",
            j.target, r.oid
        ));
    }
    let replaced = replaced.filter(|(r, old)| {
        let ours = old.name == j.target || scratch::is_numbered(&old.name, "aside", &j.run);
        if !ours {
            // Renamed by someone else (or a journal that is not this cluster's): not touched.
            said.push(format!(
                "the database with the replaced one's oid ({}) is now {:?}, not steward's aside name; left alone",
                r.oid, old.name
            ));
        }
        ours
    });
    if let Some((r, old)) = replaced {
        if old.name != j.target {
            if info_by_name(c, &j.target).await.map_err(pg)?.is_some() {
                return Err(format!(
                    "another database now holds the name {:?}; the replaced one is kept as {:?}: rename it back by hand",
                    j.target, old.name
                ));
            }
            c.batch_execute(&format!(
                "ALTER DATABASE {} RENAME TO {}",
                ident(&old.name),
                ident(&j.target)
            ))
            .await
            .map_err(pg)?;
            said.push(format!("{:?} renamed back from {:?}", j.target, old.name));
        }
        if old.allow_connections != r.allow_connections || old.name != j.target {
            c.batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS {}",
                ident(&j.target),
                r.allow_connections
            ))
            .await
            .map_err(pg)?;
        }
    }
    let dropped = drop_scratch(c, j).await.map_err(pg)?;
    if let Some(name) = dropped {
        said.push(format!("scratch database {name:?} dropped"));
    }
    Ok(format!(
        "rolled back: {:?} is as it was before the restore{}",
        j.target,
        if said.is_empty() {
            String::new()
        } else {
            format!(" ({})", said.join(", "))
        }
    ))
}

/// Drops the run's scratch database: by oid while it carries the marker, or carries none or
/// the source's comment under its planned name (the marker is replaced just before the rename
/// to the target); when the oid was never recorded, by the marker alone.
async fn drop_scratch(c: &Client, j: &Journal) -> Result<Option<String>, tokio_postgres::Error> {
    let oid = match j.scratch_oid {
        Some(oid) => Some(oid),
        None => c
            .query_opt(
                "SELECT oid FROM pg_database WHERE shobj_description(oid, 'pg_database') = $1",
                &[&j.scratch_marker],
            )
            .await?
            .map(|r| r.get::<_, u32>(0)),
    };
    let db = match oid {
        Some(oid) => info_by_oid(c, oid).await?,
        None => None,
    };
    let Some(db) = db else {
        if j.scratch_oid.is_none() && info_by_name(c, &j.scratch).await?.is_some() {
            tracing::warn!(database = %j.scratch, run = %j.run, "a database of the run's scratch name exists without steward's marker; left alone (drop it yourself if it is not yours)");
        }
        return Ok(None);
    };
    let planned = j.scratch_oid == Some(db.oid) && db.name == j.scratch;
    let ours = db.name != j.target
        && match db.comment.as_deref() {
            // The source's comment replaces the marker just before the rename (`rename_in`).
            Some(m) => m == j.scratch_marker || (planned && Some(m) == j.comment.as_deref()),
            None => planned,
        };
    if !ours {
        return Ok(None);
    }
    c.batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", ident(&db.name)))
        .await?;
    Ok(Some(db.name))
}
