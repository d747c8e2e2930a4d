//! What maintenance mode is: the period now on (who turned it on, since and until when), the
//! periods that ended and how, where the Redis key stands, and the status reply.

use serde::{Deserialize, Serialize};

/// Who turned maintenance mode on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `steward maintenance on`.
    Operator,
    /// A restore replacing an existing database, for its duration.
    Restore,
}

/// Maintenance as it is on now: the Redis key's JSON, the state file's entry, what the alert
/// engine and the backup scheduler see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Maintenance {
    #[serde(default)]
    pub reason: Option<String>,
    /// When it was turned on, Unix seconds.
    pub since: f64,
    /// When it ends by itself (`--for`), Unix seconds; `None` until turned off.
    #[serde(default)]
    pub until: Option<f64>,
    pub by: Origin,
}

/// How a maintenance period ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndedBy {
    /// `steward maintenance off`.
    Operator,
    /// Its `until` passed (also while steward was stopped).
    Expired,
    /// The restore that turned it on finished (or failed).
    RestoreFinished,
}

/// A maintenance period that has ended; the newest ones are kept for `maintenance status`, so
/// that a short one (a quick restore) can still be seen afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ended {
    #[serde(flatten)]
    pub period: Maintenance,
    pub ended_at: f64,
    pub ended_by: EndedBy,
}

/// Where the Redis key stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    pub key: String,
    /// Redis holds what the mode says (the key while on, no key while off).
    pub published: bool,
    /// When Redis last accepted it, Unix seconds.
    #[serde(default)]
    pub published_at: Option<f64>,
    /// Why the last attempt failed; it is retried as soon as a Redis check succeeds.
    #[serde(default)]
    pub error: Option<String>,
}

/// Reply to `maintenance on|off|status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceStatus {
    pub on: bool,
    #[serde(default)]
    pub current: Option<Maintenance>,
    /// `[maintenance] run_backups`: scheduled backups still run during maintenance.
    pub run_backups: bool,
    pub redis: Publication,
    /// Ended periods, newest first.
    pub history: Vec<Ended>,
    /// The state file.
    pub file: String,
}
