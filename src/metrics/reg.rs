//! Registering metrics: the helper each family's constructor creates its gauges and counters
//! through, and the error a failed registration gives.

use prometheus::{
    Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Why the registry could not be built (only a programming error: a duplicate or bad name).
#[derive(Debug, thiserror::Error)]
#[error("cannot register metric: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// Creates metrics and registers them in one go, for the families' constructors.
pub(crate) struct Reg<'a>(pub(super) &'a Registry);

impl Reg<'_> {
    pub(super) fn int(&self, name: &str, help: &str) -> Result<IntGauge, MetricsError> {
        let m = IntGauge::new(name, help)?;
        self.0.register(Box::new(m.clone()))?;
        Ok(m)
    }
    pub(super) fn float(&self, name: &str, help: &str) -> Result<Gauge, MetricsError> {
        let m = Gauge::new(name, help)?;
        self.0.register(Box::new(m.clone()))?;
        Ok(m)
    }
    pub(super) fn int_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, MetricsError> {
        let m = IntGaugeVec::new(Opts::new(name, help), labels)?;
        self.0.register(Box::new(m.clone()))?;
        Ok(m)
    }
    pub(super) fn float_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<GaugeVec, MetricsError> {
        let m = GaugeVec::new(Opts::new(name, help), labels)?;
        self.0.register(Box::new(m.clone()))?;
        Ok(m)
    }
    pub(super) fn counter0(&self, name: &str, help: &str) -> Result<IntCounter, MetricsError> {
        let m = IntCounter::new(name, help)?;
        self.0.register(Box::new(m.clone()))?;
        Ok(m)
    }
    pub(super) fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, MetricsError> {
        let m = IntCounterVec::new(Opts::new(name, help), labels)?;
        self.0.register(Box::new(m.clone()))?;
        Ok(m)
    }
}
