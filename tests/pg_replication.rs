//! The replication, vacuum and checkpoints collector groups against real servers: a streaming
//! replica made with `pg_basebackup -R` whose replay is paused, an inactive slot holding WAL,
//! dead tuples in a table autovacuum may not touch, transaction IDs burnt and frozen again,
//! a CHECKPOINT, a failing archive_command; and the alerts over them firing and resolving.

mod common;

use common::*;
use std::time::Duration;
use steward::alerts::{AlertState, AlertsReply};

const WAIT: Duration = Duration::from_secs(90);

fn state(st: &Steward, alert: &str, severity: &str) -> AlertState {
    let reply: AlertsReply = st.ctl(&["alerts"]).data();
    reply
        .alerts
        .into_iter()
        .find(|a| a.alert == alert && a.severity.as_str() == severity)
        .unwrap_or_else(|| panic!("{alert}/{severity} is not listed by `steward alerts`"))
        .state
}

fn wait_state(st: &Steward, alert: &str, severity: &str, want: AlertState) {
    st.wait_until(WAIT, &format!("{alert}/{severity} to be {want}"), |st| {
        state(st, alert, severity) == want
    });
}

fn with_extra(pg_extra: &str, alerts: &str) -> impl FnOnce(&mut Settings) {
    let (pg_extra, alerts) = (pg_extra.to_string(), alerts.to_string());
    move |s| {
        s.pg_extra += &pg_extra;
        s.backup += "\n";
        s.backup += &alerts;
    }
}

fn up(st: &Steward, group: &str) -> bool {
    st.metric("steward_postgres_collector_up", &[("group", group)]) == Some(1.0)
}

/// Runs the collector's groups again at once (a restarted task starts with a full round),
/// for the groups that run every few minutes.
fn collect_again(st: &Steward) {
    let out = st.ctl(&["task", "restart", "collector.postgres"]);
    assert_eq!(out.code, 0, "{out:?}");
}

/// `promtool check metrics` on what steward serves, with every family of these groups filled.
fn lint(st: &Steward) {
    let (ok, text) = promtool_check_metrics(&st.metrics());
    assert!(ok, "promtool check metrics: {text}");
}

fn grant_monitor(pg: &Postgres) {
    pg.psql_as_postgres(&format!("GRANT pg_monitor TO {PG_USER}"));
}

#[test]
fn a_paused_replica_lags_on_both_sides_and_an_inactive_slot_retains_wal() {
    let (pg, redis) = (Postgres::start(), Redis::start());
    grant_monitor(&pg);
    let standby = pg.start_standby("replica1");
    // A physical slot reserves WAL from the last checkpoint's redo pointer, and the base
    // backup's end switched WAL segments since its checkpoint: a new checkpoint first, so the
    // slot starts near empty.
    pg.psql_as_postgres("CHECKPOINT");
    pg.psql_as_postgres("SELECT pg_create_physical_replication_slot('stale_slot', true)");

    let primary_st = Steward::builder(&pg, &redis)
        .with(with_extra(
            "",
            "[alerts.replication_slot_inactive]\nthreshold = 1048576\nfor = \"1s\"\n",
        ))
        .start();
    primary_st.wait_until(WAIT, "replica1 in the replication group", |st| {
        up(st, "replication")
            && st.metric("steward_postgres_replicas", &[]) == Some(1.0)
            && st
                .metric(
                    "steward_postgres_replication_lag_bytes",
                    &[("replica", "replica1")],
                )
                .is_some()
    });
    for kind in ["write", "flush", "replay"] {
        let lag = primary_st.metric(
            "steward_postgres_replication_lag_seconds",
            &[("replica", "replica1"), ("kind", kind)],
        );
        assert!(lag.is_some_and(|l| l >= 0.0), "{kind}: {lag:?}");
    }
    assert_eq!(
        primary_st.metric(
            "steward_postgres_replication_slot_active",
            &[("slot", "stale_slot")]
        ),
        Some(0.0)
    );
    let retained = |st: &Steward| {
        st.metric(
            "steward_postgres_replication_slot_retained_bytes",
            &[("slot", "stale_slot")],
        )
        .unwrap_or(0.0)
    };
    let before = retained(&primary_st);
    assert_eq!(
        state(&primary_st, "ReplicationSlotInactive", "warning"),
        AlertState::Inactive,
        "{before} bytes retained before any write"
    );

    // The standby's own steward: in recovery, replay caught up.
    let standby_st = Steward::builder(&standby, &redis)
        .with(with_extra(
            "write_read_test = false\n",
            "[alerts.replication_lag]\nthreshold = 3\nfor = \"1s\"\n",
        ))
        .start();
    standby_st.wait_until(WAIT, "the standby's groups", |st| {
        up(st, "replication")
            && up(st, "checkpoints")
            && up(st, "vacuum")
            && st.metric("steward_postgres_in_recovery", &[]) == Some(1.0)
            && st
                .metric("steward_postgres_standby_lag_bytes", &[])
                .is_some()
    });
    assert_eq!(
        standby_st.metric("steward_postgres_replicas", &[]),
        Some(0.0)
    );
    assert_eq!(
        standby_st.metric(
            "steward_postgres_replication_lag_bytes",
            &[("replica", "replica1")]
        ),
        None,
        "a standby has no replicas of its own here"
    );

    // Replay paused, WAL written on the primary: received, not replayed.
    standby.psql_as_postgres("SELECT pg_wal_replay_pause()");
    pg.psql(
        "CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g",
        PG_USER,
        PG_DB,
    );
    pg.psql_as_postgres("SELECT pg_switch_wal()");
    primary_st.wait_until(WAIT, "replica1's byte lag to grow", |st| {
        st.metric(
            "steward_postgres_replication_lag_bytes",
            &[("replica", "replica1")],
        )
        .is_some_and(|b| b > 1_000_000.0)
    });
    primary_st.wait_until(WAIT, "stale_slot to retain the new WAL", |st| {
        retained(st) > before + 1_000_000.0
    });
    wait_state(
        &primary_st,
        "ReplicationSlotInactive",
        "warning",
        AlertState::Firing,
    );
    lint(&primary_st);
    standby_st.wait_until(WAIT, "the standby's lag and replay delay", |st| {
        st.metric("steward_postgres_standby_lag_bytes", &[])
            .is_some_and(|b| b > 1_000_000.0)
            && st
                .metric("steward_postgres_standby_replay_delay_seconds", &[])
                .is_some_and(|d| d > 3.0)
    });
    wait_state(&standby_st, "ReplicationLag", "warning", AlertState::Firing);
    lint(&standby_st);

    // Replay resumed: caught up, delay back to 0; the slot dropped.
    standby.psql_as_postgres("SELECT pg_wal_replay_resume()");
    standby_st.wait_until(WAIT, "the standby to catch up", |st| {
        st.metric("steward_postgres_standby_replay_delay_seconds", &[]) == Some(0.0)
            || st
                .metric("steward_postgres_standby_lag_bytes", &[])
                .is_some_and(|b| b < 100_000.0)
    });
    wait_state(
        &standby_st,
        "ReplicationLag",
        "warning",
        AlertState::Resolved,
    );
    pg.psql_as_postgres("SELECT pg_drop_replication_slot('stale_slot')");
    wait_state(
        &primary_st,
        "ReplicationSlotInactive",
        "warning",
        AlertState::Resolved,
    );
    primary_st.wait_until(WAIT, "the dropped slot's series to go", |st| {
        st.metric(
            "steward_postgres_replication_slot_active",
            &[("slot", "stale_slot")],
        )
        .is_none()
    });
    primary_st.wait_until(WAIT, "replica1 to catch up on the primary", |st| {
        st.metric(
            "steward_postgres_replication_lag_bytes",
            &[("replica", "replica1")],
        )
        .is_some_and(|b| b < 1_000_000.0)
    });
}

#[test]
fn xid_age_dead_tuples_checkpoints_and_a_failing_archiver() {
    let (pg, redis) = (Postgres::start(), Redis::start());
    grant_monitor(&pg);
    pg.psql_as_postgres("ALTER SYSTEM SET archive_mode = 'on'");
    pg.psql_as_postgres("ALTER SYSTEM SET archive_command = 'false'");
    pg.restart_with("# archiving that always fails");
    pg.psql(
        "CREATE TABLE churn (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false);
         INSERT INTO churn SELECT g, 0 FROM generate_series(1, 1000) g;
         UPDATE churn SET v = v + 1;",
        PG_USER,
        PG_DB,
    );
    let age: f64 = pg
        .psql_as_postgres("SELECT max(age(datfrozenxid)) FROM pg_database")
        .trim()
        .parse()
        .unwrap();
    let wrap = 2f64.powi(31);
    // Fires once about 2000 more transaction IDs are used; steward's own use (a write/read
    // test a second) stays far below that during the test.
    let limit = (age + 1000.0) / wrap;
    let st = Steward::builder(&pg, &redis)
        .with(with_extra(
            "",
            &format!(
                "[alerts.xid_wraparound]\nthreshold = {limit:e}\ncritical = 0.9\nfor = \"1s\"\n"
            ),
        ))
        .start();
    st.wait_until(WAIT, "the vacuum and checkpoints groups", |st| {
        up(st, "vacuum") && up(st, "checkpoints")
    });
    let xid_age = st
        .metric("steward_postgres_xid_age", &[("database", PG_DB)])
        .expect("xid age of the monitored database");
    assert!(xid_age > 0.0, "{xid_age}");
    assert_eq!(
        st.metric(
            "steward_postgres_xid_wraparound_ratio",
            &[("database", PG_DB)]
        ),
        Some(xid_age / wrap)
    );
    assert!(
        st.metric("steward_postgres_xid_age", &[("database", "template0")])
            .is_some(),
        "every database, without connecting to it"
    );
    assert_eq!(state(&st, "XidWraparound", "warning"), AlertState::Inactive);

    // Checkpoints: a requested one is counted, with the buffers it wrote.
    let requested = st
        .metric("steward_postgres_checkpoints_requested_total", &[])
        .unwrap();
    let written = st
        .metric(
            "steward_postgres_buffers_written_total",
            &[("by", "checkpointer")],
        )
        .unwrap();
    for by in ["bgwriter", "backend"] {
        assert!(st
            .metric("steward_postgres_buffers_written_total", &[("by", by)])
            .is_some());
    }
    pg.psql_as_postgres("CHECKPOINT");
    st.wait_until(WAIT, "the CHECKPOINT counted", |st| {
        st.metric("steward_postgres_checkpoints_requested_total", &[])
            .is_some_and(|n| n > requested)
            && st
                .metric(
                    "steward_postgres_buffers_written_total",
                    &[("by", "checkpointer")],
                )
                .is_some_and(|n| n > written)
    });
    assert!(st
        .metric("steward_postgres_checkpoint_write_seconds_total", &[])
        .is_some_and(|s| s >= 0.0));
    assert!(st
        .metric("steward_postgres_checkpoint_sync_seconds_total", &[])
        .is_some());

    // The archiver: archive_command = 'false' fails on the first full segment.
    pg.psql_as_postgres("SELECT pg_switch_wal()");
    st.wait_until(WAIT, "a failed archive attempt", |st| {
        st.metric("steward_postgres_archive_failed_total", &[])
            .is_some_and(|n| n > 0.0)
            && st
                .metric("steward_postgres_archive_last_failure_age_seconds", &[])
                .is_some_and(|a| a >= 0.0)
    });
    assert_eq!(st.metric("steward_postgres_archived_total", &[]), Some(0.0));
    lint(&st);

    // Transaction IDs burnt: the vacuum group (every 5 min) is made to run again.
    pg.psql(
        "DO $$ BEGIN FOR i IN 1..2000 LOOP PERFORM txid_current(); COMMIT; END LOOP; END $$",
        PG_USER,
        PG_DB,
    );
    collect_again(&st);
    wait_state(&st, "XidWraparound", "warning", AlertState::Firing);
    assert_eq!(
        state(&st, "XidWraparound", "critical"),
        AlertState::Inactive
    );
    // The dead tuples of the table autovacuum may not touch, which it never vacuumed.
    let table = [("database", PG_DB), ("table", "public.churn")];
    assert_eq!(
        st.metric("steward_postgres_table_dead_tuples", &table),
        Some(1000.0)
    );
    assert!(st
        .metric("steward_postgres_dead_tuples", &[("database", PG_DB)])
        .is_some_and(|n| n >= 1000.0));
    assert_eq!(
        st.metric("steward_postgres_table_last_autovacuum_age_seconds", &table),
        None,
        "never autovacuumed: absent"
    );

    // Every database frozen (template0 too): the oldest age is small again.
    pg.psql_as_postgres("ALTER DATABASE template0 ALLOW_CONNECTIONS true");
    for db in ["template0", "template1", "postgres", PG_DB] {
        pg.psql("VACUUM (FREEZE)", "postgres", db);
    }
    collect_again(&st);
    wait_state(&st, "XidWraparound", "warning", AlertState::Resolved);
    st.wait_until(WAIT, "the vacuumed table to leave the top list", |st| {
        st.metric("steward_postgres_table_dead_tuples", &table)
            .is_none()
    });
}
