//! The maintenance state file (`<state dir>/maintenance.json`): the current period and the recent
//! ended ones, written atomically (temp file, fsync, rename, fsync of the directory).

use super::period::{Ended, EndedBy, Maintenance};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// Ended periods kept in the file and shown by `maintenance status`.
pub const HISTORY: usize = 20;

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {path}: {source} (check that [state] dir is writable by steward)")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a maintenance state file: {source} (move it away; steward writes a new one at the next change)")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// What the file holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    #[serde(default)]
    pub current: Option<Maintenance>,
    /// Ended periods, oldest first.
    #[serde(default)]
    pub history: Vec<Ended>,
}

impl Stored {
    /// Ends the current period if its `until` has passed; returns it then.
    pub fn expire(&mut self, now: f64) -> Option<Ended> {
        let until = self.current.as_ref()?.until?;
        if until > now {
            return None;
        }
        self.end(until, EndedBy::Expired)
    }

    /// Ends the current period (if any) at `at`, keeping it in the history.
    pub fn end(&mut self, at: f64, by: EndedBy) -> Option<Ended> {
        let period = self.current.take()?;
        let e = Ended {
            period,
            ended_at: at,
            ended_by: by,
        };
        self.history.push(e.clone());
        if self.history.len() > HISTORY {
            let drop = self.history.len() - HISTORY;
            self.history.drain(..drop);
        }
        Some(e)
    }

    /// Scrubs the reason of every period, current and ended, as a reason is scrubbed before it
    /// is stored (a file from before that, or edited by hand, may hold a secret); true when
    /// something was masked, so that the file is written again.
    pub fn scrub(&mut self, scrubber: &crate::secret::Scrubber) -> bool {
        let periods = self
            .current
            .iter_mut()
            .chain(self.history.iter_mut().map(|e| &mut e.period));
        let mut changed = false;
        for reason in periods.filter_map(|m| m.reason.as_mut()) {
            let clean = scrubber.scrub(reason);
            changed |= clean != *reason;
            *reason = clean;
        }
        changed
    }

    /// Seconds until the current period ends by itself, if it does.
    pub fn remaining(&self, now: f64) -> Option<f64> {
        let until = self.current.as_ref()?.until?;
        Some((until - now).max(0.0))
    }
}

/// The file in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("maintenance.json")
}

/// Reads the file; a missing one means maintenance is off with no history.
pub fn load(dir: &Path) -> Result<Stored, StoreError> {
    let path = path(dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Stored::default()),
        Err(source) => {
            return Err(StoreError::Io {
                action: "read",
                path,
                source,
            })
        }
    };
    serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse { path, source })
}

/// Replaces the file atomically: a crash leaves the old file or the new one, never half of one.
pub fn save(dir: &Path, s: &Stored) -> Result<(), StoreError> {
    let path = path(dir);
    let mut bytes = serde_json::to_vec_pretty(s).unwrap_or_default();
    bytes.push(b'\n');
    crate::durable::write_atomic(&path, &bytes).map_err(|source| StoreError::Io {
        action: "write",
        path,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::super::period::Origin;
    use super::*;

    fn on(since: f64, until: Option<f64>) -> Maintenance {
        Maintenance {
            reason: Some("upgrade".into()),
            since,
            until,
            by: Origin::Operator,
        }
    }

    #[test]
    fn missing_file_is_off_and_saved_state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), Stored::default());
        let s = Stored {
            current: Some(on(100.0, Some(200.0))),
            history: vec![],
        };
        save(dir.path(), &s).unwrap();
        assert_eq!(load(dir.path()).unwrap(), s);
        assert!(!dir.path().join("maintenance.json.tmp").exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path(dir.path())).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Saving again replaces the file whole.
        save(dir.path(), &Stored::default()).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Stored::default());
    }

    #[test]
    fn expiry_ends_at_until_not_before() {
        let mut s = Stored {
            current: Some(on(100.0, Some(200.0))),
            history: vec![],
        };
        assert_eq!(s.remaining(150.0), Some(50.0));
        assert!(s.expire(199.9).is_none());
        assert!(s.current.is_some());
        let e = s.expire(1000.0).expect("expired");
        assert_eq!(e.ended_at, 200.0, "ends at until, even when noticed later");
        assert_eq!(e.ended_by, EndedBy::Expired);
        assert!(s.current.is_none());
        assert_eq!(s.history, vec![e]);
        assert_eq!(s.remaining(1000.0), None);
    }

    #[test]
    fn without_until_it_never_expires() {
        let mut s = Stored {
            current: Some(on(100.0, None)),
            history: vec![],
        };
        assert!(s.expire(f64::MAX).is_none());
        assert!(s.current.is_some());
    }

    #[test]
    fn expired_file_at_start_means_off() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::unix_now();
        save(
            dir.path(),
            &Stored {
                current: Some(on(now - 60.0, Some(now - 1.0))),
                history: vec![],
            },
        )
        .unwrap();
        let mut s = load(dir.path()).unwrap();
        assert!(s.expire(now).is_some());
        assert!(s.current.is_none());
    }

    #[test]
    fn history_is_bounded_newest_kept() {
        let mut s = Stored::default();
        for i in 0..(HISTORY + 5) {
            s.current = Some(on(i as f64, None));
            s.end(i as f64 + 0.5, EndedBy::Operator);
        }
        assert_eq!(s.history.len(), HISTORY);
        assert_eq!(s.history.last().unwrap().period.since, (HISTORY + 4) as f64);
        assert_eq!(s.history[0].period.since, 5.0);
        assert!(s.end(1.0, EndedBy::Operator).is_none(), "nothing to end");
    }

    #[test]
    fn corrupt_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(path(dir.path()), "{not json").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("maintenance.json") && e.contains("move it away"),
            "{e}"
        );
    }

    #[test]
    fn unwritable_dir_says_what_to_check() {
        let e = save(Path::new("/nonexistent/steward-state"), &Stored::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("[state] dir"), "{e}");
    }
}
