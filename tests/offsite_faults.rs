//! Off-site copies under faults, against a real S3-compatible server (moto) and a real,
//! throwaway PostgreSQL: a bucket emptied behind steward's back never costs a local copy;
//! an object steward did not write under a key it picks is neither taken for a copy nor
//! overwritten; a `kill -9` between the steps of an upload leaves nothing half-done that
//! looks complete and the next start repairs it; an unanswering bucket stalls no command;
//! garbage in the upload queue's directory neither hangs nor crashes steward.

mod common;

use common::faults::{create_good, list};
use common::s3::{unique_bucket, wait_uploads_settled, S3Server, ACCESS_KEY_ID};
use common::*;
use std::time::{Duration, Instant};
use steward::backup::api::StatusReply;
use steward::backup::catalog::{BackupMeta, Location};

/// Bound for an upload to be done and checked (a retry waits `retry_interval`, 1 s here).
const UPLOAD: Duration = Duration::from_secs(90);

fn builder(
    pg: &Postgres,
    redis: &Redis,
    s3: &S3Server,
    bucket: &str,
    extra: &str,
) -> StewardBuilder {
    Steward::builder(pg, redis)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env(
            "AWS_SECRET_ACCESS_KEY",
            &format!("sEcReT/{}+x", random_hex(12)),
        )
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            let dir = s.state_dir.with_file_name("backups");
            s.backup = s3.backup_config(&dir, bucket, extra);
        })
}

fn find(st: &Steward, id: &str) -> Option<BackupMeta> {
    list(st).into_iter().find(|m| m.id == id)
}

fn wait_location(st: &Steward, id: &str, want: Location) {
    st.wait_until(UPLOAD, &format!("{id} to be {want:?}"), |st| {
        find(st, id).and_then(|m| m.location) == Some(want)
    });
}

/// The keys under `prod/<database>/` in the bucket.
fn keys(s3: &S3Server, bucket: &str) -> Vec<String> {
    let mut k: Vec<String> = s3
        .keys(bucket, &format!("prod/{PG_DB}/"))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    k.sort();
    k
}

fn local_files(st: &Steward) -> Vec<String> {
    common::faults::file_names(&st.dir().join("backups").join(PG_DB))
}

#[test]
fn local_keep_never_removes_a_local_copy_the_bucket_no_longer_holds() {
    let (pg, redis, s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    let st = builder(&pg, &redis, &s3, &bucket, "local_keep = 1\n")
        .log_level("debug")
        .start();
    let applied = |st: &Steward| st.log_lines_with("local_keep applied").len();
    let first = create_good(&st);
    wait_location(&st, &first.id, Location::Both);
    st.wait_until(UPLOAD, "local_keep after the first upload", |st| {
        applied(st) >= 1
    });
    // The bucket emptied behind steward's back: the local record of a checked copy is now
    // the only thing that says "off-site", and it is wrong.
    for k in keys(&s3, &bucket) {
        s3.delete(&bucket, &k);
    }
    // Listed where it is once the bucket's catalog is read again (at most 30 s later).
    wait_location(&st, &first.id, Location::Local);
    let second = create_good(&st);
    wait_location(&st, &second.id, Location::Both);
    st.wait_until(UPLOAD, "local_keep after the second upload", |st| {
        applied(st) >= 2
    });
    let first_now = find(&st, &first.id).expect("the only copy of the first backup is kept");
    assert_eq!(first_now.location, Some(Location::Local));
    let file = first.file.clone().unwrap();
    assert!(local_files(&st).contains(&file), "{:?}", local_files(&st));
    let audit = std::fs::read_to_string(st.dir().join("audit.log")).unwrap_or_default();
    assert!(!audit.lines().any(|l| l.contains(&first.id)), "{audit}");
}

#[test]
fn an_object_steward_did_not_write_under_a_backups_metadata_key_is_left_alone() {
    let (pg, redis, s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let bucket = unique_bucket();
    // No bucket yet: the upload fails and is retried.
    let st = builder(&pg, &redis, &s3, &bucket, "local_keep = 0\n").start();
    let b = create_good(&st);
    st.wait_until(UPLOAD, "a failed upload", |st| {
        st.metric("steward_backup_uploads_total", &[("result", "failure")])
            .is_some_and(|n| n >= 1.0)
    });
    // Someone else's object under the key of this backup's metadata, and a foreign file in
    // the prefix.
    s3.create_bucket(&bucket);
    let theirs = format!("prod/{PG_DB}/{}.json", b.id);
    let foreign = b"{\"not\": \"steward's\"}".to_vec();
    s3.put(&bucket, &theirs, &foreign);
    s3.put(&bucket, &format!("prod/{PG_DB}/notes.txt"), b"mine");
    st.wait_until(UPLOAD, "the upload to name the foreign object", |st| {
        let s: StatusReply = st.ctl(&["backup", "status"]).data();
        s.offsite
            .and_then(|o| o.last_error)
            .is_some_and(|e| e.contains("did not write"))
    });
    assert_eq!(
        s3.get(&bucket, &theirs),
        foreign,
        "the object was overwritten"
    );
    assert_eq!(s3.get(&bucket, &format!("prod/{PG_DB}/notes.txt")), b"mine");
    // Not taken for a copy: local_keep = 0 keeps the only copy.
    let listed = find(&st, &b.id).expect("the backup stays listed");
    assert_eq!(listed.location, Some(Location::Local));
    assert!(listed.offsite.is_none(), "{listed:?}");
    assert!(local_files(&st).contains(&b.file.clone().unwrap()));
}

/// A `kill -9` at a pause point of the upload; returns the backup and the stopped daemon.
fn killed_at(
    pg: &Postgres,
    redis: &Redis,
    s3: &S3Server,
    bucket: &str,
    step: &str,
) -> (Steward, BackupMeta) {
    let mut st = builder(pg, redis, s3, bucket, "")
        .env("STEWARD_TEST_PAUSE_AT", step)
        .start();
    let b = create_good(&st);
    st.wait_until(UPLOAD, "the upload to pause", |st| {
        !st.log_lines_with("paused at a test pause point").is_empty()
    });
    st.signal(libc::SIGKILL);
    st.wait_exit(Duration::from_secs(10)).expect("killed");
    st.remove_env("STEWARD_TEST_PAUSE_AT");
    (st, b)
}

#[test]
fn kill_9_between_the_files_and_the_metadata_leaves_no_backup_in_the_bucket_until_repaired() {
    let (pg, redis, s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    let (mut st, b) = killed_at(&pg, &redis, &s3, &bucket, "upload-files-sent");
    let meta_key = format!("prod/{PG_DB}/{}.json", b.id);
    assert!(
        !keys(&s3, &bucket).contains(&meta_key),
        "{:?}",
        keys(&s3, &bucket)
    );
    assert_eq!(keys(&s3, &bucket).len(), 2, "data and globals");
    st.start_again();
    wait_location(&st, &b.id, Location::Both);
    assert_eq!(keys(&s3, &bucket).len(), 3);
    let m: BackupMeta = serde_json::from_slice(&s3.get(&bucket, &meta_key)).unwrap();
    assert!(m.checksum_ok() && m.id == b.id);
}

#[test]
fn kill_9_between_the_metadata_and_its_local_record_is_recorded_without_sending_again() {
    let (pg, redis, s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    let (mut st, b) = killed_at(&pg, &redis, &s3, &bucket, "upload-meta-sent");
    assert_eq!(keys(&s3, &bucket).len(), 3);
    let data_key = format!("prod/{PG_DB}/{}", b.file.clone().unwrap());
    let puts = |s3: &S3Server| {
        s3.log()
            .lines()
            .filter(|l| l.contains("PUT") && l.contains(&data_key))
            .count()
    };
    let before = puts(&s3);
    st.start_again();
    wait_location(&st, &b.id, Location::Both);
    st.wait_until(UPLOAD, "the local record", |st| {
        find(st, &b.id).is_some_and(|m| m.offsite.is_some())
    });
    wait_uploads_settled(&st, UPLOAD);
    assert_eq!(puts(&s3), before, "the data was sent again");
}

#[test]
fn an_unanswering_bucket_stalls_no_command() {
    let (pg, redis, mut s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    let st = builder(&pg, &redis, &s3, &bucket, "").start();
    let b = create_good(&st);
    wait_location(&st, &b.id, Location::Both);
    s3.pause();
    // A reload that changes [backup.remote]: the upload actor reads the (silent) bucket again.
    let mut s = st.settings.clone();
    s.backup = s.backup.replace("/prod\"", "/prod2\"");
    st.write_config(&s.render());
    assert_eq!(st.ctl(&["reload"]).code, 0);
    st.wait_until(UPLOAD, "the new url to be in use", |st| {
        let s: StatusReply = st.ctl(&["backup", "status"]).data();
        s.offsite.is_some_and(|o| o.url.ends_with("/prod2"))
    });
    // And another: the actor now waits for the catalog the first reading still holds.
    st.write_config(&st.settings.render());
    assert_eq!(st.ctl(&["reload"]).code, 0);
    for args in [
        &["backup", "status"][..],
        &["backup", "list"],
        &["alerts"],
        &["status"],
    ] {
        let t = Instant::now();
        let out = st.ctl(args);
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "`{}` took {:?} while the bucket does not answer",
            args.join(" "),
            t.elapsed()
        );
    }
    // Backups themselves go on.
    let t = Instant::now();
    create_good(&st);
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    s3.resume();
}

#[test]
fn garbage_in_the_upload_queue_neither_hangs_nor_crashes_steward() {
    let (pg, redis, s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    let mut st = builder(&pg, &redis, &s3, &bucket, "").start();
    st.signal(libc::SIGTERM);
    st.wait_exit(Duration::from_secs(30))
        .expect("steward stops");
    let q = st.dir().join("state").join("uploads");
    std::fs::create_dir_all(&q).unwrap();
    let ids = [
        "20260101T000000Z-manual-0001",
        "20260101T000000Z-manual-0002",
        "20260101T000000Z-manual-0003",
        "20260101T000000Z-manual-0004",
    ];
    let fifo =
        std::ffi::CString::new(q.join(format!("{}.json", ids[0])).to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path we own.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/dev/zero", q.join(format!("{}.json", ids[1]))).unwrap();
    let huge = std::fs::File::create(q.join(format!("{}.json", ids[2]))).unwrap();
    huge.set_len(4 << 30).unwrap();
    std::fs::write(q.join(format!("{}.json", ids[3])), b"{\"id\": [1, 2").unwrap();
    std::fs::create_dir(q.join("20260101T000000Z-manual-0005.json")).unwrap();
    st.start_again();
    let b = create_good(&st);
    wait_location(&st, &b.id, Location::Both);
    let s: StatusReply = st.ctl(&["backup", "status"]).data();
    assert!(s.offsite.is_some());
    assert!(st.is_running());
}

#[test]
fn a_backup_uploading_when_the_bucket_changes_is_copied_to_the_new_one_too() {
    let (pg, redis, mut s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    // Random text compresses badly: the upload takes several parts.
    pg.psql(
        "CREATE TABLE noise AS SELECT g AS id, string_agg(md5(random()::text), '') AS a
         FROM generate_series(1, 150000) g, generate_series(1, 6) x GROUP BY g;",
        PG_USER,
        PG_DB,
    );
    let st = builder(&pg, &redis, &s3, &bucket, "").start();
    let b = create_good(&st);
    st.wait_until(UPLOAD, "the upload to begin", |st| {
        let s: StatusReply = st.ctl(&["backup", "status"]).data();
        s.offsite.and_then(|o| o.uploading).as_deref() == Some(b.id.as_str())
    });
    s3.pause();
    let mut s = st.settings.clone();
    s.backup = s.backup.replace("/prod\"", "/prod2\"");
    st.write_config(&s.render());
    assert_eq!(st.ctl(&["reload"]).code, 0);
    st.wait_until(UPLOAD, "the new url to be in use", |st| {
        let s: StatusReply = st.ctl(&["backup", "status"]).data();
        s.offsite.is_some_and(|o| o.url.ends_with("/prod2"))
    });
    s3.resume();
    let meta_key = format!("prod2/{PG_DB}/{}.json", b.id);
    st.wait_until(UPLOAD, "the copy in the configured bucket", |_| {
        s3.keys(&bucket, "prod2/")
            .iter()
            .any(|(k, _)| *k == meta_key)
    });
    wait_location(&st, &b.id, Location::Both);
}

#[test]
fn a_fetch_never_writes_into_another_fetchs_file() {
    let (pg, redis, s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    let st = builder(&pg, &redis, &s3, &bucket, "local_keep = 0\n").start();
    let b = create_good(&st);
    wait_location(&st, &b.id, Location::Remote);
    let file = b.file.clone().unwrap();
    st.wait_until(UPLOAD, "the local copy's files to go", |st| {
        !local_files(st).contains(&file)
    });
    // Another fetch of this backup is writing its temporary file.
    let tmp = st
        .dir()
        .join("backups")
        .join(PG_DB)
        .join(format!("{file}.tmp"));
    std::fs::write(&tmp, b"another fetch's bytes").unwrap();
    let out = st.ctl(&["backup", "fetch", &b.id]);
    let e = common::faults::error_of(&out);
    assert!(e.contains("in progress"), "{e}");
    assert_eq!(std::fs::read(&tmp).unwrap(), b"another fetch's bytes");
    assert_eq!(find(&st, &b.id).unwrap().location, Some(Location::Remote));
    std::fs::remove_file(&tmp).unwrap();
    let fetched: Vec<BackupMeta> = st.ctl(&["backup", "fetch", &b.id]).data();
    assert_eq!(fetched[0].id, b.id);
    assert_eq!(find(&st, &b.id).unwrap().location, Some(Location::Both));
}
