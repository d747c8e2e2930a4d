//! A supervised task as `tasks` lists it, and what `steward task …` may do to one.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What `steward task …` does to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskAction {
    Restart,
    Pause,
    Resume,
}

/// A supervised task's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskState {
    Running,
    BackingOff,
    Paused,
    Stopped,
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskState::Running => "running",
            TaskState::BackingOff => "backing-off",
            TaskState::Paused => "paused",
            TaskState::Stopped => "stopped",
        })
    }
}

/// One row of `tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub name: String,
    pub state: TaskState,
    /// When the current run started, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    /// When the task entered its current state, Unix seconds.
    pub since: f64,
    /// Restarts after a failure or panic.
    pub restarts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}
