//! Restores never lose what a user had (issue 11, items 1–7), against a real, throwaway
//! PostgreSQL: user databases under the names steward used to pick survive; every existing
//! database needs `--force` and templates are refused; `kill -9` of steward at each step of a
//! `--force` swap and of a restore into a new name is repaired at the next start; a writer's
//! acknowledged rows all end up in the pre-restore backup; a session steward cannot end makes
//! the restore fail within `backup.lock_timeout` with the target untouched; a WARNING whose
//! text says "error:" does not fail a restore.

mod common;

use common::faults::{backup_section, create_good, error_of, list};
use common::*;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use steward::backup::api::{RestoreReply, VerifyReply};
use steward::backup::catalog::BackupMeta;
use steward::backup::BackupKind;

const JOB: Duration = Duration::from_secs(90);

fn grant_createdb(pg: &Postgres) {
    pg.psql_as_postgres(&format!("ALTER ROLE {PG_USER} CREATEDB"));
}

fn builder(pg: &Postgres, redis: &Redis, extra: &str) -> StewardBuilder {
    Steward::builder(pg, redis).with(|s| {
        s.pg_extra = "write_read_test = false\n".into();
        s.backup = backup_section(&s.state_dir.with_file_name("backups"), extra);
    })
}

/// Every database's name with its comment (`name|comment`).
fn databases(pg: &Postgres) -> Vec<String> {
    pg.psql_as_postgres(
        "SELECT datname || '|' || coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database ORDER BY 1",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// Databases steward created for itself and left behind (marked, or an aside copy).
fn leftovers(pg: &Postgres) -> Vec<String> {
    databases(pg)
        .into_iter()
        .filter(|d| d.contains("steward:scratch") || d.starts_with("steward_aside_"))
        .collect()
}

fn exists(pg: &Postgres, db: &str) -> bool {
    databases(pg)
        .iter()
        .any(|d| d.split('|').next() == Some(db))
}

/// Starts the client without waiting for it (it blocks while steward is paused).
fn spawn_ctl(st: &Steward, args: &[&str]) -> Child {
    let mut cmd = Command::new(STEWARD);
    cmd.arg("--socket")
        .arg(st.socket())
        .arg("--json")
        .args(args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn steward client")
}

/// `kill -9` of a daemon paused at a step (and of its waiting client), then a start without
/// the pause.
fn kill_and_restart(st: &mut Steward, mut client: Child) {
    st.signal(libc::SIGKILL);
    assert!(st.wait_exit(Duration::from_secs(10)).is_some());
    let _ = client.kill();
    let _ = client.wait();
    st.remove_env("STEWARD_TEST_PAUSE_AT");
    st.start_again();
}

/// Seeds the application database with a marker row that says which version it holds.
fn set_version(pg: &Postgres, v: &str) {
    pg.psql(
        &format!(
            "CREATE TABLE IF NOT EXISTS version (v text); DELETE FROM version; INSERT INTO version VALUES ('{v}');"
        ),
        PG_USER,
        PG_DB,
    );
}

fn version(pg: &Postgres, db: &str) -> String {
    pg.psql("SELECT v FROM version", PG_USER, db)
        .trim()
        .to_string()
}

/// The common start: a server whose application database holds `version`, a daemon with
/// `extra` lines in `[backup]`, and a good backup of that content.
fn seeded(version: &str, extra: &str) -> (Postgres, Redis, Steward, BackupMeta) {
    let pg = Postgres::start();
    let redis = Redis::start();
    grant_createdb(&pg);
    set_version(&pg, version);
    let st = builder(&pg, &redis, extra).start();
    let b = create_good(&st);
    (pg, redis, st, b)
}

// ---------------------------------------------------------------------------------------------

/// Item 1: user databases under the names steward used to pick (`steward_verify_<last 4 of
/// the ID>`, `<target>_steward_new`) are neither used nor dropped; a restore test and a
/// `--force` restore leave no database of steward's behind.
#[test]
fn user_databases_under_old_scratch_names_survive() {
    let (pg, _redis, st, b) = seeded("one", "");
    let verify_name = format!("steward_verify_{}", &b.id[b.id.len() - 4..]);
    let new_name = format!("{PG_DB}_steward_new");
    for name in [&verify_name, &new_name] {
        pg.psql_as_postgres(&format!("CREATE DATABASE \"{name}\" OWNER {PG_USER}"));
        pg.psql(
            "CREATE TABLE precious (x int); INSERT INTO precious VALUES (42);",
            PG_USER,
            name,
        );
    }
    let v: VerifyReply = st
        .ctl(&["backup", "verify", &b.id, "--restore-test"])
        .data();
    assert!(v.ok, "{v:?}");
    let r: RestoreReply = st
        .ctl(&["backup", "restore", &b.id, "--target-db", PG_DB, "--force"])
        .data();
    assert!(r.replaced, "{r:?}");
    for name in [&verify_name, &new_name] {
        assert_eq!(
            pg.psql("SELECT x FROM precious", PG_USER, name).trim(),
            "42",
            "the user's database {name} was touched"
        );
    }
    assert_eq!(leftovers(&pg), Vec::<String>::new());
    assert_eq!(version(&pg, PG_DB), "one");
}

/// Item 2: a database holding only a function is "existing" (needs `--force`); template0
/// and template1 are refused even with `--force`; `postgres` needs `--force`.
#[test]
fn every_existing_database_needs_force_and_templates_never() {
    let (pg, _redis, st, b) = seeded("one", "");
    pg.psql_as_postgres(&format!("CREATE DATABASE fnonly OWNER {PG_USER}"));
    pg.psql(
        "CREATE FUNCTION precious() RETURNS int LANGUAGE sql AS 'SELECT 42'; CREATE TYPE mood AS ENUM ('ok');",
        PG_USER,
        "fnonly",
    );
    for target in ["fnonly", "postgres"] {
        let err = error_of(&st.ctl(&["backup", "restore", &b.id, "--target-db", target]));
        assert!(err.contains("exists") && err.contains("--force"), "{err}");
    }
    for target in ["template0", "template1"] {
        let err =
            error_of(&st.ctl(&["backup", "restore", &b.id, "--target-db", target, "--force"]));
        assert!(err.contains("template"), "{err}");
    }
    assert_eq!(pg.psql("SELECT precious()", PG_USER, "fnonly").trim(), "42");
    assert!(
        list(&st).iter().all(|m| m.kind != BackupKind::PreRestore),
        "a refused restore took a pre-restore backup"
    );
    assert_eq!(leftovers(&pg), Vec::<String>::new());
}

/// Items 3 and 6: `kill -9` of steward at each step of a `--force` swap, then a restart: the
/// target name holds a database afterwards (the old one when the swap had not happened, the
/// restored one when it had), the log says which, and nothing of steward's is left.
#[test]
fn kill_at_each_step_of_a_force_restore_is_repaired_at_start() {
    let pg = Postgres::start();
    let redis = Redis::start();
    grant_createdb(&pg);
    set_version(&pg, "backup");
    // The backups outlive each daemon of the loop.
    let dir = tempfile::tempdir().unwrap();
    let backups = backup_section(dir.path(), "");
    let probe = builder(&pg, &redis, "")
        .with(|s| s.backup = backups.clone())
        .start();
    let b = create_good(&probe);
    drop(probe);
    for (step, expect) in [
        ("restored", "rolled back"),
        ("fenced", "rolled back"),
        ("swapping", "rolled back"),
        ("swapped", "finished"),
    ] {
        set_version(&pg, "current");
        let mut st = builder(&pg, &redis, "")
            .with(|s| s.backup = backups.clone())
            .env("STEWARD_TEST_PAUSE_AT", step)
            .start();
        let client = spawn_ctl(
            &st,
            &["backup", "restore", &b.id, "--target-db", PG_DB, "--force"],
        );
        st.wait_until(JOB, &format!("the restore to reach {step}"), |st| {
            st.log().contains("test pause point")
        });
        kill_and_restart(&mut st, client);
        st.wait_until(JOB, "the interrupted restore to be repaired", |st| {
            st.log().contains("repaired a restore that was cut short")
        });
        let line = st.log_lines_with("repaired a restore").join("\n");
        assert!(line.contains(expect), "at {step}: {line}");
        assert!(
            exists(&pg, PG_DB),
            "at {step}: the target name has no database"
        );
        let want = if expect == "finished" {
            "backup"
        } else {
            "current"
        };
        assert_eq!(version(&pg, PG_DB), want, "at {step}");
        st.wait_until(JOB, "steward's scratch databases to go", |_| {
            leftovers(&pg).is_empty()
        });
        // The target takes connections again.
        assert!(pg.try_psql("SELECT 1", PG_USER, PG_DB).is_ok(), "at {step}");
        let journals = st.settings.state_dir.join("restores");
        assert!(
            std::fs::read_dir(&journals).map_or(true, |mut d| d.next().is_none()),
            "at {step}: a journal is left in {}",
            journals.display()
        );
    }
}

/// Item 6: `kill -9` once a restore into a new name has filled its scratch database: the
/// name never appears half-done, and the next start drops the marked leftover and says so.
#[test]
fn kill_during_a_restore_into_a_new_database_leaves_nothing_that_looks_complete() {
    let pg = Postgres::start();
    let redis = Redis::start();
    grant_createdb(&pg);
    set_version(&pg, "backup");
    let mut st = builder(&pg, &redis, "")
        .env("STEWARD_TEST_PAUSE_AT", "restored")
        .start();
    let b = create_good(&st);
    let client = spawn_ctl(&st, &["backup", "restore", &b.id, "--target-db", "fresh"]);
    st.wait_until(JOB, "the restore to fill its scratch database", |st| {
        st.log().contains("test pause point")
    });
    assert!(!exists(&pg, "fresh"));
    assert_eq!(leftovers(&pg).len(), 1, "{:?}", databases(&pg));
    kill_and_restart(&mut st, client);
    st.wait_until(JOB, "the leftover to be dropped", |_| {
        leftovers(&pg).is_empty()
    });
    assert!(!exists(&pg, "fresh"), "a half-done restore holds the name");
    // Either the journal's repair or the marker sweep removed it, and said so.
    assert!(
        st.log().contains("repaired a restore that was cut short")
            || st.log().contains("dropped a scratch database"),
        "{}",
        st.log()
    );
    // A user database that only looks like steward's is never dropped by the sweep.
    pg.psql_as_postgres(&format!(
        "CREATE DATABASE steward_restore_0123456789ab OWNER {PG_USER}"
    ));
    st.start_again();
    // A restore repairs what is pending (and sweeps) before it starts.
    let r: RestoreReply = st
        .ctl(&["backup", "restore", &b.id, "--target-db", "fresh"])
        .data();
    assert_eq!(r.target, "fresh");
    assert_eq!(version(&pg, "fresh"), "backup");
    assert!(exists(&pg, "steward_restore_0123456789ab"));
}

/// Item 4: a client inserting every 50 ms during `restore --force`: every row it was told
/// was committed is in the pre-restore backup, and the reply counts the sessions ended.
#[test]
fn force_restore_loses_no_acknowledged_write() {
    let pg = Arc::new(Postgres::start());
    let redis = Redis::start();
    grant_createdb(&pg);
    pg.psql(
        "CREATE TABLE writes (id bigint PRIMARY KEY); INSERT INTO writes SELECT generate_series(1, 10);",
        PG_USER,
        PG_DB,
    );
    let st = builder(&pg, &redis, "").start();
    let b = create_good(&st);

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<i64>::new()));
    // One session held open the whole time, as an application's pool would.
    let mut idle = pg.session(PG_USER, PG_DB, "SELECT 1;");
    let writer = {
        let (pg, stop, acked) = (pg.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut next = 1000i64;
            while !stop.load(Ordering::Relaxed) {
                let sql = format!("INSERT INTO writes VALUES ({next}) RETURNING id");
                if let Ok(out) = pg.try_psql(&sql, PG_USER, PG_DB) {
                    if out.trim() == next.to_string() {
                        acked.lock().unwrap().push(next);
                    }
                }
                next += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    wait_until(JOB, "the writer's first rows", || {
        acked.lock().unwrap().len() >= 5
    });
    let r: RestoreReply = st
        .ctl(&["backup", "restore", &b.id, "--target-db", PG_DB, "--force"])
        .data();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let _ = idle.kill();
    let _ = idle.wait();
    assert!(r.sessions_ended >= 1, "{r:?}");
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 5, "{acked:?}");
    let pre = r.pre_restore_backup.clone().expect("pre-restore backup");
    let back: RestoreReply = st
        .ctl(&["backup", "restore", &pre, "--target-db", "before"])
        .data();
    assert_eq!(back.target, "before");
    let in_pre: std::collections::BTreeSet<i64> = pg
        .psql("SELECT id FROM writes", PG_USER, "before")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let in_new: std::collections::BTreeSet<i64> = pg
        .psql("SELECT id FROM writes", PG_USER, PG_DB)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let lost: Vec<i64> = acked
        .iter()
        .filter(|id| !in_pre.contains(id) && !in_new.contains(id))
        .copied()
        .collect();
    assert!(lost.is_empty(), "acknowledged rows lost: {lost:?}");
}

/// Item 5: a session steward cannot end (the superuser's, holding a lock) makes the
/// `--force` restore fail within `backup.lock_timeout`, naming it; the target is as it was,
/// takes connections and maintenance is off again. A backup behind the lock fails naming it.
#[test]
fn a_lock_steward_cannot_break_bounds_the_wait() {
    let (pg, _redis, st, b) = seeded("backup", "lock_timeout = \"2s\"");
    set_version(&pg, "current");
    let mut holder = pg.session(
        "postgres",
        PG_DB,
        "BEGIN; LOCK TABLE version IN ACCESS EXCLUSIVE MODE; SELECT 'locked';",
    );
    wait_until(JOB, "the lock to be held", || {
        pg.psql_as_postgres("SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND relation IS NOT NULL AND granted")
            .trim()
            != "0"
    });
    let err = error_of(&st.ctl(&["backup", "restore", &b.id, "--target-db", PG_DB, "--force"]));
    assert!(
        err.contains("lock_timeout") && err.contains("postgres"),
        "{err}"
    );
    let backup = st.ctl(&["backup", "create", "--wait"]);
    let text = backup.all();
    assert!(
        !backup.reply().ok
            && text.contains("LOCK TABLE public.version")
            && text.contains("backup.lock_timeout"),
        "a backup behind the lock must fail naming the table and the setting: {backup:?}"
    );
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(version(&pg, PG_DB), "current");
    assert!(pg.try_psql("SELECT 1", PG_USER, PG_DB).is_ok());
    assert_eq!(leftovers(&pg), Vec::<String>::new());
    let m: serde_json::Value = st.ctl(&["maintenance", "status"]).data();
    assert_eq!(m["on"], false, "{m}");
}

/// Item 7: a WARNING whose text says "error:" (raised while a materialized view is filled)
/// does not fail a restore; the reply reports it as a warning.
#[test]
fn a_warning_that_says_error_does_not_fail_a_restore() {
    let pg = Postgres::start();
    let redis = Redis::start();
    grant_createdb(&pg);
    pg.psql(
        "CREATE TABLE readings (v int); INSERT INTO readings VALUES (1), (2);
         CREATE FUNCTION noisy(int) RETURNS int LANGUAGE plpgsql AS $$
           BEGIN RAISE WARNING 'sensor error: reading % out of range', $1; RETURN $1; END $$;
         CREATE MATERIALIZED VIEW checked AS SELECT noisy(v) AS v FROM readings;",
        PG_USER,
        PG_DB,
    );
    let st = builder(&pg, &redis, "").start();
    let b = create_good(&st);
    let r: RestoreReply = st
        .ctl(&["backup", "restore", &b.id, "--target-db", "copy"])
        .data();
    assert!(
        r.summary
            .warnings
            .iter()
            .any(|w| w.contains("sensor error")),
        "{r:?}"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM checked", PG_USER, "copy")
            .trim(),
        "2"
    );
}
