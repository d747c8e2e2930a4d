//! Catalog behaviour on a temporary directory.

use super::*;
use crate::backup::kind::BackupKind;
use crate::config::{Compression, DumpFormat};
use chrono::Utc;
use std::fs;
use std::os::unix::fs::PermissionsExt;

fn meta(id: &str, db: &str, status: BackupStatus) -> BackupMeta {
    BackupMeta::sample(id, db, BackupKind::Manual, status)
}

#[test]
fn ids_are_made_and_checked_strictly() {
    let id = new_id(Utc::now(), BackupKind::PreRestore);
    assert!(validate_id(&id).is_ok(), "{id}");
    for bad in [
        "../../etc/passwd",
        "/etc/passwd",
        "..",
        "",
        "20261126T020000Z-daily-3fa2/../x",
        "20261126T020000Z-daily-3FA2",
        "20261126T020000Z-hourly-3fa2",
        "20261126T020000Z-daily-3fa2.json",
        "2026112xT020000Z-daily-3fa2",
    ] {
        assert!(validate_id(bad).is_err(), "{bad:?} accepted");
    }
    assert!(validate_id("20261126T020000Z-daily-3fa2").is_ok());
}

#[test]
fn file_names() {
    let id = "20261126T020000Z-daily-3fa2";
    assert_eq!(
        data_file_name(id, DumpFormat::Plain, Compression::Gzip, false),
        format!("{id}.sql.gz")
    );
    assert_eq!(
        data_file_name(id, DumpFormat::Custom, Compression::Zstd, true),
        format!("{id}.dump.zst.age")
    );
}

#[test]
fn checksum_detects_any_change() {
    let mut m = meta("20261126T020000Z-manual-0001", "app", BackupStatus::Good);
    assert!(!m.checksum_ok());
    m.seal();
    assert!(m.checksum_ok());
    m.stored_bytes += 1;
    assert!(!m.checksum_ok());
}

#[test]
fn commit_load_find_delete() {
    let root = tempfile::tempdir().unwrap();
    let mut a = meta("20261126T020000Z-manual-0001", "app", BackupStatus::Good);
    a.file = Some(data_file_name(&a.id, a.format, a.compression, false));
    ensure_dir(&db_dir(root.path(), "app")).unwrap();
    let data = data_path(root.path(), &a).unwrap();
    fs::write(&data, b"x").unwrap();
    let foreign = db_dir(root.path(), "app").join("notes.txt");
    fs::write(&foreign, b"mine").unwrap();
    commit(root.path(), &mut a).unwrap();
    let mut b = meta(
        "20261127T020000Z-manual-0002",
        "other",
        BackupStatus::Failed,
    );
    b.started_at = a.started_at + chrono::Duration::hours(1);
    ensure_dir(&db_dir(root.path(), "other")).unwrap();
    commit(root.path(), &mut b).unwrap();
    let mode = fs::metadata(db_dir(root.path(), "app").join(format!("{}.json", a.id)))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (all, problems) = load_all(root.path());
    assert!(problems.is_empty());
    assert_eq!(
        all.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        vec![b.id.as_str(), a.id.as_str()]
    );
    assert_eq!(find(root.path(), &a.id).unwrap(), a);
    assert!(matches!(
        find(root.path(), "20261126T020000Z-manual-ffff"),
        Err(CatalogError::Unknown(_))
    ));
    assert!(matches!(
        find(root.path(), "../app/x"),
        Err(CatalogError::BadId(_))
    ));
    delete(root.path(), &a).unwrap();
    assert!(!data.exists());
    assert!(foreign.exists(), "a file steward did not write survives");
    assert!(matches!(
        find(root.path(), &a.id),
        Err(CatalogError::Unknown(_))
    ));
}

#[test]
fn altered_metadata_is_not_trusted() {
    let root = tempfile::tempdir().unwrap();
    let mut a = meta("20261126T020000Z-manual-0001", "app", BackupStatus::Good);
    ensure_dir(&db_dir(root.path(), "app")).unwrap();
    commit(root.path(), &mut a).unwrap();
    let path = db_dir(root.path(), "app").join(format!("{}.json", a.id));
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("\"manual\"", "\"daily\"");
    fs::write(&path, text).unwrap();
    let (all, problems) = load_all(root.path());
    assert!(all.is_empty());
    assert_eq!(problems.len(), 1);
    assert!(matches!(
        find(root.path(), &a.id),
        Err(CatalogError::Corrupt { .. })
    ));
}

#[test]
fn sweep_fails_interrupted_runs_and_removes_their_temporary_files() {
    let root = tempfile::tempdir().unwrap();
    let m = meta("20261126T020000Z-daily-00aa", "app", BackupStatus::Running);
    mark_running(root.path(), &m).unwrap();
    let dir = db_dir(root.path(), "app");
    let tmp = dir.join(format!("{}.sql.gz.tmp", m.id));
    fs::write(&tmp, b"partial").unwrap();
    let orphan = dir.join(format!("{}.sql.gz", m.id));
    fs::write(&orphan, b"complete but never committed").unwrap();
    let foreign_tmp = dir.join("someone-else.tmp");
    fs::write(&foreign_tmp, b"keep").unwrap();
    let failed = sweep(root.path());
    assert_eq!(failed.len(), 1);
    assert!(!tmp.exists());
    assert!(
        !orphan.exists(),
        "an uncommitted final file is not left behind"
    );
    assert!(foreign_tmp.exists());
    let found = find(root.path(), &m.id).unwrap();
    assert_eq!(found.status, BackupStatus::Failed);
    assert!(found.error.unwrap().contains("interrupted"));
    assert!(!dir.join(format!("{}.running.json", m.id)).exists());
    assert!(
        sweep(root.path()).is_empty(),
        "a second sweep finds nothing"
    );
}

#[test]
fn sweep_finishes_a_deletion_cut_short() {
    let root = tempfile::tempdir().unwrap();
    let mut a = meta("20261126T020000Z-manual-0001", "app", BackupStatus::Good);
    a.file = Some(data_file_name(&a.id, a.format, a.compression, false));
    let dir = db_dir(root.path(), "app");
    ensure_dir(&dir).unwrap();
    let data = data_path(root.path(), &a).unwrap();
    fs::write(&data, b"x").unwrap();
    commit(root.path(), &mut a).unwrap();
    // What a crash right after the first step of `delete` leaves: the metadata renamed away.
    let doomed = dir.join(format!("{}.deleting.json", a.id));
    fs::rename(dir.join(format!("{}.json", a.id)), &doomed).unwrap();
    let (all, problems) = load_all(root.path());
    assert!(
        all.is_empty() && problems.is_empty(),
        "{all:?} {problems:?}"
    );
    let foreign = dir.join("20200101T000000Z-daily-abcd.sql.gz");
    fs::write(&foreign, b"not steward's").unwrap();
    assert!(sweep(root.path()).is_empty());
    assert!(!data.exists() && !doomed.exists());
    assert!(
        foreign.exists(),
        "a file without a deletion marker survives"
    );
}

#[test]
fn sweep_keeps_a_committed_backup_whose_running_marker_survived() {
    let root = tempfile::tempdir().unwrap();
    let mut a = meta("20261126T020000Z-manual-0002", "app", BackupStatus::Running);
    mark_running(root.path(), &a).unwrap();
    a.status = BackupStatus::Good;
    a.file = Some(data_file_name(&a.id, a.format, a.compression, false));
    let data = data_path(root.path(), &a).unwrap();
    fs::write(&data, b"x").unwrap();
    // Committed, but killed before the marker was removed.
    a.seal();
    let json = serde_json::to_vec_pretty(&a).unwrap();
    fs::write(
        db_dir(root.path(), "app").join(format!("{}.json", a.id)),
        json,
    )
    .unwrap();
    assert!(sweep(root.path()).is_empty());
    assert!(data.exists(), "the complete backup keeps its file");
    assert_eq!(find(root.path(), &a.id).unwrap().status, BackupStatus::Good);
    assert!(!db_dir(root.path(), "app")
        .join(format!("{}.running.json", a.id))
        .exists());
}

#[test]
fn any_database_name_gets_an_escaped_directory_and_keeps_its_real_name() {
    let root = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for (i, (db, dir)) in [
        ("Sales DB", "Sales%20DB"),
        ("übung", "%C3%BCbung"),
        ("../x", "%2E.%2Fx"),
        (".hidden", "%2Ehidden"),
        ("a/b", "a%2Fb"),
        ("it's \"q\"", "it%27s%20%22q%22"),
        ("app", "app"),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(db_dir(root.path(), db), root.path().join(dir), "{db:?}");
        let mut m = meta(
            &format!("20261126T020000Z-manual-{i:04x}"),
            db,
            BackupStatus::Running,
        );
        m.file = Some(data_file_name(&m.id, m.format, m.compression, false));
        mark_running(root.path(), &m).unwrap();
        fs::write(data_path(root.path(), &m).unwrap(), b"x").unwrap();
        m.status = BackupStatus::Good;
        commit(root.path(), &mut m).unwrap();
        assert_eq!(find(root.path(), &m.id).unwrap().database, db);
        ids.push(m.id.clone());
    }
    let mut dirs: Vec<String> = fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    dirs.sort();
    assert_eq!(
        dirs,
        [
            "%2E.%2Fx",
            "%2Ehidden",
            "%C3%BCbung",
            "Sales%20DB",
            "a%2Fb",
            "app",
            "it%27s%20%22q%22"
        ],
        "nothing outside the backup dir, no hidden directory"
    );
    let (all, problems) = load_all(root.path());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(all.len(), ids.len());
    assert!(all.iter().all(|m| m.is_good()));
    assert!(sweep(root.path()).is_empty());
}

#[test]
fn metadata_whose_directory_is_not_the_escaping_of_its_database_is_not_trusted() {
    let root = tempfile::tempdir().unwrap();
    // "Sales DB" written into a directory named as it is (not as steward escapes it).
    let mut m = meta(
        "20261126T020000Z-manual-0001",
        "Sales DB",
        BackupStatus::Good,
    );
    m.seal();
    let raw = root.path().join("Sales DB");
    fs::create_dir(&raw).unwrap();
    fs::write(
        raw.join(format!("{}.json", m.id)),
        serde_json::to_vec(&m).unwrap(),
    )
    .unwrap();
    let (all, problems) = load_all(root.path());
    assert!(all.is_empty(), "{all:?}");
    assert_eq!(problems.len(), 1, "{problems:?}");
    // Nor is a damaged entry named after a directory that is no escaping of a name.
    assert!(listing(root.path()).is_empty());

    // In the escaped directory, metadata that was altered is listed as damaged under the
    // database's real name.
    let dir = db_dir(root.path(), "Sales DB");
    ensure_dir(&dir).unwrap();
    let mut m2 = meta(
        "20261127T020000Z-manual-0002",
        "Sales DB",
        BackupStatus::Good,
    );
    m2.seal();
    m2.stored_bytes = 7;
    fs::write(
        dir.join(format!("{}.json", m2.id)),
        serde_json::to_vec(&m2).unwrap(),
    )
    .unwrap();
    let listed = listing(root.path());
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, m2.id);
    assert_eq!(listed[0].database, "Sales DB");
    assert_eq!(listed[0].status, BackupStatus::Damaged);
}

/// A restore test's result recorded while retention deletes the same backup never brings the
/// entry back without its file, and two records at once never damage the metadata (the
/// catalog lock; without it the race lost the deletion or tore the file).
#[test]
fn records_and_deletions_of_one_backup_do_not_race() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    ensure_dir(&db_dir(root, "app")).unwrap();
    let record = |ok: bool| RestoreTestRecord {
        at: Utc::now(),
        ok,
        duration_seconds: 1.0,
        detail: String::new(),
    };
    for round in 0..200 {
        let id = format!("20261126T0200{:02}Z-manual-{round:04x}", round % 60);
        let mut m = meta(&id, "app", BackupStatus::Good);
        m.file = Some(data_file_name(&id, m.format, m.compression, false));
        fs::write(data_path(root, &m).unwrap(), b"x").unwrap();
        commit(root, &mut m).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let _ = record_restore_test(root, &id, record(true));
            });
            s.spawn(|| {
                let _ = record_restore_test(root, &id, record(false));
            });
            s.spawn(|| delete(root, &m).unwrap());
        });
        let (all, problems) = load_all(root);
        assert!(problems.is_empty(), "round {round}: {problems:?}");
        assert!(
            all.iter()
                .all(|b| data_path(root, b).is_some_and(|p| p.is_file())),
            "round {round}: a listed backup lost its file: {all:?}"
        );
        assert!(
            all.iter().all(|b| b.id != id),
            "round {round}: the deleted entry came back"
        );
    }
}
