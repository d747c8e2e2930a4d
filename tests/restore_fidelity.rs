//! A restore gives back the database as it was (issue 14): objects keep their owners and
//! grants in both formats (`--no-owner` is an explicit choice, refused for plain dumps),
//! planner statistics are gathered (`--no-analyze` skips it), the summary counts each row
//! once however tables are partitioned or inherited, and a long source name gets a default
//! target that fits PostgreSQL's 63 bytes.

mod common;

use common::faults::backup_section;
use common::*;
use steward::backup::api::RestoreReply;
use steward::backup::catalog::BackupMeta;

/// A server whose application database holds a schema `app` of objects owned by `app_owner` (a
/// role steward's role is a member of, as it must be to dump and restore them): a table with a grant to
/// `reader`, a SECURITY DEFINER function, a large object, a partitioned table (3 rows) and an
/// inheritance parent (1 row) with a child (2 rows). 100 rows in `owned`: 106 in all.
fn source() -> Postgres {
    let pg = Postgres::start();
    pg.psql_as_postgres(&format!(
        "ALTER ROLE {PG_USER} CREATEDB; CREATE ROLE app_owner NOLOGIN; CREATE ROLE reader NOLOGIN;
         GRANT app_owner TO {PG_USER};"
    ));
    // No autovacuum: the statistics a test sees are the ones the restore gathered.
    pg.psql_as_postgres("ALTER SYSTEM SET autovacuum = off");
    pg.psql_as_postgres("SELECT pg_reload_conf()");
    pg.psql(
        "CREATE SCHEMA app AUTHORIZATION app_owner;
         SET ROLE app_owner;
         SET search_path = app;
         CREATE TABLE owned (id int PRIMARY KEY, v text);
         INSERT INTO owned SELECT g, 'v' || g FROM generate_series(1, 100) g;
         GRANT SELECT ON owned TO reader;
         CREATE FUNCTION whoami() RETURNS name LANGUAGE sql SECURITY DEFINER AS 'SELECT current_user';
         SELECT lo_from_bytea(424242, 'large object');
         CREATE TABLE measures (at int, v int) PARTITION BY RANGE (at);
         CREATE TABLE measures_1 PARTITION OF measures FOR VALUES FROM (0) TO (10);
         CREATE TABLE measures_2 PARTITION OF measures FOR VALUES FROM (10) TO (20);
         INSERT INTO measures VALUES (1, 1), (2, 2), (15, 3);
         CREATE TABLE animal (name text);
         CREATE TABLE dog (bark text) INHERITS (animal);
         INSERT INTO animal VALUES ('generic');
         INSERT INTO dog VALUES ('rex', 'woof'), ('fido', 'wuff');
         RESET ROLE;
         ANALYZE;",
        PG_USER,
        PG_DB,
    );
    pg
}

fn daemon(pg: &Postgres, redis: &Redis, format: &str) -> Steward {
    Steward::builder(pg, redis)
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            s.backup = backup_section(
                &s.state_dir.with_file_name("backups"),
                &format!("format = \"{format}\"\n"),
            );
        })
        .start()
}

fn backup(st: &Steward) -> BackupMeta {
    common::faults::create_good(st)
}

/// `owner|acl` of the table `owned`, the function `whoami` and large object 424242.
fn owners(pg: &Postgres, db: &str) -> Vec<String> {
    pg.psql(
        "SELECT relowner::regrole || '|' || coalesce(relacl::text, '') FROM pg_class WHERE relname = 'owned'
         UNION ALL SELECT proowner::regrole || '|' || prosecdef FROM pg_proc WHERE proname = 'whoami'
         UNION ALL SELECT lomowner::regrole || '|' FROM pg_largeobject_metadata WHERE oid = 424242",
        PG_USER,
        db,
    )
    .lines()
    .map(str::to_string)
    .collect()
}

fn stats_rows(pg: &Postgres, db: &str) -> usize {
    pg.psql(
        "SELECT count(*) FROM pg_stats WHERE schemaname = 'app'",
        PG_USER,
        db,
    )
    .trim()
    .parse()
    .unwrap()
}

/// Item 1 and 5, both formats: owners, grants, the SECURITY DEFINER function's owner and the
/// large object's owner are as in the source; statistics are there; the summary counts 106
/// rows. Custom format with `--no-owner` leaves them to steward's role; `--no-analyze` leaves
/// the statistics empty.
#[test]
fn owners_grants_and_statistics_come_back_in_both_formats() {
    let pg = source();
    let redis = Redis::start();
    let expected = owners(&pg, PG_DB);
    assert_eq!(expected.len(), 3, "{expected:?}");
    assert!(expected[0].starts_with("app_owner|") && expected[0].contains("reader=r/app_owner"));
    assert_eq!(expected[1], "app_owner|true");
    assert_eq!(expected[2], "app_owner|");
    for format in ["plain", "custom"] {
        let st = daemon(&pg, &redis, format);
        let b = backup(&st);
        let target = format!("kept_{format}");
        let r: RestoreReply = st
            .ctl(&["backup", "restore", &b.id, "--target-db", &target])
            .data();
        assert!(r.owners_kept && r.analyzed, "{r:?}");
        assert_eq!(r.summary.rows, 106, "rows counted once: {r:?}");
        assert_eq!(owners(&pg, &target), expected, "{format}");
        assert!(
            stats_rows(&pg, &target) > 0,
            "{format}: no statistics after the restore"
        );

        let target = format!("bare_{format}");
        let out = st.ctl(&[
            "backup",
            "restore",
            &b.id,
            "--target-db",
            &target,
            "--no-owner",
            "--no-analyze",
        ]);
        if format == "plain" {
            let e = common::faults::error_of(&out);
            assert!(
                e.contains("plain-format") && e.contains("--no-owner"),
                "{e}"
            );
            continue;
        }
        let r: RestoreReply = out.data();
        assert!(!r.owners_kept && !r.analyzed, "{r:?}");
        let bare = owners(&pg, &target);
        assert!(
            bare.iter().all(|o| o.starts_with(&format!("{PG_USER}|"))),
            "--no-owner: {bare:?}"
        );
        assert_eq!(
            stats_rows(&pg, &target),
            0,
            "--no-analyze gathered statistics"
        );
        let human = st.ctl_human(&[
            "backup",
            "restore",
            &b.id,
            "--target-db",
            "bare_human",
            "--no-owner",
            "--no-analyze",
        ]);
        assert!(
            human.stdout.contains("--no-owner") && human.stdout.contains("--no-analyze"),
            "{human:?}"
        );
    }
}

/// Item 7: a source whose name is 60 bytes long restores without `--target-db` into a
/// database whose name fits 63 bytes (it was refused with a misleading message).
#[test]
fn a_long_source_name_gets_a_default_target_that_fits() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let long = "a_database_with_a_name_that_is_sixty_bytes_long_xxxxxxxxxxxx";
    assert_eq!(long.len(), 60);
    pg.psql_as_postgres(&format!("ALTER ROLE {PG_USER} CREATEDB"));
    pg.psql_as_postgres(&format!("CREATE DATABASE {long} OWNER {PG_USER}"));
    pg.psql(
        "CREATE TABLE t (v int); INSERT INTO t VALUES (1)",
        PG_USER,
        long,
    );
    let st = Steward::builder(&pg, &redis)
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            s.backup = backup_section(
                &s.state_dir.with_file_name("backups"),
                &format!("databases = [\"{long}\"]\n"),
            );
        })
        .start();
    let b = backup(&st);
    let r: RestoreReply = st.ctl(&["backup", "restore", &b.id]).data();
    assert!(r.target.len() <= 63, "{r:?}");
    assert!(r.target.starts_with(&long[..39]), "{r:?}");
    assert_eq!(pg.psql("SELECT v FROM t", PG_USER, &r.target).trim(), "1");
}
