//! `[metrics]`: the HTTP endpoint Prometheus scrapes, and its validation.

use super::{Config, Problem, DEFAULT_METRICS_PORT};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// `[metrics]`: the HTTP endpoint Prometheus scrapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_METRICS_PORT)),
        }
    }
}

/// Checks `[metrics]` beyond what serde does.
pub(super) fn check(_c: &Config, _out: &mut Vec<Problem>) {}
