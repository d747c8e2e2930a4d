//! The PostgreSQL collector groups against a real server: each group's families appear with
//! its health (`steward_postgres_collector_up{group}`, its duration), on steward's schedule.

mod common;

use common::*;
use std::io::Write;
use std::time::Duration;
use steward::alerts::{AlertState, AlertsReply};

const COLLECT: Duration = Duration::from_secs(60);

#[test]
fn the_server_group_reports_start_time_and_settings_with_its_health() {
    let (pg, redis) = (Postgres::start(), Redis::start());
    let st = Steward::start(&pg, &redis);
    st.wait_until(COLLECT, "the server group to run", |st| {
        st.metric("steward_postgres_collector_up", &[("group", "server")]) == Some(1.0)
    });
    let start = st
        .metric("steward_postgres_start_time_seconds", &[])
        .expect("start time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(start > now - 3600.0 && start <= now, "{start} vs {now}");
    let shared = pg.psql_as_postgres("SELECT pg_size_bytes(current_setting('shared_buffers'))");
    assert_eq!(
        st.metric("steward_postgres_setting_shared_buffers_bytes", &[]),
        Some(shared.trim().parse::<f64>().unwrap())
    );
    assert_eq!(
        st.metric("steward_postgres_setting_autovacuum_freeze_max_age", &[]),
        Some(200_000_000.0)
    );
    assert!(st
        .metric(
            "steward_postgres_collector_duration_seconds",
            &[("group", "server")]
        )
        .is_some_and(|d| d >= 0.0));
}

const WAIT: Duration = Duration::from_secs(90);

fn alert_state(st: &Steward, alert: &str) -> AlertState {
    let reply: AlertsReply = st.ctl(&["alerts"]).data();
    reply
        .alerts
        .into_iter()
        .find(|a| a.alert == alert && a.service == "postgres")
        .unwrap_or_else(|| panic!("{alert} is not listed by `steward alerts`"))
        .state
}

fn wait_alert(st: &Steward, alert: &str, want: AlertState) {
    st.wait_until(WAIT, &format!("{alert} to be {want}"), |st| {
        alert_state(st, alert) == want
    });
}

/// Extra config (alert tables) appended after the generated sections.
fn with_extra(extra: &'static str) -> impl FnOnce(&mut Settings) {
    move |s| {
        s.backup += "\n";
        s.backup += extra;
    }
}

/// A psql session kept open, ended (and its transaction rolled back) when dropped.
struct Session(std::process::Child);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn open(pg: &Postgres, user: &str, name: &str, sql: &str) -> Session {
    Session(pg.session(
        user,
        PG_DB,
        &format!("SET application_name = '{name}';\n{sql}"),
    ))
}

/// Waits until the session named `name` is in `state` (as the superuser sees it).
fn wait_session(pg: &Postgres, name: &str, cond: &str) {
    wait_until(WAIT, &format!("session {name} to match {cond}"), || {
        pg.psql_as_postgres(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}' AND {cond}"
        ))
        .trim()
            == "1"
    });
}

#[test]
fn a_lock_held_idle_in_transaction_blocks_a_long_query_and_the_session_alerts_fire_and_resolve() {
    let (pg, redis) = (Postgres::start(), Redis::start());
    pg.psql(
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1)",
        PG_USER,
        PG_DB,
    );
    let st = Steward::builder(&pg, &redis)
        .with(with_extra(
            "[alerts.long_transaction]\nthreshold = 2\n\
             [alerts.idle_in_transaction]\nthreshold = 2\n\
             [alerts.lock_waits]\nthreshold = 2\n",
        ))
        .start();
    st.wait_until(COLLECT, "the sessions group to run", |st| {
        st.metric("steward_postgres_collector_up", &[("group", "sessions")]) == Some(1.0)
    });
    for s in ["LongTransaction", "IdleInTransaction", "LockWaits"] {
        assert_eq!(alert_state(&st, s), AlertState::Inactive, "{s}");
    }
    // Same role as steward: visible without pg_monitor.
    let holder = open(
        &pg,
        PG_USER,
        "holder",
        "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE;",
    );
    wait_session(&pg, "holder", "state = 'idle in transaction'");
    let waiter = open(&pg, PG_USER, "waiter", "SELECT count(*) FROM t;");
    wait_session(&pg, "waiter", "wait_event_type = 'Lock'");

    let sessions = |st: &Steward, state: &str| {
        st.metric(
            "steward_postgres_sessions",
            &[("database", PG_DB), ("state", state)],
        )
    };
    st.wait_until(WAIT, "one blocked session, waiting over 2 s", |st| {
        st.metric("steward_postgres_blocked_sessions", &[]) == Some(1.0)
            && st
                .metric("steward_postgres_lock_wait_max_seconds", &[])
                .is_some_and(|s| s > 2.0)
    });
    st.wait_until(
        WAIT,
        "the holder idle in transaction, the waiter active",
        |st| {
            sessions(st, "idle_in_transaction") == Some(1.0)
                && sessions(st, "active").is_some_and(|n| n >= 1.0)
                && sessions(st, "idle_in_transaction_aborted") == Some(0.0)
        },
    );
    let age = |st: &Steward, state: &str| {
        st.metric(
            "steward_postgres_transaction_max_age_seconds",
            &[("state", state)],
        )
        .unwrap_or(0.0)
    };
    st.wait_until(WAIT, "both transactions older than 2 s", |st| {
        age(st, "active") > 2.0 && age(st, "idle_in_transaction") > 2.0
    });
    assert!(
        age(&st, "idle_in_transaction") >= age(&st, "active"),
        "the holder began first"
    );
    let lock = |mode: &str, granted: &str| {
        st.metric(
            "steward_postgres_locks",
            &[("mode", mode), ("granted", granted)],
        )
    };
    assert!(lock("AccessExclusiveLock", "true").is_some_and(|n| n >= 1.0));
    assert_eq!(lock("AccessShareLock", "false"), Some(1.0), "the waiter");
    assert_eq!(lock("ShareLock", "false"), Some(0.0), "known modes show 0");
    for s in ["LongTransaction", "IdleInTransaction", "LockWaits"] {
        wait_alert(&st, s, AlertState::Firing);
    }
    assert_eq!(
        st.metric(
            "steward_alert_active",
            &[
                ("alert", "LockWaits"),
                ("service", "postgres"),
                ("severity", "warning")
            ]
        ),
        Some(1.0)
    );

    drop(holder); // its transaction ends: the waiter gets the lock and finishes
    st.wait_until(WAIT, "no blocked session and no old transaction", |st| {
        st.metric("steward_postgres_blocked_sessions", &[]) == Some(0.0)
            && st.metric("steward_postgres_lock_wait_max_seconds", &[]) == Some(0.0)
            && age(st, "idle_in_transaction") == 0.0
            && age(st, "active") < 2.0
    });
    for s in ["LongTransaction", "IdleInTransaction", "LockWaits"] {
        wait_alert(&st, s, AlertState::Resolved);
    }
    drop(waiter);
}

#[test]
fn deadlocks_and_temp_files_are_counted_per_database_and_deadlocks_fires_then_resolves() {
    let (pg, redis) = (Postgres::start(), Redis::start());
    pg.psql(
        "CREATE TABLE d (id int PRIMARY KEY, v int); INSERT INTO d VALUES (1, 0), (2, 0)",
        PG_USER,
        PG_DB,
    );
    let st = Steward::builder(&pg, &redis)
        .with(with_extra("[alerts.deadlocks]\nwindow = \"3s\"\n"))
        .start();
    let counter = |st: &Steward, name: &str| st.metric(name, &[("database", PG_DB)]);
    st.wait_until(COLLECT, "the database group to show the database", |st| {
        counter(st, "steward_postgres_deadlocks_total") == Some(0.0)
    });
    assert!(counter(&st, "steward_postgres_xact_commit_total").is_some_and(|n| n > 0.0));
    assert!(counter(&st, "steward_postgres_database_size_bytes").is_some_and(|b| b > 1e6));
    assert!(st
        .metric(
            "steward_postgres_database_size_bytes",
            &[("database", "postgres")]
        )
        .is_some());
    assert_eq!(
        st.metric(
            "steward_postgres_database_size_bytes",
            &[("database", "template1")]
        ),
        None,
        "templates are left out"
    );
    assert_eq!(alert_state(&st, "Deadlocks"), AlertState::Inactive);

    // Each session locks one row, then wants the other's: PostgreSQL cancels one of them
    // after deadlock_timeout (1 s).
    let a = open(&pg, PG_USER, "a", "BEGIN; UPDATE d SET v = 1 WHERE id = 1;");
    let b = open(&pg, PG_USER, "b", "BEGIN; UPDATE d SET v = 1 WHERE id = 2;");
    wait_session(&pg, "a", "state = 'idle in transaction'");
    wait_session(&pg, "b", "state = 'idle in transaction'");
    writeln!(
        a.0.stdin.as_ref().unwrap(),
        "UPDATE d SET v = 2 WHERE id = 2;"
    )
    .unwrap();
    wait_session(&pg, "a", "wait_event_type = 'Lock'");
    writeln!(
        b.0.stdin.as_ref().unwrap(),
        "UPDATE d SET v = 2 WHERE id = 1;"
    )
    .unwrap();
    st.wait_until(WAIT, "one deadlock counted", |st| {
        counter(st, "steward_postgres_deadlocks_total") == Some(1.0)
    });
    wait_alert(&st, "Deadlocks", AlertState::Firing);
    wait_alert(&st, "Deadlocks", AlertState::Resolved);
    drop((a, b));

    let temp_before = counter(&st, "steward_postgres_temp_files_total").unwrap();
    pg.psql(
        "SET work_mem = '64kB'; \
         SELECT count(*) FROM (SELECT g FROM generate_series(1, 200000) g ORDER BY g DESC) s",
        PG_USER,
        PG_DB,
    );
    st.wait_until(WAIT, "a temp file and its bytes counted", |st| {
        counter(st, "steward_postgres_temp_files_total").is_some_and(|n| n > temp_before)
            && counter(st, "steward_postgres_temp_bytes_total").is_some_and(|b| b > 64.0 * 1024.0)
    });
    let body = st.metrics();
    assert!(body.contains("# TYPE steward_postgres_deadlocks_total counter"));
}

#[test]
fn without_pg_monitor_other_roles_sessions_are_hidden_and_a_denied_group_alone_is_down() {
    let (pg, redis) = (Postgres::start(), Redis::start());
    let st = Steward::start(&pg, &redis);
    // A superuser's session idle in transaction, in the `postgres` database.
    let _other = Session(pg.session(
        "postgres",
        "postgres",
        "SET application_name = 'other'; BEGIN; SELECT 1;",
    ));
    wait_until(WAIT, "the other session to be idle in transaction", || {
        pg.psql_as_postgres(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'other' \
             AND state = 'idle in transaction'",
        )
        .trim()
            == "1"
    });
    let theirs = |st: &Steward| {
        st.metric(
            "steward_postgres_sessions",
            &[("database", "postgres"), ("state", "idle_in_transaction")],
        )
    };
    st.wait_until(COLLECT, "the sessions group to run", |st| {
        st.metric("steward_postgres_collector_up", &[("group", "sessions")]) == Some(1.0)
            && st.metric("steward_postgres_sessions", &[]).is_some()
    });
    // Not counted: absent, or 0 when a session steward may see (its own role's, briefly, in
    // the same database) makes the database show all four states.
    assert_eq!(
        theirs(&st).unwrap_or(0.0),
        0.0,
        "state is hidden from a role without pg_monitor"
    );
    pg.psql_as_postgres(&format!("GRANT pg_monitor TO {PG_USER}"));
    st.wait_until(WAIT, "the other role's session to be counted", |st| {
        theirs(st) == Some(1.0)
    });

    // Function privileges live in each database's catalog: revoke where steward connects.
    pg.psql(
        "REVOKE EXECUTE ON FUNCTION pg_blocking_pids(integer) FROM PUBLIC",
        "postgres",
        PG_DB,
    );
    st.wait_until(WAIT, "the sessions group to be down", |st| {
        st.metric("steward_postgres_collector_up", &[("group", "sessions")]) == Some(0.0)
    });
    assert_eq!(st.metric("steward_postgres_sessions", &[]), None);
    for g in ["database", "server"] {
        assert_eq!(
            st.metric("steward_postgres_collector_up", &[("group", g)]),
            Some(1.0),
            "{g} stays up"
        );
    }
    assert!(st
        .metric(
            "steward_postgres_collector_errors_total",
            &[("group", "sessions")]
        )
        .is_some_and(|n| n >= 1.0));
    st.wait_until(WAIT, "one warning naming the group and pg_monitor", |st| {
        let log = st.log();
        log.contains("sessions") && log.contains("42501") && log.contains("pg_monitor")
    });
}

/// A group whose query times out on a lock counts an error and is down, yet its last facts stay
/// for steward's alerts through two failed runs in a row: a firing alert stays firing through
/// them (the series go at once), is resolved at the third, and fires again when the group
/// recovers.
#[test]
fn a_firing_alert_outlives_timed_out_rounds_of_its_group_until_their_facts_are_stale() {
    let (pg, redis) = (Postgres::start(), Redis::start());
    // Rounds every 2 s: a window of about 2 s in which exactly two failed runs are counted.
    let st = Steward::builder(&pg, &redis)
        .with(|s| s.pg_interval = "2s".into())
        .with(with_extra("[alerts.idle_in_transaction]\nthreshold = 1\n"))
        .start();
    // Same role as steward: visible without pg_monitor.
    let holder = open(&pg, PG_USER, "holder", "BEGIN; SELECT 1;");
    wait_session(&pg, "holder", "state = 'idle in transaction'");
    wait_alert(&st, "IdleInTransaction", AlertState::Firing);
    let errors = |body: &str| {
        metric_value(
            body,
            "steward_postgres_collector_errors_total",
            &[("group", "sessions")],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(errors(&st.metrics()), 0.0);

    // Only the sessions group reads pg_locks: while a superuser holds the view exclusively,
    // each of its runs waits out postgres.timeout (500 ms) and fails; the others go on.
    let locker = open(
        &pg,
        "postgres",
        "locker",
        "BEGIN; LOCK TABLE pg_catalog.pg_locks IN ACCESS EXCLUSIVE MODE;",
    );
    wait_session(&pg, "locker", "state = 'idle in transaction'");
    let resolved = |body: &str| {
        metric_value(
            body,
            "steward_alert_transitions_total",
            &[("alert", "IdleInTransaction"), ("to", "resolved")],
        )
        .unwrap_or(0.0)
    };
    // One scrape taken after two failed runs and before a third: the round that failed first
    // sent its facts to the alert engine a whole interval before.
    let mut two_failed = None;
    st.wait_until(WAIT, "two failed runs of the sessions group", |st| {
        let body = st.metrics();
        let n = errors(&body);
        if n == 2.0 {
            two_failed = Some(body);
        }
        n >= 2.0
    });
    let body = two_failed.expect("no scrape showed exactly two failed runs (missed a 2 s window)");
    let up =
        |body: &str, g: &str| metric_value(body, "steward_postgres_collector_up", &[("group", g)]);
    assert_eq!(up(&body, "sessions"), Some(0.0));
    for g in ["database", "server"] {
        assert_eq!(up(&body, g), Some(1.0), "{g} stays up");
    }
    assert_eq!(
        metric_value(&body, "steward_postgres_sessions", &[]),
        None,
        "a failed group's series go at once"
    );
    assert_eq!(
        resolved(&body),
        0.0,
        "IdleInTransaction was resolved by a failed round of the sessions group"
    );
    assert_eq!(
        metric_value(
            &body,
            "steward_alert_active",
            &[
                ("alert", "IdleInTransaction"),
                ("service", "postgres"),
                ("severity", "warning")
            ]
        ),
        Some(1.0)
    );
    st.wait_until(WAIT, "one warning naming the group and the timeout", |st| {
        let log = st.log();
        log.contains("postgres collector group failed")
            && log.contains("sessions")
            && (log.contains("lock timeout") || log.contains("within postgres.timeout"))
    });

    // The third failed run in a row drops the facts: the alert resolves, and not before.
    wait_alert(&st, "IdleInTransaction", AlertState::Resolved);
    assert!(errors(&st.metrics()) >= 3.0);

    // The lock is released: the group recovers and sees the same transaction again.
    drop(locker);
    st.wait_until(WAIT, "the sessions group to be up again", |st| {
        st.metric("steward_postgres_collector_up", &[("group", "sessions")]) == Some(1.0)
    });
    wait_alert(&st, "IdleInTransaction", AlertState::Firing);
    drop(holder);
}
