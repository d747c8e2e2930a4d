//! `steward cache clear`: delete the keys matching a glob (or a namespace's prefix) without
//! blocking Redis — an incremental `SCAN MATCH` walk whose pages are removed with `UNLINK`
//! (up to `cache.pipeline_batch` keys per command, one round trip per page, the next page
//! already being scanned meanwhile). Patterns that could reach beyond the cache need `--force`.

use super::conn::{connect, failed, retry_idempotent};
use super::CacheError;
use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Keys Redis looks at per `SCAN` call: large enough for few round trips, small enough that
/// one call costs Redis well under a millisecond.
pub const SCAN_COUNT: usize = 1000;

mod pattern;
pub use pattern::{glob_escape, literal_prefix, resolve, Resolved, Target};

/// Progress and outcome of a clear; the reply of `cache_clear` and each entry of
/// `cache_clear_jobs`, so a script sees the same figures the terminal shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClearReport {
    /// The glob walked (for `--namespace`, the escaped prefix and `*`).
    pub pattern: String,
    /// The namespace the pattern lies in; absent for a forced pattern outside them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub dry_run: bool,
    /// Keys the walk found matching (a key Redis returns twice while resizing counts twice).
    pub scanned: u64,
    /// Keys `UNLINK` removed (0 in a dry run); keys gone meanwhile are not counted.
    pub deleted: u64,
    pub seconds: f64,
    /// The walk reached its end.
    pub done: bool,
}

/// Why a clear did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ClearError {
    /// Refused, or Redis unreachable before anything was done.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Redis failed part-way; the report says how far the clear got.
    #[error("{}", cut_message(report, source))]
    Cut {
        report: Box<ClearReport>,
        source: CacheError,
    },
}

fn cut_message(r: &ClearReport, source: &CacheError) -> String {
    if r.dry_run {
        format!(
            "dry run of {:?} stopped after counting {} matching keys: {source}; run it again once Redis answers",
            r.pattern, r.scanned
        )
    } else {
        format!(
            "clear of {:?} stopped after deleting {} keys ({} found so far): {source}; \
             run the same command again once Redis answers to finish the job",
            r.pattern, r.deleted, r.scanned
        )
    }
}
/// The clears running now, so that `cache_clear_jobs` can show their progress.
#[derive(Debug, Clone, Default)]
pub struct ClearJobs(Arc<Mutex<(u64, BTreeMap<u64, ClearReport>)>>);

impl ClearJobs {
    /// A snapshot of the running clears, oldest first.
    pub fn list(&self) -> Vec<ClearReport> {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.1.values().cloned().collect()
    }

    /// Registers a clear; it is removed when the returned entry is dropped.
    pub fn start(&self, report: ClearReport) -> JobEntry {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        let id = g.0;
        g.1.insert(id, report);
        JobEntry {
            jobs: self.clone(),
            id,
        }
    }
}

/// One running clear in [`ClearJobs`].
pub struct JobEntry {
    jobs: ClearJobs,
    id: u64,
}

impl JobEntry {
    fn update(&self, report: &ClearReport) {
        let mut g = self.jobs.0.lock().unwrap_or_else(|e| e.into_inner());
        g.1.insert(self.id, report.clone());
    }
}

impl Drop for JobEntry {
    fn drop(&mut self) {
        let mut g = self.jobs.0.lock().unwrap_or_else(|e| e.into_inner());
        g.1.remove(&self.id);
    }
}

/// Walks `target` and deletes what matches (counts only, with `dry_run`), publishing progress
/// in `jobs`. A Redis failure part-way returns [`ClearError::Cut`] with the figures so far;
/// running the clear again picks up the keys left.
pub async fn clear(
    cfg: &Config,
    target: &Resolved,
    dry_run: bool,
    jobs: &ClearJobs,
) -> Result<ClearReport, ClearError> {
    let started = Instant::now();
    let mut report = ClearReport {
        pattern: target.pattern.clone(),
        namespace: target.namespace.clone(),
        dry_run,
        ..ClearReport::default()
    };
    let entry = jobs.start(report.clone());
    let conn = connect(cfg).await?;
    let batch = cfg.cache.pipeline_batch.max(1);
    let mut next = Some(0u64); // cursor of the next SCAN; None once the walk is complete
    let mut pending: Vec<Vec<u8>> = Vec::new();
    loop {
        if next.is_none() && pending.is_empty() {
            break;
        }
        let keys = std::mem::take(&mut pending);
        let scan = async {
            match next {
                Some(cursor) => Some(scan_page(&conn, cursor, &target.pattern).await),
                None => None,
            }
        };
        let (scanned, deleted) = tokio::join!(scan, unlink(&conn, &keys, batch));
        let cut = |e: &redis::RedisError, command, report: &mut ClearReport| {
            report.seconds = started.elapsed().as_secs_f64();
            ClearError::Cut {
                report: Box::new(report.clone()),
                source: failed(cfg, command, e),
            }
        };
        match deleted {
            Ok(n) => report.deleted += n,
            Err(e) => return Err(cut(&e, "UNLINK", &mut report)),
        }
        match scanned {
            Some(Ok((cursor, page))) => {
                next = (cursor != 0).then_some(cursor);
                report.scanned += page.len() as u64;
                if !dry_run {
                    pending = page;
                }
            }
            Some(Err(e)) => return Err(cut(&e, "SCAN", &mut report)),
            None => {}
        }
        report.seconds = started.elapsed().as_secs_f64();
        entry.update(&report);
    }
    report.done = true;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// One `SCAN cursor MATCH pattern COUNT n`, retried on a timeout (it changes nothing).
async fn scan_page(
    conn: &redis::aio::MultiplexedConnection,
    cursor: u64,
    pattern: &str,
) -> redis::RedisResult<(u64, Vec<Vec<u8>>)> {
    retry_idempotent(|| {
        let mut c = conn.clone();
        async move {
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut c)
                .await
        }
    })
    .await
}

/// Deletes `keys` in one round trip: `UNLINK` commands of up to `batch` keys each.
async fn unlink(
    conn: &redis::aio::MultiplexedConnection,
    keys: &[Vec<u8>],
    batch: usize,
) -> redis::RedisResult<u64> {
    if keys.is_empty() {
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    for chunk in keys.chunks(batch) {
        let cmd = pipe.cmd("UNLINK");
        for k in chunk {
            cmd.arg(k.as_slice());
        }
    }
    let counts: Vec<u64> = pipe.query_async(&mut conn.clone()).await?;
    Ok(counts.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_clear_says_how_far_it_got_and_what_to_do() {
        let report = ClearReport {
            pattern: "cache:a:*".into(),
            scanned: 3000,
            deleted: 2000,
            ..ClearReport::default()
        };
        let e = ClearError::Cut {
            report: Box::new(report),
            source: CacheError::Command {
                command: "UNLINK",
                message: "timed out".into(),
            },
        }
        .to_string();
        assert!(
            e.contains("after deleting 2000 keys") && e.contains("run the same command again"),
            "{e}"
        );
    }

    #[test]
    fn jobs_are_listed_while_running() {
        let jobs = ClearJobs::default();
        let entry = jobs.start(ClearReport::default());
        entry.update(&ClearReport {
            deleted: 5,
            ..ClearReport::default()
        });
        assert_eq!(jobs.list()[0].deleted, 5);
        drop(entry);
        assert!(jobs.list().is_empty());
    }
}
