//! Warm-up: fills a namespace from PostgreSQL. The namespace's `warmup.query` is streamed
//! ([`super::warmup_read`]: rows checked by the codec, values compressed by the policy) and
//! `SET prefix+suffix value PX ttl` goes to Redis in pipelines of `cache.pipeline_batch`
//! ([`super::warmup_write`]). Between the two sit at most [`BUILT_AHEAD`] pipelines, so reading,
//! encoding and writing overlap without a backlog: memory stays bounded whatever the result's
//! size. This module picks the namespaces, opens the connections and reports.

use super::codec::Compress;
pub use super::warmup_jobs::{Origin, WarmupJobs};
use super::warmup_read::{read, Plan};
use super::warmup_report::stopped;
pub use super::warmup_report::{RejectedRow, WarmupError, WarmupReply, WarmupReport};
use super::{conn, CacheError};
use crate::config::{Config, NamespaceConfig};
use crate::metrics::Metrics;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

/// Pipelines built ahead of the Redis writer: enough to keep both sides busy, little memory.
const BUILT_AHEAD: usize = 4;

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
