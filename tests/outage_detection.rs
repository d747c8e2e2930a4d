//! Outage detection (issue 16): a server that dies between two checks is reported down before
//! the next scheduled check would have run (its connections closing wake the monitor), a
//! refused connection is reported at once instead of after the pool's wait, and a check of a
//! server that answers nothing still ends at its timeout.

mod common;

use common::*;
use std::time::Duration;
use steward::model::check::{CheckResult, HealthReply};

/// The check interval of these tests: long, so that only an unscheduled check can be seen.
const LONG_INTERVAL: Duration = Duration::from_secs(60);

fn long_intervals(s: &mut Settings) {
    for i in [&mut s.pg_interval, &mut s.redis_interval] {
        *i = "60s".into();
    }
    for t in [&mut s.pg_timeout, &mut s.redis_timeout] {
        *t = "5s".into();
    }
}

/// The check in a `health`/`check` reply; the client exits 1 when the service is down.
fn reported(out: CmdOutput) -> CheckResult {
    let r = out.reply();
    assert!(r.ok, "error reply: {out:?}");
    let h: HealthReply = serde_json::from_value(r.data).unwrap();
    assert_eq!(out.code, if h.healthy { 0 } else { 1 }, "{out:?}");
    h.services[0].last.clone().expect("checked")
}

/// The newest check of `service` the daemon holds (no new check is made).
fn last_check(st: &Steward, service: &str) -> CheckResult {
    reported(st.ctl(&["health", service]))
}

/// `steward check SERVICE` (a check made now).
fn check_now(st: &Steward, service: &str) -> CheckResult {
    reported(st.ctl(&["check", service]))
}

/// Kills a server right after a scheduled check found it up and waits for steward_up 0; the
/// result that said so must come before the next scheduled check was due.
fn down_before_the_next_check(st: &Steward, service: &str, kill: impl FnOnce()) {
    st.wait_up(service, true, Duration::from_secs(60));
    let up = last_check(st, service);
    assert!(up.up, "{up:?}");
    let killed_at = steward::unix_now();
    kill();
    st.wait_until(
        Duration::from_secs(50),
        &format!("steward_up{{service=\"{service}\"}} 0 after the kill"),
        |st| st.up(service) == Some(false),
    );
    let down = last_check(st, service);
    assert!(!down.up, "{down:?}");
    assert!(
        down.checked_at < up.checked_at + LONG_INTERVAL.as_secs_f64(),
        "down was published by the scheduled check, not before it: up at {}, down at {}",
        up.checked_at,
        down.checked_at
    );
    assert!(
        down.checked_at - killed_at < 20.0,
        "down {} s after the kill; a lost connection should have woken the monitor",
        down.checked_at - killed_at
    );
}

#[test]
fn killed_redis_is_down_before_the_next_scheduled_check() {
    let pg = Postgres::start();
    let mut redis = Redis::start();
    let st = Steward::builder(&pg, &redis).with(long_intervals).start();
    down_before_the_next_check(&st, "redis", || redis.kill());
    // PostgreSQL went on undisturbed.
    assert_eq!(st.up("postgres"), Some(true));
}

#[test]
fn stopped_postgres_is_down_before_the_next_scheduled_check() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder(&pg, &redis).with(long_intervals).start();
    down_before_the_next_check(&st, "postgres", || pg.kill9());
    assert_eq!(st.up("redis"), Some(true));
}

/// Nothing listens on the configured ports: `steward check` answers with the refusal, well
/// before the pool's own wait (most of the 30 s timeout) would have ended.
#[test]
fn check_against_a_refused_port_returns_at_once_with_the_refusal() {
    let timeout = 30.0;
    let st = Steward::builder_without_services()
        .with(|s| {
            for i in [&mut s.pg_interval, &mut s.redis_interval] {
                *i = "120s".into();
            }
            for t in [&mut s.pg_timeout, &mut s.redis_timeout] {
                *t = "30s".into();
            }
        })
        .start();
    for service in ["redis", "postgres"] {
        let r = check_now(&st, service);
        assert!(!r.up, "{r:?}");
        let error = r.error.clone().unwrap_or_default();
        assert!(
            error.to_lowercase().contains("refused"),
            "the error names the refusal: {r:?}"
        );
        assert!(
            r.duration_seconds < timeout / 2.0,
            "the check waited for the pool instead of taking the refusal: {r:?}"
        );
        assert_eq!(st.up(service), Some(false));
    }
}

/// A server that accepts connections and answers nothing (SIGSTOP): the check ends at its
/// timeout, the whole of it (connect, statistics, write/read) within the timeout plus the
/// monitor's slack of 1 s, and says what timed out.
#[test]
fn a_hung_server_is_bounded_by_the_timeout() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder(&pg, &redis)
        .with(|s| {
            s.redis_interval = "60s".into();
            s.redis_timeout = "2s".into();
        })
        .start();
    st.wait_up("redis", true, Duration::from_secs(60));
    send_signal(redis.pid(), libc::SIGSTOP);
    let r = check_now(&st, "redis");
    send_signal(redis.pid(), libc::SIGCONT);
    assert!(!r.up, "{r:?}");
    // 2 s timeout + 1 s slack, and 1 s for a busy machine's timers.
    assert!(r.duration_seconds <= 4.0, "{r:?}");
    assert!(
        r.error.as_deref().unwrap_or_default().contains("within"),
        "the error says what timed out: {r:?}"
    );
    // The server is back: so is the service, at the next check.
    let again = check_now(&st, "redis");
    assert!(again.up, "{again:?}");
}
