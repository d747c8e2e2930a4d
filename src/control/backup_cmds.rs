//! The `backup_*` requests: handed to the backup actor, answered with its payloads.

use super::protocol::{Reply, Request};
use crate::backup::api::RestoreOptions;
use crate::backup::{selection, BackupError, BackupHandle, BackupKind};
use crate::config::Config;
use std::sync::Arc;
use tokio::sync::watch;

/// Longest backup label, in characters.
const MAX_LABEL: usize = 200;

/// Answers a backup request (anything else gets an error reply).
pub(super) async fn handle(
    b: &BackupHandle,
    config: &watch::Receiver<Arc<Config>>,
    req: Request,
) -> Reply {
    let out = match req {
        Request::BackupCreate {
            database,
            label,
            wait,
        } => create(b, config, database, label, wait).await,
        Request::BackupList { database } => b.list(database).await.map(|v| Reply::data(&v)),
        Request::BackupStatus => b.status().await.map(|v| Reply::data(&v)),
        Request::BackupVerify { id, restore_test } => {
            b.verify(id, restore_test).await.map(|v| Reply::data(&v))
        }
        Request::BackupRestore {
            id,
            target_db,
            force,
            no_owner,
            no_analyze,
            any_locale,
            skip_roles,
        } => b
            .restore(
                id,
                target_db,
                RestoreOptions {
                    force,
                    no_owner,
                    no_analyze,
                    any_locale,
                    skip_roles,
                },
            )
            .await
            .map(|v| Reply::data(&v)),
        Request::BackupPrune { dry_run } => b.prune(dry_run).await.map(|v| Reply::data(&v)),
        Request::BackupDelete { id, force } => b.delete(id, force).await.map(|v| Reply::data(&v)),
        Request::BackupJobs => b.jobs().await.map(|v| Reply::data(&v)),
        Request::BackupFetch { id } => b.fetch(id).await.map(|v| Reply::data(&vec![v])),
        _ => Ok(Reply::error("not a backup request")),
    };
    let mut reply = out.unwrap_or_else(|e| Reply::error(e.to_string()));
    scrub_labels(&mut reply.data, &config.borrow().scrubber());
    reply
}

/// Scrubs every `label` in a reply: labels are scrubbed before they are stored, but metadata
/// written before that (or edited by hand) may still hold a secret.
fn scrub_labels(v: &mut serde_json::Value, scrubber: &crate::secret::Scrubber) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, v) in o.iter_mut() {
                match v {
                    serde_json::Value::String(s) if k == "label" => *s = scrubber.scrub(s),
                    _ => scrub_labels(v, scrubber),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|v| scrub_labels(v, scrubber)),
        _ => {}
    }
}

async fn create(
    b: &BackupHandle,
    config: &watch::Receiver<Arc<Config>>,
    database: Option<String>,
    label: Option<String>,
    wait: bool,
) -> Result<Reply, BackupError> {
    let cfg = config.borrow().clone();
    // A label is free text an operator types: bounded, and scrubbed before it is stored.
    if let Some(l) = label.as_ref().filter(|l| l.chars().count() > MAX_LABEL) {
        return Err(BackupError::Refused(format!(
            "the label is {} characters long; keep it to {MAX_LABEL}",
            l.chars().count()
        )));
    }
    let label = label.map(|l| cfg.scrubber().scrub(&l));
    let dir = cfg.backup.dir.clone();
    if let Some(why) = tokio::task::spawn_blocking(move || crate::backup::dir_problem(&dir))
        .await
        .ok()
        .flatten()
    {
        return Err(BackupError::Refused(format!(
            "{why}; no backup was started"
        )));
    }
    // Without --database: the configured databases, or with ["*"] every database the server
    // has now (an unreachable server refuses the command: there is nothing to record under).
    let dbs = match database {
        Some(db) => vec![db],
        None => selection::resolve(&cfg)
            .await
            .map_err(|e| BackupError::Refused(format!("{e}; no backup was started")))?,
    };
    if dbs.is_empty() {
        return Err(BackupError::Refused(
            "the server has no database to back up (backup.databases = [\"*\"] leaves out templates and steward's scratch databases); no backup was started".into(),
        ));
    }
    for db in dbs
        .iter()
        .filter(|d| crate::config::is_backup_database_name(d))
    {
        // A name that is not a database would leave a failed entry and an alert nothing clears;
        // an unreachable server is a real failure, recorded by the run.
        if let Ok(false) = crate::backup::database_exists(&cfg, db).await {
            return Err(BackupError::Refused(format!(
                "database {db:?} does not exist on the server; nothing was started or recorded (check --database or backup.databases)"
            )));
        }
    }
    let mut started = Vec::new();
    let mut waits = Vec::new();
    for db in dbs {
        let (s, done) = b.create(db, BackupKind::Manual, label.clone()).await?;
        started.push(s);
        waits.push(done);
    }
    if !wait {
        return Ok(Reply::data(&started));
    }
    let mut metas = Vec::new();
    for done in waits {
        metas.push(done.await.map_err(|_| BackupError::Gone)?);
    }
    // A run skipped because another instance was backing up the database is not a failure.
    let skipped = |m: &&crate::backup::catalog::BackupMeta| {
        m.status == crate::backup::catalog::BackupStatus::Skipped
    };
    match metas.iter().filter(|m| !skipped(m)).find(|m| !m.is_good()) {
        Some(failed) => Ok(Reply {
            ok: false,
            error: Some(format!(
                "backup {} of {:?} failed: {}",
                failed.id,
                failed.database,
                failed.error.as_deref().unwrap_or("unknown error")
            )),
            data: serde_json::to_value(&metas).unwrap_or_default(),
        }),
        None => Ok(Reply::data(&metas)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_scrubbed_wherever_a_reply_holds_one() {
        let scrubber = crate::secret::Scrubber::new(vec!["Sp3cPw9x".into()]);
        let mut v = serde_json::json!({
            "last_failure": {"label": "with Sp3cPw9x", "database": "app"},
            "list": [{"label": "Sp3cPw9x", "id": "x"}, {"label": null}],
        });
        scrub_labels(&mut v, &scrubber);
        assert!(!v.to_string().contains("Sp3c"), "{v}");
        assert_eq!(v["last_failure"]["label"], "with ***");
        assert_eq!(v["last_failure"]["database"], "app");
    }
}
