//! What a warm-up reports: its outcome per namespace, the rows it could not write, and why
//! one could not be done (kept apart so that reading and writing report without importing
//! the module that drives them).

use super::warmup_jobs::Origin;
use super::CacheError;
use serde::{Deserialize, Serialize};

/// Why a warm-up could not be done (or finished); every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum WarmupError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("namespace {name:?} has no warm-up query ({}); add [cache.namespace.warmup] query = \"SELECT key_suffix, value FROM …\" to it", with_query_list(.with_query))]
    NoQuery {
        name: String,
        /// The namespaces that have one, to name in the message.
        with_query: Vec<String>,
    },
    #[error(
        "no cache namespace has a warm-up query; add [cache.namespace.warmup] to one, or name one"
    )]
    NothingToWarm,
    #[error("cannot reach PostgreSQL: {0} (is it running? `steward check postgres` tells more)")]
    PgUnreachable(String),
    #[error("the warm-up query of namespace {namespace:?} failed: {message}; check its [cache.namespace.warmup] query")]
    Query { namespace: String, message: String },
    #[error("the warm-up query of namespace {namespace:?} returns {got} column(s); it must return two: the key suffix, then the value")]
    Columns { namespace: String, got: usize },
    #[error("{key} must be one read-only SELECT-like statement (SELECT, VALUES, TABLE) returning the key suffix and the value; {message}")]
    NotSelect { key: String, message: String },
    #[error("the warm-up query of namespace {namespace:?} was cancelled: {message}; a warm-up query may run for cache.warmup_timeout ({limit}), its rows streaming included: make it faster or raise cache.warmup_timeout")]
    Cancelled {
        namespace: String,
        message: String,
        limit: String,
    },
    #[error("a warm-up of namespace {namespace:?} is already running (started by {origin} {running_for} ago); two warm-ups of one namespace never run at once: wait for it to finish")]
    Busy {
        namespace: String,
        origin: Origin,
        running_for: String,
    },
    #[error("{source} (already warmed up: {done})")]
    After {
        done: String,
        source: Box<WarmupError>,
    },
    #[error("warm-up of namespace {namespace:?} stopped after {written} keys written: {reason}; running it again completes it")]
    Stopped {
        namespace: String,
        written: u64,
        reason: String,
    },
}

impl WarmupError {
    pub(super) fn no_query(name: &str, cache: &crate::config::CacheConfig) -> Self {
        let with_query = cache
            .namespaces
            .iter()
            .filter(|n| n.warmup.is_some())
            .map(|n| n.name.clone())
            .collect();
        WarmupError::NoQuery {
            name: name.to_string(),
            with_query,
        }
    }
}

fn with_query_list(names: &[String]) -> String {
    match names {
        [] => "no namespace has one".to_string(),
        names => format!("namespaces with one: {}", names.join(", ")),
    }
}

/// One namespace's warm-up, as `steward cache warm-up` reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WarmupReport {
    pub namespace: String,
    /// Rows the query returned.
    pub rows_read: u64,
    /// SETs Redis confirmed (rows read minus rows rejected; a suffix returned twice is two).
    pub keys_written: u64,
    /// Rows not written: NULL or empty suffix, NULL value, a value the codec refused, or a
    /// suffix or value over `cache.max_value_bytes`.
    pub rows_rejected: u64,
    /// The first rejected rows with the reason, so the operator can fix them.
    #[serde(default)]
    pub rejected: Vec<RejectedRow>,
    /// Values stored gzip-compressed.
    pub compressed: u64,
    /// Bytes of the written values as the query gave them.
    pub bytes_before: u64,
    /// Bytes of the written values as stored (after compression).
    pub bytes_after: u64,
    /// TTL given to every key, in seconds.
    pub ttl_seconds: f64,
    pub duration_seconds: f64,
}

/// A row that was read but not written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedRow {
    /// 1-based position in the query's result.
    pub row: u64,
    /// The key suffix (column 1), when it was not NULL.
    pub suffix: Option<String>,
    pub reason: String,
}

/// Reply of `steward cache warm-up`: one report per namespace warmed, in config order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WarmupReply {
    pub namespaces: Vec<WarmupReport>,
}

pub(super) fn stopped(namespace: &str, written: u64, reason: String) -> WarmupError {
    WarmupError::Stopped {
        namespace: namespace.into(),
        written,
        reason,
    }
}
