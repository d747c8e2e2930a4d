//! What one audit line holds, and the entries for actions steward takes by itself.

use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The connecting process, as the kernel reported it (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerId {
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
}

/// How the audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Error,
    /// Refused by `[control]` access rules; nothing was done.
    Denied,
    /// A long destructive command began; the line with its outcome follows when it ends, so
    /// one cut short (steward killed mid-restore) still leaves who started it.
    Started,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// `client` for control-socket requests (with `peer`), else the task that acted on its own
    /// (`backup.retention`, `cache.stats`).
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerId>,
    /// The control command (`maintenance_on`), `connect` for a peer refused outright, or the
    /// action (`backup_delete`, `ttl_enforce`, `config_set`).
    pub command: String,
    /// Secrets are masked before the line is written.
    pub arguments: serde_json::Value,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_seconds: f64,
}

impl Entry {
    /// An entry stamped now; `started` gives its duration.
    pub fn new(actor: &str, command: &str, arguments: serde_json::Value, started: Instant) -> Self {
        Entry {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            actor: actor.into(),
            peer: None,
            command: command.into(),
            arguments,
            outcome: Outcome::Ok,
            error: None,
            duration_seconds: started.elapsed().as_secs_f64(),
        }
    }

    /// The same entry from a control-socket peer.
    pub fn peer(mut self, peer: PeerId) -> Self {
        self.peer = Some(peer);
        self
    }

    /// The same entry with its outcome (and error message, for `Error` and `Denied`).
    pub fn outcome(mut self, outcome: Outcome, error: Option<String>) -> Self {
        self.outcome = outcome;
        self.error = error;
        self
    }
}

impl Entry {
    /// One line for the TTLs a statistics pass gave, with the count per namespace (namespaces
    /// that got none left out); `None` when it gave none.
    pub fn ttl_enforced(counts: &[(String, u64)], seconds: f64) -> Option<Entry> {
        let given: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| (name.clone(), (*n).into()))
            .collect();
        if given.is_empty() {
            return None;
        }
        let args = serde_json::json!({ "keys_given_ttl": given });
        let mut e = Entry::new("cache.stats", "ttl_enforce", args, Instant::now());
        e.duration_seconds = seconds;
        Some(e)
    }

    /// One line for a `CONFIG SET maxmemory-policy` steward sent, with Redis' answer.
    pub fn config_set(
        expected: &str,
        was: &str,
        result: &Result<(), String>,
        started: Instant,
    ) -> Entry {
        let args = serde_json::json!({ "maxmemory-policy": expected, "was": was });
        let e = Entry::new("cache.stats", "config_set", args, started);
        match result {
            Ok(()) => e,
            Err(msg) => e.outcome(Outcome::Error, Some(msg.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_lines_only_when_something_was_given() {
        assert!(Entry::ttl_enforced(&[("a".into(), 0)], 1.0).is_none());
        let e = Entry::ttl_enforced(&[("a".into(), 0), ("b".into(), 7)], 1.5).unwrap();
        assert_eq!(
            e.arguments,
            serde_json::json!({ "keys_given_ttl": { "b": 7 } })
        );
        assert_eq!(
            (e.actor.as_str(), e.command.as_str()),
            ("cache.stats", "ttl_enforce")
        );
        assert_eq!(e.duration_seconds, 1.5);
        let line = serde_json::to_value(&e).unwrap();
        assert!(
            line.get("peer").is_none() && line.get("error").is_none(),
            "{line}"
        );
    }
}
