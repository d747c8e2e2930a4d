//! Backups end to end, through the daemon and its client: `steward backup create|list|status|
//! verify|restore|prune` against a real, throwaway PostgreSQL, with the real client tools (and
//! `age`, `gunzip`, `promtool`) as peers. Each test proves one line of the "Done when" list of
//! the backups issue: round trip, SIGKILL mid-backup, full disk, a flipped byte, restore over an
//! existing database, IDs that are paths, retention over backdated entries, catch-up at start,
//! one backup per database at a time, encryption, and the metrics.

mod common;

use chrono::{DateTime, Duration as ChronoDuration, Timelike, Utc};
use common::faults::{add_big_table, assert_interrupted, children_named, file_names};
use common::tmpfs::Tmpfs;
use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use steward::backup::api::{
    JobInfo, JobKind, PruneReply, RestoreReply, Started, StatusReply as BackupStatusReply,
    VerifyReply,
};
use steward::backup::catalog::{self, BackupMeta, BackupStatus};
use steward::backup::BackupKind;
use steward::config::{Compression, DumpFormat};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Bound for one backup, verify or restore of the small test databases.
const JOB: Duration = Duration::from_secs(60);

/// A JSON string is a valid TOML basic string.
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// `[backup]` with `dir`, the schedules off, plus `extra` lines for `[backup]` and `tail`
/// (further tables such as `[backup.encryption]`).
fn backup_toml(dir: &Path, extra: &str, tail: &str) -> String {
    format!(
        "[backup]\ndir = {}\n{extra}\n\n[backup.schedule]\ndaily = \"\"\nweekly = \"\"\n\n{tail}\n",
        toml_str(&dir.to_string_lossy())
    )
}

/// Restores create databases: the harness role gets CREATEDB (as steward's role would in a
/// deployment that restores).
fn grant_createdb(pg: &Postgres) {
    pg.psql_as_postgres(&format!("ALTER ROLE {PG_USER} CREATEDB"));
}

/// A daemon against both servers with the harness defaults, except the monitor's write/read
/// test: its heartbeat table would appear in the application database at a time of its own,
/// and the tests compare databases table by table.
fn builder(pg: &Postgres, redis: &Redis) -> StewardBuilder {
    Steward::builder(pg, redis).with(|s| s.pg_extra = "write_read_test = false\n".into())
}

/// Where the harness's default config puts backups.
fn default_backup_dir(st: &Steward) -> PathBuf {
    st.dir().join("backups")
}

/// `backup create --wait` of the default database; asserts one good backup and returns it.
fn create_wait(st: &Steward) -> BackupMeta {
    let out = st.ctl(&["backup", "create", "--wait"]);
    let metas: Vec<BackupMeta> = out.data();
    assert_eq!(metas.len(), 1, "one database, one backup: {metas:?}");
    let m = metas.into_iter().next().unwrap();
    assert!(m.is_good(), "backup is not good: {m:?}");
    m
}

fn list(st: &Steward) -> Vec<BackupMeta> {
    st.ctl(&["backup", "list"]).data()
}

fn backup_jobs(st: &Steward) -> Vec<JobInfo> {
    st.request_data(r#"{"cmd":"backup_jobs"}"#)
}

/// The error message of a command that must fail: exit 1 and an error reply.
fn error_of(out: &CmdOutput) -> String {
    assert_eq!(out.code, 1, "expected the command to fail: {out:?}");
    let r = out.reply();
    assert!(!r.ok, "expected an error reply: {out:?}");
    let e = r.error.unwrap_or_default();
    assert!(
        !e.trim().is_empty(),
        "error reply without a message: {out:?}"
    );
    e
}

/// Every database of the cluster, sorted.
fn databases(pg: &Postgres) -> Vec<String> {
    pg.psql_as_postgres("SELECT datname FROM pg_database ORDER BY 1")
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// A counter that may not be exported yet reads as 0.
fn counter(st: &Steward, name: &str, labels: &[(&str, &str)]) -> f64 {
    st.metric(name, labels).unwrap_or(0.0)
}

/// Fails with a clear message when a command-line peer is missing.
fn require_cli(name: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{name}` is not installed; this test needs it (apt-get install -y {package}; tests/run.sh installs it)"
    );
}

/// Runs a command, panicking with its output unless it succeeds; returns stdout.
fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Tables of every kind of value a backup must carry over, sequences, indexes, a view.
const SEED: &str = r#"
CREATE SEQUENCE invoice_no START 1000 INCREMENT 7;
CREATE TABLE items (
    id integer PRIMARY KEY,
    small smallint,
    big bigint,
    price numeric(14,4),
    ratio numeric,
    name text NOT NULL,
    doc jsonb,
    blob bytea,
    maybe text,
    flag boolean
);
INSERT INTO items
SELECT g, (g % 30000 - 15000)::smallint, g::bigint * 1000000007 * CASE WHEN g % 2 = 0 THEN -1 ELSE 1 END,
       g / 7.0, CASE WHEN g % 11 = 0 THEN 'NaN'::numeric ELSE (g::numeric ^ 3) / 3 END,
       'naïve café ☕ 日本語 "double" ''single'' \back\slash ' || g,
       jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g % 3, null), 'ü', 'ß "q" \', 'nested', jsonb_build_object('x', g * 0.5)),
       decode(md5(g::text), 'hex') || '\x00ff5c27'::bytea,
       CASE WHEN g % 5 = 0 THEN NULL WHEN g % 5 = 1 THEN '' ELSE E'x\ty\n\r' || g END,
       CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END
FROM generate_series(1, 2000) g;
INSERT INTO items (id, name, blob, price, ratio) VALUES
    (100001, E'all bytes \\ '' " \u00e9 \U0001F600', (SELECT string_agg(set_byte('\x00'::bytea, 0, b), ''::bytea) FROM generate_series(0, 255) b),
     -9999999999.9999, 12345678901234567890.123456789012345678901234567890);
CREATE INDEX items_name_idx ON items (name);
CREATE UNIQUE INDEX items_lower_idx ON items (lower(name), id);
CREATE TABLE orders (
    no integer DEFAULT nextval('invoice_no') PRIMARY KEY,
    item integer REFERENCES items(id),
    qty smallint CHECK (qty >= 0),
    placed timestamptz,
    note text
);
INSERT INTO orders (item, qty, placed, note)
SELECT (g % 2000) + 1, g % 7, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 minute 7 seconds',
       CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ' || g END
FROM generate_series(1, 3000) g;
CREATE TABLE "Odd Name" ("Mixed Case" text, id serial);
INSERT INTO "Odd Name" ("Mixed Case") VALUES ('one'), (NULL), ('tab	in it');
CREATE TABLE empty_table (id bigint GENERATED ALWAYS AS IDENTITY, v text);
CREATE VIEW expensive AS SELECT id, name, price FROM items WHERE price > 250 ORDER BY id;
"#;

/// Rows [`SEED`] puts in its tables, and how many tables.
const SEED_ROWS: i64 = 2001 + 3000 + 3;
const SEED_TABLES: i64 = 4;

fn seed(pg: &Postgres, db: &str) {
    pg.psql(SEED, PG_USER, db);
}

/// Per-table checksums of the ordered rows plus sequence state, columns, constraints, index
/// and view definitions: equal fingerprints mean equal content.
fn fingerprint(pg: &Postgres, db: &str) -> String {
    let sum = |label: &str, rel: &str| {
        format!(
            "SELECT '{label}'::text, count(*)::text || ':' || coalesce(md5(string_agg(t::text, chr(10) ORDER BY t::text)), '-') FROM {rel} t"
        )
    };
    let sql = [
        sum("items", "items"),
        sum("orders", "orders"),
        sum("odd", "\"Odd Name\""),
        sum("empty", "empty_table"),
        sum("view", "expensive"),
        "SELECT 'seq', last_value::text || '/' || is_called::text FROM invoice_no".into(),
        "SELECT 'odd_seq', last_value::text || '/' || is_called::text FROM \"Odd Name_id_seq\"".into(),
        "SELECT 'columns', string_agg(table_name || '.' || column_name || ':' || data_type || ':' || coalesce(column_default, '') || ':' || is_nullable || ':' || is_identity, ';' ORDER BY table_name, ordinal_position) FROM information_schema.columns WHERE table_schema = 'public'".into(),
        "SELECT 'constraints', string_agg(conname || ':' || pg_get_constraintdef(oid), ';' ORDER BY conname) FROM pg_constraint WHERE connamespace = 'public'::regnamespace".into(),
        "SELECT 'indexes', string_agg(indexdef, ';' ORDER BY indexdef) FROM pg_indexes WHERE schemaname = 'public'".into(),
        "SELECT 'view', pg_get_viewdef('expensive'::regclass)".into(),
        "SELECT 'tables', string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'".into(),
    ]
    .join(" UNION ALL ");
    pg.psql(&sql, PG_USER, db)
}

/// The fingerprint of a freshly seeded database must look like it (guards the comparisons
/// against comparing two empty answers).
fn assert_seeded(fp: &str) {
    for needle in [
        "items|2001:",
        "orders|3000:",
        "odd|3:",
        "empty|0:-",
        "seq|21993/true",
    ] {
        assert!(fp.contains(needle), "fingerprint lacks {needle:?}:\n{fp}");
    }
    assert!(
        fp.contains("CREATE UNIQUE INDEX items_lower_idx"),
        "indexes missing:\n{fp}"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Round trip
// ---------------------------------------------------------------------------------------------

/// A database with every kind of value → `backup create --wait` → `restore ID` into a new
/// database (default name) → the same content; `verify --restore-test` reports tables and
/// rows and leaves no scratch database.
#[test]
fn round_trip_through_the_daemon() {
    let pg = Postgres::start();
    let redis = Redis::start();
    grant_createdb(&pg);
    seed(&pg, PG_DB);
    let original = fingerprint(&pg, PG_DB);
    assert_seeded(&original);
    let st = builder(&pg, &redis).start();

    let b = create_wait(&st);
    assert_eq!(b.database, PG_DB);
    assert_eq!(b.kind, BackupKind::Manual);
    assert!(b.stored_bytes > 0 && b.dump_bytes > b.stored_bytes, "{b:?}");
    let listed = list(&st);
    assert!(
        listed.iter().any(|m| m.id == b.id && m.is_good()),
        "backup {} not in `backup list`: {listed:?}",
        b.id
    );

    let before = databases(&pg);
    let r: RestoreReply = st.ctl(&["backup", "restore", &b.id]).data();
    assert_eq!(r.id, b.id);
    assert!(
        r.target.starts_with("steward_restored_"),
        "default target is <db>_restored_<timestamp>: {r:?}"
    );
    assert!(!before.contains(&r.target), "target existed before: {r:?}");
    assert!(!r.replaced && r.pre_restore_backup.is_none(), "{r:?}");
    assert_eq!(
        (r.summary.tables, r.summary.rows),
        (SEED_TABLES, SEED_ROWS),
        "{r:?}"
    );
    let restored = fingerprint(&pg, &r.target);
    assert_eq!(
        original, restored,
        "restored content differs from the original"
    );

    let v: VerifyReply = st
        .ctl(&["backup", "verify", &b.id, "--restore-test"])
        .data();
    assert!(v.ok, "verify --restore-test failed: {v:?}");
    assert!(v.checks.iter().all(|c| c.ok), "{v:?}");
    let rt = v.restore_test.expect("restore test summary");
    assert_eq!((rt.tables, rt.rows), (SEED_TABLES, SEED_ROWS), "{rt:?}");
    let after = databases(&pg);
    let mut expected = before.clone();
    expected.push(r.target.clone());
    expected.sort();
    assert_eq!(
        after, expected,
        "the restore test left a scratch database behind (or something else appeared)"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. SIGKILL in the middle of a backup
// ---------------------------------------------------------------------------------------------

/// Rows of the big table for the SIGKILL test: about 100 MB of dump, so that the backup takes
/// seconds (the test asserts that it was still running when killed).
const KILL_ROWS: u64 = 1_000_000;

/// SIGKILL to steward while pg_dump streams → nothing under a final name, the partial `.tmp`
/// is left; the next start sweeps it and records the run as failed ("interrupted"); no good
/// entry appears; pg_dump does not keep streaming into nowhere.
#[test]
fn sigkill_mid_backup_leaves_no_backup_and_next_start_records_failure() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let t = Instant::now();
    add_big_table(&pg, KILL_ROWS);
    eprintln!("big table of {KILL_ROWS} rows made in {:?}", t.elapsed());
    // The password comes in through DATABASE_URL, as in many deployments.
    let mut st = builder(&pg, &redis)
        .with(|s| s.pg_url = None)
        .env("DATABASE_URL", &pg.url())
        .start();
    let dbdir = catalog::db_dir(&default_backup_dir(&st), PG_DB);

    let started: Vec<Started> = st.ctl(&["backup", "create"]).data();
    let id = started[0].id.clone();
    let t = Instant::now();
    // Poll the jobs directly (cheap) and kill at the first sign of data flowing.
    st.wait_until(JOB, "the backup to stream its first bytes", |st| {
        backup_jobs(st)
            .iter()
            .any(|j| j.kind == JobKind::Backup && j.bytes > 0)
    });
    // Mid-backup, pg_dump's command line holds no password.
    let dumps = children_named(st.pid(), "pg_dump");
    assert_eq!(
        dumps.len(),
        1,
        "expected one pg_dump child of steward mid-backup (if the backup already finished, make KILL_ROWS bigger)"
    );
    let cmdline = fs::read(format!("/proc/{}/cmdline", dumps[0])).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        !cmdline.contains(&pg.password),
        "pg_dump's argv holds the password: {cmdline}"
    );
    st.signal(libc::SIGKILL);
    let status = st.wait_exit(Duration::from_secs(10));
    assert!(status.is_some(), "steward did not die on SIGKILL");
    eprintln!("killed {:?} after the backup started", t.elapsed());

    // What the kill left: the running marker and the partial file, nothing under a final name.
    let left = file_names(&dbdir);
    let data_name = catalog::data_file_name(&id, DumpFormat::Plain, Compression::Gzip, false);
    assert!(
        !left.contains(&data_name) && !left.contains(&format!("{id}.json")),
        "the backup completed before the kill (make KILL_ROWS bigger) or a final name exists: {left:?}"
    );
    assert!(
        left.contains(&format!("{data_name}.tmp")) && left.contains(&format!("{id}.running.json")),
        "expected the partial .tmp and the running marker after SIGKILL: {left:?}"
    );

    // pg_dump, orphaned, must not linger: with its reader gone it dies (a zombie awaiting its
    // new parent's reaping counts as gone).
    let dump_pid = dumps[0];
    wait_until(
        Duration::from_secs(20),
        "the orphaned pg_dump to exit",
        || match fs::read_to_string(format!("/proc/{dump_pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                .is_some_and(|state| state == "Z" || state == "X"),
        },
    );

    st.start_again();
    let all = list(&st);
    assert!(
        !all.iter().any(|m| m.is_good()),
        "no good backup may exist after the kill: {all:?}"
    );
    let failed = assert_interrupted(&all, &id);
    assert!(failed.file.is_none(), "{failed:?}");
    assert_eq!(
        file_names(&dbdir),
        vec![format!("{id}.json")],
        "after the sweep only the failed entry's metadata remains (no .tmp, no final name, no marker)"
    );
    st.wait_until(
        Duration::from_secs(10),
        "steward_backups_total{result=\"failure\"} to count the interrupted run",
        |st| {
            counter(
                st,
                "steward_backups_total",
                &[
                    ("database", PG_DB),
                    ("kind", "manual"),
                    ("result", "failure"),
                ],
            ) == 1.0
        },
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Full filesystem
// ---------------------------------------------------------------------------------------------

/// Backup dir on a full filesystem: a first small backup fits; the next, of a database bigger
/// than the space, fails with a clear "no space" error, leaves no partial file, records a
/// failed entry, raises the failure metric; the first backup still verifies.
#[test]
fn full_filesystem_fails_cleanly_and_older_backups_still_verify() {
    let Some(fs_) = Tmpfs::mount("512k") else {
        return;
    };
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql(
        "CREATE TABLE small (id int, v text); INSERT INTO small SELECT g, 'row ' || g FROM generate_series(1, 100) g;",
        PG_USER,
        PG_DB,
    );
    let root = fs_.path().to_path_buf();
    let st = builder(&pg, &redis)
        .with(|s| s.backup = backup_toml(&root, "", ""))
        .start();
    let dbdir = catalog::db_dir(&root, PG_DB);

    let first = create_wait(&st);
    // ~20 000 rows of 100 hex chars: about 1 MB compressed, twice the filesystem.
    add_big_table(&pg, 20_000);
    let out = st.ctl(&["backup", "create", "--wait"]);
    let err = error_of(&out);
    let lower = err.to_lowercase();
    assert!(
        lower.contains("no space left") || lower.contains("disk is full"),
        "the error should say the disk is full: {err}"
    );
    let failed_id = out.reply().data[0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("failed reply carries the failed entry: {out:?}"))
        .to_string();

    // No partial file: only the good backup's data and metadata, and the failed entry's metadata.
    let first_data =
        catalog::data_file_name(&first.id, DumpFormat::Plain, Compression::Gzip, false);
    assert_eq!(
        file_names(&dbdir),
        {
            let mut v = vec![
                first_data.clone(),
                first.globals.as_ref().unwrap().file.clone(),
                format!("{}.json", first.id),
                format!("{failed_id}.json"),
            ];
            v.sort();
            v
        },
        "after the failed backup: no .tmp, no data file without metadata, no running marker"
    );
    let all = list(&st);
    let failed = all
        .iter()
        .find(|m| m.id == failed_id)
        .expect("failed entry listed");
    assert_eq!(failed.status, BackupStatus::Failed, "{failed:?}");
    assert!(failed.file.is_none(), "{failed:?}");
    assert_eq!(
        all.iter().filter(|m| m.is_good()).count(),
        1,
        "only the first backup is good: {all:?}"
    );

    let v: VerifyReply = st.ctl(&["backup", "verify", &first.id]).data();
    assert!(v.ok, "the older backup no longer verifies: {v:?}");

    st.wait_until(
        Duration::from_secs(10),
        "steward_backups_total{result=\"failure\"} to rise",
        |st| {
            counter(
                st,
                "steward_backups_total",
                &[
                    ("database", PG_DB),
                    ("kind", "manual"),
                    ("result", "failure"),
                ],
            ) == 1.0
        },
    );
    assert_eq!(
        counter(
            &st,
            "steward_backups_total",
            &[
                ("database", PG_DB),
                ("kind", "manual"),
                ("result", "success")
            ]
        ),
        1.0
    );
    drop(st);
}

// ---------------------------------------------------------------------------------------------
// 4. A flipped byte
// ---------------------------------------------------------------------------------------------

/// One byte flipped in a backup file → verify fails; restore refuses before touching any
/// database: a new target is not created, an existing one keeps its content, no pre-restore
/// backup is taken.
#[test]
fn flipped_byte_fails_verify_and_restore_touches_nothing() {
    let pg = Postgres::start();
    let redis = Redis::start();
    grant_createdb(&pg);
    seed(&pg, PG_DB);
    pg.psql_as_postgres(&format!("CREATE DATABASE keepme OWNER {PG_USER}"));
    pg.psql(
        "CREATE TABLE precious (v text); INSERT INTO precious VALUES ('do not lose me');",
        PG_USER,
        "keepme",
    );
    let keep_before = pg.psql("SELECT string_agg(v, ',') FROM precious", PG_USER, "keepme");
    let st = builder(&pg, &redis).start();
    let b = create_wait(&st);

    let path = catalog::db_dir(&default_backup_dir(&st), PG_DB)
        .join(b.file.as_deref().expect("good backup names its file"));
    let mut bytes = fs::read(&path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    fs::write(&path, &bytes).unwrap();

    let out = st.ctl(&["backup", "verify", &b.id]);
    // A script's `steward backup verify ID || alert` must notice.
    assert_eq!(out.code, 1, "a failed verify exits 1: {out:?}");
    let r = out.reply();
    let v: VerifyReply = serde_json::from_value(r.data.clone()).unwrap();
    assert!(!v.ok, "verify passed a backup with a flipped byte: {v:?}");
    assert!(
        v.checks.iter().any(|c| c.name == "sha256" && !c.ok),
        "the hash check should be the one failing: {v:?}"
    );
    let human = st.ctl_human(&["backup", "verify", &b.id]);
    assert_eq!(human.code, 1, "{human:?}");
    assert!(
        human.stdout.contains("FAILED") && human.stdout.contains("FAIL sha256"),
        "the human output should say the verify failed: {human:?}"
    );

    let dbs_before = databases(&pg);
    let out = st.ctl(&["backup", "restore", &b.id, "--target-db", "fresh_target"]);
    let err = error_of(&out);
    assert!(
        err.contains("failed verification") && err.contains("nothing was restored"),
        "unclear refusal: {err}"
    );
    let out = st.ctl(&[
        "backup",
        "restore",
        &b.id,
        "--target-db",
        "keepme",
        "--force",
    ]);
    error_of(&out);
    let out = st.ctl(&["backup", "restore", &b.id]);
    error_of(&out);

    assert_eq!(
        databases(&pg),
        dbs_before,
        "a refused restore created or dropped a database"
    );
    assert_eq!(
        pg.psql("SELECT string_agg(v, ',') FROM precious", PG_USER, "keepme"),
        keep_before,
        "the existing target was touched"
    );
    let all = list(&st);
    assert!(
        all.iter().all(|m| m.kind != BackupKind::PreRestore),
        "a pre-restore backup was taken although the restore was refused: {all:?}"
    );
    assert_eq!(
        counter(&st, "steward_restores_total", &[("result", "success")]),
        0.0
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Restore over an existing database
// ---------------------------------------------------------------------------------------------

/// Restoring into the existing, non-empty application database: refused without `--force`
/// (content unchanged, no pre-restore backup); with `--force` the content is the backup's and
/// a `pre-restore` backup holding the replaced content exists.
#[test]
fn restore_over_existing_database_needs_force_and_takes_pre_restore_backup() {
    let pg = Postgres::start();
    let redis = Redis::start();
    grant_createdb(&pg);
    seed(&pg, PG_DB);
    let original = fingerprint(&pg, PG_DB);
    assert_seeded(&original);
    let st = builder(&pg, &redis).start();
    let b = create_wait(&st);

    // Life goes on after the backup.
    pg.psql(
        "DELETE FROM orders WHERE no % 2 = 0;
         UPDATE items SET name = 'changed ' || id WHERE id < 50;
         SELECT nextval('invoice_no');
         CREATE TABLE added_later (x int); INSERT INTO added_later VALUES (1), (2);",
        PG_USER,
        PG_DB,
    );
    let changed = fingerprint(&pg, PG_DB);
    assert_ne!(changed, original);

    let out = st.ctl(&["backup", "restore", &b.id, "--target-db", PG_DB]);
    let err = error_of(&out);
    assert!(
        err.contains("--force") && err.contains("exists"),
        "the refusal should say the database exists and how to proceed: {err}"
    );
    assert_eq!(
        fingerprint(&pg, PG_DB),
        changed,
        "a refused restore changed the database"
    );
    assert!(
        list(&st).iter().all(|m| m.kind != BackupKind::PreRestore),
        "a refused restore took a pre-restore backup"
    );

    let r: RestoreReply = st
        .ctl(&["backup", "restore", &b.id, "--target-db", PG_DB, "--force"])
        .data();
    assert!(r.replaced, "{r:?}");
    assert_eq!(r.target, PG_DB);
    let pre_id = r
        .pre_restore_backup
        .clone()
        .unwrap_or_else(|| panic!("no pre-restore backup named: {r:?}"));
    assert_eq!(
        fingerprint(&pg, PG_DB),
        original,
        "after restore --force the database holds the backup's content"
    );
    assert_eq!(
        pg.psql(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'added_later'",
            PG_USER,
            PG_DB
        )
        .trim(),
        "0"
    );

    let all = list(&st);
    let pre = all
        .iter()
        .find(|m| m.id == pre_id)
        .unwrap_or_else(|| panic!("pre-restore backup {pre_id} not in `backup list`: {all:?}"));
    assert_eq!(pre.kind, BackupKind::PreRestore, "{pre:?}");
    assert!(pre.is_good(), "{pre:?}");
    assert_eq!(pre.database, PG_DB);

    // The pre-restore backup holds what was replaced.
    let back: RestoreReply = st
        .ctl(&[
            "backup",
            "restore",
            &pre_id,
            "--target-db",
            "before_restore",
        ])
        .data();
    assert_eq!(back.target, "before_restore");
    assert_eq!(
        fingerprint(&pg, "before_restore"),
        changed,
        "the pre-restore backup does not hold the replaced content"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. IDs that are paths
// ---------------------------------------------------------------------------------------------

/// Paths, `..`, file names and unknown IDs are rejected with a clear error before anything is
/// read: no restore succeeds, no database appears, no verification runs.
#[test]
fn paths_and_unknown_ids_are_rejected() {
    let pg = Postgres::start();
    let redis = Redis::start();
    grant_createdb(&pg);
    pg.psql(
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('x');",
        PG_USER,
        PG_DB,
    );
    let st = builder(&pg, &redis).start();
    let b = create_wait(&st);
    let data = catalog::db_dir(&default_backup_dir(&st), PG_DB).join(b.file.clone().unwrap());
    let data_abs = data.to_string_lossy().into_owned();
    let data_name = b.file.clone().unwrap();
    let dotted = format!("../{PG_DB}/{}", b.id);

    let dbs_before = databases(&pg);
    let malformed: Vec<&str> = vec![
        "../../etc/passwd",
        "/etc/passwd",
        "..",
        ".",
        "",
        &data_abs,
        &data_name,
        &dotted,
        "20260101T000000Z-manual-00/0",
    ];
    let unknown = "20200101T000000Z-manual-0bad";
    for id in malformed.iter().copied().chain([unknown]) {
        for args in [
            vec!["backup", "restore", id],
            vec!["backup", "restore", id, "--target-db", "evil", "--force"],
            vec!["backup", "verify", id],
            vec!["backup", "verify", id, "--restore-test"],
        ] {
            let out = st.ctl(&args);
            let err = error_of(&out);
            let expected = if id == unknown {
                "no backup with ID"
            } else {
                "is not a backup ID"
            };
            assert!(
                err.contains(expected),
                "`steward {}`: expected an error saying {expected:?}, got: {err}",
                args.join(" ")
            );
            assert!(
                !out.all().contains("root:x:0:0"),
                "the content of /etc/passwd leaked: {out:?}"
            );
        }
    }
    assert_eq!(databases(&pg), dbs_before, "a database appeared");
    assert_eq!(
        counter(&st, "steward_restores_total", &[("result", "success")]),
        0.0,
        "a restore succeeded"
    );
    assert_eq!(
        counter(
            &st,
            "steward_backup_verifications_total",
            &[("result", "success")]
        ),
        0.0,
        "a verification ran"
    );
    assert_eq!(
        counter(
            &st,
            "steward_backup_verifications_total",
            &[("result", "failure")]
        ),
        0.0,
        "a verification ran"
    );
    // The real ID still works (the rejections were not a broken command).
    let v: VerifyReply = st.ctl(&["backup", "verify", &b.id]).data();
    assert!(v.ok, "{v:?}");
}

// ---------------------------------------------------------------------------------------------
// 7. Retention over backdated entries
// ---------------------------------------------------------------------------------------------

/// One backdated catalog entry for the retention test.
struct Entry {
    database: &'static str,
    kind: BackupKind,
    good: bool,
    /// Age in hours at the time the fixture is written (whole days plus one hour, so no entry
    /// sits on a retention boundary).
    age_hours: i64,
    /// Expected verdict under retention_days = 7, weekly_retention_weeks = 2, min_keep = 1,
    /// manual backups kept (worked out by hand from the rules, not by the code under test).
    goes: bool,
}

fn entry(
    database: &'static str,
    kind: BackupKind,
    good: bool,
    age_hours: i64,
    goes: bool,
) -> Entry {
    Entry {
        database,
        kind,
        good,
        age_hours,
        goes,
    }
}

fn fixture() -> Vec<Entry> {
    use BackupKind::*;
    let day = 24;
    let mut v = Vec::new();
    // 30 days of dailies of `steward`: kept while younger than 7 days; days 5 and 12 failed.
    for d in 1..=30 {
        let good = d != 5 && d != 12;
        v.push(entry(PG_DB, Daily, good, d * day + 1, d >= 7));
    }
    // The newest entry of all is a failed daily: it must not count as the newest backup.
    v.push(entry(PG_DB, Daily, false, 2, false));
    // Weeklies: kept while younger than 2 weeks; an old failed one goes.
    for d in [3, 10, 17, 24] {
        v.push(entry(PG_DB, Weekly, true, d * day + 1, d >= 14));
    }
    v.push(entry(PG_DB, Weekly, false, 31 * day + 1, true));
    v.push(entry(PG_DB, Weekly, false, day + 1, false));
    // Manual and pre-restore backups stay (no manual_retention), failed ones too.
    v.push(entry(PG_DB, Manual, true, 29 * day + 1, false));
    v.push(entry(PG_DB, Manual, false, 15 * day + 1, false));
    v.push(entry(PG_DB, PreRestore, true, 20 * day + 1, false));
    // A database whose good backups are all old, with newer failures: its newest good daily
    // stays (failed entries neither count toward min_keep nor stand in for the newest good).
    v.push(entry("legacy", Daily, true, 20 * day + 1, false));
    v.push(entry("legacy", Daily, true, 21 * day + 1, true));
    v.push(entry("legacy", Daily, true, 22 * day + 1, true));
    v.push(entry("legacy", Daily, false, day + 1, false));
    v.push(entry("legacy", Daily, false, 2 * day + 1, false));
    v
}

/// Writes the fixture with `catalog::commit` (and small data files for the good entries);
/// returns the metadata in fixture order.
fn write_fixture(root: &Path, entries: &[Entry], now: DateTime<Utc>) -> Vec<BackupMeta> {
    entries
        .iter()
        .enumerate()
        .map(|(n, e)| {
            let started = now - ChronoDuration::hours(e.age_hours);
            let id = format!(
                "{}-{}-{:04x}",
                started.format("%Y%m%dT%H%M%SZ"),
                e.kind.as_str(),
                n
            );
            catalog::validate_id(&id).unwrap();
            let dir = catalog::db_dir(root, e.database);
            catalog::ensure_dir(&dir).unwrap();
            let file = e
                .good
                .then(|| catalog::data_file_name(&id, DumpFormat::Plain, Compression::Gzip, false));
            if let Some(f) = &file {
                fs::write(dir.join(f), format!("fake backup data of {id}\n")).unwrap();
            }
            let mut meta = BackupMeta {
                id: id.clone(),
                database: e.database.into(),
                kind: e.kind,
                label: None,
                status: if e.good {
                    BackupStatus::Good
                } else {
                    BackupStatus::Failed
                },
                error: (!e.good).then(|| "pg_dump failed (exit status: 1): test".to_string()),
                started_at: started,
                finished_at: Some(started + ChronoDuration::seconds(30)),
                duration_seconds: 30.0,
                file,
                format: DumpFormat::Plain,
                compression: Compression::Gzip,
                level: 6,
                encryption: None,
                dump_bytes: if e.good { 1000 } else { 0 },
                stored_bytes: if e.good { 40 } else { 0 },
                sha256: e.good.then(|| "0".repeat(64)),
                pg_dump_version: Some("17.0".into()),
                server_version: Some("17.0".into()),
                steward_version: "0.1.0".into(),
                verified_at: None,
                source: None,
                restore_test: None,
                globals: None,
                table_rows: None,
                offsite: None,
                location: None,
                checksum: String::new(),
            };
            catalog::commit(root, &mut meta).unwrap();
            meta
        })
        .collect()
}

/// 30 days of backdated entries, good and failed, daily/weekly/manual/pre-restore, over two
/// databases, plus foreign files: `prune --dry-run` names exactly the expected entries and
/// deletes nothing; `prune` deletes exactly those (data file and metadata); the newest good
/// backup stays; failed entries never count; foreign files survive.
#[test]
fn retention_over_thirty_days_of_backdated_entries() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let b = builder(&pg, &redis);
    let root = b.dir().join("backups");
    let entries = fixture();
    let metas = write_fixture(&root, &entries, Utc::now());
    let foreign = [
        catalog::db_dir(&root, PG_DB).join("notes.txt"),
        catalog::db_dir(&root, PG_DB).join("20200101T000000Z-daily-abcd.sql.gz"),
        catalog::db_dir(&root, PG_DB).join("hand-made.sql.gz"),
        catalog::db_dir(&root, PG_DB).join("20200101T000000Z-daily-abce.json.bak"),
        catalog::db_dir(&root, "legacy").join("README"),
    ];
    for f in &foreign {
        fs::write(f, "not steward's\n").unwrap();
    }
    let st = b
        .with(|s| {
            s.backup = backup_toml(
                &root,
                "retention_days = 7\nweekly_retention_weeks = 2\nmin_keep = 1",
                "",
            )
        })
        .start();

    let expected: BTreeSet<String> = entries
        .iter()
        .zip(&metas)
        .filter(|(e, _)| e.goes)
        .map(|(_, m)| m.id.clone())
        .collect();
    assert_eq!(expected.len(), 29, "fixture bookkeeping");
    let all_files = |root: &Path| -> BTreeSet<PathBuf> {
        [PG_DB, "legacy"]
            .iter()
            .flat_map(|db| {
                file_names(&catalog::db_dir(root, db))
                    .into_iter()
                    .map(move |f| catalog::db_dir(root, db).join(f))
            })
            .collect()
    };
    let files_before = all_files(&root);

    let dry: PruneReply = st.ctl(&["backup", "prune", "--dry-run"]).data();
    assert!(dry.dry_run);
    let named: BTreeSet<String> = dry.deleted.iter().map(|p| p.id.clone()).collect();
    let describe = |ids: &BTreeSet<String>| -> String {
        ids.iter()
            .map(|id| {
                let (e, _) = entries
                    .iter()
                    .zip(&metas)
                    .find(|(_, m)| &m.id == id)
                    .unwrap();
                format!(
                    "  {id} {} {} good={} age={}d{}h\n",
                    e.database,
                    e.kind,
                    e.good,
                    e.age_hours / 24,
                    e.age_hours % 24
                )
            })
            .collect()
    };
    assert!(
        named == expected,
        "dry run: wrongly named for deletion:\n{}not named but due:\n{}",
        describe(&named.difference(&expected).cloned().collect()),
        describe(&expected.difference(&named).cloned().collect())
    );
    assert_eq!(dry.kept, metas.len() - expected.len());
    assert_eq!(
        all_files(&root),
        files_before,
        "the dry run deleted something"
    );

    let real: PruneReply = st.ctl(&["backup", "prune"]).data();
    assert!(!real.dry_run);
    let deleted: BTreeSet<String> = real.deleted.iter().map(|p| p.id.clone()).collect();
    assert_eq!(
        deleted, expected,
        "prune deleted other entries than its dry run named"
    );
    for p in &real.deleted {
        assert!(!p.reason.is_empty(), "{p:?}");
    }

    // Exactly the deleted entries' files are gone; every other file is still there.
    let mut gone_expected = BTreeSet::new();
    for m in metas.iter().filter(|m| expected.contains(&m.id)) {
        let dir = catalog::db_dir(&root, &m.database);
        gone_expected.insert(dir.join(format!("{}.json", m.id)));
        if let Some(f) = &m.file {
            gone_expected.insert(dir.join(f));
        }
    }
    let files_after = all_files(&root);
    let gone: BTreeSet<PathBuf> = files_before.difference(&files_after).cloned().collect();
    assert_eq!(
        gone, gone_expected,
        "prune removed other files than the entries' own"
    );
    assert!(files_after.is_subset(&files_before));
    for f in &foreign {
        assert!(f.exists(), "foreign file {} was deleted", f.display());
    }

    let left: BTreeSet<String> = list(&st).into_iter().map(|m| m.id).collect();
    let kept_expected: BTreeSet<String> = metas
        .iter()
        .map(|m| m.id.clone())
        .filter(|id| !expected.contains(id))
        .collect();
    assert_eq!(left, kept_expected, "`backup list` after prune");
    // The newest good backup of each database is among them.
    for db in [PG_DB, "legacy"] {
        let newest_good = metas
            .iter()
            .filter(|m| m.database == db && m.is_good())
            .max_by_key(|m| m.started_at)
            .unwrap();
        assert!(
            left.contains(&newest_good.id),
            "newest good of {db} deleted"
        );
    }

    // A second prune finds nothing more to do.
    let again: PruneReply = st.ctl(&["backup", "prune"]).data();
    assert!(again.deleted.is_empty(), "{again:?}");
}

// ---------------------------------------------------------------------------------------------
// 8. Catch-up at start
// ---------------------------------------------------------------------------------------------

/// A daily schedule and an empty catalog: steward takes a daily backup right after start;
/// `backup status` shows the next daily run (02:00 UTC, in the future) and the metric is set;
/// a restart with a fresh daily backup does not take another.
#[test]
fn catch_up_at_start_and_next_runs() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql(
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('x');",
        PG_USER,
        PG_DB,
    );
    let b = builder(&pg, &redis);
    let root = b.dir().join("backups");
    let mut st = b
        .with(|s| {
            s.backup = format!(
                "[backup]\ndir = {}\n\n[backup.schedule]\ndaily = \"0 2 * * *\"\nweekly = \"\"\n",
                toml_str(&root.to_string_lossy())
            )
        })
        .start();

    let dailies = |st: &Steward| -> Vec<BackupMeta> {
        list(st)
            .into_iter()
            .filter(|m| m.kind == BackupKind::Daily)
            .collect()
    };
    st.wait_until(JOB, "a catch-up daily backup to be good", |st| {
        dailies(st).iter().any(|m| m.is_good())
    });
    assert_eq!(
        dailies(&st).len(),
        1,
        "one catch-up backup: {:?}",
        dailies(&st)
    );

    let s: BackupStatusReply = st.ctl(&["backup", "status"]).data();
    let now = Utc::now();
    let daily = s
        .next_runs
        .iter()
        .find(|r| r.kind == BackupKind::Daily)
        .unwrap_or_else(|| panic!("no daily next run in `backup status`: {s:?}"));
    assert!(daily.at > now, "next daily run is not in the future: {s:?}");
    assert!(daily.at <= now + ChronoDuration::hours(24), "{s:?}");
    assert_eq!((daily.at.hour(), daily.at.minute()), (2, 0), "{s:?}");
    assert!(
        s.next_runs.iter().all(|r| r.kind != BackupKind::Weekly),
        "the weekly schedule is off: {s:?}"
    );
    let good = s
        .databases
        .iter()
        .find(|d| d.database == PG_DB)
        .unwrap_or_else(|| panic!("{s:?}"));
    assert!(
        good.last_good.iter().any(|l| l.kind == BackupKind::Daily),
        "{s:?}"
    );

    let metric = st
        .metric(
            "steward_backup_next_run_timestamp_seconds",
            &[("kind", "daily")],
        )
        .expect("steward_backup_next_run_timestamp_seconds{kind=\"daily\"}");
    assert_eq!(metric, daily.at.timestamp() as f64);

    // Restart: the daily backup is fresh, so no second catch-up.
    st.start_again();
    st.wait_until(
        Duration::from_secs(10),
        "the scheduler to publish its next runs after the restart",
        |st| {
            st.ctl(&["backup", "status"])
                .data::<BackupStatusReply>()
                .next_runs
                .iter()
                .any(|r| r.kind == BackupKind::Daily)
        },
    );
    let more = poll(Duration::from_secs(2), || {
        !backup_jobs(&st).is_empty() || dailies(&st).len() > 1
    });
    assert!(
        !more,
        "a restart with a fresh daily backup took another one: {:?}",
        list(&st)
    );
}

// ---------------------------------------------------------------------------------------------
// 9. One backup per database at a time
// ---------------------------------------------------------------------------------------------

/// Two `backup create` at once on one database: the second is refused with "already running"
/// naming the first; the first completes; afterwards a new backup is accepted again.
#[test]
fn second_concurrent_backup_is_refused() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql(
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('x');",
        PG_USER,
        PG_DB,
    );
    let st = builder(&pg, &redis).start();

    // The first backup's pg_dump waits for this lock: it is certainly still running when the
    // second request arrives.
    let mut lock = TableLock::hold(&pg, "t");
    let started: Vec<Started> = st.ctl(&["backup", "create"]).data();
    let first = started[0].id.clone();
    wait_until(
        JOB,
        "the first backup's pg_dump to wait for the table lock",
        || {
            pg.psql_as_postgres(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = 'steward' AND wait_event_type = 'Lock'",
            )
            .trim()
                != "0"
        },
    );
    assert_eq!(
        st.metric("steward_backup_running", &[("database", PG_DB)]),
        Some(1.0)
    );

    for args in [
        vec!["backup", "create"],
        vec!["backup", "create", "--wait"],
        vec!["backup", "create", "--database", PG_DB, "--label", "again"],
    ] {
        let out = st.ctl(&args);
        let err = error_of(&out);
        assert!(
            err.contains("already running") && err.contains(&first) && err.contains(PG_DB),
            "`steward {}`: the refusal should say a backup of {PG_DB} is already running ({first}): {err}",
            args.join(" ")
        );
    }
    let jobs = backup_jobs(&st);
    assert_eq!(
        jobs.iter().filter(|j| j.kind == JobKind::Backup).count(),
        1,
        "{jobs:?}"
    );

    lock.release();
    st.wait_until(JOB, "the first backup to complete", |st| {
        list(st).iter().any(|m| m.id == first && m.is_good())
    });
    let all = list(&st);
    assert_eq!(all.len(), 1, "the refused requests left entries: {all:?}");
    let again = create_wait(&st);
    assert_ne!(again.id, first);
}

// ---------------------------------------------------------------------------------------------
// 10. Encryption
// ---------------------------------------------------------------------------------------------

/// An age-encrypted backup: verify decrypts it, restore works, and the file decrypts with the
/// `age` CLI and gunzips to SQL holding a known value.
#[test]
fn encrypted_backup_verifies_restores_and_decrypts_with_age_cli() {
    require_cli("age", "age");
    require_cli("age-keygen", "age");
    require_cli("gunzip", "gzip");
    let pg = Postgres::start();
    let redis = Redis::start();
    grant_createdb(&pg);
    let marker = format!("marker-{}", random_hex(8));
    pg.psql(
        &format!("CREATE TABLE secrets (v text); INSERT INTO secrets VALUES ('{marker}');"),
        PG_USER,
        PG_DB,
    );
    let b = builder(&pg, &redis);
    let root = b.dir().join("backups");
    let (key, public) = age_key(b.dir(), "age-key.txt");
    let st = b
        .with(|s| {
            s.backup = backup_toml(
                &root,
                "",
                &format!(
                    "[backup.encryption]\nrecipients = [{}]\nidentity_file = {}\n",
                    toml_str(&public),
                    toml_str(&key.to_string_lossy())
                ),
            )
        })
        .start();

    let m = create_wait(&st);
    let enc = m.encryption.clone().expect("encryption in the metadata");
    assert_eq!(enc.recipients, vec![public.clone()]);
    let name = m.file.clone().unwrap();
    assert!(name.ends_with(".sql.gz.age"), "{name}");
    let path = catalog::db_dir(&root, PG_DB).join(&name);
    let bytes = fs::read(&path).unwrap();
    assert!(
        bytes.starts_with(b"age-encryption.org/v1"),
        "not an age file"
    );
    let meta_text =
        fs::read_to_string(catalog::db_dir(&root, PG_DB).join(format!("{}.json", m.id))).unwrap();
    assert!(
        !meta_text.contains("AGE-SECRET-KEY"),
        "the secret key is in the metadata"
    );

    let v: VerifyReply = st.ctl(&["backup", "verify", &m.id]).data();
    assert!(v.ok, "{v:?}");
    assert!(
        v.checks
            .iter()
            .any(|c| c.name == "decryption" && c.ok && c.detail.contains("decrypted")),
        "verify did not decrypt: {v:?}"
    );
    assert!(
        v.checks.iter().any(|c| c.name == "stream" && c.ok),
        "verify did not read the stream: {v:?}"
    );

    let r: RestoreReply = st.ctl(&["backup", "restore", &m.id]).data();
    assert_eq!(
        pg.psql("SELECT v FROM secrets", PG_USER, &r.target).trim(),
        marker
    );

    // Interop: age -d | gunzip, without steward.
    let gz = st.dir().join("decrypted.sql.gz");
    run_ok(
        Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&key)
            .arg("-o")
            .arg(&gz)
            .arg(&path),
    );
    let sql = String::from_utf8(run_ok(Command::new("gunzip").arg("-c").arg(&gz))).unwrap();
    assert!(sql.contains("PostgreSQL database dump"), "not a dump");
    assert!(sql.contains(&marker), "the known value is not in the dump");
}

/// A fresh age key pair from `age-keygen`: the identity file (0600) and its public key.
fn age_key(dir: &Path, name: &str) -> (PathBuf, String) {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join(name);
    run_ok(Command::new("age-keygen").arg("-o").arg(&key));
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let public = String::from_utf8(run_ok(Command::new("age-keygen").arg("-y").arg(&key)))
        .unwrap()
        .trim()
        .to_string();
    assert!(public.starts_with("age1"), "age-keygen -y: {public}");
    (key, public)
}

/// Whether a human `backup verify` output has an `ok` line for the check `name`.
fn human_ok_line(stdout: &str, name: &str) -> bool {
    stdout.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("ok") && l.contains(&format!(" {name}:"))
    })
}

/// `backup verify` of an encrypted backup says what it could not check (issue 14 item 7):
/// without `identity_file` it is not a failure, but the reply says prominently, and as
/// `"fully_verified": false`, that only the hash and size were checked; with the identity of
/// another key decryption is reported as failed, clearly, with no "ok decryption" line before
/// it; with the right identity the backup is fully verified.
#[test]
fn verify_of_an_encrypted_backup_says_what_it_could_not_check() {
    require_cli("age-keygen", "age");
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql(
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('x');",
        PG_USER,
        PG_DB,
    );
    let b = builder(&pg, &redis);
    let root = b.dir().join("backups");
    let (key, public) = age_key(b.dir(), "age-key.txt");
    let (other_key, _) = age_key(b.dir(), "other-age-key.txt");
    let encryption = |identity: Option<&Path>| {
        let identity = identity.map_or(String::new(), |p| {
            format!("identity_file = {}\n", toml_str(&p.to_string_lossy()))
        });
        backup_toml(
            &root,
            "",
            &format!(
                "[backup.encryption]\nrecipients = [{}]\n{identity}",
                toml_str(&public)
            ),
        )
    };
    let st = b.with(|s| s.backup = encryption(None)).start();
    let m = create_wait(&st);
    let reconfigure = |identity: Option<&Path>| {
        let mut s = st.settings.clone();
        s.backup = encryption(identity);
        st.write_config(&s.render());
        assert!(st.ctl(&["reload"]).reply().ok);
    };
    let verify_json = || {
        let out = st.ctl(&["backup", "verify", &m.id]);
        let r = out.reply();
        assert!(r.ok, "verify did not run: {out:?}");
        (out.code, r.data)
    };

    // No identity: hash and size pass, nothing else was read; not a failure, but said so.
    let (code, v) = verify_json();
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["fully_verified"], false, "{v}");
    let human = st.ctl_human(&["backup", "verify", &m.id]);
    assert_eq!(human.code, 0, "{human:?}");
    assert!(
        human.stdout.contains("NOT FULLY VERIFIED"),
        "no prominent line: {}",
        human.stdout
    );
    assert!(
        human.stdout.contains("identity_file"),
        "the line does not say why: {}",
        human.stdout
    );
    assert!(
        !human_ok_line(&human.stdout, "decryption"),
        "an ok decryption line without decrypting: {}",
        human.stdout
    );

    // Another key's identity: decryption failed, said once and clearly; the backup is not
    // damaged (the file is intact), and the command fails.
    reconfigure(Some(&other_key));
    let (code, v) = verify_json();
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["fully_verified"], false, "{v}");
    let checks = v["checks"].as_array().unwrap();
    let decryption: Vec<&serde_json::Value> = checks
        .iter()
        .filter(|c| c["name"] == "decryption")
        .collect();
    assert_eq!(decryption.len(), 1, "{v}");
    assert_eq!(decryption[0]["ok"], false, "{v}");
    let detail = decryption[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("none of the configured identities can decrypt this backup")
            && detail.contains("other recipients"),
        "{detail}"
    );
    assert!(!detail.contains("AGE-SECRET-KEY"), "{detail}");
    let human = st.ctl_human(&["backup", "verify", &m.id]);
    assert_eq!(human.code, 1, "{human:?}");
    assert!(
        !human_ok_line(&human.stdout, "decryption"),
        "ok decryption before the failure: {}",
        human.stdout
    );
    assert!(
        human
            .stdout
            .contains("FAIL decryption: none of the configured identities"),
        "{}",
        human.stdout
    );
    let listed = list(&st);
    assert!(
        listed.iter().any(|b| b.id == m.id && b.is_good()),
        "a wrong key marked the backup damaged: {listed:?}"
    );

    // The right identity: everything read, fully verified.
    reconfigure(Some(&key));
    let (code, v) = verify_json();
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["ok"], &v["fully_verified"]),
        (&true.into(), &true.into()),
        "{v}"
    );
    let human = st.ctl_human(&["backup", "verify", &m.id]);
    assert_eq!(human.code, 0, "{human:?}");
    assert!(!human.stdout.contains("NOT FULLY"), "{}", human.stdout);
    assert!(
        human_ok_line(&human.stdout, "decryption"),
        "{}",
        human.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// 11. Metrics
// ---------------------------------------------------------------------------------------------

/// After a good backup the backup metrics carry it, and `promtool check metrics` stays clean.
#[test]
fn metrics_after_a_good_backup() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql(
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('x');",
        PG_USER,
        PG_DB,
    );
    let st = builder(&pg, &redis).start();
    let m = create_wait(&st);
    let labels = [("database", PG_DB), ("kind", "manual")];

    st.wait_until(
        Duration::from_secs(10),
        "the backup gauges to show the backup",
        |st| st.metric("steward_backup_last_size_bytes", &labels) == Some(m.stored_bytes as f64),
    );
    let body = st.metrics();
    let v = |name: &str, l: &[(&str, &str)]| {
        metric_value(&body, name, l).unwrap_or_else(|| panic!("no {name}{l:?} in\n{body}"))
    };
    let finished = m.finished_at.unwrap().timestamp_millis() as f64 / 1000.0;
    let last = v("steward_backup_last_success_timestamp_seconds", &labels);
    assert!((last - finished).abs() < 1.0, "{last} vs {finished}");
    assert!(v("steward_backup_last_duration_seconds", &labels) >= 0.0);
    assert_eq!(
        v(
            "steward_backups_total",
            &[
                ("database", PG_DB),
                ("kind", "manual"),
                ("result", "success")
            ]
        ),
        1.0
    );
    assert_eq!(
        v("steward_backup_catalog_backups", &[("database", PG_DB)]),
        1.0
    );
    assert_eq!(
        v("steward_backup_catalog_bytes", &[("database", PG_DB)]),
        m.stored_bytes as f64
    );
    assert!(v("steward_backup_dir_free_bytes", &[]) > 0.0);
    assert_eq!(v("steward_backup_running", &[("database", PG_DB)]), 0.0);
    assert_eq!(
        metric_value(
            &body,
            "steward_backups_total",
            &[
                ("database", PG_DB),
                ("kind", "manual"),
                ("result", "failure")
            ]
        )
        .unwrap_or(0.0),
        0.0
    );

    require_cli("promtool", "prometheus");
    let (ok, text) = promtool_check_metrics(&body);
    assert!(
        ok && text.trim().is_empty(),
        "promtool check metrics reported:\n{text}\n--- /metrics\n{body}"
    );
}

/// A pg_dump older than the server is refused before it runs, with the version needed; the
/// failure is recorded like any other.
#[test]
fn older_pg_dump_is_refused_up_front() {
    use std::os::unix::fs::PermissionsExt;
    let pg = Postgres::start();
    let redis = Redis::start();
    let tools = short_tempdir("olddump-");
    let fake = tools.path().join("pg_dump");
    // What an old client package's pg_dump answers; anything it would dump is never asked for.
    fs::write(&fake, "#!/bin/sh\n[ \"$1\" = --version ] && echo 'pg_dump (PostgreSQL) 12.22' && exit 0\nexit 3\n").unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let fake_path = fake.to_string_lossy().into_owned();
    let st = builder(&pg, &redis)
        .with(|s| {
            s.backup = s.backup.replacen(
                "[backup]\n",
                &format!("[backup]\npg_dump_path = {fake_path:?}\n"),
                1,
            )
        })
        .start();
    let out = st.ctl(&["backup", "create", "--wait"]);
    let err = error_of(&out);
    assert!(
        err.contains("older than the server") && err.contains("postgresql-client-"),
        "unclear refusal: {err}"
    );
    let metas = list(&st);
    assert_eq!(metas.len(), 1, "{metas:?}");
    assert_eq!(metas[0].status, BackupStatus::Failed);
    assert_eq!(metas[0].pg_dump_version.as_deref(), Some("12.22"));
    let dir = catalog::db_dir(&default_backup_dir(&st), PG_DB);
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| n.ends_with(".json")),
        "only the failed entry's metadata: {names:?}"
    );
}
