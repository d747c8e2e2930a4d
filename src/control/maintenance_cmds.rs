//! The `maintenance_*` requests: handed to the maintenance actor, answered with its status.

use super::protocol::{Reply, Request};
use crate::maintenance::{MaintenanceError, MaintenanceHandle};
use std::time::Duration;

/// Answers a maintenance request (anything else gets an error reply).
pub(super) async fn handle(m: &MaintenanceHandle, req: Request) -> Reply {
    let out =
        match req {
            Request::MaintenanceOn {
                reason,
                for_seconds,
            } => match for_seconds.map(Duration::try_from_secs_f64).transpose() {
                Ok(d) => m.on(reason, d).await,
                Err(_) => return Reply::error(
                    "for_seconds must be a positive number of seconds, e.g. 1800 for 30 minutes",
                ),
            },
            Request::MaintenanceOff => m.off().await,
            Request::MaintenanceStatus => m.status().await,
            _ => return Reply::error("not a maintenance request"),
        };
    out.map(|s| Reply::data(&s))
        .unwrap_or_else(|e: MaintenanceError| Reply::error(e.to_string()))
}
