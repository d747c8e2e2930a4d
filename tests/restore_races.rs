//! Restores under interference (from an adversarial review of issue 11's restore work),
//! against a real PostgreSQL: the target dropped and created again during the restore; a
//! restore test cut short by a PostgreSQL restart (the intact backup stays good and is not
//! deleted by retention); a server-side `idle_session_timeout` (the run lock must outlive a
//! long fill); two restores into one target at once; a forged journal naming a user
//! database's oid.

mod common;

use common::faults::{backup_section, create_good, list};
use common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use steward::backup::catalog::{self, BackupMeta, BackupStatus};

const JOB: Duration = Duration::from_secs(90);

fn builder(pg: &Postgres, redis: &Redis, backups: &str) -> StewardBuilder {
    let backups = backups.to_string();
    Steward::builder(pg, redis).with(move |s| {
        s.pg_extra = "write_read_test = false\n".into();
        s.backup = backups;
    })
}

fn names(pg: &Postgres) -> Vec<String> {
    pg.psql_as_postgres("SELECT datname FROM pg_database ORDER BY 1")
        .lines()
        .map(str::to_string)
        .collect()
}

fn oid(pg: &Postgres, db: &str) -> u32 {
    pg.psql_as_postgres(&format!(
        "SELECT oid FROM pg_database WHERE datname = '{db}'"
    ))
    .trim()
    .parse()
    .unwrap_or_else(|_| panic!("no database {db}"))
}

/// Databases whose name says steward made them.
fn steward_named(pg: &Postgres) -> Vec<String> {
    names(pg)
        .into_iter()
        .filter(|n| {
            n.starts_with("steward_restore_")
                || n.starts_with("steward_aside_")
                || n.starts_with("steward_verify_")
        })
        .collect()
}

fn spawn_ctl(st: &Steward, args: &[&str]) -> Child {
    Command::new(STEWARD)
        .arg("--socket")
        .arg(st.socket())
        .arg("--json")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn steward client")
}

/// The reply line a client printed.
fn reply_of(c: Child) -> serde_json::Value {
    let o = c.wait_with_output().unwrap();
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("no reply ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

fn set_version(pg: &Postgres, db: &str, v: &str) {
    pg.psql(
        &format!("CREATE TABLE IF NOT EXISTS version (v text); DELETE FROM version; INSERT INTO version VALUES ('{v}');"),
        PG_USER,
        db,
    );
}

fn version(pg: &Postgres, db: &str) -> String {
    pg.psql("SELECT v FROM version", PG_USER, db)
        .trim()
        .to_string()
}

fn create_db(pg: &Postgres, db: &str, v: &str) {
    pg.psql_as_postgres(&format!("CREATE DATABASE \"{db}\" OWNER {PG_USER}"));
    set_version(pg, db, v);
}

/// A server with CREATEDB for steward's role, whose application database restores slowly (a
/// materialized view whose refresh sleeps `secs`), with one good backup of it.
fn slow_backup(
    secs: u32,
    extra: &str,
) -> (Postgres, Redis, tempfile::TempDir, Steward, BackupMeta) {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql_as_postgres(&format!("ALTER ROLE {PG_USER} CREATEDB"));
    set_version(&pg, PG_DB, "backup");
    pg.psql(
        &format!("CREATE MATERIALIZED VIEW slow AS SELECT 1 AS x FROM pg_sleep({secs})"),
        PG_USER,
        PG_DB,
    );
    let dir = tempfile::tempdir().unwrap();
    let st = builder(&pg, &redis, &backup_section(dir.path(), extra)).start();
    let b = create_good(&st);
    (pg, redis, dir, st, b)
}

/// Waits until psql is feeding a scratch database whose name starts with `prefix`.
fn wait_filling(pg: &Postgres, prefix: &str) -> String {
    let mut name = String::new();
    wait_until(JOB, "a restore to be feeding its scratch database", || {
        let out = pg.psql_as_postgres(&format!(
            "SELECT datname FROM pg_stat_activity WHERE datname LIKE '{prefix}%' AND application_name = 'steward' AND pid <> pg_backend_pid() LIMIT 1"
        ));
        name = out.trim().to_string();
        !name.is_empty()
    });
    name
}

/// The target dropped and created again while the backup is restored: the restore fails
/// saying so, the re-created database keeps its name and content, nothing of steward's stays.
#[test]
fn a_target_created_again_during_the_restore_is_not_replaced() {
    let (pg, _redis, _dir, st, b) = slow_backup(4, "");
    create_db(&pg, "shop", "original");
    let client = spawn_ctl(
        &st,
        &["backup", "restore", &b.id, "--target-db", "shop", "--force"],
    );
    wait_filling(&pg, "steward_restore_");
    pg.psql_as_postgres("DROP DATABASE shop");
    create_db(&pg, "shop", "recreated");
    let r = reply_of(client);
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("created again"),
        "{r}"
    );
    assert_eq!(version(&pg, "shop"), "recreated");
    st.wait_until(JOB, "nothing of steward's left", |_| {
        steward_named(&pg).is_empty()
    });
    // And a restore now goes through.
    let r = st.ctl(&["backup", "restore", &b.id, "--target-db", "shop", "--force"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(version(&pg, "shop"), "backup");
}

/// A restore test cut short by a PostgreSQL restart says so, but the intact backup stays good:
/// still restorable, and retention keeps it as the newest good one.
#[test]
fn a_restore_test_cut_short_never_marks_a_backup_damaged() {
    let (pg, _redis, dir, st, b) = slow_backup(5, "min_keep = 0\nmanual_retention = \"1s\"");
    let client = spawn_ctl(&st, &["backup", "verify", &b.id, "--restore-test"]);
    wait_filling(&pg, "steward_verify_");
    pg.kill9();
    pg.start_again();
    let r = reply_of(client);
    assert_eq!(r["data"]["ok"], false, "{r}");
    let m = list(&st).into_iter().find(|m| m.id == b.id).unwrap();
    assert_eq!(m.status, BackupStatus::Good, "{m:?}");
    // The backup is older than manual_retention (the restore test alone took seconds), and
    // min_keep = 0: only being the newest good backup protects it.
    let p: steward::backup::api::PruneReply = st.ctl(&["backup", "prune"]).data();
    assert!(p.deleted.is_empty(), "{p:?}");
    let file = catalog::db_dir(dir.path(), PG_DB).join(b.file.as_deref().unwrap());
    assert!(file.exists(), "retention deleted the only backup");
    assert_eq!(list(&st).len(), 1);
}

/// A server that ends idle sessions (`idle_session_timeout`) does not end the run's admin
/// session during a long fill: the restore completes.
#[test]
fn idle_session_timeout_does_not_break_a_long_restore() {
    let (pg, _redis, _dir, st, b) = slow_backup(4, "");
    pg.psql_as_postgres(&format!(
        "ALTER ROLE {PG_USER} SET idle_session_timeout = '1s'"
    ));
    let r = st.ctl(&["backup", "restore", &b.id, "--target-db", "alone"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(version(&pg, "alone"), "backup");
    assert!(steward_named(&pg).is_empty(), "{:?}", steward_named(&pg));
}

/// Two `--force` restores into one target at once: one runs, the other is refused at once;
/// never two scratch databases or journals.
#[test]
fn two_restores_into_one_target_never_run_at_once() {
    let (pg, _redis, _dir, st, b) = slow_backup(3, "");
    create_db(&pg, "shop", "original");
    let args = ["backup", "restore", &b.id, "--target-db", "shop", "--force"];
    let (c1, c2) = (spawn_ctl(&st, &args), spawn_ctl(&st, &args));
    let (r1, r2) = (reply_of(c1), reply_of(c2));
    let oks = [&r1, &r2].iter().filter(|r| r["ok"] == true).count();
    assert_eq!(oks, 1, "{r1}\n{r2}");
    let refused = if r1["ok"] == true { &r2 } else { &r1 };
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("another restore into"),
        "{refused}"
    );
    assert_eq!(version(&pg, "shop"), "backup");
    st.wait_until(JOB, "nothing of steward's left", |_| {
        steward_named(&pg).is_empty()
    });
}

/// A forged journal naming a user database's oid as the replaced one: the repair never drops
/// it (only a database under the run's own aside name may be dropped).
#[test]
fn a_forged_journal_never_drops_a_user_database() {
    let pg = Postgres::start();
    let redis = Redis::start();
    create_db(&pg, "shop", "current");
    create_db(&pg, "precious", "keep me");
    let dir = tempfile::tempdir().unwrap();
    let mut st = builder(&pg, &redis, &backup_section(dir.path(), "")).start();
    let run = "0123456789ab";
    let journal = serde_json::json!({
        "run": run,
        "backup_id": "20260101T000000Z-manual-abcd",
        "target": "shop",
        "replaced": {"oid": oid(&pg, "precious"), "allow_connections": true},
        "scratch": format!("steward_restore_{run}"),
        "scratch_oid": oid(&pg, "shop"),
        "scratch_marker": format!("steward:scratch run={run} purpose=restore"),
        "phase": "swapped",
        "started_at": "2026-01-01T00:00:00Z",
    });
    let jdir = st.settings.state_dir.join("restores");
    std::fs::create_dir_all(&jdir).unwrap();
    std::fs::write(jdir.join(format!("{run}.json")), journal.to_string()).unwrap();
    st.start_again();
    st.wait_until(JOB, "the repair", |st| {
        st.log().contains("repaired a restore") || st.log().contains("not repaired")
    });
    assert_eq!(version(&pg, "precious"), "keep me");
    assert_eq!(version(&pg, "shop"), "current");
}
