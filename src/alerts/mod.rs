//! Alerts: steward's own rules, evaluated after each check, each backup event and every
//! second; their state machines; the `steward_alert_*` metrics; `steward alerts`; and delivery
//! of firing alerts to Alertmanager.

mod alertmanager;
mod backup_age;
mod backup_rules;
mod drill_rules;
mod engine;
mod facts;
pub mod observation;
mod offsite_rules;
mod pg_replication_rules;
mod pg_rule;
mod pg_session_rules;
mod redis_rules;
mod restarts;
pub mod rules;
pub mod state;

pub use engine::{Inputs, MaintenanceFlag};
pub use state::AlertState;

use crate::config::Severity;
use crate::mailbox::Mailbox;
use crate::supervisor::{factory, SupervisorError, SupervisorHandle};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::{oneshot, watch};

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

/// Why the alert engine did not answer.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("the alert engine has stopped (steward is shutting down)")]
    Gone,
}

pub(crate) enum Cmd {
    List(oneshot::Sender<AlertsReply>),
}

/// The cloneable way to ask the alert engine; it outlives restarts of the `alerts` task.
#[derive(Clone)]
pub struct AlertHandle {
    mailbox: Mailbox<Cmd>,
}

/// Registers the supervised tasks `alerts` (the engine) and `alertmanager` (delivery), which
/// share the list of firing alerts through a `watch` that outlives their restarts.
pub async fn spawn(sup: &SupervisorHandle, inputs: Inputs) -> Result<AlertHandle, SupervisorError> {
    engine::register_series(&inputs.metrics);
    let handle = AlertHandle {
        mailbox: Mailbox::new(16),
    };
    let (notices, notices_rx) = watch::channel(Vec::new());
    let notices = Arc::new(notices);
    let (config, metrics) = (inputs.config.clone(), inputs.metrics.clone());
    sup.spawn(
        "alertmanager",
        factory(move |token| {
            alertmanager::run(config.clone(), metrics.clone(), notices_rx.clone(), token)
        }),
    )
    .await?;
    let h = handle.clone();
    sup.spawn(
        "alerts",
        factory(move |token| engine::run(inputs.clone(), h.clone(), notices.clone(), token)),
    )
    .await?;
    Ok(handle)
}

impl AlertHandle {
    /// Every alert instance with its state.
    pub async fn list(&self) -> Result<AlertsReply, AlertError> {
        self.mailbox
            .ask(Cmd::List, None)
            .await
            .ok_or(AlertError::Gone)
    }
}
