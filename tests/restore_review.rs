//! Adversarial review of restore fidelity (issue 14): what a kill between steps leaves behind,
//! and SQL built from recorded names and values on a server whose settings steward did not
//! choose.

mod common;

use common::faults::{backup_section, create_good};
use common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use steward::backup::api::RestoreReply;

const JOB: Duration = Duration::from_secs(90);

fn builder(pg: &Postgres, redis: &Redis) -> StewardBuilder {
    Steward::builder(pg, redis).with(|s| {
        s.pg_extra = "write_read_test = false\n".into();
        s.backup = backup_section(&s.state_dir.with_file_name("backups"), "");
    })
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

fn kill_and_restart(st: &mut Steward, mut client: Child) {
    st.signal(libc::SIGKILL);
    assert!(st.wait_exit(Duration::from_secs(10)).is_some());
    let _ = client.kill();
    let _ = client.wait();
    st.remove_env("STEWARD_TEST_PAUSE_AT");
    st.start_again();
}

fn scratch_databases(pg: &Postgres) -> Vec<String> {
    pg.psql_as_postgres(
        "SELECT datname FROM pg_database WHERE datname LIKE 'steward\\_restore\\_%' ORDER BY 1",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// A server with `standard_conforming_strings = off` (still a supported setting) reads a
/// backslash before a quote as an escape: a recorded setting value ending in `\` must not end
/// the literal steward writes and run the rest as SQL of steward's role.
#[test]
fn a_setting_value_with_a_backslash_never_runs_as_sql() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql_as_postgres(&format!("ALTER ROLE {PG_USER} CREATEDB CREATEROLE"));
    // Any role may give itself such a default; the database owner its database.
    pg.psql_as_postgres(&format!(
        r"ALTER DATABASE {PG_DB} SET application_name = 'a\''; CREATE ROLE pwned; --'"
    ));
    let want = pg.psql_as_postgres(&format!(
        "SELECT setconfig::text FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = '{PG_DB}')"
    ));
    pg.psql_as_postgres("ALTER SYSTEM SET standard_conforming_strings = off");
    pg.psql_as_postgres("SELECT pg_reload_conf()");
    let st = builder(&pg, &redis).start();
    let b = create_good(&st);
    let out = st.ctl(&["backup", "restore", &b.id, "--target-db", "copy"]);
    let roles = pg.psql_as_postgres("SELECT count(*) FROM pg_roles WHERE rolname = 'pwned'");
    assert_eq!(roles.trim(), "0", "SQL from a setting value ran: {out:?}");
    let _: RestoreReply = out.data();
    let got = pg.psql_as_postgres(
        "SELECT setconfig::text FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = 'copy')",
    );
    assert_eq!(got, want);
}

/// `rename_in` replaces the scratch database's marker with the source's comment, then renames
/// it. Killed between the two, the next start rolls the run back: the scratch database (the
/// journal's, by oid and planned name) must be dropped, not left as a full copy nobody owns.
#[test]
fn kill_between_the_comment_and_the_rename_leaves_no_copy_behind() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql_as_postgres(&format!("ALTER ROLE {PG_USER} CREATEDB"));
    pg.psql_as_postgres(&format!("COMMENT ON DATABASE {PG_DB} IS 'the application'"));
    pg.psql("CREATE TABLE t AS SELECT 1 AS x", PG_USER, PG_DB);
    let mut st = builder(&pg, &redis)
        .env("STEWARD_TEST_PAUSE_AT", "swapping")
        .start();
    let b = create_good(&st);
    let client = spawn_ctl(&st, &["backup", "restore", &b.id, "--target-db", "fresh"]);
    st.wait_until(JOB, "the restore to reach the swap", |st| {
        st.log().contains("test pause point")
    });
    let scratch = scratch_databases(&pg);
    assert_eq!(scratch.len(), 1, "{scratch:?}");
    // What rename_in's first statement does, before the rename the kill prevents.
    pg.psql_as_postgres(&format!(
        "COMMENT ON DATABASE \"{}\" IS 'the application'",
        scratch[0]
    ));
    kill_and_restart(&mut st, client);
    st.wait_until(JOB, "the interrupted restore to be repaired", |st| {
        st.log().contains("repaired a restore that was cut short")
    });
    assert!(
        poll(Duration::from_secs(20), || scratch_databases(&pg)
            .is_empty()),
        "left behind: {:?}\n{}",
        scratch_databases(&pg),
        st.log()
    );
}

/// A steward role that is no superuser borrows membership of the roles it created for the
/// length of a restore. Killed mid-restore, the next start must take it back (the journal's
/// repair), or steward's role keeps the created role's privileges for good.
#[test]
fn a_borrowed_membership_is_taken_back_after_a_kill() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql_as_postgres(&format!(
        "ALTER ROLE {PG_USER} CREATEDB CREATEROLE; CREATE ROLE app_owner NOLOGIN"
    ));
    pg.psql(
        &format!(
            "CREATE SCHEMA app AUTHORIZATION app_owner;
             CREATE TABLE app.t AS SELECT g AS id FROM generate_series(1, 5) g;
             ALTER TABLE app.t OWNER TO app_owner;
             GRANT USAGE ON SCHEMA app TO {PG_USER}; GRANT SELECT ON app.t TO {PG_USER};"
        ),
        "postgres",
        PG_DB,
    );
    let mut st = builder(&pg, &redis)
        .env("STEWARD_TEST_PAUSE_AT", "restored")
        .start();
    let b = create_good(&st);
    pg.psql("DROP SCHEMA app CASCADE", "postgres", PG_DB);
    pg.psql_as_postgres("DROP ROLE app_owner");
    let client = spawn_ctl(&st, &["backup", "restore", &b.id, "--target-db", "fresh"]);
    st.wait_until(JOB, "the restore to fill its scratch database", |st| {
        st.log().contains("test pause point")
    });
    let member = || {
        pg.psql_as_postgres(&format!(
            "SELECT pg_has_role('{PG_USER}', 'app_owner', 'MEMBER')"
        ))
        .trim()
        .to_string()
    };
    assert_eq!(member(), "t", "the restore borrowed no membership");
    kill_and_restart(&mut st, client);
    st.wait_until(JOB, "the interrupted restore to be repaired", |st| {
        st.log().contains("repaired a restore that was cut short")
    });
    assert!(
        poll(Duration::from_secs(10), || member() == "f"),
        "steward's role is still a member of app_owner\n{}",
        st.log()
    );
}

/// "A role that exists is never altered": a role this server has keeps its memberships. The
/// backup's globals say `alice` (which exists here) was a member of `app_owner` (created by
/// the restore); making her one gives an existing login the privileges of the restored
/// owner. The reply says what was left out instead.
#[test]
fn an_existing_role_gets_no_membership_from_the_globals() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql_as_postgres(&format!(
        "ALTER ROLE {PG_USER} CREATEDB CREATEROLE; CREATE ROLE app_owner NOLOGIN;
         CREATE ROLE alice LOGIN; GRANT app_owner TO alice"
    ));
    pg.psql(
        &format!(
            "CREATE SCHEMA app AUTHORIZATION app_owner;
             CREATE TABLE app.t AS SELECT g AS id FROM generate_series(1, 5) g;
             ALTER TABLE app.t OWNER TO app_owner;
             GRANT USAGE ON SCHEMA app TO {PG_USER}; GRANT SELECT ON app.t TO {PG_USER};"
        ),
        "postgres",
        PG_DB,
    );
    let st = builder(&pg, &redis).start();
    let b = create_good(&st);
    pg.psql("DROP SCHEMA app CASCADE", "postgres", PG_DB);
    pg.psql_as_postgres("DROP ROLE app_owner");
    let r: RestoreReply = st
        .ctl(&["backup", "restore", &b.id, "--target-db", "fresh"])
        .data();
    assert_eq!(r.roles_created, ["app_owner"], "{r:?}");
    let member = pg.psql_as_postgres("SELECT pg_has_role('alice', 'app_owner', 'MEMBER')");
    assert_eq!(member.trim(), "f", "alice, who existed, was altered: {r:?}");
    assert!(
        r.summary
            .warnings
            .iter()
            .any(|w| w.contains("alice") && w.contains("app_owner")),
        "{r:?}"
    );
    // steward's role borrowed app_owner for the restore only.
    let steward = pg.psql_as_postgres(&format!(
        "SELECT pg_has_role('{PG_USER}', 'app_owner', 'MEMBER')"
    ));
    assert_eq!(steward.trim(), "f");
}

/// Rows per table are counted from a plain dump's COPY blocks only: a table comment and a
/// function body holding a line that reads like a COPY statement start none (else the
/// recorded counts are wrong and every restore drill of the database fails).
#[test]
fn a_copy_line_in_a_comment_does_not_skew_the_recorded_rows() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql(
        "CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2);
         CREATE TABLE u (a int); INSERT INTO u VALUES (3);
         COMMENT ON TABLE t IS E'load it with\\nCOPY public.t (a) FROM stdin;\\nit''s \\\\';
         CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$SELECT 'x
COPY public.u (a) FROM stdin;
'$$;",
        PG_USER,
        PG_DB,
    );
    let st = builder(&pg, &redis).start();
    let b = create_good(&st);
    let want: std::collections::BTreeMap<String, u64> = [
        ("\"public\".\"t\"".to_string(), 2),
        ("\"public\".\"u\"".to_string(), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(b.table_rows, Some(want));
}

/// The source database's owner is a role the restore creates; steward's role (no superuser)
/// borrows it, gives the filled copy to it, and then a `--force` restore fails at the fence (a
/// session it cannot end). The roll-back must still drop that copy, which only the owner's
/// members may drop: the membership is taken back after the roll-back, not before it.
#[test]
fn a_failed_restore_drops_its_copy_before_giving_back_the_borrowed_owner() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql_as_postgres(&format!(
        "ALTER ROLE {PG_USER} CREATEDB CREATEROLE; CREATE ROLE app_owner NOLOGIN"
    ));
    pg.psql_as_postgres("CREATE DATABASE shop OWNER app_owner");
    pg.psql_as_postgres(&format!("CREATE DATABASE busy OWNER {PG_USER}"));
    let st = Steward::builder(&pg, &redis)
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            s.backup = backup_section(
                &s.state_dir.with_file_name("backups"),
                "lock_timeout = \"2s\"",
            );
        })
        .start();
    let out = st.ctl(&["backup", "create", "--database", "shop", "--wait"]);
    let b = out
        .data::<Vec<steward::backup::catalog::BackupMeta>>()
        .remove(0);
    assert!(b.is_good(), "{out:?}");
    pg.psql_as_postgres("DROP DATABASE shop");
    pg.psql_as_postgres("DROP ROLE app_owner");
    let mut holder = pg.session("postgres", "busy", "SELECT pg_sleep(600);");
    wait_until(JOB, "the session on busy", || {
        pg.psql_as_postgres("SELECT count(*) FROM pg_stat_activity WHERE datname = 'busy'")
            .trim()
            != "0"
    });
    let out = st.ctl(&["backup", "restore", &b.id, "--target-db", "busy", "--force"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(!out.reply().ok, "{out:?}");
    // The roles it created from the backup stay, and the error says so.
    let error = out.reply().error.unwrap_or_default();
    assert!(
        error.contains("roles created for it from the backup's globals stay: app_owner"),
        "{error}"
    );
    assert_eq!(
        scratch_databases(&pg),
        Vec::<String>::new(),
        "{out:?}\n{}",
        st.log()
    );
    let member = pg.psql_as_postgres(&format!(
        "SELECT pg_has_role('{PG_USER}', 'app_owner', 'MEMBER')"
    ));
    assert_eq!(member.trim(), "f");
    let journals = st.settings.state_dir.join("restores");
    assert!(
        std::fs::read_dir(&journals).map_or(true, |mut d| d.next().is_none()),
        "a journal is left: {}",
        st.log()
    );
}

/// As above, killed once the copy belongs to the borrowed owner: the next start's repair
/// drops the copy, then takes the membership back.
#[test]
fn a_killed_restore_of_a_database_owned_by_a_created_role_is_repaired() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql_as_postgres(&format!(
        "ALTER ROLE {PG_USER} CREATEDB CREATEROLE; CREATE ROLE app_owner NOLOGIN"
    ));
    pg.psql_as_postgres("CREATE DATABASE shop OWNER app_owner");
    let mut st = builder(&pg, &redis)
        .env("STEWARD_TEST_PAUSE_AT", "restored")
        .start();
    let out = st.ctl(&["backup", "create", "--database", "shop", "--wait"]);
    let b = out
        .data::<Vec<steward::backup::catalog::BackupMeta>>()
        .remove(0);
    pg.psql_as_postgres("DROP DATABASE shop");
    pg.psql_as_postgres("DROP ROLE app_owner");
    let client = spawn_ctl(&st, &["backup", "restore", &b.id, "--target-db", "fresh"]);
    st.wait_until(JOB, "the restore to fill its scratch database", |st| {
        st.log().contains("test pause point")
    });
    let owner = pg.psql_as_postgres(
        "SELECT datdba::regrole FROM pg_database WHERE datname LIKE 'steward\\_restore\\_%'",
    );
    assert_eq!(owner.trim(), "app_owner");
    kill_and_restart(&mut st, client);
    st.wait_until(JOB, "the interrupted restore to be repaired", |st| {
        st.log().contains("repaired a restore that was cut short")
    });
    assert_eq!(scratch_databases(&pg), Vec::<String>::new(), "{}", st.log());
    let member = pg.psql_as_postgres(&format!(
        "SELECT pg_has_role('{PG_USER}', 'app_owner', 'MEMBER')"
    ));
    assert_eq!(member.trim(), "f", "{}", st.log());
}
