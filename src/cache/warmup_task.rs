//! The `cache.warmup` task: runs each namespace's warm-up at the times of its
//! `warmup.schedule` (a 5-field cron expression, read in UTC, so there are no daylight-saving
//! gaps to handle). It follows the config: a reload that changes the schedules takes effect at
//! once, without a restart. A failed warm-up is logged and tried again at its next time; the
//! task itself keeps running. A namespace still being warmed up by a `steward cache warm-up`
//! request when its time comes is skipped until its next time, with a log line.

use super::warmup::{self, Origin, WarmupError, WarmupJobs};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::supervisor::TaskResult;
use chrono::{DateTime, Utc};
use croner::Cron;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The namespaces with a schedule and their parsed expressions (validated at load, so a bad one
/// here is skipped with a warning rather than stopping the others).
fn schedules(cfg: &Config) -> Vec<(String, Cron)> {
    let mut out = Vec::new();
    for ns in &cfg.cache.namespaces {
        let Some(expr) = ns.warmup.as_ref().and_then(|w| w.schedule.as_deref()) else {
            continue;
        };
        match Cron::from_str(expr.trim()) {
            Ok(c) => out.push((ns.name.clone(), c)),
            Err(e) => tracing::warn!(namespace = %ns.name, error = %e, "warm-up schedule ignored"),
        }
    }
    out
}

/// The earliest next run strictly after `now` and the namespaces due then.
fn next_due(list: &[(String, Cron)], now: DateTime<Utc>) -> Option<(DateTime<Utc>, Vec<String>)> {
    let runs: Vec<(DateTime<Utc>, &String)> = list
        .iter()
        .filter_map(|(name, c)| Some((c.find_next_occurrence(&now, false).ok()?, name)))
        .collect();
    let at = runs.iter().map(|(t, _)| *t).min()?;
    let names = runs
        .iter()
        .filter(|(t, _)| *t == at)
        .map(|(_, n)| (*n).clone())
        .collect();
    Some((at, names))
}

/// One run of the task, until cancelled.
pub async fn run(
    mut config: watch::Receiver<Arc<Config>>,
    metrics: Arc<Metrics>,
    jobs: WarmupJobs,
    cancel: CancellationToken,
) -> TaskResult {
    'config: loop {
        let cfg = config.borrow_and_update().clone();
        let list = schedules(&cfg);
        loop {
            let Some((at, names)) = next_due(&list, Utc::now()) else {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    changed = config.changed() => match changed {
                        Ok(()) => continue 'config,
                        Err(_) => { cancel.cancelled().await; return Ok(()) }
                    },
                }
            };
            // Wall-clock time: re-check at least every minute, so a clock change is noticed.
            loop {
                let left = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                if left.is_zero() {
                    break;
                }
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(left.min(Duration::from_secs(60))) => {}
                    Ok(()) = config.changed() => continue 'config,
                }
            }
            for name in names {
                let Some(ns) = cfg.cache.namespace(&name) else {
                    continue;
                };
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    out = warmup::namespace(&cfg, &metrics, &jobs, ns, Origin::Schedule) => match out {
                        Ok(_) => {}
                        Err(e @ WarmupError::Busy { .. }) => {
                            tracing::info!(namespace = %name, reason = %e, "scheduled cache warm-up skipped; it runs again at its next scheduled time");
                        }
                        Err(e) => {
                            tracing::warn!(namespace = %name, error = %e, "scheduled cache warm-up failed; it runs again at its next scheduled time");
                        }
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cron(s: &str) -> Cron {
        Cron::from_str(s).unwrap()
    }

    #[test]
    fn the_earliest_namespaces_are_due_together() {
        let list = vec![
            ("hourly".to_string(), cron("0 * * * *")),
            ("quarter".to_string(), cron("*/15 * * * *")),
            ("daily".to_string(), cron("0 3 * * *")),
        ];
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 2, 50, 0).unwrap();
        let (at, names) = next_due(&list, now).unwrap();
        assert_eq!(at, Utc.with_ymd_and_hms(2026, 11, 26, 3, 0, 0).unwrap());
        assert_eq!(names, vec!["hourly", "quarter", "daily"]);
        // Strictly after: at 03:00:00 the next is 03:15.
        let (at, names) = next_due(&list, at).unwrap();
        assert_eq!(at, Utc.with_ymd_and_hms(2026, 11, 26, 3, 15, 0).unwrap());
        assert_eq!(names, vec!["quarter"]);
        assert!(next_due(&[], now).is_none());
    }

    #[test]
    fn only_namespaces_with_a_schedule_are_scheduled() {
        let mut cfg = Config::default();
        let toml = r#"
            [[namespace]]
            name = "a"
            prefix = "cache:a:"
            ttl = "1m"
            warmup = { query = "SELECT 1, 2", schedule = "*/5 * * * *" }
            [[namespace]]
            name = "b"
            prefix = "cache:b:"
            ttl = "1m"
            warmup = { query = "SELECT 1, 2" }
        "#;
        cfg.cache = toml::from_str(toml).unwrap();
        let s = schedules(&cfg);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].0, "a");
    }
}
