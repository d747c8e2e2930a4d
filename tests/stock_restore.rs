//! The documented restore without steward (docs/backups.md, "Restoring without steward") is
//! run verbatim on real backups of every format (issue 14, item 6): intact ones restore every
//! row; a flipped bit or a truncated file stops before anything is written; a restore that
//! fails part-way leaves no database behind; an existing database is never touched.

mod common;

use common::faults::toml_string;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use steward::backup::catalog;
use steward::backup::catalog::BackupMeta;

const ROWS: i64 = 20_000;

/// The script block of the section, exactly as the docs show it.
fn documented_script() -> String {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/backups.md")).unwrap();
    let section = &doc[doc
        .find("### Restoring without steward")
        .expect("docs/backups.md has the section")..];
    let start = section.find("```bash\n").expect("a ```bash block") + "```bash\n".len();
    let end = start + section[start..].find("\n```").unwrap();
    section[start..end].to_string()
}

/// `[backup]` for one format, schedules off, plus `tail` tables.
fn backup_toml(dir: &Path, format: &str, compression: &str, tail: &str) -> String {
    format!(
        "[backup]\ndir = {}\nformat = \"{format}\"\ncompression = \"{compression}\"\n\n\
         [backup.schedule]\ndaily = \"\"\nweekly = \"\"\n\n{tail}\n",
        toml_string(&dir.to_string_lossy())
    )
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// An age key pair: (identity file, recipient).
fn age_key(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("backup.agekey");
    run(Command::new("age-keygen").arg("-o").arg(&key));
    let public = run(Command::new("age-keygen").arg("-y").arg(&key));
    (key, public.trim().to_string())
}

/// Takes one backup with steward configured by `toml`; returns its data file and metadata.
fn take(pg: &Postgres, redis: &Redis, root: &Path, toml: String) -> (PathBuf, BackupMeta) {
    let st = Steward::builder(pg, redis)
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            s.backup = toml;
        })
        .start();
    let metas: Vec<BackupMeta> = st.ctl(&["backup", "create", "--wait"]).data();
    let m = metas.into_iter().next().unwrap();
    assert!(m.is_good(), "{m:?}");
    let file = catalog::db_dir(root, PG_DB).join(m.file.clone().unwrap());
    (file, m)
}

/// Runs the documented script on `file` into `db`; returns (success, stderr).
fn restore_by_hand(
    pg: &Postgres,
    script: &Path,
    file: &Path,
    db: &str,
    key: &Path,
) -> (bool, String) {
    let path = format!(
        "{}:{}",
        pg.bindir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(script)
        .arg(file)
        .arg(db)
        .env_clear()
        .env("PATH", path)
        .env("PGHOST", pg.dir())
        .env("PGPORT", pg.port.to_string())
        .env("PGUSER", PG_USER)
        .env("PGDATABASE", PG_DB)
        .env("AGE_IDENTITY", key)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn exists(pg: &Postgres, db: &str) -> bool {
    pg.psql_as_postgres(&format!(
        "SELECT count(*) FROM pg_database WHERE datname = '{db}'"
    ))
    .trim()
        == "1"
}

/// A copy of the backup (data file and metadata) in `dir`, its data changed by `damage`.
fn damaged_copy(file: &Path, m: &BackupMeta, dir: &Path, damage: impl Fn(&mut Vec<u8>)) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let meta = file.parent().unwrap().join(format!("{}.json", m.id));
    std::fs::copy(&meta, dir.join(format!("{}.json", m.id))).unwrap();
    let mut bytes = std::fs::read(file).unwrap();
    damage(&mut bytes);
    let copy = dir.join(file.file_name().unwrap());
    std::fs::write(&copy, bytes).unwrap();
    copy
}

#[test]
fn the_documented_stock_restore_is_safe_for_every_format() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql_as_postgres(&format!("ALTER ROLE {PG_USER} CREATEDB"));
    pg.psql(
        &format!(
            "CREATE TABLE items (id int PRIMARY KEY, body text);
             INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g;"
        ),
        PG_USER,
        PG_DB,
    );
    let work = tempfile::tempdir().unwrap();
    let script = work.path().join("restore-by-hand.sh");
    std::fs::write(&script, documented_script()).unwrap();
    let (key, recipient) = age_key(work.path());
    let enc = format!(
        "[backup.encryption]\nrecipients = [{}]\nidentity_file = {}\n",
        toml_string(&recipient),
        toml_string(&key.to_string_lossy())
    );
    let variants = [
        ("plain_gz", "plain", "gzip", String::new()),
        ("plain_zst", "plain", "zstd", String::new()),
        ("custom_gz", "custom", "gzip", String::new()),
        ("custom_zst", "custom", "zstd", String::new()),
        ("plain_gz_age", "plain", "gzip", enc.clone()),
        ("custom_zst_age", "custom", "zstd", enc),
    ];
    for (name, format, compression, tail) in variants {
        let dir = work.path().join(name);
        let (file, m) = take(
            &pg,
            &redis,
            &dir,
            backup_toml(&dir, format, compression, &tail),
        );

        // Intact: every row back.
        let ok_db = format!("stock_{name}");
        let (ok, err) = restore_by_hand(&pg, &script, &file, &ok_db, &key);
        assert!(ok, "{name}: the intact backup did not restore: {err}");
        assert_eq!(
            pg.psql("SELECT count(*) FROM items", PG_USER, &ok_db)
                .trim(),
            ROWS.to_string(),
            "{name}"
        );

        // A flipped bit in the middle, and the first half only: refused before anything is
        // written (no database created).
        let flipped = damaged_copy(&file, &m, &work.path().join(format!("{name}_flip")), |b| {
            let mid = b.len() / 2;
            b[mid] ^= 0x10;
        });
        let truncated = damaged_copy(&file, &m, &work.path().join(format!("{name}_cut")), |b| {
            b.truncate(b.len() / 2)
        });
        for (what, copy) in [("flipped", &flipped), ("truncated", &truncated)] {
            let db = format!("stock_{name}_{what}");
            let (ok, err) = restore_by_hand(&pg, &script, copy, &db, &key);
            assert!(!ok, "{name}: the {what} backup was restored");
            assert!(
                err.contains("does not match the sha256"),
                "{name} {what}: {err}"
            );
            assert!(!exists(&pg, &db), "{name}: the {what} backup left {db}");
        }
    }

    // An existing database is never touched: createdb fails and nothing is dropped.
    let again = work.path().join("again");
    let (file, _) = take(
        &pg,
        &redis,
        &again,
        backup_toml(&again, "plain", "gzip", ""),
    );
    pg.psql_as_postgres(&format!("CREATE DATABASE precious OWNER {PG_USER}"));
    pg.psql(
        "CREATE TABLE mine (v text); INSERT INTO mine VALUES ('keep')",
        PG_USER,
        "precious",
    );
    let (ok, _) = restore_by_hand(&pg, &script, &file, "precious", &key);
    assert!(!ok, "restored over an existing database");
    assert_eq!(
        pg.psql("SELECT v FROM mine", PG_USER, "precious").trim(),
        "keep"
    );

    // A restore that fails part-way (every new database already holds a table the dump
    // creates) rolls back and drops the database it created.
    pg.psql("CREATE TABLE items (id int)", "postgres", "template1");
    let (ok, err) = restore_by_hand(&pg, &script, &file, "stock_half", &key);
    assert!(!ok, "a failing restore exited 0");
    assert!(err.contains("restore failed; dropping stock_half"), "{err}");
    assert!(
        !exists(&pg, "stock_half"),
        "the failed restore left its database"
    );
}
