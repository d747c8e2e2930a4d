//! Restore drills (issue 14 item 9), against a real, throwaway PostgreSQL: a scheduled drill
//! restores the newest backup into a marked scratch database, compares its rows with those
//! counted at backup time, records the result in the catalog, the metrics and `backup
//! status`, and leaves nothing behind; with the recorded counts altered, the next drill fails
//! visibly (catalog, metric, BackupRestoreTestFailed).

mod common;

use common::faults::backup_section;
use common::*;
use std::time::Duration;
use steward::alerts::{AlertState, AlertsReply};
use steward::backup::api::StatusReply;
use steward::backup::catalog::{self, BackupMeta};

/// A drill runs at the next minute boundary: at most a minute, plus the drill itself.
const DRILL: Duration = Duration::from_secs(150);

fn newest(st: &Steward) -> BackupMeta {
    let all: Vec<BackupMeta> = st.ctl(&["backup", "list"]).data();
    all.into_iter()
        .find(|m| m.is_good())
        .expect("a good backup")
}

#[test]
fn a_scheduled_drill_passes_and_fails_visibly_when_the_rows_differ() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql_as_postgres(&format!("ALTER ROLE {PG_USER} CREATEDB"));
    pg.psql(
        "CREATE TABLE orders (id int); INSERT INTO orders SELECT generate_series(1, 500);
         CREATE TABLE empty (v text);",
        PG_USER,
        PG_DB,
    );
    let st = Steward::builder(&pg, &redis)
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            s.backup = format!(
                "{}\n[backup.restore_test]\nschedule = \"* * * * *\"\n",
                backup_section(&s.state_dir.with_file_name("backups"), "")
            );
        })
        .start();
    let b = common::faults::create_good(&st);
    let rows = b.table_rows.clone().expect("rows counted at backup time");
    assert_eq!(rows.get("\"public\".\"orders\""), Some(&500), "{rows:?}");
    assert_eq!(rows.get("\"public\".\"empty\""), Some(&0), "{rows:?}");

    st.wait_until(DRILL, "a scheduled drill to pass", |st| {
        newest(st).restore_test.is_some_and(|t| t.ok)
    });
    let passed = newest(&st).restore_test.unwrap();
    assert!(passed.duration_seconds > 0.0, "{passed:?}");
    let labels = [("database", PG_DB)];
    assert_eq!(
        st.metric(
            "steward_backup_restore_tests_total",
            &[("database", PG_DB), ("result", "success")]
        ),
        Some(1.0)
    );
    assert!(st
        .metric(
            "steward_backup_restore_test_last_success_timestamp_seconds",
            &labels
        )
        .is_some());
    assert!(st
        .metric("steward_backup_restore_test_duration_seconds", &labels)
        .is_some());
    let rpo = st
        .metric("steward_backup_recovery_point_age_seconds", &labels)
        .expect("recovery point age");
    assert!((0.0..3600.0).contains(&rpo), "{rpo}");
    let status: StatusReply = st.ctl(&["backup", "status"]).data();
    let d = &status.databases[0];
    assert!(
        d.recovery_time_seconds.is_some() && d.recovery_point_age_seconds.is_some(),
        "{d:?}"
    );
    let human = st.ctl_human(&["backup", "status"]);
    assert!(
        human.stdout.contains("would lose at most"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("passed"), "{}", human.stdout);
    let scratch =
        pg.psql_as_postgres("SELECT count(*) FROM pg_database WHERE datname LIKE 'steward\\_%'");
    assert_eq!(scratch.trim(), "0", "the drill left a database behind");

    // The recorded counts no longer match what the backup holds.
    let root = st.dir().join("backups");
    let path = catalog::db_dir(&root, PG_DB).join(format!("{}.json", b.id));
    let mut meta: BackupMeta = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    meta.table_rows
        .as_mut()
        .unwrap()
        .insert("\"public\".\"orders\"".into(), 501);
    meta.seal();
    std::fs::write(&path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();

    st.wait_until(DRILL, "a scheduled drill to fail", |st| {
        newest(st).restore_test.is_some_and(|t| !t.ok)
    });
    let failed = newest(&st).restore_test.unwrap();
    assert!(
        failed
            .detail
            .contains("\"public\".\"orders\": 501 rows at backup time, 500 restored"),
        "{failed:?}"
    );
    assert!(st
        .metric(
            "steward_backup_restore_tests_total",
            &[("database", PG_DB), ("result", "failure")]
        )
        .is_some_and(|n| n >= 1.0));
    st.wait_until(
        Duration::from_secs(30),
        "BackupRestoreTestFailed to fire",
        |st| {
            let a: AlertsReply = st.ctl(&["alerts"]).data();
            a.alerts
                .iter()
                .any(|a| a.alert == "BackupRestoreTestFailed" && a.state == AlertState::Firing)
        },
    );
    let human = st.ctl_human(&["backup", "status"]);
    assert!(human.stdout.contains("FAILED"), "{}", human.stdout);
    // A failed drill is not damage: the backup is still good.
    assert!(newest(&st).is_good());
    let scratch =
        pg.psql_as_postgres("SELECT count(*) FROM pg_database WHERE datname LIKE 'steward\\_%'");
    assert_eq!(
        scratch.trim(),
        "0",
        "the failed drill left a database behind"
    );
}

/// Restore tests may run on a server kept for drills (`backup.restore_test.url_file`): the
/// backup's roles are created there, the rows compared, nothing is left behind, and the drill
/// server's password shows on no surface.
#[test]
fn restore_tests_run_on_a_server_of_their_own() {
    let pg = Postgres::start();
    let drills = Postgres::start();
    let redis = Redis::start();
    pg.psql_as_postgres(&format!(
        "CREATE ROLE drill_owner NOLOGIN; GRANT drill_owner TO {PG_USER}"
    ));
    pg.psql(
        "CREATE SCHEMA d AUTHORIZATION drill_owner; SET ROLE drill_owner;
         CREATE TABLE d.t (v int); INSERT INTO d.t SELECT generate_series(1, 42);",
        PG_USER,
        PG_DB,
    );
    drills.psql_as_postgres(&format!("ALTER ROLE {PG_USER} CREATEDB CREATEROLE"));
    let secret_dir = tempfile::tempdir().unwrap();
    let url_file = secret_dir.path().join("drill.url");
    std::fs::write(&url_file, drills.url()).unwrap();
    std::fs::set_permissions(
        &url_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let st = Steward::builder(&pg, &redis)
        .log_level("trace")
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            s.backup = format!(
                "{}\n[backup.restore_test]\nurl_file = {}\n",
                backup_section(
                    &s.state_dir.with_file_name("backups"),
                    "format = \"custom\""
                ),
                common::faults::toml_string(&url_file.to_string_lossy())
            );
        })
        .start();
    let b = common::faults::create_good(&st);
    let out = st.ctl(&["backup", "verify", &b.id, "--restore-test"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(newest(&st).restore_test.is_some_and(|t| t.ok));
    // It ran on the drill server: the backup's role was created there, and nothing is left.
    assert_eq!(
        drills
            .psql_as_postgres("SELECT count(*) FROM pg_roles WHERE rolname = 'drill_owner'")
            .trim(),
        "1"
    );
    for server in [&pg, &drills] {
        let left = server
            .psql_as_postgres("SELECT count(*) FROM pg_database WHERE datname LIKE 'steward\\_%'");
        assert_eq!(left.trim(), "0");
    }
    let check = st.cli(&["check-config", "--config", st.config_path.to_str().unwrap()]);
    let status = st.ctl(&["backup", "status"]);
    for (surface, text) in [
        ("log", st.log()),
        ("check-config", check.all()),
        ("verify reply", out.all()),
        ("backup status", status.all()),
        ("metrics", st.metrics()),
    ] {
        assert!(
            !text.contains(&drills.password),
            "the drill server's password shows in {surface}"
        );
    }
}
