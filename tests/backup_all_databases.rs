//! `backup.databases = ["*"]` and databases of any name (issue 14, item 4), against a real,
//! throwaway PostgreSQL: databases created while steward runs — one named with a space, one
//! with a non-ASCII letter — are backed up by the next scheduled run into escaped, reversible
//! directories, and each restores with its rows; templates, databases closed to connections
//! and steward's own scratch databases are left out.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::time::Duration;
use steward::backup::api::RestoreReply;
use steward::backup::catalog::{self, BackupMeta};
use steward::backup::BackupKind;

/// Bound for the next run of an every-minute schedule plus the backups it takes.
const NEXT_RUN: Duration = Duration::from_secs(150);
/// Bound for one backup or restore of the small test databases.
const JOB: Duration = Duration::from_secs(60);

fn list(st: &Steward) -> Vec<BackupMeta> {
    st.ctl(&["backup", "list"]).data()
}

/// The databases with a good daily backup.
fn backed_up_daily(st: &Steward) -> BTreeSet<String> {
    list(st)
        .into_iter()
        .filter(|m| m.kind == BackupKind::Daily && m.is_good())
        .map(|m| m.database)
        .collect()
}

/// A database owned by steward's role, with a table whose rows name the database.
fn create_seeded(pg: &Postgres, name: &str) {
    let ident = format!("\"{}\"", name.replace('"', "\"\""));
    pg.psql_as_postgres(&format!("CREATE DATABASE {ident} OWNER {PG_USER}"));
    pg.psql(
        &format!(
            "CREATE TABLE \"Odd Table\" (id int PRIMARY KEY, v text);
             INSERT INTO \"Odd Table\" SELECT g, {} || ' ' || g FROM generate_series(1, 250) g;",
            literal(name)
        ),
        PG_USER,
        &conninfo(name),
    );
}

/// `db` for psql's `-d` as a conninfo string: a name holding `=` would otherwise be read as
/// connection parameters.
fn conninfo(db: &str) -> String {
    format!("dbname='{}'", db.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Count and checksum of the rows of the seeded table.
fn rows(pg: &Postgres, db: &str) -> String {
    pg.psql(
        "SELECT count(*) || ':' || md5(string_agg(id || v, ',' ORDER BY id)) FROM \"Odd Table\"",
        PG_USER,
        &conninfo(db),
    )
    .trim()
    .to_string()
}

/// `promtool check metrics` finds nothing to say about `body`.
fn assert_promtool_clean(body: &str) {
    let (ok, text) = promtool_check_metrics(body);
    assert!(
        ok && text.trim().is_empty(),
        "promtool check metrics reported:\n{text}"
    );
}

/// The "Done when" of the item: with `databases = ["*"]` and a schedule every minute, the
/// catch-up at start covers the databases there were; `Sales DB` and `übung`, created
/// afterwards, are covered by the next scheduled run; their directories are `Sales%20DB` and
/// `%C3%BCbung`, their metadata keeps the real names, and each backup restores with its rows.
/// A database closed to connections and a live run's scratch database are never backed up.
#[test]
fn every_database_is_backed_up_including_ones_created_later_with_any_name() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql_as_postgres(&format!("ALTER ROLE {PG_USER} CREATEDB"));
    pg.psql(
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('x');",
        PG_USER,
        PG_DB,
    );
    let b = Steward::builder(&pg, &redis);
    let root = b.dir().join("backups");
    let st = b
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            s.backup = format!(
                "[backup]\ndir = {}\ndatabases = [\"*\"]\n\n[backup.schedule]\ndaily = \"* * * * *\"\nweekly = \"\"\n",
                serde_json::to_string(&root.to_string_lossy()).unwrap()
            );
        })
        .start();

    // Catch-up at start: every database there is (templates aside).
    let at_start: BTreeSet<String> = ["postgres", PG_DB].map(String::from).into();
    st.wait_until(JOB, "catch-up backups of the databases there were", |st| {
        backed_up_daily(st) == at_start
    });

    // Created while steward runs: two oddly named databases, one closed to connections, and
    // the scratch database of a live restore run (marked, its run lock held).
    let (sales, ubung) = ("Sales DB", "übung");
    create_seeded(&pg, sales);
    create_seeded(&pg, ubung);
    pg.psql_as_postgres("CREATE DATABASE closed_db ALLOW_CONNECTIONS false");
    // The run lock first (class "SU"), so steward's sweep of dead runs leaves it alone.
    let run = "0123456789ab";
    let mut live_run = pg.session(
        "postgres",
        "postgres",
        &format!("SELECT pg_advisory_lock(21333, hashtext('{run}'));"),
    );
    wait_until(JOB, "the scratch run's lock to be held", || {
        pg.psql_as_postgres(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 21333 AND granted",
        )
        .trim()
            == "1"
    });
    let scratch = format!("steward_restore_{run}");
    pg.psql_as_postgres(&format!("CREATE DATABASE {scratch} OWNER {PG_USER}"));
    pg.psql_as_postgres(&format!(
        "COMMENT ON DATABASE {scratch} IS 'steward:scratch run={run} purpose=restore'"
    ));

    let mut expected = at_start.clone();
    expected.extend([sales.to_string(), ubung.to_string()]);
    st.wait_until(
        NEXT_RUN,
        "the next scheduled run to back up the new databases",
        |st| backed_up_daily(st) == expected,
    );
    let all = list(&st);
    for never in ["template0", "template1", "closed_db", scratch.as_str()] {
        assert!(
            all.iter().all(|m| m.database != never),
            "{never} was backed up: {all:?}"
        );
    }
    assert!(
        all.iter().all(|m| m.is_good()),
        "a backup failed: {all:?}\n{}",
        tail(&st.log(), 40)
    );

    // Directories: escaped, reversible; plain names as they are.
    let mut dirs: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.')) // the catalog's lock file
        .collect();
    dirs.sort();
    assert_eq!(dirs, ["%C3%BCbung", "Sales%20DB", "postgres", PG_DB]);
    assert_eq!(catalog::db_dir(&root, sales), root.join("Sales%20DB"));

    // Metric labels carry the real names, and the exposition stays valid.
    let body = st.metrics();
    for db in [sales, ubung] {
        assert!(
            metric_value(
                &body,
                "steward_backup_last_success_timestamp_seconds",
                &[("database", db), ("kind", "daily")]
            )
            .is_some(),
            "no last-success sample for {db:?}:\n{body}"
        );
    }
    assert_promtool_clean(&body);

    // Each restores, with its rows, under a plain name.
    for (db, target) in [(sales, "sales_restored"), (ubung, "uebung_restored")] {
        let b = all
            .iter()
            .find(|m| m.database == db && m.kind == BackupKind::Daily)
            .unwrap();
        assert!(
            catalog::db_dir(&root, db)
                .join(b.file.as_deref().unwrap())
                .is_file(),
            "{b:?}"
        );
        let out = st.ctl(&["backup", "restore", &b.id, "--target-db", target]);
        let r: RestoreReply = out.data();
        assert_eq!(r.target, target, "{r:?}");
        assert_eq!(r.summary.rows, 250, "{r:?}");
        let original = rows(&pg, db);
        assert!(original.starts_with("250:"), "{original}");
        assert_eq!(rows(&pg, target), original, "{db:?} restored differently");
        // Over the database itself, name and all, and with the default target.
        let r: RestoreReply = st
            .ctl(&["backup", "restore", &b.id, "--target-db", db, "--force"])
            .data();
        assert!(r.replaced && r.target == db, "{r:?}");
        assert_eq!(rows(&pg, db), original, "{db:?} after restore --force");
        let r: RestoreReply = st.ctl(&["backup", "restore", &b.id]).data();
        assert!(r.target.contains("_restored_"), "{r:?}");
        assert_eq!(rows(&pg, &r.target), original, "{r:?}");
    }

    assert_eq!(
        pg.psql_as_postgres(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{scratch}'"
        ))
        .trim(),
        "1",
        "the live run's scratch database is still there"
    );
    let _ = live_run.kill();
    let _ = live_run.wait();
}

/// `backup create` without `--database` asks the server each time: databases created after
/// the first call (names with quotes and spaces, one that reads as libpq parameters) are in
/// the second, and restore; with `--database` such a name can be asked for by itself.
#[test]
fn backup_create_without_a_database_asks_the_server_each_time() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql_as_postgres(&format!("ALTER ROLE {PG_USER} CREATEDB"));
    let b = Steward::builder(&pg, &redis);
    let root = b.dir().join("backups");
    let st = b
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            s.backup = format!(
                "[backup]\ndir = {}\ndatabases = [\"*\"]\n\n[backup.schedule]\ndaily = \"\"\nweekly = \"\"\n",
                serde_json::to_string(&root.to_string_lossy()).unwrap()
            );
        })
        .start();
    let create_all = |st: &Steward| -> BTreeSet<String> {
        let metas: Vec<BackupMeta> = st.ctl(&["backup", "create", "--wait"]).data();
        assert!(metas.iter().all(|m| m.is_good()), "{metas:?}");
        metas.into_iter().map(|m| m.database).collect()
    };
    assert_eq!(
        create_all(&st),
        ["postgres", PG_DB].map(String::from).into()
    );

    // Names with quotes, and one libpq would read as connection parameters if pg_dump were
    // given it as its database argument (it would then dump `postgres`, without the table).
    let quoted = "it's \"q\"";
    let params = "x=1 dbname=postgres";
    create_seeded(&pg, quoted);
    create_seeded(&pg, params);
    assert_eq!(
        create_all(&st),
        ["postgres", PG_DB, quoted, params].map(String::from).into()
    );
    assert!(root.join("it%27s%20%22q%22").is_dir());
    assert!(root.join("x%3D1%20dbname%3Dpostgres").is_dir());
    let b = st
        .ctl(&["backup", "list", "--database", params])
        .data::<Vec<BackupMeta>>()
        .remove(0);
    let r: RestoreReply = st
        .ctl(&["backup", "restore", &b.id, "--target-db", "params_restored"])
        .data();
    assert_eq!(r.summary.rows, 250, "{r:?}");
    assert_eq!(rows(&pg, "params_restored"), rows(&pg, params));

    let one: Vec<BackupMeta> = st
        .ctl(&["backup", "create", "--database", quoted, "--wait"])
        .data();
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(one[0].database, quoted);
    let r: RestoreReply = st
        .ctl(&[
            "backup",
            "restore",
            &one[0].id,
            "--target-db",
            "quoted_restored",
        ])
        .data();
    assert_eq!(r.summary.rows, 250, "{r:?}");
    assert_eq!(rows(&pg, "quoted_restored"), rows(&pg, quoted));
}

/// When the server cannot say which databases it has: `backup create` is refused with the
/// reason and starts nothing; the next scheduled run backs up the databases of the last answer,
/// each of which fails and is recorded like any failed backup; no good backup is deleted.
#[test]
fn an_unreachable_server_fails_the_run_visibly_and_deletes_nothing() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let b = Steward::builder(&pg, &redis);
    let root = b.dir().join("backups");
    let st = b
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            s.backup = format!(
                "[backup]\ndir = {}\ndatabases = [\"*\"]\n\n[backup.schedule]\ndaily = \"* * * * *\"\nweekly = \"\"\n",
                serde_json::to_string(&root.to_string_lossy()).unwrap()
            );
        })
        .start();
    let at_start: BTreeSet<String> = ["postgres", PG_DB].map(String::from).into();
    st.wait_until(JOB, "catch-up backups of the databases there were", |st| {
        backed_up_daily(st) == at_start
    });
    st.wait_until(JOB, "the catch-up to finish", |st| {
        st.request_data::<Vec<serde_json::Value>>(r#"{"cmd":"backup_jobs"}"#)
            .is_empty()
    });
    let good: BTreeSet<String> = list(&st).into_iter().map(|m| m.id).collect();
    pg.stop();

    let out = st.ctl(&["backup", "create"]);
    assert_eq!(out.code, 1, "{out:?}");
    let e = out.reply().error.unwrap_or_default();
    assert!(
        e.contains("cannot ask PostgreSQL which databases to back up"),
        "{e}"
    );
    assert!(!e.contains(&pg.password), "{e}");

    st.wait_until(
        NEXT_RUN,
        "the next scheduled run to record a failure for each known database",
        |st| {
            let failed: BTreeSet<String> = list(st)
                .into_iter()
                .filter(|m| m.status == catalog::BackupStatus::Failed)
                .map(|m| m.database)
                .collect();
            failed == at_start
        },
    );
    let now: BTreeSet<String> = list(&st).into_iter().map(|m| m.id).collect();
    assert!(good.is_subset(&now), "a good backup went: {good:?} {now:?}");
    assert!(
        st.log()
            .contains("cannot ask PostgreSQL which databases to back up"),
        "{}",
        tail(&st.log(), 30)
    );
}
