//! Cache metrics: per-namespace figures of the last complete statistics pass, its time and
//! duration, TTLs enforced, and the duration of every cache operation (stats, clear, warm-up,
//! TTL enforcement). Namespace label values come from the config, so they are bounded.

use super::reg::{MetricsError, Reg};
use crate::model::cache_pass::PassFigures;
use prometheus::{Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec};

/// Every cache metric handle.
pub struct CacheMetrics {
    /// Keys per namespace, counted by the last complete SCAN pass.
    pub namespace_keys: IntGaugeVec,
    /// Keys without a TTL per namespace, from the last complete pass.
    pub namespace_keys_without_ttl: IntGaugeVec,
    /// Estimated memory per namespace (sampled `MEMORY USAGE`, scaled to the key count).
    pub namespace_memory: IntGaugeVec,
    /// Time spent scanning for the last complete pass (its ticks added up, waits between
    /// ticks left out): a gauge, since a pass spans several ticks and intervals.
    pub scan_duration: Gauge,
    /// Unix time the last complete pass finished.
    pub last_scan: Gauge,
    /// Keys given their namespace TTL by the TTL audit (`enforce_ttl`).
    pub ttl_enforced: IntCounterVec,
    /// Duration of each cache operation, by `op` (`stats`, `clear`, `warmup`, `ttl_enforce`).
    pub operation_duration: HistogramVec,
}

impl CacheMetrics {
    pub(super) fn new(r: &Reg) -> Result<Self, MetricsError> {
        let operation_duration = HistogramVec::new(
            HistogramOpts::new(
                "steward_cache_operation_duration_seconds",
                "Duration of cache operations: a stats scan tick, a clear, a warm-up, a TTL \
                 enforcement pipeline.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0,
            ]),
            &["op"],
        )?;
        r.0.register(Box::new(operation_duration.clone()))?;
        let m = Self {
            namespace_keys: r.int_vec(
                "steward_cache_namespace_keys",
                "Keys of the cache namespace, counted by the last complete SCAN pass.",
                &["namespace"],
            )?,
            namespace_keys_without_ttl: r.int_vec(
                "steward_cache_namespace_keys_without_ttl",
                "Keys of the cache namespace without a TTL, in the last complete SCAN pass.",
                &["namespace"],
            )?,
            namespace_memory: r.int_vec(
                "steward_cache_namespace_memory_bytes",
                "Estimated memory of the cache namespace: sampled MEMORY USAGE scaled to its keys.",
                &["namespace"],
            )?,
            scan_duration: r.float(
                "steward_cache_scan_duration_seconds",
                "Time spent scanning for the last complete statistics pass (its ticks summed).",
            )?,
            last_scan: r.float(
                "steward_cache_last_scan_timestamp_seconds",
                "Unix time the last complete statistics pass finished (0: none yet).",
            )?,
            ttl_enforced: r.counter(
                "steward_cache_ttl_enforced_total",
                "Keys found without a TTL and given their namespace TTL (enforce_ttl).",
                &["namespace"],
            )?,
            operation_duration,
        };
        for op in ["stats", "clear", "warmup", "ttl_enforce"] {
            m.operation_duration.with_label_values(&[op]);
        }
        Ok(m)
    }

    /// Sets the per-namespace gauges from a complete pass; namespaces no longer configured
    /// disappear.
    pub fn publish_pass(&self, p: &PassFigures) {
        self.namespace_keys.reset();
        self.namespace_keys_without_ttl.reset();
        self.namespace_memory.reset();
        for n in &p.namespaces {
            let l = [n.name.as_str()];
            self.namespace_keys.with_label_values(&l).set(n.keys as i64);
            self.namespace_keys_without_ttl
                .with_label_values(&l)
                .set(n.keys_without_ttl as i64);
            self.namespace_memory
                .with_label_values(&l)
                .set(n.memory_bytes as i64);
        }
        self.scan_duration.set(p.scan_seconds);
        self.last_scan.set(p.finished_at);
    }
}
