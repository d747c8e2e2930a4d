//! Which databases backups cover: the names in `backup.databases`, else the database of
//! `postgres.url`; with `databases = ["*"]`, every database the server lets connections into,
//! templates and steward's own scratch databases aside. "Every database" is asked of the
//! server afresh at each use (each scheduled run, catch-up, `backup create` without a
//! database), so a database created while steward runs is covered from the next run on.

use super::pg_text::pg_error;
use super::scratch;
use crate::config::{is_backup_database_name, Config, ALL_DATABASES};
use std::time::Duration;

/// Why the server could not say which databases it has.
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error("cannot ask PostgreSQL which databases to back up (backup.databases = [\"*\"]): {0}")]
    Unlisted(String),
}

/// What `pg_database` offers: databases that take connections and are no templates, with
/// their comment (steward's scratch databases carry its marker there).
const LIST_SQL: &str = "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database \
     WHERE datallowconn AND NOT datistemplate ORDER BY datname";

/// Whether `backup.databases` is `["*"]`: every database, as the server says at each run.
pub fn every_database(cfg: &Config) -> bool {
    cfg.backup.databases.iter().any(|d| d == ALL_DATABASES)
}

/// The databases backups cover when the config alone says which: `backup.databases`, else
/// the database of `postgres.url`. `None` for `["*"]`, which only the server can answer.
pub fn configured(cfg: &Config) -> Option<Vec<String>> {
    if every_database(cfg) {
        return None;
    }
    if !cfg.backup.databases.is_empty() {
        return Some(cfg.backup.databases.clone());
    }
    Some(
        super::pgconn::PgTarget::new(&cfg.postgres.url, None)
            .map(|t| vec![t.database])
            .unwrap_or_default(),
    )
}

/// The databases to back up now: [`configured`], or for `["*"]` the server's answer (within
/// `postgres.timeout`, at least 5 s). The error is scrubbed of secrets.
pub async fn resolve(cfg: &Config) -> Result<Vec<String>, SelectionError> {
    if let Some(dbs) = configured(cfg) {
        return Ok(dbs);
    }
    let limit = cfg.postgres.timeout.max(Duration::from_secs(5));
    match tokio::time::timeout(limit, ask(cfg)).await {
        Ok(out) => out.map_err(SelectionError::Unlisted),
        Err(_) => Err(SelectionError::Unlisted(format!(
            "no answer within {}",
            humantime::format_duration(limit)
        ))),
    }
}

async fn ask(cfg: &Config) -> Result<Vec<String>, String> {
    let c = scratch::admin_for(cfg, "").await?;
    let rows = c
        .query(LIST_SQL, &[])
        .await
        .map_err(|e| cfg.scrubber().scrub(&pg_error(&e)))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            // A name that is not UTF-8 (a SQL_ASCII cluster) cannot be asked for; left out.
            let name: String = r.try_get(0).ok()?;
            let comment: Option<String> = r.try_get(1).ok()?;
            keep(&name, comment.as_deref()).then_some(name)
        })
        .collect())
}

/// Whether a database the server listed is backed up by `["*"]`.
fn keep(name: &str, comment: Option<&str>) -> bool {
    is_backup_database_name(name) && !scratch::is_scratch(name, comment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dbs: &[&str], url: &str) -> Config {
        let mut c = Config::default();
        c.backup.databases = dbs.iter().map(|d| d.to_string()).collect();
        c.postgres.url = crate::secret::SecretUrl::new(url);
        c
    }

    #[test]
    fn the_config_alone_answers_unless_every_database_is_asked_for() {
        let url = "postgres://app@db.example/shop";
        assert_eq!(configured(&cfg(&[], url)), Some(vec!["shop".to_string()]));
        assert_eq!(
            configured(&cfg(&["Sales DB", "übung"], url)),
            Some(vec!["Sales DB".to_string(), "übung".to_string()])
        );
        assert!(!every_database(&cfg(&["Sales DB"], url)));
        assert!(every_database(&cfg(&["*"], url)));
        assert_eq!(configured(&cfg(&["*"], url)), None);
    }

    #[test]
    fn scratch_databases_are_left_out_and_any_other_name_kept() {
        let run = scratch::new_run_id();
        let marker = scratch::marker(&run, "restore");
        assert!(!keep(&scratch::numbered("restore", &run, 1), Some(&marker)));
        assert!(keep(&scratch::numbered("restore", &run, 1), None));
        for name in ["Sales DB", "übung", "steward_restored_20261126", "it's"] {
            assert!(keep(name, None), "{name:?}");
            assert!(keep(name, Some("a comment")), "{name:?}");
        }
    }
}
