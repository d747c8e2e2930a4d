//! The board of last results: the newest check of each service and its recent history, for
//! `/health`, the control socket, readiness and the alert engine.

use super::check::{CheckResult, HealthReply, Service, ServiceReport};
use super::history;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The newest check of each service, written by the monitors and read by `/health`, the control
/// socket and readiness; reading never touches PostgreSQL or Redis.
#[derive(Clone)]
pub struct Board {
    slots: Arc<[watch::Sender<Option<Arc<CheckResult>>>; 2]>,
    /// Recent checks per service; locked only for a push or a copy, never across an await.
    history: Arc<std::sync::Mutex<[history::Ring; 2]>>,
}

impl Default for Board {
    fn default() -> Self {
        Self {
            slots: Arc::new([watch::Sender::new(None), watch::Sender::new(None)]),
            history: Arc::new(std::sync::Mutex::new([
                history::Ring::default(),
                history::Ring::default(),
            ])),
        }
    }
}

impl Board {
    fn slot(&self, s: Service) -> &watch::Sender<Option<Arc<CheckResult>>> {
        &self.slots[s as usize]
    }

    /// Stores a result as the service's newest, and in its history.
    pub fn publish(&self, r: CheckResult) {
        if let Ok(mut h) = self.history.lock() {
            h[r.service as usize].push(history::Entry::from_check(&r));
        }
        self.slot(r.service).send_replace(Some(Arc::new(r)));
    }

    /// Applies `[history]` limits (at start and on reload).
    pub fn set_history_limits(&self, retention: Duration, max_entries: usize) {
        if let Ok(mut h) = self.history.lock() {
            for ring in h.iter_mut() {
                ring.set_limits(retention, max_entries);
            }
        }
    }

    /// A service's history from `from` (Unix seconds) on, oldest first.
    pub fn history(&self, s: Service, from: f64) -> Vec<history::Entry> {
        self.history
            .lock()
            .map(|h| h[s as usize].since(from))
            .unwrap_or_default()
    }

    /// Follows a service's newest result: the alert engine evaluates after each check.
    pub fn subscribe(&self, s: Service) -> watch::Receiver<Option<Arc<CheckResult>>> {
        self.slot(s).subscribe()
    }

    /// The newest result of a service, if it was checked yet.
    pub fn last(&self, s: Service) -> Option<Arc<CheckResult>> {
        self.slot(s).borrow().clone()
    }

    /// Reports for the given services (all when `None`).
    pub fn reports(&self, only: Option<Service>) -> Vec<ServiceReport> {
        Service::ALL
            .into_iter()
            .filter(|s| only.is_none_or(|o| o == *s))
            .map(|s| ServiceReport {
                service: s,
                last: self.last(s).map(|r| (*r).clone()),
            })
            .collect()
    }

    /// Health of both services: healthy when each was checked and is up.
    pub fn health(&self) -> HealthReply {
        self.health_of(None)
    }

    /// Health of one service or both.
    pub fn health_of(&self, only: Option<Service>) -> HealthReply {
        let services = self.reports(only);
        HealthReply {
            healthy: services.iter().all(ServiceReport::up),
            services,
            backup_dir_problem: None,
        }
    }

    /// Ready once every service has finished its first check, whatever it found.
    pub fn ready(&self) -> bool {
        Service::ALL
            .iter()
            .all(|s| self.slot(*s).borrow().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(service: Service, up: bool) -> CheckResult {
        CheckResult {
            up,
            checked_at: 1.0,
            ..CheckResult::unchecked(service)
        }
    }

    #[test]
    fn board_health_and_readiness() {
        let b = Board::default();
        assert!(!b.ready());
        assert!(!b.health().healthy);
        b.publish(result(Service::Postgres, true));
        assert!(!b.ready());
        assert!(b.health_of(Some(Service::Postgres)).healthy);
        b.publish(result(Service::Redis, false));
        assert!(b.ready());
        assert!(!b.health().healthy);
        b.publish(result(Service::Redis, true));
        assert!(b.health().healthy);
    }
}
