//! Reload: SIGHUP and `steward reload` apply a changed file, reject a broken one (keeping the
//! old config and setting the reload gauge to 0), and restart only what changed.

mod common;

use common::*;
use std::time::Duration;

fn reload_gauge(st: &Steward) -> Option<f64> {
    st.metric("steward_config_last_reload_successful", &[])
}

fn reloads(st: &Steward, result: &str) -> f64 {
    st.metric("steward_config_reloads_total", &[("result", result)])
        .unwrap_or(0.0)
}

const BOUND: Duration = Duration::from_secs(10);

#[test]
fn sighup_applies_changed_interval() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    let info = st.info();
    assert_eq!(info.intervals.get("postgres"), Some(&1.0), "{info:?}");
    assert_eq!(info.intervals.get("redis"), Some(&1.0), "{info:?}");

    let mut s = st.settings.clone();
    s.pg_interval = "2s".into();
    st.write_config(&s.render());
    st.signal(libc::SIGHUP);
    st.wait_until(BOUND, "info.intervals.postgres == 2", |st| {
        st.info().intervals.get("postgres") == Some(&2.0)
    });
    let info = st.info();
    assert_eq!(
        info.intervals.get("redis"),
        Some(&1.0),
        "redis untouched: {info:?}"
    );
    assert!(info.last_reload_ok);
    assert_eq!(reload_gauge(&st), Some(1.0));
    assert!(reloads(&st, "success") >= 1.0);

    // Also visible in the human `info` and in `info --json`.
    let out = st.ctl(&["info"]);
    let i: InfoReply = out.data();
    assert_eq!(i.intervals.get("postgres"), Some(&2.0));
    assert_eq!(
        i.config_file,
        st.config_path.to_string_lossy(),
        "{}",
        out.stdout
    );
    let human = st.ctl_human(&["info"]);
    assert_eq!(human.code, 0, "{human:?}");
    assert!(
        human.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{human:?}"
    );

    // The monitor runs on the new schedule and keeps working.
    st.wait_checks("postgres", 2);
    assert_eq!(st.up("postgres"), Some(true));
}

#[test]
fn sighup_with_broken_file_keeps_old_config_then_good_file_applies() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let mut st = Steward::start(&pg, &redis);
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    assert_eq!(reload_gauge(&st), Some(1.0));

    // Broken: not TOML.
    st.write_config("[postgres\ninterval = \n");
    st.signal(libc::SIGHUP);
    st.wait_until(BOUND, "reload gauge 0 after a broken file", |st| {
        reload_gauge(st) == Some(0.0)
    });
    assert!(st.is_running());
    let info = st.info();
    assert!(!info.last_reload_ok);
    assert!(
        info.last_reload_error
            .as_deref()
            .is_some_and(|e| !e.is_empty()),
        "{info:?}"
    );
    assert_eq!(
        info.intervals.get("postgres"),
        Some(&1.0),
        "old config kept: {info:?}"
    );
    assert!(reloads(&st, "failure") >= 1.0);
    st.wait_checks("postgres", 2);
    assert_eq!(st.up("postgres"), Some(true), "old config still monitoring");

    // Broken differently: valid TOML, invalid value; the log and info name the key.
    let mut s = st.settings.clone();
    s.redis_timeout = "5s".into(); // ≥ interval
    st.write_config(&s.render());
    st.signal(libc::SIGHUP);
    st.wait_until(BOUND, "the reason in info.last_reload_error", |st| {
        st.info()
            .last_reload_error
            .is_some_and(|e| e.contains("redis.timeout"))
    });
    // On the same line as the event: one event, one line.
    st.wait_until(BOUND, "the reason in the log", |st| {
        st.log()
            .lines()
            .any(|l| l.contains("config reload rejected") && l.contains("redis.timeout"))
    });
    assert_eq!(reload_gauge(&st), Some(0.0));
    assert_eq!(
        st.info().timeouts.get("redis"),
        Some(&0.5),
        "old redis timeout kept"
    );

    // A good file: applied, gauge back to 1.
    let mut s = st.settings.clone();
    s.pg_interval = "3s".into();
    st.write_config(&s.render());
    st.signal(libc::SIGHUP);
    st.wait_until(BOUND, "reload gauge back to 1", |st| {
        reload_gauge(st) == Some(1.0)
    });
    let info = st.info();
    assert!(info.last_reload_ok, "{info:?}");
    assert_eq!(info.intervals.get("postgres"), Some(&3.0), "{info:?}");
    assert!(
        st.metric("steward_config_last_reload_success_timestamp_seconds", &[])
            .unwrap_or(0.0)
            > 1.6e9
    );
    assert!(reloads(&st, "success") >= 1.0);
    assert!(st.is_running());
}

#[test]
fn reload_command_with_broken_file_exits_1_with_reason() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    let mut s = st.settings.clone();
    s.pg_timeout = "5s".into(); // ≥ interval 1s
    st.write_config(&s.render());

    let out = st.ctl(&["reload"]);
    assert_eq!(out.code, 1, "{out:?}");
    let r = out.reply();
    assert!(!r.ok, "{out:?}");
    let err = r.error.unwrap_or_default();
    assert!(
        err.contains("postgres.timeout"),
        "the reason should name the key: {err:?}"
    );

    let out = st.ctl_human(&["reload"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.all().contains("postgres.timeout"), "{out:?}");

    assert_eq!(reload_gauge(&st), Some(0.0));
    assert_eq!(
        st.info().timeouts.get("postgres"),
        Some(&0.5),
        "old config kept"
    );
    assert!(st
        .status()
        .services
        .iter()
        .any(|s| s.service == Service::Postgres));
}

#[test]
fn reload_command_restarts_only_changed_sections() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    st.wait_up("redis", true, INTERVAL * 2 + SLACK);

    // Unchanged file: nothing to do.
    let out = st.ctl(&["reload"]);
    let r: ReloadReply = out.data();
    assert!(
        r.changed.is_empty() && r.restarted.is_empty() && r.needs_restart.is_empty(),
        "{}",
        out.stdout
    );
    assert_eq!(r.config_file, st.config_path.to_string_lossy());

    let pg_task = st.task("monitor.postgres");
    let mut s = st.settings.clone();
    s.redis_interval = "2s".into();
    st.write_config(&s.render());
    let out = st.ctl(&["reload"]);
    let r: ReloadReply = out.data();
    assert_eq!(r.changed, vec!["redis".to_string()], "{}", out.stdout);
    assert_eq!(
        r.restarted,
        vec!["monitor.redis".to_string()],
        "{}",
        out.stdout
    );
    assert!(r.needs_restart.is_empty(), "{}", out.stdout);
    let pg_after = st.task("monitor.postgres");
    assert_eq!(
        pg_after.started_at, pg_task.started_at,
        "monitor.postgres was restarted"
    );
    assert_eq!(st.info().intervals.get("redis"), Some(&2.0));
    st.wait_until(BOUND, "monitor.redis running again", |st| {
        st.task("monitor.redis").state == TaskState::Running
    });
    st.wait_checks("redis", 1);
    assert_eq!(st.up("redis"), Some(true));

    // Settings that cannot change live are reported, and the daemon keeps serving where it was.
    let old_port = st.metrics_port();
    let mut s2 = s.clone();
    s2.metrics_listen = format!("127.0.0.1:{}", free_port());
    s2.state_dir = st.dir().join("state2");
    st.write_config(&s2.render());
    let out = st.ctl(&["reload"]);
    let r: ReloadReply = out.data();
    assert!(
        r.needs_restart.iter().any(|k| k == "metrics.listen"),
        "{}",
        out.stdout
    );
    assert!(
        r.needs_restart.iter().any(|k| k == "state.dir"),
        "{}",
        out.stdout
    );
    assert!(r.restarted.is_empty(), "{}", out.stdout);
    assert_eq!(http_get_full(old_port, "/-/healthy").unwrap().0, 200);
}

/// log.level applies live: at "warn" an on-request task restart (an INFO event) is not logged;
/// after reloading with "info" the same event is.
#[test]
fn reload_applies_log_level_live() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder(&pg, &redis).log_level("warn").start();
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    let restarted_lines = |st: &Steward| {
        st.log_lines_with("restarted")
            .into_iter()
            .filter(|l| l.contains("monitor.redis"))
            .count()
    };
    assert_eq!(st.ctl(&["task", "restart", "monitor.redis"]).code, 0);
    st.wait_checks("redis", 1);
    assert_eq!(restarted_lines(&st), 0, "logged at warn: {}", st.log());

    let mut s = st.settings.clone();
    s.log_level = "info".into();
    st.write_config(&s.render());
    let out = st.ctl(&["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    let r: ReloadReply = out.data();
    assert!(
        r.restarted.is_empty(),
        "a log level change restarts nothing: {}",
        out.stdout
    );
    assert!(
        !r.needs_restart.iter().any(|k| k.starts_with("log.level")),
        "{}",
        out.stdout
    );
    assert_eq!(st.ctl(&["task", "restart", "monitor.redis"]).code, 0);
    st.wait_until(BOUND, "the restart logged at info", |st| {
        restarted_lines(st) >= 1
    });
}

/// Issue 13 items 5 and 6: a change that needs a restart stays pending, against what is
/// running, until it is undone; `status` and `info` show it, and `status` shows maintenance
/// first.
#[test]
fn pending_restarts_are_tracked_against_what_runs() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    let running = st.settings.clone();
    let mut moved = running.clone();
    moved.metrics_listen = format!("127.0.0.1:{}", free_port());
    st.write_config(&moved.render());
    let r: ReloadReply = st.ctl(&["reload"]).data();
    assert_eq!(r.needs_restart, vec!["metrics.listen".to_string()]);
    // A second reload of the same file does not forget it.
    let r: ReloadReply = st.ctl(&["reload"]).data();
    assert_eq!(r.needs_restart, vec!["metrics.listen".to_string()]);
    assert_eq!(
        st.status().pending_restart,
        vec!["metrics.listen".to_string()]
    );
    assert_eq!(
        st.info().pending_restart,
        vec!["metrics.listen".to_string()]
    );
    let out = st.ctl_human(&["status"]);
    assert!(
        out.stdout
            .lines()
            .nth(1)
            .unwrap_or("")
            .contains("RESTART NEEDED to apply metrics.listen"),
        "{}",
        out.stdout
    );
    // Back to the running address: nothing pending any more.
    st.write_config(&running.render());
    let r: ReloadReply = st.ctl(&["reload"]).data();
    assert!(r.needs_restart.is_empty(), "{r:?}");
    assert!(st.status().pending_restart.is_empty());
    assert!(!st.ctl_human(&["status"]).stdout.contains("RESTART NEEDED"));

    // Maintenance, with its reason and end, on the first lines.
    assert_eq!(
        st.ctl(&["maintenance", "on", "--reason", "pg upgrade", "--for", "1h"])
            .code,
        0
    );
    let out = st.ctl_human(&["status"]);
    let second = out.stdout.lines().nth(1).unwrap_or("").to_string();
    assert!(
        second.starts_with("MAINTENANCE on")
            && second.contains("ends in")
            && second.contains("pg upgrade"),
        "{}",
        out.stdout
    );
    assert!(st.status().maintenance.is_some());
}
