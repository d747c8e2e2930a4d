//! Fault injection, PostgreSQL: the server stopped (`pg_ctl stop -m fast`) and killed with
//! SIGKILL, while steward monitors it and while a backup streams from it. Steward must see it
//! go down and come back on its own (pool included, no leaked connections), report an
//! interrupted backup as failed without leaving anything behind, and take the next backup
//! once the server is back. Every scenario ends with the "nothing lost" check.

mod common;

use common::faults::*;
use common::*;
use std::path::Path;
use std::time::Duration;
use steward::backup::catalog::{BackupMeta, BackupStatus};

/// How long steward may take to notice a change of the server's state.
fn notice() -> Duration {
    INTERVAL * 2 + TIMEOUT + SLACK
}

fn write_read_ok(st: &Steward) -> bool {
    st.metric(
        "steward_write_read_test_success",
        &[("service", "postgres")],
    ) == Some(1.0)
}

/// Connections steward's role holds on the server.
fn steward_connections(pg: &Postgres) -> u64 {
    pg.psql_as_postgres(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = '{PG_USER}'"
    ))
    .trim()
    .parse()
    .unwrap()
}

/// Down, then up again on its own: `steward_up` follows, the write/read test passes again (the
/// pool hands out live connections), `status` says so, and the pool holds no more connections
/// than its maximum.
fn assert_down_then_recovers(st: &Steward, pg: &Postgres, what: &str) {
    st.wait_up("postgres", false, notice());
    let s = st.status();
    let report = s
        .services
        .iter()
        .find(|r| r.service == Service::Postgres)
        .expect("postgres in status");
    assert!(!report.up(), "status says up while {what}: {s:?}");
    pg.start_again();
    st.wait_up("postgres", true, notice() + INTERVAL * 3);
    st.wait_until(notice(), "the write/read test to pass again", write_read_ok);
    assert!(
        st.status()
            .services
            .iter()
            .any(|r| r.service == Service::Postgres && r.up()),
        "status after {what}"
    );
    let max = st
        .metric("steward_pool_max_connections", &[("service", "postgres")])
        .expect("steward_pool_max_connections") as u64;
    let held = steward_connections(pg);
    assert!(
        held <= max,
        "after {what}: steward holds {held} connections, pool max {max}"
    );
}

/// Monitoring through a clean stop and a crash (SIGKILL of the postmaster): each time steward
/// reports the server down, then up again without help; a backup afterwards is good.
#[test]
fn postgres_stopped_and_killed_during_monitoring() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let root_dir = short_tempdir("stw-fault-pgm-");
    let root = root_dir.path().join("backups");
    let st = Steward::builder(&pg, &redis)
        .with(|s| {
            s.pg_extra = "write_read_test = true\n".into();
            s.backup = backup_section(&root, "");
        })
        .start();
    st.wait_up("postgres", true, notice());
    st.wait_until(notice(), "the write/read test to pass", write_read_ok);

    pg.stop();
    assert_down_then_recovers(&st, &pg, "stopped");
    pg.kill9();
    assert_down_then_recovers(&st, &pg, "killed");
    // Redis was never touched: its monitor carried on throughout.
    assert_eq!(st.up("redis"), Some(true));

    create_good(&st);
    let all = assert_nothing_lost(&st, &root);
    assert_eq!(all.len(), 1, "{all:?}");
}

/// Rows of the big table: its dump takes seconds, so the fault lands mid-dump.
const ROWS: u64 = 1_000_000;

/// `backup create --wait` on another thread; the fault is injected once bytes flow.
fn backup_with_fault(st: &Steward, root: &Path, fault: impl FnOnce()) -> BackupMeta {
    let sock = st.socket().to_string_lossy().into_owned();
    let cwd = st.dir().to_path_buf();
    let create = std::thread::spawn(move || {
        steward_cmd(
            &["--socket", &sock, "--json", "backup", "create", "--wait"],
            &cwd,
            &[],
        )
    });
    wait_backup_streaming(st);
    fault();
    let out = create.join().unwrap();
    let err = error_of(&out);
    assert!(
        err.contains("pg_dump failed") && err.contains("Error message from server"),
        "the error should say that pg_dump failed and what the server did: {err}"
    );
    let failed: Vec<BackupMeta> = serde_json::from_value(out.reply().data).unwrap_or_else(|e| {
        panic!("the failed reply should carry the failed entry ({e}): {out:?}")
    });
    assert_eq!(failed.len(), 1, "{failed:?}");
    let m = failed.into_iter().next().unwrap();
    assert_eq!(m.status, BackupStatus::Failed, "{m:?}");
    assert!(m.file.is_none(), "{m:?}");
    eprintln!("backup cut off: {err}");
    st.wait_until(
        Duration::from_secs(10),
        "the failed job to leave the job list",
        |st| backup_jobs(st).is_empty(),
    );
    let all = assert_nothing_lost(st, root);
    assert!(
        all.iter()
            .any(|x| x.id == m.id && x.status == BackupStatus::Failed),
        "{all:?}"
    );
    m
}

/// A backup streaming when the server is stopped, and another when it is killed: each is
/// reported failed with the reason, leaves no partial file, earlier backups still verify, and
/// the next backup after the restart succeeds and verifies.
#[test]
fn postgres_stopped_and_killed_during_a_backup() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let root_dir = short_tempdir("stw-fault-pgb-");
    let root = root_dir.path().join("backups");
    pg.psql(
        "CREATE TABLE small (id int, v text); INSERT INTO small SELECT g, 'row ' || g FROM generate_series(1, 100) g;",
        PG_USER,
        PG_DB,
    );
    let st = Steward::builder(&pg, &redis)
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            s.backup = backup_section(&root, "");
        })
        .start();
    let first = create_good(&st);
    add_big_table(&pg, ROWS);

    let stopped = backup_with_fault(&st, &root, || pg.stop());
    pg.start_again();
    st.wait_up("postgres", true, notice());
    let killed = backup_with_fault(&st, &root, || pg.kill9());
    pg.start_again();
    st.wait_up("postgres", true, notice() + INTERVAL * 3);

    let next = create_good(&st);
    let all = assert_nothing_lost(&st, &root);
    assert_good_are(&all, &[&first.id, &next.id]);
    for f in [&stopped, &killed] {
        assert!(
            all.iter().any(|m| m.id == f.id && !m.is_good()),
            "{f:?} in {all:?}"
        );
    }
}
