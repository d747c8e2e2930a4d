//! Fault injection, reload: 100 SIGHUPs, the config file rewritten before each, alternating a
//! good config (each with its own check interval) and a broken one (three kinds of breakage).
//! Each reload is awaited through `steward_config_reloads_total`. The daemon must end on the
//! last good config, count every failed reload, keep monitoring and answer `status`.

mod common;

use common::faults::*;
use common::*;
use std::time::Duration;

const SIGHUPS: usize = 100;
const BOUND: Duration = Duration::from_secs(10);

fn reloads(st: &Steward, result: &str) -> f64 {
    st.metric("steward_config_reloads_total", &[("result", result)])
        .unwrap_or(0.0)
}

/// A duration in seconds as whole milliseconds (floats from JSON and metrics compare badly).
fn ms(seconds: Option<&f64>) -> Option<u64> {
    seconds.map(|s| (s * 1000.0).round() as u64)
}

/// The PostgreSQL check interval of good config `i`, in milliseconds.
fn interval_ms(i: usize) -> u64 {
    1000 + 10 * i as u64
}

#[test]
fn a_hundred_sighups_alternating_good_and_broken_configs() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    let (ok0, failed0) = (reloads(&st, "success"), reloads(&st, "failure"));
    let mut last_good = None;

    for i in 0..SIGHUPS {
        let mut s = st.settings.clone();
        let good = i % 2 == 0;
        let text = if good {
            s.pg_interval = format!("{}ms", interval_ms(i));
            last_good = Some(i);
            s.render()
        } else {
            match (i / 2) % 3 {
                0 => "[postgres\ninterval = \n".to_string(),
                1 => {
                    s.redis_timeout = "5s".into(); // not below the interval: invalid
                    s.render()
                }
                _ => {
                    s.pg_interval = "soon".into();
                    s.render()
                }
            }
        };
        let before = reloads(&st, "success") + reloads(&st, "failure");
        st.write_config(&text);
        st.signal(libc::SIGHUP);
        st.wait_until(BOUND, &format!("reload {i} to be processed"), |st| {
            reloads(st, "success") + reloads(st, "failure") > before
        });
        let info = st.info();
        assert_eq!(info.last_reload_ok, good, "reload {i}: {info:?}");
        let expected = interval_ms(last_good.unwrap_or(0));
        assert_eq!(
            ms(info.intervals.get("postgres")),
            Some(expected),
            "reload {i} (good: {good}) left another interval: {info:?}"
        );
    }

    assert_eq!(reloads(&st, "success") - ok0, (SIGHUPS / 2) as f64);
    assert_eq!(reloads(&st, "failure") - failed0, (SIGHUPS / 2) as f64);
    assert_eq!(
        st.metric("steward_config_last_reload_successful", &[]),
        Some(0.0)
    );
    let info = st.info();
    let last = last_good.unwrap();
    assert_eq!(
        ms(info.intervals.get("postgres")),
        Some(interval_ms(last)),
        "ends on the last good config: {info:?}"
    );
    assert_eq!(ms(info.timeouts.get("redis")), Some(500), "{info:?}");
    assert!(
        info.last_reload_error
            .as_deref()
            .is_some_and(|e| e.contains("redis.timeout")),
        "the last (broken) reload says why: {info:?}"
    );

    // Still monitoring on the last good config, and answering.
    st.wait_checks("postgres", 2);
    assert_eq!(st.up("postgres"), Some(true));
    assert_eq!(st.up("redis"), Some(true));
    assert_eq!(
        ms(st
            .metric("steward_check_interval_seconds", &[("service", "postgres")])
            .as_ref()),
        Some(interval_ms(last))
    );
    assert_nothing_lost(&st, &st.dir().join("backups"));
}
