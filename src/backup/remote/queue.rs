//! The upload queue: one small JSON file per backup waiting for its off-site copy, under
//! `<state.dir>/uploads/`, written durably, so that a restart resumes where a stop left off
//! (including the multipart upload to abort that the stop cut short).

use super::store::PendingUpload;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// One backup waiting for its off-site copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub database: String,
    pub queued_at: DateTime<Utc>,
    #[serde(default)]
    pub attempts: u32,
    /// Not tried again before this.
    pub next_at: DateTime<Utc>,
    /// Why the last attempt failed (scrubbed).
    #[serde(default)]
    pub last_error: Option<String>,
    /// A multipart upload begun and not completed: aborted before the next attempt.
    #[serde(default)]
    pub pending: Option<PendingUpload>,
}

impl Entry {
    /// A new entry, due now.
    pub fn new(id: &str, database: &str) -> Self {
        let now = Utc::now();
        Self {
            id: id.into(),
            database: database.into(),
            queued_at: now,
            attempts: 0,
            next_at: now,
            last_error: None,
            pending: None,
        }
    }

    /// Records a failed attempt: the next waits `base` doubled per failure, at most an hour.
    pub fn failed(&mut self, error: String, base: Duration) {
        self.attempts = self.attempts.saturating_add(1);
        let wait = base
            .saturating_mul(1u32 << self.attempts.saturating_sub(1).min(16))
            .min(MAX_BACKOFF);
        self.next_at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        self.last_error = Some(error);
    }
}

/// The queue's directory.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("uploads")
}

fn path(state_dir: &Path, id: &str) -> PathBuf {
    dir(state_dir).join(format!("{id}.json"))
}

/// Writes (or replaces) an entry durably.
pub fn save(state_dir: &Path, e: &Entry) -> std::io::Result<()> {
    crate::backup::catalog::validate_id(&e.id)
        .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err.to_string()))?;
    let d = dir(state_dir);
    std::fs::create_dir_all(&d)?;
    let bytes = serde_json::to_vec_pretty(e).map_err(std::io::Error::other)?;
    crate::durable::write_atomic(&path(state_dir, &e.id), &bytes)
}

/// Removes an entry (its upload is done or no longer wanted).
pub fn remove(state_dir: &Path, id: &str) -> std::io::Result<()> {
    match std::fs::remove_file(path(state_dir, id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Every entry, oldest first; files that are not entries are left alone and reported.
pub fn load(state_dir: &Path) -> (Vec<Entry>, Vec<String>) {
    let (mut out, mut problems) = (Vec::new(), Vec::new());
    let Ok(rd) = std::fs::read_dir(dir(state_dir)) else {
        return (out, problems);
    };
    for p in rd.flatten().map(|e| e.path()) {
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(id) = name.strip_suffix(".json") else {
            continue;
        };
        let read = crate::config::regular_file::read_regular_string(&p, 64 * 1024)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Entry>(&t).map_err(|e| e.to_string()));
        match read {
            Ok(e) if e.id == id => out.push(e),
            Ok(_) => problems.push(format!("{}: names another backup", p.display())),
            Err(e) => problems.push(format!("{}: {e}", p.display())),
        }
    }
    out.sort_by(|a, b| a.queued_at.cmp(&b.queued_at).then(a.id.cmp(&b.id)));
    (out, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_restart_and_back_off() {
        let d = tempfile::tempdir().unwrap();
        let mut e = Entry::new("20261126T020000Z-daily-3fa2", "app");
        save(d.path(), &e).unwrap();
        std::fs::write(dir(d.path()).join("notes.txt"), "x").unwrap();
        std::fs::write(dir(d.path()).join("junk.json"), "{").unwrap();
        let (all, problems) = load(d.path());
        assert_eq!(all, vec![e.clone()]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let before = Utc::now();
        e.failed("down".into(), Duration::from_secs(10));
        e.failed("down".into(), Duration::from_secs(10));
        let wait = (e.next_at - before).num_seconds();
        assert!((19..=21).contains(&wait), "{wait}");
        for _ in 0..40 {
            e.failed("down".into(), Duration::from_secs(10));
        }
        assert!((e.next_at - Utc::now()).num_seconds() <= 3600);
        remove(d.path(), &e.id).unwrap();
        remove(d.path(), &e.id).unwrap();
        assert!(load(d.path()).0.is_empty());
        assert!(save(d.path(), &Entry::new("../x", "app")).is_err());
    }
}
