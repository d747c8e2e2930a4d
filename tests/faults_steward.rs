//! Fault injection, steward itself: SIGKILL of the daemon in the middle of a backup and in the
//! middle of retention (a prune deleting thousands of backups), then a restart on the same
//! dirs. Nothing may be lost: every listed backup keeps its file and verifies, no partial or
//! marker file survives the restart, the catalog matches the files on disk, and the next
//! backup and prune work.

mod common;

use chrono::{Duration as ChronoDuration, Utc};
use common::faults::*;
use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use steward::backup::api::{PruneReply, Started};
use steward::backup::catalog::{self, BackupMeta};
use steward::backup::BackupKind;

/// A database of this many big rows takes seconds to dump, so the kill lands mid-dump.
const KILL_ROWS: u64 = 1_000_000;

fn builder(pg: &Postgres, redis: &Redis, root: &Path, extra: &str) -> StewardBuilder {
    let backup = backup_section(root, extra);
    Steward::builder(pg, redis).with(|s| {
        s.pg_extra = "write_read_test = false\n".into();
        s.backup = backup;
    })
}

/// SIGKILL while pg_dump streams: after the restart the earlier backup still verifies, the
/// interrupted run is a failed entry without a file, nothing partial is left, and the next
/// backup succeeds and verifies.
#[test]
fn sigkill_of_steward_mid_backup_loses_nothing() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let root_dir = short_tempdir("stw-fault-bk-");
    let root = root_dir.path().join("backups");
    pg.psql(
        "CREATE TABLE small (id int, v text); INSERT INTO small SELECT g, 'row ' || g FROM generate_series(1, 100) g;",
        PG_USER,
        PG_DB,
    );
    let mut st = builder(&pg, &redis, &root, "").start();
    let earlier = create_good(&st);
    add_big_table(&pg, KILL_ROWS);

    let started: Vec<Started> = st.ctl(&["backup", "create"]).data();
    let id = started[0].id.clone();
    wait_backup_streaming(&st);
    assert_eq!(
        children_named(st.pid(), "pg_dump").len(),
        1,
        "the backup finished before the kill (make KILL_ROWS bigger)"
    );
    st.signal(libc::SIGKILL);
    assert!(
        st.wait_exit(Duration::from_secs(10)).is_some(),
        "steward did not die on SIGKILL"
    );
    let dbdir = catalog::db_dir(&root, PG_DB);
    let left = file_names(&dbdir);
    assert!(
        !left.contains(&format!("{id}.json")),
        "the backup completed before the kill (make KILL_ROWS bigger): {left:?}"
    );

    st.start_again();
    let all = assert_nothing_lost(&st, &root);
    assert_interrupted(&all, &id);
    assert!(
        all.iter().any(|m| m.id == earlier.id && m.is_good()),
        "the earlier backup is gone: {all:?}"
    );

    let next = create_good(&st);
    let all = assert_nothing_lost(&st, &root);
    assert_eq!(
        all.iter().filter(|m| m.is_good()).count(),
        2,
        "the earlier and the next backup: {all:?}"
    );
    assert!(next.stored_bytes > earlier.stored_bytes, "{next:?}");
}

/// Backdated daily entries that retention must delete (all older than its 7 days).
const DOOMED: usize = 1200;
/// Young daily entries that retention keeps.
const YOUNG: usize = 3;

/// Writes `DOOMED` old and `YOUNG` young daily entries whose data file is a copy of `real`'s
/// (so each verifies); metadata sealed and written directly (no fsync: thousands of them).
fn write_entries(root: &Path, real: &BackupMeta) -> Vec<BackupMeta> {
    let dir = catalog::db_dir(root, PG_DB);
    let src = catalog::data_path(root, real).unwrap();
    let now = Utc::now();
    (0..DOOMED + YOUNG)
        .map(|n| {
            let age = if n < DOOMED {
                ChronoDuration::days(8) + ChronoDuration::minutes(n as i64)
            } else {
                ChronoDuration::days(1 + (n - DOOMED) as i64)
            };
            let started = now - age;
            let id = format!("{}-daily-{:04x}", started.format("%Y%m%dT%H%M%SZ"), n);
            let mut m = real.clone();
            m.id = id.clone();
            m.kind = BackupKind::Daily;
            m.label = None;
            m.started_at = started;
            m.finished_at = Some(started + ChronoDuration::seconds(5));
            let name = catalog::data_file_name(&id, m.format, m.compression, false);
            std::fs::copy(&src, dir.join(&name)).unwrap();
            m.file = Some(name);
            if let Some(g) = &mut m.globals {
                let gname = catalog::globals_file_name(&id, m.compression, false);
                std::fs::copy(dir.join(&g.file), dir.join(&gname)).unwrap();
                g.file = gname;
            }
            m.seal();
            let mut json = serde_json::to_vec_pretty(&m).unwrap();
            json.push(b'\n');
            std::fs::write(dir.join(format!("{id}.json")), json).unwrap();
            m
        })
        .collect()
}

fn metadata_count(dir: &Path) -> usize {
    file_names(dir)
        .iter()
        .filter(|n| n.ends_with(".json"))
        .count()
}

/// SIGKILL while a prune deletes thousands of backups: after the restart no half-deleted
/// backup is listed (every listed one has its file and verifies), no marker or orphan file is
/// left, and a second prune finishes the job, keeping exactly what it must.
#[test]
fn sigkill_of_steward_mid_prune_loses_nothing() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let root_dir = short_tempdir("stw-fault-pr-");
    let root = root_dir.path().join("backups");
    let mut st = builder(&pg, &redis, &root, "retention_days = 7\nmin_keep = 1").start();
    let real = create_good(&st);
    let t = Instant::now();
    let entries = write_entries(&root, &real);
    eprintln!("{} entries written in {:?}", entries.len(), t.elapsed());
    let dbdir = catalog::db_dir(&root, PG_DB);
    let before = metadata_count(&dbdir);
    assert_eq!(before, DOOMED + YOUNG + 1);

    let sock = st.socket().to_string_lossy().into_owned();
    let cwd: PathBuf = st.dir().to_path_buf();
    let prune = std::thread::spawn(move || {
        steward_cmd(&["--socket", &sock, "--json", "backup", "prune"], &cwd, &[])
    });
    // Kill as soon as retention is well under way (a tight loop: deletions are fast).
    let t = Instant::now();
    let deadline = Instant::now() + JOB;
    loop {
        let n = metadata_count(&dbdir);
        if n + 50 <= before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the prune deleted nothing in {JOB:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    st.signal(libc::SIGKILL);
    assert!(st.wait_exit(Duration::from_secs(10)).is_some());
    let out = prune.join().unwrap();
    let left = metadata_count(&dbdir);
    let cut_short: Vec<String> = file_names(&dbdir)
        .into_iter()
        .filter(|n| n.ends_with(".deleting.json"))
        .collect();
    eprintln!("deletions cut short by the kill (finished by the next start): {cut_short:?}");
    eprintln!(
        "killed {:?} after the prune began, with {left} of {before} metadata files left; the client said {:?}",
        t.elapsed(),
        out.all()
    );
    assert!(
        left > YOUNG + 1 + 10,
        "the prune finished before the kill ({left} left; make DOOMED bigger)"
    );
    assert_ne!(
        out.code, 0,
        "a prune cut short by a kill cannot succeed: {out:?}"
    );

    // Even before the restart's sweep, every backup still in the catalog has its data file:
    // a deletion takes the metadata away first.
    let names = file_names(&dbdir);
    for m in entries.iter().chain([&real]) {
        if names.contains(&format!("{}.json", m.id)) {
            assert!(
                names.contains(m.file.as_ref().unwrap()),
                "{} is still in the catalog but its file is gone",
                m.id
            );
        }
    }

    st.start_again();
    let t = Instant::now();
    let listed = assert_nothing_lost(&st, &root);
    eprintln!(
        "{} listed backups checked in {:?}",
        listed.len(),
        t.elapsed()
    );
    assert!(
        listed.len() < before && listed.len() > YOUNG + 1,
        "{}",
        listed.len()
    );

    let again: PruneReply = st.ctl(&["backup", "prune"]).data();
    assert_eq!(again.deleted.len(), listed.len() - YOUNG - 1, "{again:?}");
    let kept = assert_nothing_lost(&st, &root);
    let mut kept_ids: Vec<String> = kept.iter().map(|m| m.id.clone()).collect();
    kept_ids.sort();
    let mut expected: Vec<String> = entries[DOOMED..].iter().map(|m| m.id.clone()).collect();
    expected.push(real.id.clone());
    expected.sort();
    assert_eq!(
        kept_ids, expected,
        "retention kept exactly the young dailies and the manual backup"
    );
    assert_eq!(
        file_names(&dbdir).len(),
        3 * expected.len(),
        "a data file, a globals file and a metadata file per kept backup: {:?}",
        file_names(&dbdir)
    );
}
