//! Monitoring against real servers: both up, metrics lint-clean and truthful; a service that
//! goes away is reported down within interval + timeout and up again when it returns, without
//! restarting steward, with one log line per change.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Metric names issue 2 requires on /metrics.
const REQUIRED: &[&str] = &[
    "steward_up",
    "steward_check_duration_seconds_bucket",
    "steward_check_duration_seconds_sum",
    "steward_check_duration_seconds_count",
    "steward_last_check_timestamp_seconds",
    "steward_check_failures_total",
    "steward_write_read_test_success",
    "steward_postgres_connections",
    "steward_postgres_max_connections",
    "steward_postgres_database_size_bytes",
    "steward_postgres_server_version_num",
    "steward_redis_memory_used_bytes",
    "steward_redis_memory_max_bytes",
    "steward_redis_cache_hit_ratio",
    "steward_redis_evicted_keys_total",
    "steward_redis_connected_clients",
    "steward_pool_connections",
    "steward_pool_max_connections",
    "steward_task_restarts_total",
    "steward_task_up",
    "steward_config_last_reload_successful",
    "steward_build_info",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_start_time_seconds",
];

#[test]
fn both_up_within_two_intervals_and_metrics_lint_clean() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    let bound = INTERVAL * 2 + SLACK;
    let elapsed = st.spawned_at.elapsed();
    for svc in ["postgres", "redis"] {
        st.wait_up(
            svc,
            true,
            bound
                .saturating_sub(st.spawned_at.elapsed())
                .max(Duration::from_millis(100)),
        );
    }
    assert!(
        st.spawned_at.elapsed() <= bound,
        "up after {:?} (startup took {elapsed:?})",
        st.spawned_at.elapsed()
    );
    // Let every check (write/read included) have run at least once more.
    st.wait_checks("postgres", 1);
    st.wait_checks("redis", 1);
    // The per-database figures come from the collector's database group.
    st.wait_until(Duration::from_secs(60), "the database group to run", |st| {
        st.metric("steward_postgres_collector_up", &[("group", "database")]) == Some(1.0)
    });

    let body = st.metrics();
    let (ok, text) = promtool_check_metrics(&body);
    assert!(
        ok && text.trim().is_empty(),
        "promtool check metrics reported:\n{text}\n--- /metrics\n{body}"
    );

    let samples = parse_metrics(&body);
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|n| !samples.iter().any(|s| s.name == *n))
        .collect();
    assert!(missing.is_empty(), "/metrics lacks {missing:?}\n{body}");
    let v = |name: &str, labels: &[(&str, &str)]| {
        metric_value(&body, name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in\n{body}"))
    };
    // The numbers tell the truth about these servers.
    assert_eq!(
        v(
            "steward_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(
        v("steward_postgres_max_connections", &[]),
        30.0,
        "harness sets max_connections = 30"
    );
    assert!(v("steward_postgres_server_version_num", &[]) >= 150000.0);
    assert!(v("steward_postgres_connections", &[]) >= 1.0);
    assert!(
        v(
            "steward_postgres_database_size_bytes",
            &[("database", PG_DB)]
        ) > 1_000_000.0
    );
    assert_eq!(
        v("steward_redis_memory_max_bytes", &[]),
        0.0,
        "redis started without maxmemory"
    );
    assert!(v("steward_redis_memory_used_bytes", &[]) > 100_000.0);
    assert!(v("steward_redis_connected_clients", &[]) >= 1.0);
    for svc in ["postgres", "redis"] {
        assert_eq!(
            v("steward_write_read_test_success", &[("service", svc)]),
            1.0,
            "{svc} write/read test"
        );
        assert!(v("steward_last_check_timestamp_seconds", &[("service", svc)]) > 1.6e9);
        assert!(
            v(
                "steward_check_duration_seconds_count",
                &[("service", svc), ("check", "ping")]
            ) >= 1.0
        );
        assert!(v("steward_pool_max_connections", &[("service", svc)]) >= 1.0);
    }
    assert_eq!(
        v("steward_pool_max_connections", &[("service", "postgres")]),
        4.0
    );
    assert_eq!(
        v("steward_pool_max_connections", &[("service", "redis")]),
        50.0
    );
    for task in ["monitor.postgres", "monitor.redis", "http", "control"] {
        assert_eq!(v("steward_task_up", &[("task", task)]), 1.0, "task {task}");
        assert_eq!(
            v("steward_task_restarts_total", &[("task", task)]),
            0.0,
            "task {task}"
        );
    }
    assert_eq!(v("steward_config_last_reload_successful", &[]), 1.0);

    // The HTTP side endpoints.
    let (code, health) = st.http_get("/health");
    assert_eq!(code, 200, "{health}");
    let h: HealthReply = serde_json::from_str(&health)
        .unwrap_or_else(|e| panic!("/health is not a HealthReply ({e}): {health}"));
    assert!(h.healthy, "{health}");
    assert_eq!(st.http_get("/-/healthy").0, 200);
    assert_eq!(st.http_get("/-/ready").0, 200);
    assert_eq!(st.http_get("/no-such-page").0, 404);
}

#[test]
fn redis_maxmemory_is_reported() {
    let pg = Postgres::start();
    let redis = Redis::start();
    redis
        .command(&["CONFIG", "SET", "maxmemory", "10mb"])
        .unwrap();
    redis
        .command(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"])
        .unwrap();
    let st = Steward::start(&pg, &redis);
    st.wait_up("redis", true, INTERVAL * 2 + SLACK);
    st.wait_checks("redis", 1);
    let body = st.metrics();
    assert_eq!(
        metric_value(&body, "steward_redis_memory_max_bytes", &[]),
        Some(10.0 * 1024.0 * 1024.0),
        "{body}"
    );
    assert_eq!(
        metric_value(
            &body,
            "steward_redis_info",
            &[("maxmemory_policy", "allkeys-lru")]
        ),
        Some(1.0),
        "{body}"
    );
}

/// Asserts steward did not restart: same process, still running, its own idea of its pid
/// unchanged, and its uptime kept growing.
fn assert_not_restarted(st: &mut Steward, before: &InfoReply) {
    assert!(st.is_running(), "steward exited\n{}", tail(&st.log(), 40));
    let now = st.info();
    assert_eq!(now.pid, before.pid, "steward's pid changed");
    assert_eq!(now.pid, st.pid());
    assert_eq!(now.started_at, before.started_at, "steward restarted");
    assert!(now.uptime_seconds > before.uptime_seconds);
}

/// The log says `down` once and `up again` once for `svc`.
fn assert_logged_once(st: &Steward, svc: &str) {
    let down = st.log_lines_with(&format!("{svc} is down"));
    let up = st.log_lines_with(&format!("{svc} is up again"));
    assert_eq!(
        down.len(),
        1,
        "want one '{svc} is down' line, got {down:#?}\n--- log\n{}",
        tail(&st.log(), 80)
    );
    assert_eq!(
        up.len(),
        1,
        "want one '{svc} is up again' line, got {up:#?}\n--- log\n{}",
        tail(&st.log(), 80)
    );
}

#[test]
fn postgres_stopped_then_started_again() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let mut st = Steward::builder(&pg, &redis).log_level("info").start();
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    let before = st.info();

    pg.stop();
    let stopped = Instant::now();
    st.wait_up("postgres", false, INTERVAL + TIMEOUT + SLACK);
    eprintln!(
        "postgres reported down {:?} after the stop",
        stopped.elapsed()
    );
    // While it is down: steward serves, /health says 503, redis is unaffected, several checks fail.
    let (code, body) = st.http_get("/health");
    assert_eq!(code, 503, "{body}");
    let h: HealthReply = serde_json::from_str(&body).unwrap();
    assert!(!h.healthy);
    let pgr = h
        .services
        .iter()
        .find(|s| s.service == Service::Postgres)
        .unwrap();
    let last = pgr.last.as_ref().expect("a check result");
    assert!(
        !last.up && last.error.as_deref().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert_eq!(st.up("redis"), Some(true));
    st.wait_checks("postgres", 3);
    assert_eq!(st.up("postgres"), Some(false));
    assert!(
        st.metric(
            "steward_check_failures_total",
            &[("service", "postgres"), ("check", "ping")]
        )
        .unwrap_or(0.0)
            >= 1.0
    );

    pg.start_again();
    let started = Instant::now();
    st.wait_up("postgres", true, INTERVAL + TIMEOUT + SLACK);
    eprintln!(
        "postgres reported up {:?} after the start",
        started.elapsed()
    );
    st.wait_checks("postgres", 2);
    assert_eq!(st.up("postgres"), Some(true));
    assert_eq!(st.http_get("/health").0, 200);
    assert_not_restarted(&mut st, &before);
    assert_logged_once(&st, "postgres");
}

#[test]
fn postgres_killed_then_started_again() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let mut st = Steward::start(&pg, &redis);
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    let before = st.info();
    pg.kill9();
    st.wait_up("postgres", false, INTERVAL + TIMEOUT + SLACK);
    pg.start_again();
    st.wait_up("postgres", true, INTERVAL + TIMEOUT + SLACK);
    // The write/read test works again on the new server process.
    st.wait_checks("postgres", 1);
    assert_eq!(
        st.metric(
            "steward_write_read_test_success",
            &[("service", "postgres")]
        ),
        Some(1.0)
    );
    assert_not_restarted(&mut st, &before);
}

#[test]
fn redis_killed_then_restarted() {
    let pg = Postgres::start();
    let mut redis = Redis::start();
    let mut st = Steward::builder(&pg, &redis).log_level("info").start();
    st.wait_up("redis", true, INTERVAL * 2 + SLACK);
    let before = st.info();

    redis.kill();
    let killed = Instant::now();
    st.wait_up("redis", false, INTERVAL + TIMEOUT + SLACK);
    eprintln!("redis reported down {:?} after SIGKILL", killed.elapsed());
    let (code, body) = st.http_get("/health");
    assert_eq!(code, 503, "{body}");
    assert_eq!(st.up("postgres"), Some(true));
    st.wait_checks("redis", 3);
    assert_eq!(st.up("redis"), Some(false));

    redis.restart();
    let restarted = Instant::now();
    st.wait_up("redis", true, INTERVAL + TIMEOUT + SLACK);
    eprintln!(
        "redis reported up {:?} after the restart",
        restarted.elapsed()
    );
    st.wait_checks("redis", 2);
    assert_eq!(st.up("redis"), Some(true));
    assert_eq!(
        st.metric("steward_write_read_test_success", &[("service", "redis")]),
        Some(1.0)
    );
    assert_eq!(st.http_get("/health").0, 200);
    assert_not_restarted(&mut st, &before);
    assert_logged_once(&st, "redis");
}

#[test]
fn check_command_probes_now_and_reports_write_read() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    let t0 = steward::unix_now();
    let out = st.ctl(&["check"]);
    let h: HealthReply = out.data();
    assert!(h.healthy, "{}", out.stdout);
    for svc in Service::ALL {
        let r = h
            .services
            .iter()
            .find(|s| s.service == svc)
            .unwrap_or_else(|| panic!("{svc} missing: {}", out.stdout));
        let last = r
            .last
            .as_ref()
            .unwrap_or_else(|| panic!("{svc}: no result: {}", out.stdout));
        assert!(last.up, "{svc}: {}", out.stdout);
        assert!(
            last.checked_at >= t0 - 0.01,
            "{svc}: `check` did not probe now ({} < {t0})",
            last.checked_at
        );
        let wr = last
            .write_read
            .as_ref()
            .unwrap_or_else(|| panic!("{svc}: no write/read result: {}", out.stdout));
        assert!(wr.ok, "{svc}: write/read failed: {}", out.stdout);
        assert!(
            last.latency_seconds.is_some_and(|l| l > 0.0),
            "{svc}: {}",
            out.stdout
        );
        assert!(last.pool.is_some(), "{svc}: {}", out.stdout);
    }
    let pgf = h
        .services
        .iter()
        .find_map(|s| s.last.as_ref().and_then(|l| l.postgres.clone()))
        .expect("postgres figures");
    assert_eq!(pgf.max_connections, 30);
    assert_eq!(pgf.database, PG_DB);
    assert!(pgf.server_version_num >= 150000);
    assert!(!pgf.in_recovery);
    let rf = h
        .services
        .iter()
        .find_map(|s| s.last.as_ref().and_then(|l| l.redis.clone()))
        .expect("redis figures");
    assert!(rf.server_version.starts_with(char::is_numeric), "{rf:?}");
    assert!(rf.used_memory_bytes > 0);

    // The heartbeat row is really there.
    let rows = pg.psql("SELECT count(*) FROM steward_heartbeat", PG_USER, PG_DB);
    assert!(rows.trim().parse::<i64>().unwrap() >= 1, "{rows}");

    // One service only.
    let out = st.ctl(&["check", "redis"]);
    let h: HealthReply = out.data();
    assert!(
        !h.services.is_empty() && h.services.iter().all(|s| s.service == Service::Redis),
        "{}",
        out.stdout
    );

    // Human output.
    let out = st.ctl_human(&["check"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("postgres") && out.stdout.contains("redis"),
        "{out:?}"
    );
}

#[test]
fn write_read_failure_is_reported_clearly() {
    let pg = Postgres::start();
    let redis = Redis::start();
    // Every transaction of the app role is read-only: reads work, the heartbeat upsert cannot.
    pg.psql_as_postgres(&format!(
        "ALTER ROLE {PG_USER} SET default_transaction_read_only = on"
    ));
    let st = Steward::start(&pg, &redis);
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    st.wait_until(
        INTERVAL * 2 + SLACK,
        "write/read test reported failed",
        |st| {
            st.metric(
                "steward_write_read_test_success",
                &[("service", "postgres")],
            ) == Some(0.0)
        },
    );
    assert_eq!(
        st.up("postgres"),
        Some(true),
        "a read-only server is still up"
    );
    let out = st.ctl(&["check", "postgres"]);
    let h: HealthReply = serde_json::from_value(out.reply().data).unwrap();
    let last = h
        .services
        .iter()
        .find(|s| s.service == Service::Postgres)
        .and_then(|s| s.last.clone())
        .unwrap();
    let wr = last.write_read.expect("write/read result");
    assert!(!wr.ok, "{}", out.stdout);
    let err = wr.error.unwrap_or_default();
    assert!(
        err.contains("read-only"),
        "the error should say why: {err:?}"
    );
    assert!(
        st.metric(
            "steward_check_failures_total",
            &[("service", "postgres"), ("check", "write_read")]
        )
        .unwrap_or(0.0)
            >= 1.0
    );
}

/// Beyond issue 2's list: the heartbeat table disappears (a restore, a failover, a DBA); the
/// write/read test must not stay failed for ever.
#[test]
fn dropped_heartbeat_table_is_recreated() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    st.wait_until(INTERVAL * 2 + SLACK, "postgres write/read ok", |st| {
        st.metric(
            "steward_write_read_test_success",
            &[("service", "postgres")],
        ) == Some(1.0)
    });
    pg.psql("DROP TABLE steward_heartbeat", PG_USER, PG_DB);
    st.wait_checks("postgres", 2);
    st.wait_until(INTERVAL * 2 + SLACK, "postgres write/read ok again", |st| {
        st.metric(
            "steward_write_read_test_success",
            &[("service", "postgres")],
        ) == Some(1.0)
    });
}

#[test]
fn health_exit_codes_follow_service_state() {
    let pg = Postgres::start();
    let mut redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    st.wait_up("redis", true, INTERVAL * 2 + SLACK);
    assert_eq!(st.ctl(&["health"]).code, 0);
    assert_eq!(st.ctl_human(&["health"]).code, 0);
    redis.kill();
    st.wait_up("redis", false, INTERVAL + TIMEOUT + SLACK);
    let out = st.ctl(&["health"]);
    assert_eq!(out.code, 1, "unhealthy → exit 1: {out:?}");
    let h: HealthReply = serde_json::from_value(out.reply().data).unwrap();
    assert!(!h.healthy);
    assert_eq!(
        st.ctl(&["health", "postgres"]).code,
        0,
        "postgres alone is healthy"
    );
    assert_eq!(st.ctl(&["health", "redis"]).code, 1);
    assert_eq!(st.ctl_human(&["health"]).code, 1);
    // `status` says the same through its exit code, and still prints its overview.
    let out = st.ctl_human(&["status"]);
    assert_eq!(out.code, 1, "a service down → status exits 1: {out:?}");
    assert!(out.stdout.contains("redis"), "{out:?}");
    // Readiness: both services have had their first check, so still ready; liveness too.
    assert_eq!(st.http_get("/-/ready").0, 200);
    assert_eq!(st.http_get("/-/healthy").0, 200);
}

#[test]
fn scrape_does_not_touch_the_services() {
    let pg = Postgres::start();
    let redis = Redis::start();
    // A long interval: after the first checks nothing should query the servers.
    let st = Steward::builder(&pg, &redis)
        .with(|s| {
            s.pg_interval = "1h".into();
            s.redis_interval = "1h".into();
        })
        .start();
    st.wait_up("postgres", true, SLACK * 3);
    st.wait_up("redis", true, SLACK * 3);
    let calls = |r: &Redis| -> u64 {
        let info = r.command(&["INFO", "stats"]).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = calls(&redis);
    for _ in 0..50 {
        st.metrics();
    }
    let after = calls(&redis);
    // Our own INFO call counts as one (plus its AUTH).
    assert!(
        after - before <= 2,
        "scrapes ran commands on redis: {before} → {after}"
    );
}

/// Between checks far apart, each pool is still tested every 30 s: a success while the server
/// is there, a failure once it is gone, with no check having run in between.
#[test]
fn pools_are_health_checked_every_30s_between_checks() {
    let pg = Postgres::start();
    let mut redis = Redis::start();
    let st = Steward::builder(&pg, &redis)
        .with(|s| {
            s.pg_interval = "10m".into();
            s.redis_interval = "10m".into();
        })
        .start();
    st.wait_up("redis", true, Duration::from_secs(10));
    let count = |st: &Steward, svc: &str, result: &str| {
        st.metric(
            "steward_pool_health_checks_total",
            &[("service", svc), ("result", result)],
        )
        .unwrap_or(0.0)
    };
    st.wait_until(
        Duration::from_secs(45),
        "a passing health check of each pool",
        |st| count(st, "redis", "success") >= 1.0 && count(st, "postgres", "success") >= 1.0,
    );
    let checks = st.metric(
        "steward_check_duration_seconds_count",
        &[("service", "redis"), ("check", "ping")],
    );
    redis.kill();
    pg.stop();
    st.wait_until(
        Duration::from_secs(45),
        "a failing health check of each pool",
        |st| count(st, "redis", "failure") >= 1.0 && count(st, "postgres", "failure") >= 1.0,
    );
    // The lost connections made the monitors check at once (issue 16): down long before the
    // next scheduled check, 10 minutes away.
    assert_eq!(st.up("redis"), Some(false));
    assert_eq!(st.up("postgres"), Some(false));
    assert!(
        st.metric(
            "steward_check_duration_seconds_count",
            &[("service", "redis"), ("check", "ping")],
        ) > checks,
        "the lost connection woke the monitor"
    );
}
