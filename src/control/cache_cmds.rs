//! The `cache_*` requests: each one runs a cache operation against Redis with the current
//! config and answers with its report.

use super::protocol::Reply;
use crate::cache::clear::{self, ClearError, ClearJobs, Target};
use crate::config::Config;
use std::sync::Arc;
use tokio::sync::watch;

// --- cache clear ----------------------------------------------------------------------------

/// `cache_clear`: checks the target against the namespaces, then clears (or counts, with
/// `dry_run`). A clear cut off by Redis replies with an error and the figures so far.
pub(super) async fn clear(
    jobs: &ClearJobs,
    metrics: &crate::metrics::Metrics,
    config: &watch::Receiver<Arc<Config>>,
    pattern: Option<String>,
    namespace: Option<String>,
    dry_run: bool,
    force: bool,
) -> Reply {
    let cfg = config.borrow().clone();
    let target = match (pattern, namespace) {
        (Some(p), None) => Target::Pattern(p),
        (None, Some(n)) => Target::Namespace(n),
        _ => return Reply::error("give either --pattern GLOB or --namespace NAME (one of them)"),
    };
    // A dry run deletes nothing, so it needs no --force to look outside the namespaces.
    let resolved = match clear::resolve(&cfg.cache, &target, force || dry_run) {
        Ok(r) => r,
        Err(e) => return Reply::error(e.to_string()),
    };
    let out = clear::clear(&cfg, &resolved, dry_run, jobs).await;
    let ran = match &out {
        Ok(r) => Some(r.seconds),
        Err(ClearError::Cut { report, .. }) => Some(report.seconds),
        Err(ClearError::Cache(_)) => None,
    };
    if let Some(secs) = ran {
        let op = &metrics.cache.operation_duration;
        op.with_label_values(&["clear"]).observe(secs);
    }
    match out {
        Ok(report) => {
            tracing::info!(
                pattern = %report.pattern,
                dry_run,
                scanned = report.scanned,
                deleted = report.deleted,
                seconds = report.seconds,
                "cache clear done"
            );
            Reply::data(&report)
        }
        Err(e) => {
            tracing::warn!(pattern = %resolved.pattern, dry_run, error = %e, "cache clear failed");
            let data = match &e {
                ClearError::Cut { report, .. } => serde_json::to_value(report).unwrap_or_default(),
                ClearError::Cache(_) => serde_json::Value::Null,
            };
            Reply {
                ok: false,
                error: Some(e.to_string()),
                data,
            }
        }
    }
}

/// `cache_clear_jobs`: the clears running now.
pub(super) fn clear_jobs(jobs: &ClearJobs) -> Reply {
    Reply::data(&jobs.list())
}

// --- cache stats ----------------------------------------------------------------------------

/// `cache_stats`: the `cache.stats` task's figures; it answers from what it stored, so a Redis
/// that is down gets a quick reply saying so, with the last complete pass.
pub(super) async fn stats(h: &crate::cache::stats::StatsHandle) -> Reply {
    match h.stats(std::time::Duration::from_secs(10)).await {
        Ok(r) => Reply::data(&r),
        Err(e) => Reply::error(e.to_string()),
    }
}

// --- cache warm-up --------------------------------------------------------------------------

/// `cache_warm_up`: fills the named namespace, or each one with a warm-up query, from
/// PostgreSQL; replies when done. A failure is one line saying how far it got; a namespace
/// being warmed up already is refused, naming that warm-up.
pub(super) async fn warm_up(
    config: &watch::Receiver<Arc<Config>>,
    metrics: &crate::metrics::Metrics,
    jobs: &crate::cache::warmup::WarmupJobs,
    namespace: Option<String>,
) -> Reply {
    let cfg = config.borrow().clone();
    match crate::cache::warmup::warm_up(&cfg, metrics, jobs, namespace.as_deref()).await {
        Ok(r) => Reply::data(&r),
        Err(e) => {
            tracing::warn!(namespace = ?namespace, error = %e, "cache warm-up failed");
            Reply::error(e.to_string())
        }
    }
}
