//! Off-site copies (issue 15) against a real S3-compatible server (moto) and a real,
//! throwaway PostgreSQL: every backup goes to the bucket and is checked there before it counts
//! as off-site; an unreachable bucket queues the upload (the backup itself succeeds), a restart
//! resumes it; a `kill -9` mid-upload leaves no object under a final name and the next start
//! aborts the unfinished upload and completes the copy; `local_keep = 0` leaves the bucket's
//! copy only; wrong credentials are named without showing the secret.

mod common;

use common::faults::{create_good, list};
use common::s3::{unique_bucket, wait_uploads_settled, S3Server, ACCESS_KEY_ID};
use common::*;
use std::time::Duration;
use steward::alerts::{AlertState, AlertsReply};
use steward::backup::api::StatusReply;
use steward::backup::catalog::{BackupMeta, Location};

/// Bound for an upload to be done and checked (a retry waits `retry_interval`, 1 s here).
const UPLOAD: Duration = Duration::from_secs(90);

/// A daemon backing up `pg` to its own dir and to `bucket`, with the credentials in the
/// standard variables (the secret given is returned).
fn start(
    pg: &Postgres,
    redis: &Redis,
    s3: &S3Server,
    bucket: &str,
    extra: &str,
) -> (Steward, String) {
    let secret = format!("sEcReT/{}+x", random_hex(12));
    let st = Steward::builder(pg, redis)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            let dir = s.state_dir.with_file_name("backups");
            s.backup = s3.backup_config(&dir, bucket, extra);
        })
        .start();
    (st, secret)
}

fn alert_state(st: &Steward, name: &str) -> AlertState {
    let a: AlertsReply = st.ctl(&["alerts"]).data();
    a.alerts
        .into_iter()
        .find(|a| a.alert == name)
        .unwrap_or_else(|| panic!("no alert {name}"))
        .state
}

/// A backup of `rows` rows of random text (it compresses badly: several upload parts) taken
/// by a daemon whose uploads stop at the `upload-part` pause point after their first part
/// (for `env`'s STEWARD_TEST_PAUSE_MS, else for good); returns once the upload is there.
fn paused_upload(
    pg: &Postgres,
    redis: &Redis,
    s3: &S3Server,
    bucket: &str,
    rows: u32,
    env: &[(&str, &str)],
) -> (Steward, BackupMeta) {
    pg.psql(
        &format!(
            "CREATE TABLE noise AS SELECT g AS id, string_agg(md5(random()::text), '') AS a
             FROM generate_series(1, {rows}) g, generate_series(1, 6) x GROUP BY g;"
        ),
        PG_USER,
        PG_DB,
    );
    let mut builder = Steward::builder(pg, redis)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env(
            "AWS_SECRET_ACCESS_KEY",
            &format!("sEcReT/{}", random_hex(12)),
        )
        .env("STEWARD_TEST_PAUSE_AT", "upload-part");
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    let st = builder
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            let dir = s.state_dir.with_file_name("backups");
            s.backup = s3.backup_config(&dir, bucket, "");
        })
        .start();
    let b = create_good(&st);
    assert!(
        b.stored_bytes > 6 * 1024 * 1024,
        "the backup must take more than one 5 MiB part: {} bytes",
        b.stored_bytes
    );
    st.wait_until(UPLOAD, "the upload to pause after its first part", |st| {
        !st.log_lines_with("paused at a test pause point").is_empty()
    });
    (st, b)
}

fn find(st: &Steward, id: &str) -> BackupMeta {
    list(st)
        .into_iter()
        .find(|m| m.id == id)
        .unwrap_or_else(|| panic!("{id} is not listed"))
}

fn wait_location(st: &Steward, id: &str, want: Location) {
    st.wait_until(UPLOAD, &format!("{id} to be {want:?}"), |st| {
        find(st, id).location == Some(want)
    });
}

/// The keys under `prod/<database>/` in the bucket.
fn keys(s3: &S3Server, bucket: &str) -> Vec<String> {
    s3.keys(bucket, &format!("prod/{PG_DB}/"))
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

#[test]
fn every_backup_goes_off_site_checked_and_is_listed_where_it_is() {
    let (pg, redis, s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    pg.psql(
        "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 1000);",
        PG_USER,
        PG_DB,
    );
    let (st, _) = start(&pg, &redis, &s3, &bucket, "");
    let b = create_good(&st);
    wait_location(&st, &b.id, Location::Both);

    let file = b.file.clone().unwrap();
    let globals = b.globals.clone().unwrap().file;
    let mut want = vec![
        format!("prod/{PG_DB}/{file}"),
        format!("prod/{PG_DB}/{globals}"),
        format!("prod/{PG_DB}/{}.json", b.id),
    ];
    want.sort();
    let mut got = keys(&s3, &bucket);
    got.sort();
    assert_eq!(got, want);
    // What the bucket holds is the backup: same bytes as the metadata's hash.
    let data = s3.get(&bucket, &format!("prod/{PG_DB}/{file}"));
    assert_eq!(data.len() as u64, b.stored_bytes);
    assert_eq!(sha256_hex(&data), b.sha256.clone().unwrap());
    let meta: BackupMeta =
        serde_json::from_slice(&s3.get(&bucket, &format!("prod/{PG_DB}/{}.json", b.id))).unwrap();
    assert!(meta.checksum_ok() && meta.id == b.id);

    let listed = find(&st, &b.id);
    let offsite = listed
        .offsite
        .expect("the local metadata records the checked copy");
    assert_eq!(offsite.url, format!("s3://{bucket}/prod"));
    wait_uploads_settled(&st, UPLOAD);
    assert_eq!(
        st.metric("steward_backup_uploads_total", &[("result", "success")]),
        Some(1.0)
    );
    st.wait_until(UPLOAD, "the bucket's bytes in the metrics", |st| {
        st.metric("steward_backup_remote_bytes", &[("database", PG_DB)])
            .is_some_and(|n| n >= b.stored_bytes as f64)
    });
    let human = st.ctl_human(&["backup", "list"]).stdout;
    assert!(
        human.contains("WHERE") && human.contains("local+remote"),
        "{human}"
    );
    let status: StatusReply = st.ctl(&["backup", "status"]).data();
    let o = status.offsite.expect("status shows the off-site queue");
    assert_eq!((o.queued, o.consecutive_failures), (0, 0));
    assert_eq!(status.databases[0].remote_backups, 1);
}

#[test]
fn an_unreachable_bucket_queues_the_upload_and_the_next_start_resumes_it() {
    let (pg, redis, mut s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    let (mut st, _) = start(
        &pg,
        &redis,
        &s3,
        &bucket,
        "\n[alerts.backup_offsite_stale]\nmax_age = \"20s\"\n",
    );
    s3.stop();
    // The backup itself succeeds locally.
    let b = create_good(&st);
    st.wait_until(UPLOAD, "BackupUploadFailing to fire", |st| {
        alert_state(st, "BackupUploadFailing") == AlertState::Firing
    });
    // No copy in the bucket 20 s after the start: the off-site copy is stale.
    st.wait_until(UPLOAD, "BackupOffsiteStale to fire", |st| {
        alert_state(st, "BackupOffsiteStale") == AlertState::Firing
    });
    assert_eq!(find(&st, &b.id).location, Some(Location::Local));
    assert_eq!(st.metric("steward_backup_upload_queue", &[]), Some(1.0));
    // With a bucket configured, a backup on the local disk is no recovery point.
    assert_eq!(
        st.metric(
            "steward_backup_recovery_point_age_seconds",
            &[("database", PG_DB)]
        ),
        None
    );
    let human = st.ctl_human(&["backup", "status"]).stdout;
    assert!(human.contains("UPLOADS FAILING"), "{human}");
    assert!(
        human.contains("Connection refused") || human.contains("cannot reach"),
        "{human}"
    );

    // A stop while the bucket is down; the queue is on disk, the next start resumes it.
    st.signal(libc::SIGTERM);
    st.wait_exit(Duration::from_secs(30))
        .expect("steward stops");
    s3.start_again();
    s3.create_bucket(&bucket);
    st.start_again();
    wait_location(&st, &b.id, Location::Both);
    wait_uploads_settled(&st, UPLOAD);
    st.wait_until(UPLOAD, "BackupUploadFailing to resolve", |st| {
        alert_state(st, "BackupUploadFailing") != AlertState::Firing
    });
    // A fresh backup in the bucket: the off-site copy is recent again.
    let fresh = create_good(&st);
    wait_location(&st, &fresh.id, Location::Both);
    st.wait_until(UPLOAD, "BackupOffsiteStale to resolve", |st| {
        alert_state(st, "BackupOffsiteStale") != AlertState::Firing
    });
    assert!(st
        .metric(
            "steward_backup_recovery_point_age_seconds",
            &[("database", PG_DB)]
        )
        .is_some());
    assert_eq!(
        st.metric("steward_backup_upload_consecutive_failures", &[]),
        Some(0.0)
    );
}

#[test]
fn kill_9_mid_upload_leaves_no_object_under_a_final_name_and_the_next_start_completes_it() {
    let (pg, redis, s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    let (mut st, b) = paused_upload(&pg, &redis, &s3, &bucket, 150_000, &[]);
    let pending = s3.multipart_uploads(&bucket);
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert!(
        keys(&s3, &bucket).is_empty(),
        "nothing under a final name while the upload is unfinished: {:?}",
        keys(&s3, &bucket)
    );
    st.signal(libc::SIGKILL);
    st.wait_exit(Duration::from_secs(10)).expect("killed");
    st.remove_env("STEWARD_TEST_PAUSE_AT");
    st.start_again();
    wait_location(&st, &b.id, Location::Both);
    assert!(
        s3.multipart_uploads(&bucket).is_empty(),
        "the unfinished upload was aborted: {:?}",
        s3.multipart_uploads(&bucket)
    );
    let data = s3.get(
        &bucket,
        &format!("prod/{PG_DB}/{}", b.file.clone().unwrap()),
    );
    assert_eq!(sha256_hex(&data), b.sha256.clone().unwrap());
}

#[test]
fn local_keep_zero_leaves_only_the_buckets_copy_and_audits_it() {
    let (pg, redis, s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    let (st, _) = start(&pg, &redis, &s3, &bucket, "local_keep = 0\n");
    let b = create_good(&st);
    wait_location(&st, &b.id, Location::Remote);
    let local = st.dir().join("backups").join(PG_DB);
    // Out of the catalog at once; its files follow.
    st.wait_until(UPLOAD, "the local copy's files to go", |_| {
        !common::faults::file_names(&local)
            .iter()
            .any(|f| f.starts_with(&b.id))
    });
    assert_eq!(keys(&s3, &bucket).len(), 3);
    let audit = std::fs::read_to_string(st.dir().join("audit.log")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("backup_delete") && l.contains(&b.id) && l.contains("local_keep")),
        "{audit}"
    );
}

#[test]
fn wrong_credentials_are_named_and_the_secret_is_shown_nowhere() {
    let (pg, redis) = (Postgres::start(), Redis::start());
    // moto refuses every key it did not issue itself (the check comes before the bucket's).
    let s3 = S3Server::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let bucket = unique_bucket();
    let token = format!("ToKeN{}", random_hex(16));
    let secret = format!("sEcReT/{}+x", random_hex(12));
    let st = Steward::builder(&pg, &redis)
        .env("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY0000000")
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .env("AWS_SESSION_TOKEN", &token)
        .log_level("trace")
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            let dir = s.state_dir.with_file_name("backups");
            s.backup = s3.backup_config(&dir, &bucket, "");
        })
        .start();
    let b = create_good(&st);
    st.wait_until(UPLOAD, "a failed upload", |st| {
        st.metric("steward_backup_uploads_total", &[("result", "failure")])
            .is_some_and(|n| n >= 1.0)
    });
    assert_eq!(find(&st, &b.id).location, Some(Location::Local));
    let status = st.ctl_human(&["backup", "status"]).stdout;
    assert!(
        status.contains("refused the credentials (InvalidAccessKeyId)")
            || status.contains("refused the credentials (HTTP"),
        "{status}"
    );
    let surfaces = [
        st.log(),
        status,
        st.ctl(&["backup", "status"]).stdout,
        st.ctl(&["backup", "list"]).stdout,
        st.metrics(),
        std::fs::read_to_string(st.dir().join("audit.log")).unwrap_or_default(),
        st.cli(&[
            "check-config",
            "--config",
            &st.config_path.to_string_lossy(),
        ])
        .all(),
        read_tree(&st.dir().join("state")),
        read_tree(&st.dir().join("backups")),
    ];
    for (i, text) in surfaces.iter().enumerate() {
        for s in [&secret, &token] {
            assert!(
                !text.contains(s.as_str()),
                "surface {i} shows a secret:\n{text}"
            );
        }
    }
}

/// The `steward --config … backup …` lines of the README's "Disaster recovery" section, each
/// without its comment.
fn readme_recovery_steps() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Disaster recovery")
        .nth(1)
        .expect("the README has a Disaster recovery section");
    let section = section.split("\n## ").next().unwrap();
    let steps: Vec<String> = section
        .lines()
        .filter(|l| l.starts_with("steward --config steward.toml backup "))
        .map(|l| l.split('#').next().unwrap().trim().to_string())
        .collect();
    assert_eq!(steps.len(), 3, "list, verify, restore: {steps:?}");
    steps
}

/// Every file's text under `dir`.
fn read_tree(dir: &std::path::Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out += &read_tree(&p);
        } else {
            out += &String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default());
        }
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn a_bare_host_lists_the_buckets_backups_fetches_one_and_restores_it() {
    let (pg, redis, s3) = (Postgres::start(), Redis::start(), S3Server::start());
    pg.psql_as_postgres(&format!("ALTER ROLE {PG_USER} CREATEDB"));
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    pg.psql(
        "CREATE TABLE t (id int, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g;",
        PG_USER,
        PG_DB,
    );
    let (first, _) = start(&pg, &redis, &s3, &bucket, "");
    let b = create_good(&first);
    wait_location(&first, &b.id, Location::Both);
    drop(first);

    // A new host: empty backup and state dirs, the same config and bucket.
    let (st, _) = start(&pg, &redis, &s3, &bucket, "");
    wait_location(&st, &b.id, Location::Remote);
    // The README's disaster-recovery steps, as written (this config, this backup, this name).
    for line in readme_recovery_steps() {
        let config = st.config_path.to_string_lossy().into_owned();
        let args: Vec<String> = line
            .split_whitespace()
            .skip(1)
            .map(|w| match w {
                "steward.toml" => config.clone(),
                "ID" => b.id.clone(),
                "app" => "recovered".into(),
                w => w.into(),
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = st.cli(&args);
        assert_eq!(out.code, 0, "{line}: {out:?}");
        if line.contains("backup list") {
            assert!(
                out.stdout.contains(&b.id) && out.stdout.contains("remote"),
                "{}",
                out.stdout
            );
        }
    }
    let q = "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t";
    assert_eq!(pg.psql(q, PG_USER, PG_DB), pg.psql(q, PG_USER, "recovered"));
    let fetched: Vec<BackupMeta> = st.ctl(&["backup", "fetch", &b.id]).data();
    assert_eq!(fetched[0].id, b.id);
    assert_eq!(find(&st, &b.id).location, Some(Location::Both));
    let again = st.ctl(&["backup", "fetch", &b.id]);
    assert!(
        common::faults::error_of(&again).contains("already"),
        "{again:?}"
    );
    let verify = st.ctl(&["backup", "verify", &b.id]);
    assert_eq!(verify.code, 0, "{verify:?}");
    let out = st.ctl(&["backup", "restore", &b.id, "--target-db", "copy_of_t"]);
    assert_eq!(out.code, 0, "{out:?}");
    let rows = pg.psql(
        "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t",
        PG_USER,
        PG_DB,
    );
    let copy = pg.psql(
        "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t",
        PG_USER,
        "copy_of_t",
    );
    assert_eq!(rows, copy);
    let unknown = st.ctl(&["backup", "fetch", "20200101T000000Z-manual-0000"]);
    assert!(
        common::faults::error_of(&unknown).contains("no backup"),
        "{unknown:?}"
    );
}

#[test]
fn a_backup_only_the_bucket_holds_is_verified_and_restored_streamed_from_it() {
    let (pg, redis, s3) = (Postgres::start(), Redis::start(), S3Server::start());
    pg.psql_as_postgres(&format!("ALTER ROLE {PG_USER} CREATEDB"));
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    pg.psql(
        "CREATE TABLE t (id int, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g;",
        PG_USER,
        PG_DB,
    );
    let (st, _) = start(&pg, &redis, &s3, &bucket, "local_keep = 0\n");
    let b = create_good(&st);
    wait_location(&st, &b.id, Location::Remote);
    let local = st.dir().join("backups").join(PG_DB);
    st.wait_until(UPLOAD, "the local copy's files to go", |_| {
        !common::faults::file_names(&local)
            .iter()
            .any(|f| f.starts_with(&b.id))
    });

    let v: steward::backup::api::VerifyReply = st.ctl(&["backup", "verify", &b.id]).data();
    assert!(v.ok && v.fully_verified, "{v:?}");
    let out = st.ctl(&["backup", "restore", &b.id, "--target-db", "from_bucket"]);
    assert_eq!(out.code, 0, "{out:?}");
    let q = "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t";
    assert_eq!(
        pg.psql(q, PG_USER, PG_DB),
        pg.psql(q, PG_USER, "from_bucket")
    );
    let files = common::faults::file_names(&local);
    assert!(
        !files.iter().any(|f| f.starts_with(&b.id)),
        "no local copy was made: {files:?}"
    );

    // A restore test (what a drill runs) of it is recorded in its metadata in the bucket.
    let v: steward::backup::api::VerifyReply = st
        .ctl(&["backup", "verify", &b.id, "--restore-test"])
        .data();
    assert!(v.ok && v.restore_test.is_some(), "{v:?}");
    st.wait_until(UPLOAD, "the restore test in the bucket's metadata", |st| {
        find(st, &b.id).restore_test.is_some_and(|t| t.ok)
    });
    let there: BackupMeta =
        serde_json::from_slice(&s3.get(&bucket, &format!("prod/{PG_DB}/{}.json", b.id))).unwrap();
    assert!(there.checksum_ok() && there.restore_test.is_some_and(|t| t.ok));

    // The bucket's copy altered: verify says so, restore refuses before touching anything.
    let key = format!("prod/{PG_DB}/{}", b.file.clone().unwrap());
    let mut data = s3.get(&bucket, &key);
    let last = data.len() - 1;
    data[last] ^= 0xff;
    s3.put(&bucket, &key, &data);
    let v: steward::backup::api::VerifyReply =
        st.request_data(&format!(r#"{{"cmd":"backup_verify","id":"{}"}}"#, b.id));
    assert!(!v.ok, "{v:?}");
    assert!(
        v.checks.iter().any(|c| c.name == "sha256" && !c.ok),
        "{v:?}"
    );
    let out = st.ctl(&["backup", "restore", &b.id, "--target-db", "never_made"]);
    let e = common::faults::error_of(&out);
    assert!(e.contains("SHA-256 mismatch"), "{e}");
    assert!(pg.try_psql("SELECT 1", PG_USER, "never_made").is_err());
}

#[test]
fn a_missing_bucket_is_named_and_the_backup_stays_local() {
    let (pg, redis, s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let bucket = unique_bucket(); // never created
    let (st, _) = start(&pg, &redis, &s3, &bucket, "");
    let b = create_good(&st);
    st.wait_until(UPLOAD, "a failed upload", |st| {
        st.metric("steward_backup_uploads_total", &[("result", "failure")])
            .is_some_and(|n| n >= 1.0)
    });
    assert_eq!(find(&st, &b.id).location, Some(Location::Local));
    assert!(st
        .dir()
        .join("backups")
        .join(PG_DB)
        .join(b.file.clone().unwrap())
        .is_file());
    let status = st.ctl_human(&["backup", "status"]).stdout;
    assert!(
        status.contains(&format!("the bucket {bucket:?} does not exist")),
        "{status}"
    );
}

#[test]
fn the_bucket_stopped_during_an_upload_queues_it_and_it_resumes_when_the_bucket_is_back() {
    let (pg, redis, mut s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    // Each upload waits 4 s after its first part: long enough to stop the bucket under it.
    let (st, b) = paused_upload(
        &pg,
        &redis,
        &s3,
        &bucket,
        80_000,
        &[("STEWARD_TEST_PAUSE_MS", "4000")],
    );
    s3.stop();
    st.wait_until(UPLOAD, "the upload to fail", |st| {
        st.metric("steward_backup_uploads_total", &[("result", "failure")])
            .is_some_and(|n| n >= 1.0)
    });
    assert_eq!(find(&st, &b.id).location, Some(Location::Local));
    assert_eq!(st.metric("steward_backup_upload_queue", &[]), Some(1.0));
    // Back (empty: moto keeps nothing), the bucket made again: the queued upload resumes.
    s3.start_again();
    s3.create_bucket(&bucket);
    wait_location(&st, &b.id, Location::Both);
    let data = s3.get(
        &bucket,
        &format!("prod/{PG_DB}/{}", b.file.clone().unwrap()),
    );
    assert_eq!(sha256_hex(&data), b.sha256.clone().unwrap());
    assert!(s3.multipart_uploads(&bucket).is_empty());
    wait_uploads_settled(&st, UPLOAD);
}
