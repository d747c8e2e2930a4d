//! The figures a complete statistics pass over the cache keyspace publishes (per namespace:
//! keys, keys without a TTL, TTL spread, sampled memory), written by the cache task and read by
//! the metrics, the control socket and its rendering.

use serde::{Deserialize, Serialize};

/// Min, median and max of the TTLs seen, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TtlSpread {
    pub min_seconds: f64,
    pub median_seconds: f64,
    pub max_seconds: f64,
}

/// The figures of one namespace in one complete pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceFigures {
    pub name: String,
    pub prefix: String,
    /// The namespace's configured TTL, seconds.
    pub ttl_seconds: f64,
    pub enforce_ttl: bool,
    /// Keys the pass found (exact, as SCAN returned them).
    pub keys: u64,
    /// Of them, keys without a TTL when the pass read it (before enforcement gave them one).
    pub keys_without_ttl: u64,
    /// Keys given the namespace TTL by this pass (`enforce_ttl`).
    pub ttl_enforced: u64,
    /// `None` when no key had a TTL.
    pub ttl: Option<TtlSpread>,
    /// Estimated bytes: sampled `MEMORY USAGE` scaled to `keys`.
    pub memory_bytes: u64,
    /// How many keys the memory estimate was sampled from.
    pub memory_sampled_keys: u64,
}

/// A complete pass, as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassFigures {
    pub started_at: f64,
    pub finished_at: f64,
    /// Ticks the pass took (more than one when the keyspace did not fit one scan budget).
    pub ticks: u32,
    pub scan_seconds: f64,
    /// Keys outside every namespace.
    pub other_keys: u64,
    pub namespaces: Vec<NamespaceFigures>,
}
