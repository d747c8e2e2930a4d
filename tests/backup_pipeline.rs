//! The backup data path against a real, throwaway PostgreSQL and the real client tools:
//! pg_dump → gzip/zstd (→ age) → file, verify, restore with psql/pg_restore, and interop with
//! `gunzip`, `zstd` and `age` used without steward.

mod common;

use common::tmpfs::Tmpfs;
use common::*;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use steward::backup::pgconn::PgTarget;
use steward::backup::pipeline::{self, DumpError, DumpJob, DumpOutput};
use steward::backup::restore::{self, Decryption, RestoreError, StoredBackup};
use steward::config::{Compression, DumpFormat};
use steward::secret::SecretUrl;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn tool(name: &str) -> PathBuf {
    pipeline::find_client_tool(name, None, None)
        .unwrap_or_else(|| panic!("{name} not found (install the PostgreSQL client)"))
}

/// Fails with a clear message when a command-line tool the test uses as a peer is missing.
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

fn target(pg: &Postgres) -> PgTarget {
    PgTarget::new(&SecretUrl::new(pg.url()), None).unwrap()
}

/// Tables of every kind of value a backup must carry over, a sequence, an index and a view.
const SEED: &str = r#"
CREATE SEQUENCE order_no START 1000;
CREATE TABLE items (
    id integer PRIMARY KEY,
    big bigint,
    price numeric(14,4),
    name text NOT NULL,
    doc jsonb,
    blob bytea,
    maybe text
);
INSERT INTO items
SELECT g, g::bigint * 1000000007, g / 7.0,
       'naïve café ☕ 日本語 "double" ''single'' \back\slash ' || g,
       jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g % 3, null), 'ü', 'ß "q"'),
       decode(md5(g::text), 'hex') || '\x00ff'::bytea,
       CASE WHEN g % 5 = 0 THEN NULL ELSE E'x\ty\n' || g END
FROM generate_series(1, 3000) g;
CREATE INDEX items_name_idx ON items (name);
CREATE TABLE orders (
    no integer DEFAULT nextval('order_no') PRIMARY KEY,
    item integer REFERENCES items(id),
    qty smallint,
    placed timestamptz,
    note text
);
INSERT INTO orders (item, qty, placed, note)
SELECT (g % 3000) + 1, g % 7, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 minute',
       CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ' || g END
FROM generate_series(1, 4000) g;
CREATE VIEW expensive AS SELECT id, name, price FROM items WHERE price > 300;
-- A few MB of dump, so that it spans several chunks (and gzip members).
CREATE TABLE filler AS SELECT g, md5(g::text) AS h FROM generate_series(1, 60000) g;
"#;

fn seed(pg: &Postgres) {
    pg.psql(SEED, PG_USER, PG_DB);
}

/// Per-table checksums plus sequence state, index and view definitions.
fn fingerprint(pg: &Postgres, db: &str) -> String {
    let sum = |rel: &str| {
        format!("SELECT '{rel}', count(*)::text || ':' || md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {rel} t")
    };
    let sql = [
        sum("items"),
        sum("orders"),
        sum("expensive"),
        sum("filler"),
        "SELECT 'seq', last_value::text || '/' || is_called::text FROM order_no".into(),
        "SELECT 'indexes', string_agg(indexdef, ';' ORDER BY indexdef) FROM pg_indexes WHERE schemaname = 'public'".into(),
        "SELECT 'view', pg_get_viewdef('expensive'::regclass)".into(),
    ]
    .join(" UNION ALL ");
    let out = pg.psql(&sql, PG_USER, db);
    assert!(out.contains("items|3000:"), "unexpected fingerprint: {out}");
    out
}

fn create_db(pg: &Postgres, name: &str) {
    pg.psql_as_postgres(&format!("CREATE DATABASE {name} OWNER {PG_USER}"));
}

fn table_count(pg: &Postgres, db: &str) -> u32 {
    pg.psql(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
        PG_USER,
        db,
    )
    .trim()
    .parse()
    .unwrap()
}

struct Setup {
    format: DumpFormat,
    compression: Compression,
    level: u32,
    recipients: Vec<age::x25519::Recipient>,
}

impl Setup {
    fn new(format: DumpFormat, compression: Compression) -> Self {
        Setup {
            format,
            compression,
            level: match compression {
                Compression::Gzip => 6,
                Compression::Zstd => 3,
            },
            recipients: Vec::new(),
        }
    }

    fn file_name(&self) -> String {
        let ext = match self.format {
            DumpFormat::Plain => "sql",
            DumpFormat::Custom => "dump",
        };
        let age = if self.recipients.is_empty() {
            ""
        } else {
            ".age"
        };
        format!("b1.{ext}.{}{age}", self.compression.extension())
    }

    fn job(&self, target: &PgTarget, dir: &Path) -> DumpJob {
        let final_path = dir.join(&target.database).join(self.file_name());
        DumpJob {
            pg_dump: tool("pg_dump"),
            args: pipeline::pg_dump_args(self.format, Duration::from_secs(60)),
            target: target.clone(),
            compression: self.compression,
            level: self.level,
            recipients: self.recipients.clone(),
            tmp_path: PathBuf::from(format!("{}.tmp", final_path.display())),
            final_path,
            progress: Arc::new(AtomicU64::new(0)),
            count_rows: Some(self.format),
        }
    }

    fn stored(&self, path: &Path, out: &DumpOutput) -> StoredBackup {
        StoredBackup {
            path: path.to_path_buf(),
            format: self.format,
            compression: self.compression,
            encrypted: !self.recipients.is_empty(),
            sha256: out.sha256.clone(),
            stored_bytes: out.stored_bytes,
            dump_bytes: out.dump_bytes,
            remote: None,
        }
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(p).unwrap()))
}

/// Dumps with `setup`, checks the file, verifies it, restores it into a new database and
/// compares the content. Returns the server, the dump's output and the file's path.
fn round_trip(
    setup: &Setup,
    identities: &[age::x25519::Identity],
) -> (Postgres, tempfile::TempDir, PathBuf, DumpOutput) {
    let pg = Postgres::start();
    seed(&pg);
    let expected = fingerprint(&pg, PG_DB);
    let dir = tempfile::tempdir().unwrap();
    let t = target(&pg);
    let job = setup.job(&t, dir.path());
    let (final_path, tmp_path, progress) = (
        job.final_path.clone(),
        job.tmp_path.clone(),
        job.progress.clone(),
    );
    let rt = rt();
    let out = rt
        .block_on(pipeline::dump(job, CancellationToken::new()))
        .expect("dump");

    assert_eq!(files_under(dir.path()), vec![final_path.clone()]);
    assert!(!tmp_path.exists());
    let meta = fs::metadata(&final_path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let db_dir = final_path.parent().unwrap();
    assert_eq!(
        fs::metadata(db_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(out.stored_bytes, meta.len());
    assert_eq!(out.sha256, sha256_file(&final_path));
    assert_eq!(progress.load(Ordering::Relaxed), out.dump_bytes);
    assert!(out.dump_bytes > out.stored_bytes, "{out:?}");

    let b = setup.stored(&final_path, &out);
    let verify_progress = Arc::new(AtomicU64::new(0));
    let v = rt
        .block_on(restore::verify(&b, identities, verify_progress.clone()))
        .unwrap();
    assert!(v.ok, "{v:?}");
    assert!(v.hash_ok && v.size_ok && v.stream_ok == Some(true), "{v:?}");
    assert_eq!(v.dump_bytes, Some(out.dump_bytes));
    assert_eq!(verify_progress.load(Ordering::Relaxed), out.stored_bytes);
    assert_eq!(
        v.decryption,
        if b.encrypted {
            Decryption::Decrypted
        } else {
            Decryption::NotEncrypted
        }
    );

    create_db(&pg, "restored");
    let restore_tool = match setup.format {
        DumpFormat::Plain => tool("psql"),
        DumpFormat::Custom => tool("pg_restore"),
    };
    let r = rt
        .block_on(restore::restore(
            &b,
            identities,
            &restore_tool,
            &t.with_database("restored"),
            false,
            Arc::new(AtomicU64::new(0)),
            CancellationToken::new(),
        ))
        .expect("restore");
    assert_eq!(r.bytes_fed, out.dump_bytes);
    assert_eq!(r.stored_bytes_read, out.stored_bytes);
    assert_eq!(fingerprint(&pg, "restored"), expected);
    (pg, dir, final_path, out)
}

/// `bash -c SCRIPT` (pipefail) with the test server's connection settings for `db` in the
/// environment.
fn sh_with_pg(pg: &Postgres, db: &str, script: &str) {
    let out = Command::new("bash")
        .args(["-c", &format!("set -o pipefail; {script}")])
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", pg.port.to_string())
        .env("PGUSER", PG_USER)
        .env("PGPASSWORD", &pg.password)
        .env("PGDATABASE", db)
        .env("PSQL", tool("psql"))
        .env("PG_DUMP", tool("pg_dump"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const PSQL_RESTORE: &str =
    "\"$PSQL\" -X -q -v ON_ERROR_STOP=1 --single-transaction -f - >/dev/null";

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

#[test]
fn plain_gzip_round_trip_and_gunzip_psql_interop() {
    let setup = Setup::new(DumpFormat::Plain, Compression::Gzip);
    let (pg, _dir, file, out) = round_trip(&setup, &[]);
    let bytes = fs::read(&file).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
    // Several members (one per chunk, compressed in parallel) on a multi-core machine.
    let members = bytes
        .windows(4)
        .filter(|w| w == &[0x1f, 0x8b, 8, 0])
        .count();
    if std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) {
        assert!(members >= 2, "expected several gzip members, saw {members}");
    }
    // Without steward: gunzip -c FILE | psql.
    require_cli("gunzip", "gzip");
    create_db(&pg, "by_hand");
    sh_with_pg(
        &pg,
        "by_hand",
        &format!("gunzip -c '{}' | {PSQL_RESTORE}", file.display()),
    );
    assert_eq!(fingerprint(&pg, "by_hand"), fingerprint(&pg, PG_DB));

    // Restoring over existing tables: psql's first error, reported without the password;
    // the single transaction leaves the database as it was.
    pg.psql("INSERT INTO orders (item) VALUES (1)", PG_USER, "by_hand");
    let before = fingerprint(&pg, "by_hand");
    let err = rt()
        .block_on(restore::restore(
            &setup.stored(&file, &out),
            &[],
            &tool("psql"),
            &target(&pg).with_database("by_hand"),
            false,
            Arc::new(AtomicU64::new(0)),
            CancellationToken::new(),
        ))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RestoreError::Failed { .. }), "{msg}");
    assert!(
        msg.contains("ERROR") && msg.contains("already exists"),
        "{msg}"
    );
    assert!(!msg.contains(&pg.password), "{msg}");
    assert_eq!(fingerprint(&pg, "by_hand"), before);
}

#[test]
fn plain_zstd_round_trip_and_zstd_cli_interop() {
    let setup = Setup::new(DumpFormat::Plain, Compression::Zstd);
    let (pg, _dir, file, _) = round_trip(&setup, &[]);
    assert_eq!(
        &fs::read(&file).unwrap()[..4],
        &[0x28, 0xb5, 0x2f, 0xfd],
        "zstd magic"
    );
    require_cli("zstd", "zstd");
    create_db(&pg, "by_hand");
    sh_with_pg(
        &pg,
        "by_hand",
        &format!("zstd -dc '{}' | {PSQL_RESTORE}", file.display()),
    );
    assert_eq!(fingerprint(&pg, "by_hand"), fingerprint(&pg, PG_DB));
}

#[test]
fn custom_gzip_round_trip_through_pg_restore() {
    let setup = Setup::new(DumpFormat::Custom, Compression::Gzip);
    let (pg, _dir, file, out) = round_trip(&setup, &[]);
    // A custom archive inside the gzip stream.
    let mut head = [0u8; 5];
    std::io::Read::read_exact(
        &mut flate2::read::GzDecoder::new(fs::File::open(&file).unwrap()),
        &mut head,
    )
    .unwrap();
    assert_eq!(&head, b"PGDMP");

    // A cancelled restore stops pg_restore before its input ends: nothing is committed.
    create_db(&pg, "cancelled");
    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = rt()
        .block_on(restore::restore(
            &setup.stored(&file, &out),
            &[],
            &tool("pg_restore"),
            &target(&pg).with_database("cancelled"),
            false,
            Arc::new(AtomicU64::new(0)),
            cancel,
        ))
        .unwrap_err();
    assert!(matches!(err, RestoreError::Cancelled), "{err}");
    assert_eq!(table_count(&pg, "cancelled"), 0);
}

#[test]
fn encrypted_round_trip_and_age_cli_interop() {
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    let mut setup = Setup::new(DumpFormat::Plain, Compression::Gzip);
    setup.recipients = vec![identity.to_public()];
    let (pg, dir, file, out) = round_trip(&setup, std::slice::from_ref(&identity));
    assert!(fs::read(&file)
        .unwrap()
        .starts_with(b"age-encryption.org/v1\n"));
    let rt = rt();
    let b = setup.stored(&file, &out);

    // No identity: hash and size are checked, the inside is reported as not checked.
    let v = rt
        .block_on(restore::verify(&b, &[], Arc::new(AtomicU64::new(0))))
        .unwrap();
    assert!(v.ok && v.hash_ok && v.size_ok, "{v:?}");
    assert_eq!((v.decryption, v.stream_ok), (Decryption::Skipped, None));
    assert!(
        v.problems.iter().any(|p| p.contains("not checked")),
        "{v:?}"
    );
    // The wrong identity: a failed check, clearly named.
    let other = age::x25519::Identity::generate();
    let v = rt
        .block_on(restore::verify(
            &b,
            std::slice::from_ref(&other),
            Arc::new(AtomicU64::new(0)),
        ))
        .unwrap();
    assert!(!v.ok && v.hash_ok && v.stream_ok == Some(false), "{v:?}");
    assert_eq!(v.decryption, Decryption::Failed, "{v:?}");
    assert!(v.problems.iter().any(|p| p.contains("identit")), "{v:?}");
    // Restore without an identity is refused.
    let err = rt
        .block_on(restore::restore(
            &b,
            &[],
            &tool("psql"),
            &target(&pg).with_database("nowhere"),
            false,
            Arc::new(AtomicU64::new(0)),
            CancellationToken::new(),
        ))
        .unwrap_err();
    assert!(matches!(err, RestoreError::NoIdentity { .. }), "{err}");

    // Without steward: age -d -i KEY FILE | gunzip | psql.
    require_cli("age", "age");
    require_cli("gunzip", "gzip");
    let key = dir.path().join("key.txt");
    fs::write(&key, format!("{}\n", identity.to_string().expose_secret())).unwrap();
    create_db(&pg, "by_hand");
    sh_with_pg(
        &pg,
        "by_hand",
        &format!(
            "age -d -i '{}' '{}' | gunzip | {PSQL_RESTORE}",
            key.display(),
            file.display()
        ),
    );
    assert_eq!(fingerprint(&pg, "by_hand"), fingerprint(&pg, PG_DB));
}

// ---------------------------------------------------------------------------------------------
// Corruption
// ---------------------------------------------------------------------------------------------

#[test]
fn flipped_byte_or_truncation_fails_verify_and_restore_commits_nothing() {
    let pg = Postgres::start();
    // The seed's dump spans several chunks: psql has been fed a lot before the damage shows.
    seed(&pg);
    let dir = tempfile::tempdir().unwrap();
    let t = target(&pg);
    let rt = rt();
    for (compression, encrypt) in [
        (Compression::Gzip, false),
        (Compression::Zstd, false),
        (Compression::Gzip, true),
    ] {
        let identity = age::x25519::Identity::generate();
        let mut setup = Setup::new(DumpFormat::Plain, compression);
        if encrypt {
            setup.recipients = vec![identity.to_public()];
        }
        let ids = if encrypt {
            vec![identity.clone()]
        } else {
            vec![]
        };
        let job = setup.job(&t, dir.path());
        let good = job.final_path.clone();
        let out = rt
            .block_on(pipeline::dump(job, CancellationToken::new()))
            .unwrap();
        let bytes = fs::read(&good).unwrap();

        if compression == Compression::Gzip && !encrypt {
            // A missing file cannot be verified at all.
            let gone = setup.stored(&dir.path().join("gone.sql.gz"), &out);
            let err = rt
                .block_on(restore::verify(&gone, &[], Arc::new(AtomicU64::new(0))))
                .unwrap_err();
            assert!(err.to_string().contains("gone.sql.gz"), "{err}");
        }
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x01;
        let truncated = bytes[..bytes.len() - 100].to_vec();
        for (what, content) in [("flipped", flipped), ("truncated", truncated)] {
            let case = format!("{compression:?} encrypted={encrypt} {what}");
            let path = dir.path().join(format!("bad-{}", random_hex(4)));
            fs::write(&path, content).unwrap();
            let b = setup.stored(&path, &out);
            let v = rt
                .block_on(restore::verify(&b, &ids, Arc::new(AtomicU64::new(0))))
                .unwrap();
            assert!(!v.ok, "{case}: {v:?}");
            assert!(!v.hash_ok, "{case}: {v:?}");
            assert_eq!(v.stream_ok, Some(false), "{case}: {v:?}");
            assert!(!v.problems.is_empty(), "{case}: {v:?}");

            // Restore (without the verify the caller does first) fails and commits nothing.
            let db = format!("r_{}", random_hex(4));
            create_db(&pg, &db);
            let err = rt
                .block_on(restore::restore(
                    &b,
                    &ids,
                    &tool("psql"),
                    &t.with_database(&db),
                    false,
                    Arc::new(AtomicU64::new(0)),
                    CancellationToken::new(),
                ))
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    RestoreError::Stream { .. } | RestoreError::Failed { .. }
                ),
                "{case}: {err}"
            );
            assert_eq!(
                table_count(&pg, &db),
                0,
                "{case}: restore left tables: {err}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Failures leave nothing behind
// ---------------------------------------------------------------------------------------------

#[test]
fn pg_dump_failure_leaves_no_file_and_reports_its_message() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let t = target(&pg).with_database("no_such_db");
    let setup = Setup::new(DumpFormat::Plain, Compression::Gzip);
    let rt = rt();
    let err = rt
        .block_on(pipeline::dump(
            setup.job(&t, dir.path()),
            CancellationToken::new(),
        ))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DumpError::PgDump { .. }), "{msg}");
    assert!(
        msg.contains("no_such_db") && msg.contains("does not exist"),
        "{msg}"
    );
    assert!(!msg.contains(&pg.password), "{msg}");
    assert_eq!(files_under(dir.path()), Vec::<PathBuf>::new());

    // A wrong password: pg_dump fails without prompting; the message holds no password.
    let t = PgTarget::new(&SecretUrl::new(pg.url_with_password("wrong-pw-123")), None).unwrap();
    let err = rt
        .block_on(pipeline::dump(
            setup.job(&t, dir.path()),
            CancellationToken::new(),
        ))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("password authentication failed"), "{msg}");
    assert!(!msg.contains("wrong-pw-123"), "{msg}");
    assert_eq!(files_under(dir.path()), Vec::<PathBuf>::new());

    // pg_dump missing: a spawn error naming it, no file.
    let mut job = setup.job(&target(&pg), dir.path());
    job.pg_dump = PathBuf::from("/nonexistent/pg_dump");
    let err = rt
        .block_on(pipeline::dump(job, CancellationToken::new()))
        .unwrap_err();
    assert!(matches!(err, DumpError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/pg_dump"), "{err}");
    assert_eq!(files_under(dir.path()), Vec::<PathBuf>::new());
}

#[test]
fn full_disk_is_a_clear_error_and_leaves_no_file() {
    let pg = Postgres::start();
    // About 2.5 MB of hex text: well over the filesystem's size even compressed.
    pg.psql(
        "CREATE TABLE noise AS SELECT g, md5(random()::text) || md5(random()::text) AS h \
         FROM generate_series(1, 40000) g",
        PG_USER,
        PG_DB,
    );
    let Some(fs) = Tmpfs::mount("256k") else {
        return;
    };
    let setup = Setup::new(DumpFormat::Plain, Compression::Gzip);
    let job = setup.job(&target(&pg), fs.path());
    let tmp = job.tmp_path.clone();
    let err = rt()
        .block_on(pipeline::dump(job, CancellationToken::new()))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DumpError::DiskFull { .. }), "{msg}");
    assert!(msg.contains("disk is full"), "{msg}");
    assert!(msg.contains(&tmp.display().to_string()), "{msg}");
    assert_eq!(files_under(fs.path()), Vec::<PathBuf>::new());
}

// ---------------------------------------------------------------------------------------------
// The pg_dump process: argv, cancellation
// ---------------------------------------------------------------------------------------------

/// A psql session holding an ACCESS EXCLUSIVE lock on a table, so that pg_dump waits on it.
struct LockHolder(Child);

impl LockHolder {
    fn lock(pg: &Postgres, table: &str) -> LockHolder {
        let mut child = Command::new(tool("psql"))
            .args(["-X", "-q", "-A", "-t", "-h"])
            .arg(pg.dir())
            .args(["-p", &pg.port.to_string(), "-U", "postgres", "-d", PG_DB])
            .env_remove("PGPASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        writeln!(
            child.stdin.as_mut().unwrap(),
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT 'locked';"
        )
        .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
        LockHolder(child)
    }

    fn release(mut self) {
        writeln!(self.0.stdin.as_mut().unwrap(), "COMMIT;").unwrap();
        drop(self.0.stdin.take());
        self.0.wait().unwrap();
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Pids of this process's pg_dump children that talk to `port`.
fn pg_dump_children(port: u16) -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next();
        let ppid: u32 = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid != me || comm != "pg_dump" || state == Some("Z") {
            continue;
        }
        let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let port_var = format!("PGPORT={port}");
        if environ
            .split(|b| *b == 0)
            .any(|kv| kv == port_var.as_bytes())
        {
            out.push(pid);
        }
    }
    out
}

#[test]
fn password_never_reaches_pg_dump_argv() {
    let pg = Postgres::start();
    seed(&pg);
    // A few MB, so that the dump runs a while after the lock is released.
    pg.psql(
        "CREATE TABLE bulk AS SELECT g, md5(g::text) AS h FROM generate_series(1, 100000) g",
        PG_USER,
        PG_DB,
    );
    let dir = tempfile::tempdir().unwrap();
    let lock = LockHolder::lock(&pg, "items");
    let rt = rt();
    let setup = Setup::new(DumpFormat::Plain, Compression::Gzip);
    let running = rt.spawn(pipeline::dump(
        setup.job(&target(&pg), dir.path()),
        CancellationToken::new(),
    ));

    let mut pids = Vec::new();
    wait_until(Duration::from_secs(20), "pg_dump to start", || {
        pids = pg_dump_children(pg.port);
        !pids.is_empty()
    });
    let pid = pids[0];
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains("--no-password"), "{cmdline}");
    assert!(
        !cmdline.contains(&pg.password),
        "password in argv: {cmdline}"
    );
    // It travels in the environment instead (readable by the owner only).
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap();
    let pw_var = format!("PGPASSWORD={}", pg.password);
    assert!(environ.split(|b| *b == 0).any(|kv| kv == pw_var.as_bytes()));

    lock.release();
    let finished = poll(Duration::from_secs(60), || {
        if let Ok(c) = fs::read(format!("/proc/{pid}/cmdline")) {
            assert!(
                !String::from_utf8_lossy(&c).contains(&pg.password),
                "password in argv"
            );
        }
        running.is_finished()
    });
    assert!(finished, "dump did not finish");
    let out = rt.block_on(running).unwrap().expect("dump");
    assert!(out.dump_bytes > 3_000_000, "{out:?}");
}

#[test]
fn cancellation_kills_pg_dump_and_leaves_nothing() {
    let pg = Postgres::start();
    seed(&pg);
    let dir = tempfile::tempdir().unwrap();
    let lock = LockHolder::lock(&pg, "orders");
    let rt = rt();
    let cancel = CancellationToken::new();
    let setup = Setup::new(DumpFormat::Custom, Compression::Zstd);
    let job = setup.job(&target(&pg), dir.path());
    let tmp = job.tmp_path.clone();
    let running = rt.spawn(pipeline::dump(job, cancel.clone()));
    let mut pids = Vec::new();
    wait_until(Duration::from_secs(20), "pg_dump to start", || {
        pids = pg_dump_children(pg.port);
        !pids.is_empty()
    });
    assert!(tmp.exists(), "the tmp file exists while the dump runs");
    let started = Instant::now();
    cancel.cancel();
    let err = rt.block_on(running).unwrap().unwrap_err();
    assert!(matches!(err, DumpError::Cancelled), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        !Path::new(&format!("/proc/{}", pids[0])).exists(),
        "pg_dump still running after cancel"
    );
    assert_eq!(files_under(dir.path()), Vec::<PathBuf>::new());
    lock.release();
}

#[test]
fn pg_dump_version_is_read() {
    let rt = rt();
    let (major, version) = rt
        .block_on(pipeline::pg_dump_version(&tool("pg_dump")))
        .unwrap();
    assert!(major >= 10, "{major} {version}");
    assert!(version.starts_with(&major.to_string()), "{version}");
    let err = rt
        .block_on(pipeline::pg_dump_version(Path::new("/nonexistent/pg_dump")))
        .unwrap_err();
    assert!(matches!(err, DumpError::Spawn { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Benchmark (not a test: run it by hand, in release mode)
// ---------------------------------------------------------------------------------------------

/// Peak RSS of this process since the last reset, in MiB.
fn peak_rss_mib() -> f64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn reset_peak_rss() {
    let _ = fs::write("/proc/self/clear_refs", "5");
}

/// One timed dump: what, wall seconds, stored MB, steward's peak RSS MiB and CPU seconds.
type BenchRow = (String, f64, f64, Option<(f64, f64)>);

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}

/// Times steward's dump and restore against the peer tools on a pgbench database:
/// `STEWARD_BENCH_SCALE=15 cargo test --release --test backup_pipeline -- --ignored --nocapture bench`
#[test]
#[ignore = "benchmark; run by hand in release mode"]
fn bench_against_peer_tools() {
    let scale: u32 = std::env::var("STEWARD_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let rounds: usize = std::env::var("STEWARD_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let pg = Postgres::start();
    let pgbench = tool("pgbench");
    sh_with_pg(
        &pg,
        PG_DB,
        &format!("'{}' -i -q -s {scale} >/dev/null 2>&1", pgbench.display()),
    );
    // Less compressible than pgbench's blank-padded rows: timestamps, md5 text and jsonb.
    let events: u64 = std::env::var("STEWARD_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_500_000);
    pg.psql(
        &format!(
            "CREATE TABLE events AS SELECT g AS id, \
             '2024-01-01'::timestamptz + g * interval '1 second' AS at, md5(g::text) AS h, \
             jsonb_build_object('user', g % 1000, 'kind', md5((g % 97)::text), 'n', g) AS doc \
             FROM generate_series(1, {events}) g"
        ),
        PG_USER,
        PG_DB,
    );
    let db_size = pg.psql(
        "SELECT pg_size_pretty(pg_database_size(current_database()))",
        PG_USER,
        PG_DB,
    );
    println!(
        "database: pgbench scale {scale} + {events} event rows, {}",
        db_size.trim()
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let t = target(&pg);
    let rt = rt();
    let size = |p: &str| fs::metadata(p).map(|m| m.len() as f64 / 1e6).unwrap_or(0.0);
    let has = |cmd: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {cmd} >/dev/null")])
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut results: Vec<BenchRow> = Vec::new();
    let mut steward_files = Vec::new();
    for round in 0..rounds {
        let peer = |name: &str, script: String, out: &str| {
            let ((), secs) = timed(|| sh_with_pg(&pg, PG_DB, &script));
            (name.to_string(), secs, size(out), None)
        };
        results.push(peer(
            "pg_dump > /dev/null",
            "\"$PG_DUMP\" --no-password -Fp > /dev/null".into(),
            "",
        ));
        results.push(peer(
            "pg_dump | gzip -6",
            format!("\"$PG_DUMP\" --no-password -Fp | gzip -6 > {d}/peer.sql.gz"),
            &format!("{d}/peer.sql.gz"),
        ));
        if has("pigz") {
            results.push(peer(
                "pg_dump | pigz -6",
                format!("\"$PG_DUMP\" --no-password -Fp | pigz -6 > {d}/peer.pigz.gz"),
                &format!("{d}/peer.pigz.gz"),
            ));
        }
        if has("zstd") {
            results.push(peer(
                "pg_dump | zstd -3",
                format!("\"$PG_DUMP\" --no-password -Fp | zstd -q -3 > {d}/peer.sql.zst"),
                &format!("{d}/peer.sql.zst"),
            ));
        }
        for (compression, level) in [(Compression::Gzip, 6), (Compression::Zstd, 3)] {
            let mut setup = Setup::new(DumpFormat::Plain, compression);
            setup.level = level;
            let mut job = setup.job(&t, dir.path());
            job.final_path = dir
                .path()
                .join(format!("steward-{round}.sql.{}", compression.extension()));
            job.tmp_path = job.final_path.with_extension("tmp");
            let path = job.final_path.clone();
            reset_peak_rss();
            let cpu = cpu_seconds();
            let (out, secs) = timed(|| rt.block_on(pipeline::dump(job, CancellationToken::new())));
            let out = out.unwrap();
            results.push((
                format!("steward {compression:?} {level}").to_lowercase(),
                secs,
                out.stored_bytes as f64 / 1e6,
                Some((peak_rss_mib(), cpu_seconds() - cpu)),
            ));
            if round == 0 {
                steward_files.push((setup.stored(&path, &out), out));
            }
        }
    }
    println!(
        "\n{:<24} {:>9} {:>10} {:>14} {:>12}",
        "dump", "seconds", "MB", "peak RSS MiB", "steward CPU"
    );
    for (name, secs, mb, own) in &results {
        let (rss, cpu) = own.map_or((String::new(), String::new()), |(r, c)| {
            (format!("{r:.1}"), format!("{c:.2}"))
        });
        println!("{name:<24} {secs:>9.2} {mb:>10.1} {rss:>14} {cpu:>12}");
    }
    let wall = |name: &str| -> Vec<f64> {
        results
            .iter()
            .filter(|r| r.0 == name)
            .map(|r| r.1)
            .collect()
    };
    let ratios = |a: &str, b: &str| -> String {
        wall(a)
            .iter()
            .zip(wall(b))
            .map(|(x, y)| format!("{:.2}", x / y))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "steward gzip 6 / (pg_dump | gzip -6): {}",
        ratios("steward gzip 6", "pg_dump | gzip -6")
    );
    println!(
        "steward zstd 3 / (pg_dump > /dev/null): {}",
        ratios("steward zstd 3", "pg_dump > /dev/null")
    );

    // Restore: gunzip -c | psql against steward's restore of its gzip file.
    let (gz, _) = &steward_files[0];
    let psql = tool("psql");
    let mut restores = Vec::new();
    for round in 0..rounds {
        let db = format!("peer_{round}");
        create_db(&pg, &db);
        let ((), secs) = timed(|| {
            sh_with_pg(
                &pg,
                &db,
                &format!("gunzip -c {d}/peer.sql.gz | {PSQL_RESTORE}"),
            )
        });
        restores.push(("gunzip -c | psql".to_string(), secs));
        let db = format!("steward_{round}");
        create_db(&pg, &db);
        let (r, secs) = timed(|| {
            rt.block_on(restore::restore(
                gz,
                &[],
                &psql,
                &t.with_database(&db),
                false,
                Arc::new(AtomicU64::new(0)),
                CancellationToken::new(),
            ))
        });
        r.unwrap();
        restores.push(("steward restore (gzip)".to_string(), secs));
    }
    println!("\n{:<24} {:>9}", "restore", "seconds");
    for (name, secs) in &restores {
        println!("{name:<24} {secs:>9.2}");
    }
    let restore_ratios: Vec<String> = restores
        .chunks(2)
        .map(|pair| format!("{:.2}", pair[1].1 / pair[0].1))
        .collect();
    println!(
        "steward restore / (gunzip -c | psql): {}",
        restore_ratios.join(" ")
    );
    // And verify, for the record.
    for (b, _) in &steward_files {
        let (v, secs) = timed(|| rt.block_on(restore::verify(b, &[], Arc::new(AtomicU64::new(0)))));
        let v = v.unwrap();
        assert!(v.ok, "{v:?}");
        println!("verify {:?}: {secs:.2} s", b.compression);
    }
}
