//! What `steward alerts` shows: each alert instance with its state, and the reply around them.

use super::observation;
use super::state::AlertState;
use crate::config::Severity;
use serde::{Deserialize, Serialize};

/// One alert instance as `steward alerts` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertStatus {
    pub alert: String,
    pub service: String,
    pub severity: Severity,
    pub state: AlertState,
    /// When it entered its state, Unix seconds.
    pub since: f64,
    /// When it last started firing.
    #[serde(default)]
    pub fired_at: Option<f64>,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub threshold: Option<f64>,
    /// What value and threshold measure: count, seconds, ratio or bytes.
    #[serde(default)]
    pub unit: observation::Unit,
    /// The rule's `for`, seconds.
    pub for_seconds: f64,
    pub summary: String,
    pub description: String,
    /// Why the rule cannot judge right now, e.g. Redis has no maxmemory.
    #[serde(default)]
    pub note: Option<String>,
    /// Firing during maintenance: listed and exported, but not sent to Alertmanager.
    pub suppressed: bool,
}

/// Reply to `alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsReply {
    pub maintenance: bool,
    /// Where firing alerts are sent, when configured.
    #[serde(default)]
    pub alertmanager: Option<String>,
    pub alerts: Vec<AlertStatus>,
}
