//! The alert engine against real servers: each alert is caused for real (a server stopped,
//! Redis filled past a small maxmemory, connections opened, a backup failed, a backup left
//! to go stale, a task made to crash), seen firing in `steward alerts` and in
//! `steward_alert_active`, and seen resolving when the cause goes away.

mod common;

use common::*;
use std::time::Duration;
use steward::alerts::{AlertState, AlertStatus, AlertsReply};

const WAIT: Duration = Duration::from_secs(30);

fn alerts(st: &Steward) -> AlertsReply {
    st.ctl(&["alerts"]).data()
}

fn find(st: &Steward, alert: &str, service: &str, severity: Option<&str>) -> AlertStatus {
    alerts(st)
        .alerts
        .into_iter()
        .find(|a| {
            a.alert == alert
                && a.service == service
                && severity.is_none_or(|s| a.severity.as_str() == s)
        })
        .unwrap_or_else(|| panic!("{alert}/{service} is not listed by `steward alerts`"))
}

fn wait_state(st: &Steward, alert: &str, service: &str, severity: Option<&str>, want: AlertState) {
    st.wait_until(WAIT, &format!("{alert}/{service} to be {want}"), |st| {
        find(st, alert, service, severity).state == want
    });
}

fn active(st: &Steward, alert: &str, service: &str, severity: &str) -> Option<f64> {
    st.metric(
        "steward_alert_active",
        &[
            ("alert", alert),
            ("service", service),
            ("severity", severity),
        ],
    )
}

/// A shell loop sending one command to Redis over and over; it stops when dropped, and by
/// itself once Redis is gone (redis-cli then fails), so a failed test leaves nothing spinning.
struct RedisLoop(std::process::Child);

impl RedisLoop {
    fn start(redis: &Redis, command: &str) -> RedisLoop {
        let script = format!(
            "while redis-cli -p {} -a '{}' --no-auth-warning {command} >/dev/null; do :; done",
            redis.port, redis.password
        );
        RedisLoop(
            std::process::Command::new("bash")
                .args(["-c", &script])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for RedisLoop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn with_alerts(extra: impl Into<String>) -> impl FnOnce(&mut Settings) {
    let extra = extra.into();
    move |s| {
        s.backup += "\n";
        s.backup += &extra;
    }
}

#[test]
fn service_down_backup_failed_stale_and_storage_low_fire_and_resolve() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder(&pg, &redis)
        .with(with_alerts(
            "[alerts.service_down]\nfor = \"1s\"\n\
             [alerts.backup_stale]\nmax_age = \"5s\"\n\
             [alerts.backup_storage_low]\nthreshold = 1e12\n",
        ))
        .start();
    st.wait_up("postgres", true, WAIT);
    // Every instance is exported from the start, 0 while not firing.
    assert_eq!(
        active(&st, "ServiceDown", "postgres", "critical"),
        Some(0.0)
    );
    assert_eq!(active(&st, "BackupFailed", "backup", "critical"), Some(0.0));

    // No backup at all: stale once max_age has passed since steward started.
    wait_state(&st, "BackupStale", "backup", None, AlertState::Firing);
    let stale = find(&st, "BackupStale", "backup", None);
    assert!(stale.description.contains("no good backup"), "{stale:?}");
    assert_eq!(stale.threshold, Some(5.0));

    // A good backup makes it fresh; its size against the free space (times 10^12) is too much.
    let out = st.ctl(&["backup", "create", "--wait"]);
    assert!(out.reply().ok, "{}", out.all());
    wait_state(&st, "BackupStale", "backup", None, AlertState::Resolved);
    wait_state(&st, "BackupStorageLow", "backup", None, AlertState::Firing);
    assert_eq!(
        active(&st, "BackupStorageLow", "backup", "warning"),
        Some(1.0)
    );

    // PostgreSQL stops: ServiceDown fires; a backup now fails: BackupFailed fires.
    pg.stop();
    wait_state(&st, "ServiceDown", "postgres", None, AlertState::Firing);
    assert_eq!(
        active(&st, "ServiceDown", "postgres", "critical"),
        Some(1.0)
    );
    assert_eq!(
        find(&st, "ServiceDown", "redis", None).state,
        AlertState::Inactive
    );
    let out = st.ctl(&["backup", "create", "--wait"]);
    assert_ne!(
        out.code,
        0,
        "a backup without PostgreSQL must fail: {}",
        out.all()
    );
    wait_state(&st, "BackupFailed", "backup", None, AlertState::Firing);
    assert!(find(&st, "BackupFailed", "backup", None)
        .description
        .contains("failed"));

    // Back: ServiceDown resolves; the next good backup resolves BackupFailed.
    pg.start_again();
    wait_state(&st, "ServiceDown", "postgres", None, AlertState::Resolved);
    assert_eq!(
        active(&st, "ServiceDown", "postgres", "critical"),
        Some(0.0)
    );
    let out = st.ctl(&["backup", "create", "--wait"]);
    assert!(out.reply().ok, "{}", out.all());
    wait_state(&st, "BackupFailed", "backup", None, AlertState::Resolved);
    for to in ["pending", "firing", "resolved"] {
        let n = st
            .metric(
                "steward_alert_transitions_total",
                &[("alert", "ServiceDown"), ("to", to)],
            )
            .unwrap_or(0.0);
        assert!(n >= 1.0, "ServiceDown never went {to}");
    }

    // Left alone past max_age, the newest backup goes stale again.
    wait_state(&st, "BackupStale", "backup", None, AlertState::Firing);

    // Thresholds follow a reload: a sane storage factor resolves BackupStorageLow.
    let text = st
        .settings
        .render()
        .replace("threshold = 1e12", "threshold = 0.000001");
    st.write_config(&text);
    assert!(st.ctl(&["reload"]).reply().ok);
    wait_state(
        &st,
        "BackupStorageLow",
        "backup",
        None,
        AlertState::Resolved,
    );
    assert!(st.log().contains("alert firing: postgres is down"));
}

#[test]
fn redis_memory_write_read_and_hit_ratio_fire_and_resolve() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder(&pg, &redis)
        .with(with_alerts(
            "[alerts.redis_memory_high]\nfor = \"1s\"\n\
             [alerts.write_read_test_failed]\nfor = \"1s\"\n\
             [alerts.slow_response]\nfor = \"1s\"\nthreshold = 0.05\n\
             [alerts.cache_hit_ratio_low]\nfor = \"1s\"\nthreshold = 0.5\nmin_lookups_per_second = 5\n",
        ))
        .start();
    st.wait_up("redis", true, WAIT);
    st.wait_checks("redis", 1);
    // No maxmemory: the rule says it cannot fire instead of staying silently inactive.
    let mem = find(&st, "RedisMemoryHigh", "redis", None);
    assert_eq!(mem.state, AlertState::Inactive);
    assert!(
        mem.note.as_deref().unwrap_or("").contains("maxmemory is 0"),
        "{mem:?}"
    );
    let human = st.ctl_human(&["alerts"]);
    assert!(human.stdout.contains("maxmemory is 0"), "{}", human.all());

    // Fill Redis with about 5 MB, then give it a maxmemory of 4 MB: with noeviction it is
    // past its limit, so RedisMemoryHigh fires and writes (the write/read test) fail.
    let value = "x".repeat(64 * 1024);
    for i in 0..80 {
        redis
            .command(&["SET", &format!("fill:{i}"), &value])
            .unwrap();
    }
    redis
        .command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        .unwrap();
    redis
        .command(&["CONFIG", "SET", "maxmemory", "4mb"])
        .unwrap();
    wait_state(&st, "RedisMemoryHigh", "redis", None, AlertState::Firing);
    wait_state(
        &st,
        "WriteReadTestFailed",
        "redis",
        None,
        AlertState::Firing,
    );
    assert!(find(&st, "RedisMemoryHigh", "redis", None).value.unwrap() > 0.9);
    assert_eq!(
        active(&st, "WriteReadTestFailed", "redis", "critical"),
        Some(1.0)
    );
    redis.command(&["FLUSHALL"]).unwrap();
    wait_state(&st, "RedisMemoryHigh", "redis", None, AlertState::Resolved);
    wait_state(
        &st,
        "WriteReadTestFailed",
        "redis",
        None,
        AlertState::Resolved,
    );

    // Another client keeps pausing all clients for 100 ms: every PING waits behind it.
    let pauser = RedisLoop::start(&redis, "CLIENT PAUSE 100 ALL");
    wait_state(&st, "SlowResponse", "redis", None, AlertState::Firing);
    assert!(find(&st, "SlowResponse", "redis", None).value.unwrap() > 0.05);
    drop(pauser);
    wait_state(&st, "SlowResponse", "redis", None, AlertState::Resolved);

    // Steady misses from another client: the hit ratio is 0 at well over 5 lookups/s.
    let misses = RedisLoop::start(&redis, "GET steward:test:miss");
    wait_state(&st, "CacheHitRatioLow", "redis", None, AlertState::Firing);
    drop(misses);
    // Without traffic the ratio is not judged: the alert resolves.
    wait_state(&st, "CacheHitRatioLow", "redis", None, AlertState::Resolved);
}

#[test]
fn postgres_connections_high_warns_then_goes_critical() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder(&pg, &redis)
        .with(with_alerts(
            "[alerts.postgres_connections_high]\nfor = \"1s\"\n",
        ))
        .start();
    st.wait_up("postgres", true, WAIT);
    // max_connections = 30 with 3 reserved: 27 for applications. Defaults: 0.8 and 0.95.
    let hold = "SET application_name = 'hog'; SELECT pg_sleep(600)";
    let mut sessions: Vec<_> = (0..22).map(|_| pg.psql_background(hold)).collect();
    wait_state(
        &st,
        "PostgresConnectionsHigh",
        "postgres",
        Some("warning"),
        AlertState::Firing,
    );
    assert_ne!(
        find(&st, "PostgresConnectionsHigh", "postgres", Some("critical")).state,
        AlertState::Firing
    );
    sessions.extend((0..4).map(|_| pg.psql_background(hold)));
    wait_state(
        &st,
        "PostgresConnectionsHigh",
        "postgres",
        Some("critical"),
        AlertState::Firing,
    );
    pg.psql_as_postgres(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'hog'",
    );
    for mut s in sessions {
        let _ = s.wait();
    }
    for sev in ["warning", "critical"] {
        wait_state(
            &st,
            "PostgresConnectionsHigh",
            "postgres",
            Some(sev),
            AlertState::Resolved,
        );
    }
}

#[test]
fn task_restarting_fires_when_a_task_keeps_failing_and_resolves_after_the_window() {
    let st = Steward::builder_without_services()
        .with(with_alerts(
            "[alerts.task_restarting]\nthreshold = 0\nwindow = \"8s\"\n",
        ))
        .start();
    // The control task fails when its socket file disappears, and is restarted.
    std::fs::remove_file(st.socket()).unwrap();
    st.wait_until(WAIT, "TaskRestarting to fire", |st| {
        active(st, "TaskRestarting", "steward", "warning") == Some(1.0)
    });
    st.wait_until(WAIT, "the control socket to answer again", |st| {
        st.raw_request(r#"{"cmd":"status"}"#).is_ok_and(|r| r.ok)
    });
    let a = find(&st, "TaskRestarting", "steward", None);
    assert!(a.description.contains("control restarted"), "{a:?}");
    wait_state(&st, "TaskRestarting", "steward", None, AlertState::Resolved);
    // The engine is a supervised task itself: restarted, it answers and evaluates again.
    assert!(st.ctl(&["task", "restart", "alerts"]).reply().ok);
    st.wait_until(WAIT, "the restarted engine to list its alerts", |st| {
        alerts(st).alerts.len() >= 15
    });
}

#[test]
fn alerts_reach_alertmanager_resolve_there_and_are_held_back_in_maintenance() {
    let am = peers::Alertmanager::start();
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder(&pg, &redis)
        .with(with_alerts(format!(
            "[alerts.service_down]\nfor = \"1s\"\n\
             [alertmanager]\nurl = \"{}\"\nresend_interval = \"1m\"\n",
            am.url()
        )))
        .start();
    st.wait_up("postgres", true, WAIT);

    // In maintenance the alert fires, is listed as suppressed, and is not sent.
    assert!(
        st.ctl(&["maintenance", "on", "--reason", "test"])
            .reply()
            .ok
    );
    pg.stop();
    wait_state(&st, "ServiceDown", "postgres", None, AlertState::Firing);
    let down = find(&st, "ServiceDown", "postgres", None);
    assert!(down.suppressed, "{down:?}");
    assert!(alerts(&st).maintenance);
    assert_eq!(
        active(&st, "ServiceDown", "postgres", "critical"),
        Some(1.0)
    );
    let human = st.ctl_human(&["alerts"]);
    assert!(
        human.stdout.contains("firing (suppressed)"),
        "{}",
        human.all()
    );
    // A new firing alert is delivered at once (as below, after maintenance); give it time.
    let fired = down.fired_at.unwrap();
    st.wait_until(WAIT, "three seconds of firing", |_| {
        steward::unix_now() - fired > 3.0
    });
    assert!(am.alerts_named("ServiceDown").is_empty(), "{}", am.alerts());

    // Maintenance over: Alertmanager gets it, with steward's labels and annotations.
    assert!(st.ctl(&["maintenance", "off"]).reply().ok);
    st.wait_until(WAIT, "Alertmanager to list ServiceDown", |_| {
        !am.alerts_named("ServiceDown").is_empty()
    });
    let got = &am.alerts_named("ServiceDown")[0];
    assert_eq!(got["labels"]["service"], "postgres");
    assert_eq!(got["labels"]["severity"], "critical");
    assert_eq!(got["labels"]["instance"], steward::hostname().as_str());
    assert_eq!(got["status"]["state"], "active");
    assert!(got["annotations"]["description"]
        .as_str()
        .unwrap()
        .contains("postgres cannot be reached"));
    assert!(
        st.metric(
            "steward_alertmanager_notifications_total",
            &[("result", "success")]
        )
        .unwrap()
            >= 1.0
    );

    // Resolved in steward: sent with endsAt now, so Alertmanager drops it long before the
    // endsAt of the firing notice (four resend intervals: 4 minutes) would have passed.
    pg.start_again();
    wait_state(&st, "ServiceDown", "postgres", None, AlertState::Resolved);
    st.wait_until(
        WAIT,
        "Alertmanager to drop the resolved ServiceDown",
        |_| am.alerts_named("ServiceDown").is_empty(),
    );
}

#[test]
fn an_unreachable_alertmanager_is_retried_and_never_holds_up_the_checks() {
    let port = free_port();
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder(&pg, &redis)
        .with(with_alerts(format!(
            "[alerts.service_down]\nfor = \"0s\"\n\
             [alertmanager]\nurl = \"http://127.0.0.1:{port}\"\n"
        )))
        .start();
    st.wait_up("postgres", true, WAIT);
    pg.stop();
    wait_state(&st, "ServiceDown", "postgres", None, AlertState::Firing);
    st.wait_until(WAIT, "two failed deliveries", |st| {
        st.metric(
            "steward_alertmanager_notifications_total",
            &[("result", "failure")],
        )
        .unwrap_or(0.0)
            >= 2.0
    });
    // The checks go on at their interval meanwhile.
    st.wait_checks("postgres", 2);
    st.wait_checks("redis", 2);
    assert!(st.log().contains("cannot deliver alerts to Alertmanager"));
    // Alertmanager appears: the retry delivers what is firing.
    let am = peers::Alertmanager::start_on(port);
    st.wait_until(
        Duration::from_secs(90),
        "the retry to reach Alertmanager",
        |_| !am.alerts_named("ServiceDown").is_empty(),
    );
}

#[test]
fn an_alertmanager_set_by_reload_gets_what_is_already_firing() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder(&pg, &redis)
        .with(with_alerts(
            "[alerts.service_down]\nfor = \"0s\"\n[alertmanager]\nresend_interval = \"2s\"\n",
        ))
        .start();
    st.wait_up("postgres", true, WAIT);
    pg.stop();
    wait_state(&st, "ServiceDown", "postgres", None, AlertState::Firing);
    let am = peers::Alertmanager::start();
    let text = st.settings.render().replace(
        "[alertmanager]\n",
        &format!("[alertmanager]\nurl = \"{}\"\n", am.url()),
    );
    st.write_config(&text);
    assert!(st.ctl(&["reload"]).reply().ok);
    st.wait_until(WAIT, "Alertmanager to get the firing ServiceDown", |_| {
        !am.alerts_named("ServiceDown").is_empty()
    });
}
