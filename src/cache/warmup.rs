//! Warm-up: fills a namespace from PostgreSQL. The namespace's `warmup.query` is streamed
//! ([`super::warmup_read`]: rows checked by the codec, values compressed by the policy) and
//! `SET prefix+suffix value PX ttl` goes to Redis in pipelines of `cache.pipeline_batch`
//! ([`super::warmup_write`]). Between the two sit at most [`BUILT_AHEAD`] pipelines, so reading,
//! encoding and writing overlap without a backlog: memory stays bounded whatever the result's
//! size. This module picks the namespaces, opens the connections and reports.

use super::codec::Compress;
pub use super::warmup_jobs::{Origin, WarmupJobs};
use super::warmup_read::{read, Plan};
use super::{conn, CacheError};
use crate::config::{Config, NamespaceConfig};
use crate::metrics::Metrics;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

/// Pipelines built ahead of the Redis writer: enough to keep both sides busy, little memory.
const BUILT_AHEAD: usize = 4;

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
    fn no_query(name: &str, cache: &crate::config::CacheConfig) -> Self {
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

/// Warms up `name`, or every namespace that has a warm-up query when `None`, one after the
/// other, as asked by a control request. Stops at the first failure (a namespace being warmed
/// up already is one), naming the namespaces already done.
pub async fn warm_up(
    cfg: &Config,
    metrics: &Metrics,
    jobs: &WarmupJobs,
    name: Option<&str>,
) -> Result<WarmupReply, WarmupError> {
    let targets: Vec<&NamespaceConfig> = match name {
        Some(n) => {
            let ns = cfg
                .cache
                .namespace(n)
                .ok_or_else(|| CacheError::unknown_namespace(n, &cfg.cache))?;
            if ns.warmup.is_none() {
                return Err(WarmupError::no_query(n, &cfg.cache));
            }
            vec![ns]
        }
        None => cfg
            .cache
            .namespaces
            .iter()
            .filter(|n| n.warmup.is_some())
            .collect(),
    };
    if targets.is_empty() {
        return Err(WarmupError::NothingToWarm);
    }
    let mut reply = WarmupReply::default();
    for ns in targets {
        match namespace(cfg, metrics, jobs, ns, Origin::Request).await {
            Ok(report) => reply.namespaces.push(report),
            Err(e) if reply.namespaces.is_empty() => return Err(e),
            Err(e) => {
                let done: Vec<&str> = reply.namespaces.iter().map(|r| &*r.namespace).collect();
                let (done, source) = (done.join(", "), Box::new(e));
                return Err(WarmupError::After { done, source });
            }
        }
    }
    Ok(reply)
}

/// Warms up one namespace (it must have a warm-up query) unless it is being warmed up already;
/// logs and times the result.
pub async fn namespace(
    cfg: &Config,
    metrics: &Metrics,
    jobs: &WarmupJobs,
    ns: &NamespaceConfig,
    origin: Origin,
) -> Result<WarmupReport, WarmupError> {
    let query = match &ns.warmup {
        Some(w) => w.query.clone(),
        None => {
            return Err(WarmupError::NoQuery {
                name: ns.name.clone(),
                with_query: Vec::new(),
            })
        }
    };
    let _claim = jobs
        .claim(&ns.name, origin)
        .map_err(|b| WarmupError::Busy {
            namespace: ns.name.clone(),
            origin: b.origin,
            running_for: humantime::format_duration(Duration::from_secs(b.running_for.as_secs()))
                .to_string(),
        })?;
    let started = Instant::now();
    // Redis first: no point in reading PostgreSQL when nothing can be written.
    let redis = conn::connect(cfg).await?;
    let pg = pg_connect(cfg).await?;
    let index = cfg.cache.namespaces.iter().position(|n| n.name == ns.name);
    let plan = Plan {
        namespace: ns.name.clone(),
        key: format!(
            "cache.namespace[{}] ({}).warmup.query",
            index.unwrap_or_default(),
            ns.name
        ),
        prefix: ns.prefix.clone(),
        codec: ns.codec,
        compress: Compress {
            enabled: ns.compress,
            threshold: cfg.cache.compression_threshold,
        },
        ttl_ms: ns.ttl.as_millis().max(1) as u64,
        batch: cfg.cache.pipeline_batch.max(1),
        max_bytes: cfg.cache.max_value_bytes,
        timeout: cfg.cache.warmup_timeout,
    };
    let (tx, rx) = mpsc::channel(BUILT_AHEAD);
    let scrubber = cfg.scrubber();
    let cancel = pg.cancel_token();
    let reader = AbortOnDropHandle::new(tokio::spawn(read(pg, query, plan, tx, scrubber)));
    let written = super::warmup_write::write(cfg, redis, rx, &ns.name).await;
    if written.is_err() {
        // Otherwise the server would still send (and the connection drain) the rest of the rows.
        tokio::spawn(async move { cancel.cancel_query(tokio_postgres::NoTls).await });
    }
    let mut report = match (written, reader.await) {
        (Err(e), _) => return Err(e),
        (Ok(n), Err(e)) => return Err(stopped(&ns.name, n, format!("the row reader failed: {e}"))),
        (Ok(n), Ok(report)) => WarmupReport {
            keys_written: n,
            ..report
        },
    };
    report.ttl_seconds = ns.ttl.as_secs_f64();
    report.duration_seconds = started.elapsed().as_secs_f64();
    metrics
        .cache
        .operation_duration
        .with_label_values(&["warmup"])
        .observe(report.duration_seconds);
    tracing::info!(
        namespace = %ns.name,
        rows = report.rows_read,
        keys = report.keys_written,
        rejected = report.rows_rejected,
        bytes_before = report.bytes_before,
        bytes_after = report.bytes_after,
        seconds = report.duration_seconds,
        "cache warm-up done"
    );
    Ok(report)
}

/// A direct connection for the query (the monitor's pool has a statement timeout meant for
/// probes), opened within `postgres.timeout`; the settings come from `postgres.url` as for
/// backups.
async fn pg_connect(cfg: &Config) -> Result<tokio_postgres::Client, WarmupError> {
    let scrubber = cfg.scrubber();
    let target = crate::backup::pgconn::PgTarget::new(&cfg.postgres.url, None)
        .map_err(|e| WarmupError::PgUnreachable(scrubber.scrub(&e.to_string())))?;
    let timeout = cfg.postgres.timeout;
    match tokio::time::timeout(timeout, target.connect()).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(WarmupError::PgUnreachable(
            scrubber.scrub(&crate::monitor::postgres::describe(&e)),
        )),
        Err(_) => Err(WarmupError::PgUnreachable(format!(
            "no connection within {} (postgres.timeout)",
            humantime::format_duration(timeout)
        ))),
    }
}

pub(super) fn stopped(namespace: &str, written: u64, reason: String) -> WarmupError {
    WarmupError::Stopped {
        namespace: namespace.into(),
        written,
        reason,
    }
}
