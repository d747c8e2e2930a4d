//! Metrics about the HTTP endpoint itself: open and refused connections, failed TLS
//! handshakes and refused credentials, so that abuse of the endpoint shows up.

use super::reg::{MetricsError, Reg};
use prometheus::{IntCounter, IntCounterVec, IntGauge};

/// Every HTTP endpoint metric handle.
pub struct HttpMetrics {
    pub open: IntGauge,
    pub refused: IntCounterVec,
    pub tls_handshake_failures: IntCounter,
    pub auth_failures: IntCounterVec,
}

impl HttpMetrics {
    pub(super) fn new(r: &Reg) -> Result<Self, MetricsError> {
        let m = Self {
            open: r.int(
                "steward_http_connections",
                "HTTP connections open now.",
            )?,
            refused: r.counter(
                "steward_http_connections_refused_total",
                "HTTP connections closed at once: limit (all clients together), per_address (one client address's share, [metrics] max_connections_per_address) or evicted (the oldest of the biggest holder, to make room for an address holding fewer).",
                &["reason"],
            )?,
            tls_handshake_failures: r.counter0(
                "steward_http_tls_handshake_failures_total",
                "TLS handshakes that failed or timed out (plain HTTP to the TLS port counts here).",
            )?,
            auth_failures: r.counter(
                "steward_http_auth_failures_total",
                "Requests refused by basic auth: denied (missing or wrong credentials) or busy (too many checks queued).",
                &["reason"],
            )?,
        };
        for why in super::conn_limit::Refusal::ALL {
            m.refused.with_label_values(&[why.label()]);
        }
        for reason in ["denied", "busy"] {
            m.auth_failures.with_label_values(&[reason]);
        }
        Ok(m)
    }
}
