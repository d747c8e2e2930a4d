//! Monitoring history: bounded by count over a run of many checks, summary consistent with the
//! entries, outages recorded, and the `history` command's output.

mod common;

use common::*;
use std::time::Duration;
use steward::control::protocol::HistoryReply;

fn history(st: &Steward, service: &str, extra: &[&str]) -> HistoryReply {
    let mut args = vec!["history", service];
    args.extend_from_slice(extra);
    st.ctl(&args).data()
}

#[test]
fn history_stays_bounded_and_its_summary_matches_its_entries() {
    let pg = Postgres::start();
    let mut redis = Redis::start();
    let st = Steward::builder(&pg, &redis)
        .with(|s| {
            s.redis_interval = "200ms".into();
            s.redis_timeout = "100ms".into();
            s.backup += "\n[history]\nmax_entries = 8\nretention = \"1h\"\n";
        })
        .start();
    // Many more checks than the bound: at 5 per second, 20 checks take about 4 s.
    st.wait_until(Duration::from_secs(20), "20 redis checks", |st| {
        st.metric(
            "steward_check_duration_seconds_count",
            &[("service", "redis"), ("check", "ping")],
        )
        .unwrap_or(0.0)
            >= 20.0
    });
    redis.kill();
    st.wait_up("redis", false, Duration::from_secs(5));
    st.wait_until(
        Duration::from_secs(10),
        "two failed checks in the history",
        |st| {
            history(st, "redis", &[])
                .entries
                .iter()
                .filter(|e| !e.ok)
                .count()
                >= 2
        },
    );
    redis.restart();
    st.wait_until(
        Duration::from_secs(10),
        "an ok check after the outage",
        |st| {
            history(st, "redis", &[])
                .entries
                .last()
                .is_some_and(|e| e.ok)
        },
    );
    let h = history(&st, "redis", &[]);
    assert!(
        h.entries.len() <= 8,
        "history exceeded max_entries: {}",
        h.entries.len()
    );
    assert_eq!(h.entries.len(), 8, "the ring fills up to its bound");
    assert!(
        h.entries.windows(2).all(|w| w[0].at <= w[1].at),
        "oldest first"
    );
    // --last N: the newest N entries, the summary still over all of them.
    let newest = history(&st, "redis", &["--last", "3"]);
    assert_eq!(newest.entries.len(), 3);
    // (Checks go on meanwhile, so they are compared by order, not by time.)
    assert!(newest.entries.first().map(|e| e.at) > h.entries.first().map(|e| e.at));
    assert_eq!(newest.summary.entries, 8);
    let s = &h.summary;
    assert_eq!(s.entries, h.entries.len());
    let ok = h.entries.iter().filter(|e| e.ok).count();
    let availability = ok as f64 / h.entries.len() as f64;
    assert!(
        (s.availability.unwrap() - availability).abs() < 1e-9,
        "{s:?}"
    );
    let lat: Vec<f64> = h
        .entries
        .iter()
        .filter(|e| e.ok)
        .filter_map(|e| e.latency_seconds)
        .collect();
    let max = lat.iter().cloned().fold(f64::MIN, f64::max);
    let min = lat.iter().cloned().fold(f64::MAX, f64::min);
    assert_eq!(s.latency_max, Some(max));
    assert_eq!(s.latency_min, Some(min));
    assert!(s.incidents >= 1, "the outage is an incident: {s:?}");
    assert_eq!(s.from, h.entries.first().map(|e| e.at));
    assert_eq!(s.to, h.entries.last().map(|e| e.at));
    // A window shorter than the history holds fewer entries.
    let recent = history(&st, "redis", &["--since", "500ms"]);
    assert!(
        recent.entries.len() < h.entries.len(),
        "{} vs {}",
        recent.entries.len(),
        h.entries.len()
    );
    // The human output lists entries and the summary line.
    let human = st.ctl_human(&["history", "redis"]);
    assert_eq!(human.code, 0, "{human:?}");
    assert!(
        human.stdout.contains("DOWN") && human.stdout.contains("availability"),
        "{}",
        human.stdout
    );
    // The other service has its own history.
    assert!(!history(&st, "postgres", &[]).entries.is_empty());
}
