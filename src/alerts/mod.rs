//! Alerts: steward's own rules, evaluated after each check, each backup event and every
//! second; their state machines; the `steward_alert_*` metrics; `steward alerts`; and delivery
//! of firing alerts to Alertmanager.

mod alertmanager;
mod backup_age;
mod backup_rules;
mod drill_rules;
mod engine;
mod facts;
mod handle;
pub mod observation;
mod offsite_rules;
mod pg_replication_rules;
mod pg_rule;
mod pg_session_rules;
mod redis_rules;
mod reply;
mod restarts;
pub mod rules;
pub mod state;

pub use engine::{Inputs, MaintenanceFlag};
pub use handle::{AlertError, AlertHandle};
pub use reply::{AlertStatus, AlertsReply};
pub use state::AlertState;

use crate::mailbox::Mailbox;
use crate::supervisor::{factory, SupervisorError, SupervisorHandle};
use std::sync::Arc;
use tokio::sync::watch;

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
