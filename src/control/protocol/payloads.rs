//! The payloads of replies: check results and their figures, service reports, tasks,
//! reload, info, history and status, as both the daemon and the client (and `--json` scripts)
//! see them.

use crate::model::check::{Service, ServiceReport};
use crate::model::task::{TaskInfo, TaskState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Reply to `reload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ReloadReply {
    pub config_file: String,
    /// Sections whose values changed.
    pub changed: Vec<String>,
    /// Tasks restarted to apply them.
    pub restarted: Vec<String>,
    /// Keys that changed but only take effect after restarting steward.
    pub needs_restart: Vec<String>,
}

/// Counts of tasks by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TaskSummary {
    pub running: usize,
    pub backing_off: usize,
    pub paused: usize,
    pub stopped: usize,
}

impl TaskSummary {
    /// Tallies task rows.
    pub fn of(tasks: &[TaskInfo]) -> Self {
        let mut s = Self::default();
        for t in tasks {
            match t.state {
                TaskState::Running => s.running += 1,
                TaskState::BackingOff => s.backing_off += 1,
                TaskState::Paused => s.paused += 1,
                TaskState::Stopped => s.stopped += 1,
            }
        }
        s
    }
}

/// Reply to `info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfoReply {
    pub version: String,
    pub pid: u32,
    pub started_at: f64,
    pub uptime_seconds: f64,
    pub config_file: String,
    pub metrics_listen: String,
    pub socket: String,
    /// Check interval per service, seconds.
    pub intervals: BTreeMap<String, f64>,
    /// Check timeout per service, seconds.
    pub timeouts: BTreeMap<String, f64>,
    pub tasks: TaskSummary,
    pub last_reload_ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reload_error: Option<String>,
    /// Keys whose change waits for a restart (see [`StatusReply::pending_restart`]).
    #[serde(default)]
    pub pending_restart: Vec<String>,
}

/// Reply to `history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryReply {
    pub service: Service,
    /// Start of the window, Unix seconds.
    pub since: f64,
    pub entries: Vec<crate::model::history::Entry>,
    pub summary: crate::model::history::Summary,
}

/// Reply to `status`: the one-screen overview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReply {
    pub version: String,
    pub uptime_seconds: f64,
    pub healthy: bool,
    /// The maintenance period in force, if any: shown first, it explains silenced alerts and
    /// skipped backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<crate::maintenance::Maintenance>,
    /// Keys changed in the file that the running process has not applied (they need a
    /// restart), against what is actually running.
    #[serde(default)]
    pub pending_restart: Vec<String>,
    pub services: Vec<ServiceReport>,
    pub tasks: Vec<TaskInfo>,
}
