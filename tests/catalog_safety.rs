//! The catalog tells the truth (issue 11, items 8, 12, 13, 14), against a real PostgreSQL:
//! a backup that failed verify is damaged (never last good, never kept as good, alerted,
//! counted); metadata that fails its checksum is listed as damaged; losing the advisory-lock
//! race to another instance is a skip, not a failure; a forged running marker never becomes a
//! path outside the backup dir; a backup of a database that does not exist records nothing,
//! and `backup delete` removes what an operator wants gone.

mod common;

use common::faults::{backup_section, create_good, error_of, list};
use common::*;
use std::fs;
use std::time::Duration;
use steward::backup::api::{PruneReply, StatusReply as BackupStatusReply, VerifyReply};
use steward::backup::catalog::{self, BackupStatus};

const JOB: Duration = Duration::from_secs(60);

fn start(pg: &Postgres, redis: &Redis, dir: &std::path::Path, extra: &str) -> Steward {
    Steward::builder(pg, redis)
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            s.backup = backup_section(dir, extra);
        })
        .start()
}

/// Nothing listed, and no file left in the database's directory.
fn assert_catalog_empty(st: &Steward, root: &std::path::Path) {
    assert!(list(st).is_empty(), "{:?}", list(st));
    let left = common::faults::file_names(&catalog::db_dir(root, PG_DB));
    assert!(left.is_empty(), "files left behind: {left:?}");
}

fn alert_active(st: &Steward, alert: &str) -> Option<f64> {
    st.metric(
        "steward_alert_active",
        &[("alert", alert), ("service", "backup")],
    )
}

/// Item 8: a flipped byte found by verify makes the backup damaged: it is not "last good",
/// retention with `min_keep = 0` keeps the newest intact backup and not it, restore refuses
/// it, BackupDamaged fires and `steward_backup_damaged` counts it; metadata altered by hand is
/// listed as damaged rather than dropped.
#[test]
fn a_damaged_backup_is_never_taken_for_a_good_one() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let mut st = start(&pg, &redis, dir.path(), "min_keep = 0");
    let older = create_good(&st);
    let newest = create_good(&st);
    let path = catalog::db_dir(dir.path(), PG_DB).join(newest.file.as_deref().unwrap());
    let mut bytes = fs::read(&path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    fs::write(&path, &bytes).unwrap();

    let out = st.ctl(&["backup", "verify", &newest.id]);
    assert_eq!(out.code, 1, "{out:?}");
    let v: VerifyReply = serde_json::from_value(out.reply().data).unwrap();
    assert!(!v.ok);
    let listed = list(&st);
    let n = listed.iter().find(|m| m.id == newest.id).unwrap();
    assert_eq!(n.status, BackupStatus::Damaged, "{n:?}");
    assert!(n.verified_at.is_some(), "{n:?}");

    let status: BackupStatusReply = st.ctl(&["backup", "status"]).data();
    let db = status
        .databases
        .iter()
        .find(|d| d.database == PG_DB)
        .unwrap();
    assert!(
        db.last_good.iter().all(|g| g.id == older.id),
        "a damaged backup shows as last good: {status:?}"
    );
    assert_eq!(db.damaged, 1);
    let human = st.ctl_human(&["backup", "status"]);
    assert!(human.stdout.contains("DAMAGED"), "{}", human.stdout);

    let err = error_of(&st.ctl(&["backup", "restore", &newest.id, "--target-db", "x"]));
    assert!(err.contains("failed verification"), "{err}");

    st.wait_until(JOB, "BackupDamaged to fire", |st| {
        alert_active(st, "BackupDamaged") == Some(1.0)
    });
    assert_eq!(
        st.metric("steward_backup_damaged", &[("database", PG_DB)]),
        Some(1.0)
    );

    // Retention: everything older than a second may go, min_keep = 0. The newest intact
    // backup stays; the damaged one does not protect itself.
    st.settings.backup = backup_section(dir.path(), "min_keep = 0\nmanual_retention = \"1s\"");
    st.write_config(&st.settings.render());
    assert_eq!(st.ctl(&["reload"]).code, 0);
    st.wait_until(JOB, "both backups to be older than a second", |st| {
        let p: PruneReply = st.ctl(&["backup", "prune", "--dry-run"]).data();
        p.deleted.iter().any(|d| d.id == newest.id)
    });
    let p: PruneReply = st.ctl(&["backup", "prune"]).data();
    assert!(
        p.deleted.iter().all(|d| d.id != older.id),
        "retention deleted the newest intact backup: {p:?}"
    );
    let left: Vec<String> = list(&st).into_iter().map(|m| m.id).collect();
    assert_eq!(left, vec![older.id.clone()]);
    st.wait_until(JOB, "BackupDamaged to resolve", |st| {
        alert_active(st, "BackupDamaged") == Some(0.0)
    });

    // Metadata altered by hand: listed, as damaged.
    let meta = catalog::db_dir(dir.path(), PG_DB).join(format!("{}.json", older.id));
    let text = fs::read_to_string(&meta).unwrap();
    fs::write(&meta, text.replace("\"manual\"", "\"daily\"")).unwrap();
    let listed = list(&st);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].status, BackupStatus::Damaged, "{listed:?}");
    assert!(
        listed[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("metadata"),
        "{listed:?}"
    );
}

/// Item 12: while another instance holds the backup's advisory lock, a backup is skipped:
/// no failed entry, no BackupFailed, `steward_backups_total{result="skipped"}`.
#[test]
fn another_instances_turn_is_a_skip_not_a_failure() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let st = start(&pg, &redis, dir.path(), "");
    // What a second steward does before its backup (the lock class is "ST").
    let mut other = pg.session(
        PG_USER,
        PG_DB,
        "SELECT pg_advisory_lock(21332, hashtext(current_database()));",
    );
    wait_until(JOB, "the other instance's lock", || {
        pg.psql_as_postgres("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
            .trim()
            == "1"
    });
    let out = st.ctl(&["backup", "create", "--wait"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("skipped"), "{out:?}");
    assert!(list(&st).is_empty(), "a skipped run was recorded");
    st.wait_until(JOB, "the skip to be counted", |st| {
        st.metric(
            "steward_backups_total",
            &[
                ("database", PG_DB),
                ("kind", "manual"),
                ("result", "skipped"),
            ],
        ) == Some(1.0)
    });
    assert_eq!(alert_active(&st, "BackupFailed"), Some(0.0));
    let _ = other.kill();
    let _ = other.wait();
    create_good(&st);
}

/// Item 13: a forged running marker naming a database outside the backup dir is reported and
/// left alone at every start: nothing outside is deleted or written.
#[test]
fn a_forged_running_marker_never_becomes_a_path() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("backups");
    let victim = top.path().join("victim");
    fs::create_dir_all(&victim).unwrap();
    let mut st = start(&pg, &redis, &dir, "");
    let b = create_good(&st);
    // A marker in the database's directory whose content points outside.
    let forged_id = "20200101T000000Z-manual-abcd";
    let real =
        fs::read_to_string(catalog::db_dir(&dir, PG_DB).join(format!("{}.json", b.id))).unwrap();
    let forged = real.replace(&b.id, forged_id).replace(
        &format!("\"database\": \"{PG_DB}\""),
        "\"database\": \"../victim\"",
    );
    assert!(forged.contains("../victim"), "{forged}");
    let marker = catalog::db_dir(&dir, PG_DB).join(format!("{forged_id}.running.json"));
    fs::write(&marker, &forged).unwrap();
    let bait = victim.join(catalog::data_file_name(
        forged_id,
        b.format,
        b.compression,
        false,
    ));
    fs::write(&bait, b"user data").unwrap();
    for n in 1..=2 {
        st.signal(libc::SIGTERM);
        assert!(st.wait_exit(Duration::from_secs(20)).is_some());
        st.start_again();
        st.wait_until(JOB, "the sweep to report the marker", |st| {
            st.log_lines_with("running marker left alone").len() >= n
        });
    }
    assert_eq!(fs::read(&bait).unwrap(), b"user data");
    let names: Vec<String> = fs::read_dir(&victim)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "something was written outside: {names:?}");
    assert!(marker.exists(), "the forged marker was acted on");
    assert_eq!(list(&st).len(), 1);
}

/// Item 14: a backup of a database that does not exist is refused before anything is
/// recorded; a failed entry (and its BackupFailed) goes with `backup delete`; the newest intact
/// backup goes only with `--force`; an entry with untrustworthy metadata can be deleted too.
#[test]
fn failed_entries_can_be_dealt_with() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let st = start(&pg, &redis, dir.path(), "");
    let err = error_of(&st.ctl(&["backup", "create", "--database", "nosuchdb", "--wait"]));
    assert!(err.contains("does not exist"), "{err}");
    assert!(list(&st).is_empty(), "{:?}", list(&st));
    assert!(!dir.path().join("nosuchdb").exists());

    let older = create_good(&st);
    pg.stop();
    let out = st.ctl(&["backup", "create", "--wait"]);
    assert_eq!(out.code, 1, "{out:?}");
    pg.start_again();
    let failed = list(&st)
        .into_iter()
        .find(|m| m.status == BackupStatus::Failed)
        .expect("a failed entry");
    st.wait_until(JOB, "BackupFailed to fire", |st| {
        alert_active(st, "BackupFailed") == Some(1.0)
    });
    let out = st.ctl(&["backup", "delete", &failed.id]);
    assert_eq!(out.code, 0, "{out:?}");
    st.wait_until(JOB, "BackupFailed to resolve", |st| {
        alert_active(st, "BackupFailed") == Some(0.0)
    });

    let newest = create_good(&st);
    let err = error_of(&st.ctl(&["backup", "delete", &newest.id]));
    assert!(
        err.contains("newest intact") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(st.ctl(&["backup", "delete", &older.id]).code, 0);
    let human = st.ctl_human(&["backup", "delete", &newest.id, "--force"]);
    assert_eq!(human.code, 0, "{human:?}");
    assert!(
        human.stdout.contains(&format!("deleted {}", newest.id)),
        "{human:?}"
    );
    assert_catalog_empty(&st, dir.path());

    // Metadata that cannot be trusted: listed as damaged, and deletable by its ID.
    let b = create_good(&st);
    let meta = catalog::db_dir(dir.path(), PG_DB).join(format!("{}.json", b.id));
    fs::write(&meta, "{ not json").unwrap();
    let listed = list(&st);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, BackupStatus::Damaged, "{listed:?}");
    assert_eq!(st.ctl(&["backup", "delete", &b.id]).code, 0);
    assert_catalog_empty(&st, dir.path());
}

/// Item 11: a backup dir that is a file, or on a read-only filesystem, fails `backup create`
/// clearly, shows in `backup status` and `/health` (which stays 200: the services are up),
/// sets `steward_backup_dir_usable 0` and fires BackupFailed.
#[test]
fn an_unusable_backup_dir_is_visible() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let top = tempfile::tempdir().unwrap();
    // A file where the dir should be is refused by check-config and at start, so it turns
    // into a file once steward runs.
    let file = top.path().join("not-a-dir");
    let ro = common::tmpfs::Tmpfs::mount("1m");
    let mut dirs = vec![(file.clone(), "not a directory")];
    if let Some(fs_) = &ro {
        fs::create_dir(fs_.path().join("backups")).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(fs_.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        dirs.push((fs_.path().join("backups"), "not writable"));
    }
    for (dir, why) in dirs {
        let st = start(&pg, &redis, &dir, "");
        if dir == file {
            let _ = fs::remove_dir_all(&file);
            fs::write(&file, "").unwrap();
        }
        let err = error_of(&st.ctl(&["backup", "create", "--wait"]));
        assert!(err.contains(why) && err.contains("backup.dir"), "{err}");
        let status: BackupStatusReply = st.ctl(&["backup", "status"]).data();
        let p = status.dir_problem.clone().unwrap_or_default();
        assert!(p.contains(why), "{status:?}");
        let human = st.ctl_human(&["backup", "status"]);
        assert!(
            human.stdout.contains("BACKUPS CANNOT BE WRITTEN"),
            "{human:?}"
        );
        st.wait_until(JOB, "BackupFailed to fire", |st| {
            alert_active(st, "BackupFailed") == Some(1.0)
        });
        st.wait_until(JOB, "steward_backup_dir_usable 0", |st| {
            st.metric("steward_backup_dir_usable", &[]) == Some(0.0)
        });
        st.wait_up("postgres", true, JOB);
        st.wait_up("redis", true, JOB);
        let (code, body) = st.http_get("/health");
        assert_eq!(code, 200, "{body}");
        let h: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            h["backup_dir_problem"].as_str().unwrap_or("").contains(why),
            "{h}"
        );
    }
}
