//! Retention in the bucket against a real S3-compatible server (moto) and a real, throwaway
//! PostgreSQL: the bucket is seeded with sealed metadata of backdated backups (good, failed,
//! damaged, one missing its data) and with objects steward did not write; `backup prune
//! --dry-run` names exactly what `backup prune` then deletes, all its objects, each audited
//! with `"where":"remote"`; the newest intact copy of each database stays; a deletion a stop
//! cut short is finished; a checked upload prunes the bucket by itself.

mod common;

use chrono::{Duration as ChronoDuration, Utc};
use common::faults::{backup_section, create_good, list, toml_string};
use common::s3::{unique_bucket, S3Server, ACCESS_KEY_ID, REGION};
use common::*;
use std::collections::BTreeSet;
use std::time::Duration;
use steward::backup::api::PruneReply;
use steward::backup::catalog::{self, BackupMeta, BackupStatus, GlobalsFile, Location};
use steward::backup::BackupKind;
use steward::config::{Compression, DumpFormat};

/// Local `retention_days = 2`, the bucket's 10: a daily 6 days old stays in the bucket only if
/// the bucket's own keep is the one applied.
const RETENTION: &str = "retention_days = 2\nmin_keep = 0\n";
const REMOTE_RETENTION: &str = "retention_days = 10\n";

/// A daemon whose `[backup.remote]` points at `bucket` under `prod/`.
fn start(pg: &Postgres, redis: &Redis, s3: &S3Server, bucket: &str) -> Steward {
    Steward::builder(pg, redis)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", "retention-test-secret")
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            let dir = s.state_dir.with_file_name("backups");
            s.backup = format!(
                "{}\n[backup.remote]\nurl = {}\nendpoint = {}\nregion = {}\npath_style = true\nretry_interval = \"1s\"\n{REMOTE_RETENTION}\n",
                backup_section(&dir, RETENTION),
                toml_string(&format!("s3://{bucket}/prod")),
                toml_string(&s3.endpoint()),
                toml_string(REGION),
            );
        })
        .start()
}

/// What a seeded entry is.
#[derive(Clone, Copy, PartialEq)]
enum Seed {
    Good,
    /// Good metadata, with a globals file too.
    GoodWithGlobals,
    Failed,
    /// Sealed, then altered: its checksum fails.
    Damaged,
    /// Good metadata whose data object is not in the bucket.
    NoData,
}

/// Seeds one backup of `database`, `days` old, into the bucket; returns its ID.
fn seed(s3: &S3Server, bucket: &str, database: &str, days: i64, n: u32, what: Seed) -> String {
    let started = Utc::now() - ChronoDuration::days(days) - ChronoDuration::minutes(5);
    let id = format!("{}-daily-{n:04x}", started.format("%Y%m%dT%H%M%SZ"));
    catalog::validate_id(&id).unwrap();
    let dir = format!("prod/{}", catalog::dir_name::encode(database));
    let good = what != Seed::Failed;
    let data = format!("fake backup data of {id}\n").into_bytes();
    let file =
        good.then(|| catalog::data_file_name(&id, DumpFormat::Plain, Compression::Gzip, false));
    let globals = (what == Seed::GoodWithGlobals).then(|| GlobalsFile {
        file: catalog::globals_file_name(&id, Compression::Gzip, false),
        sha256: "0".repeat(64),
        stored_bytes: 7,
        dump_bytes: 7,
        without_passwords: false,
    });
    let mut meta = BackupMeta {
        id: id.clone(),
        database: database.into(),
        kind: BackupKind::Daily,
        label: None,
        status: if good {
            BackupStatus::Good
        } else {
            BackupStatus::Failed
        },
        error: (!good).then(|| "pg_dump failed (exit status: 1): test".to_string()),
        started_at: started,
        finished_at: Some(started + ChronoDuration::seconds(30)),
        duration_seconds: 30.0,
        file: file.clone(),
        format: DumpFormat::Plain,
        compression: Compression::Gzip,
        level: 6,
        encryption: None,
        dump_bytes: if good { 1000 } else { 0 },
        stored_bytes: if good { data.len() as u64 } else { 0 },
        sha256: good.then(|| "0".repeat(64)),
        pg_dump_version: Some("17.0".into()),
        server_version: Some("17.0".into()),
        steward_version: "0.1.0".into(),
        verified_at: None,
        source: None,
        restore_test: None,
        globals: globals.clone(),
        table_rows: None,
        offsite: None,
        location: None,
        checksum: String::new(),
    };
    meta.seal();
    assert!(meta.checksum_ok());
    if what == Seed::Damaged {
        meta.stored_bytes += 1;
        assert!(!meta.checksum_ok());
    }
    if let (Some(f), true) = (&file, what != Seed::NoData) {
        s3.put(bucket, &format!("{dir}/{f}"), &data);
    }
    if let Some(g) = &globals {
        s3.put(bucket, &format!("{dir}/{}", g.file), b"globals");
    }
    s3.put(
        bucket,
        &format!("{dir}/{id}.json"),
        &serde_json::to_vec(&meta).unwrap(),
    );
    id
}

/// Every key under `prod/`.
fn all_keys(s3: &S3Server, bucket: &str) -> BTreeSet<String> {
    s3.keys(bucket, "prod/")
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// The keys of backup `id` (every object named after it).
fn keys_of(keys: &BTreeSet<String>, id: &str) -> BTreeSet<String> {
    keys.iter()
        .filter(|k| k.rsplit('/').next().is_some_and(|f| f.starts_with(id)))
        .cloned()
        .collect()
}

/// The audit lines of deletions in the bucket: (ID, trigger).
fn remote_deletions(st: &Steward) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(st.dir().join("audit.log")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["command"] == "backup_delete" && v["arguments"]["where"] == "remote")
        .map(|v| {
            let a = &v["arguments"];
            (
                a["id"].as_str().unwrap_or("").to_string(),
                a["trigger"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn remote_ids(p: &PruneReply) -> BTreeSet<String> {
    p.deleted
        .iter()
        .filter(|d| d.location == Some(Location::Remote))
        .map(|d| d.id.clone())
        .collect()
}

#[test]
fn prune_in_the_bucket_follows_the_local_rules_and_touches_nothing_foreign() {
    let (pg, redis, s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    let db = PG_DB;
    // The test database: newer failed and damaged entries do not stand in for the newest good.
    let g3 = seed(&s3, &bucket, db, 3, 1, Seed::Good);
    let g6 = seed(&s3, &bucket, db, 6, 2, Seed::Good);
    let g15 = seed(&s3, &bucket, db, 15, 3, Seed::Good);
    let g20 = seed(&s3, &bucket, db, 20, 4, Seed::GoodWithGlobals);
    let f1 = seed(&s3, &bucket, db, 1, 5, Seed::Failed);
    let f12 = seed(&s3, &bucket, db, 12, 6, Seed::Failed);
    let d1 = seed(&s3, &bucket, db, 1, 7, Seed::Damaged);
    let d30 = seed(&s3, &bucket, db, 30, 8, Seed::Damaged);
    // A database whose every good copy is older than retention: its newest intact one stays,
    // though a newer failed, a newer damaged one and a newer one missing its data are there.
    let l40 = seed(&s3, &bucket, "legacy", 40, 9, Seed::Good);
    let l41 = seed(&s3, &bucket, "legacy", 41, 10, Seed::Good);
    let l2 = seed(&s3, &bucket, "legacy", 2, 11, Seed::Failed);
    let l3 = seed(&s3, &bucket, "legacy", 3, 12, Seed::Damaged);
    let l5 = seed(&s3, &bucket, "legacy", 5, 13, Seed::NoData);
    let foreign = [
        format!("prod/{db}/notes.txt"),
        "prod/other/x.json".to_string(),
        "prod/README".to_string(),
        format!("prod/{db}/20200101T000000Z-daily-abce.json.bak"),
        // Steward's naming without metadata: an upload that never completed, not a backup.
        format!("prod/{db}/20200101T000000Z-daily-abcd.sql.gz"),
    ];
    for k in &foreign {
        s3.put(&bucket, k, b"not steward's\n");
    }
    let st = start(&pg, &redis, &s3, &bucket);
    let before = all_keys(&s3, &bucket);

    let expected: BTreeSet<String> = [&g15, &g20, &f12, &d30, &l41]
        .into_iter()
        .cloned()
        .collect();
    let kept: BTreeSet<String> = [&g3, &g6, &f1, &d1, &l40, &l2, &l3, &l5]
        .into_iter()
        .cloned()
        .collect();

    let dry: PruneReply = st.ctl(&["backup", "prune", "--dry-run"]).data();
    assert!(dry.dry_run);
    assert_eq!(remote_ids(&dry), expected, "dry run: {dry:?}");
    assert_eq!(all_keys(&s3, &bucket), before, "a dry run deletes nothing");
    assert!(
        remote_deletions(&st).is_empty(),
        "a dry run audits no deletion"
    );
    let human = st.ctl_human(&["backup", "prune", "--dry-run"]).stdout;
    assert!(human.contains(&format!("remote {g15}")), "{human}");

    let real: PruneReply = st.ctl(&["backup", "prune"]).data();
    assert_eq!(remote_ids(&real), expected, "prune: {real:?}");
    let after = all_keys(&s3, &bucket);
    for id in &expected {
        assert!(
            keys_of(&after, id).is_empty(),
            "{id} left objects: {after:?}"
        );
    }
    let gone: BTreeSet<String> = before.difference(&after).cloned().collect();
    let want_gone: BTreeSet<String> = expected
        .iter()
        .flat_map(|id| keys_of(&before, id))
        .collect();
    assert_eq!(gone, want_gone, "exactly the pruned backups' objects went");
    assert!(
        gone.iter().any(|k| k.ends_with(".globals.sql.gz")),
        "{gone:?}"
    );
    for id in &kept {
        assert!(!keys_of(&after, id).is_empty(), "{id} was kept: {after:?}");
    }
    for k in &foreign {
        assert!(after.contains(k), "{k} was not steward's to delete");
    }
    assert!(
        !after.iter().any(|k| k.ends_with(".deleting.json")),
        "no marker is left: {after:?}"
    );
    let audited: BTreeSet<String> = remote_deletions(&st)
        .into_iter()
        .filter(|(_, t)| t == "backup_prune")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        audited, expected,
        "one audit line per deletion in the bucket"
    );

    let listed: BTreeSet<String> = list(&st).into_iter().map(|m| m.id).collect();
    assert!(
        listed.is_disjoint(&expected),
        "listed after prune: {listed:?}"
    );
    assert!(listed.contains(&g6) && listed.contains(&l40), "{listed:?}");
    let again: PruneReply = st.ctl(&["backup", "prune"]).data();
    assert!(
        remote_ids(&again).is_empty(),
        "nothing more to do: {again:?}"
    );
}

#[test]
fn a_deletion_cut_short_is_finished_by_the_next_prune() {
    let (pg, redis, s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    let newest = seed(&s3, &bucket, PG_DB, 1, 1, Seed::Good);
    // A stop after the marker and the metadata's deletion: the data is still there.
    let cut = seed(&s3, &bucket, PG_DB, 5, 2, Seed::GoodWithGlobals);
    let dir = format!("prod/{PG_DB}");
    let meta = s3.get(&bucket, &format!("{dir}/{cut}.json"));
    s3.put(&bucket, &format!("{dir}/{cut}.deleting.json"), &meta);
    s3.delete(&bucket, &format!("{dir}/{cut}.json"));
    // A stop right after the marker: the metadata is still there too. Though it is the
    // newest intact one of its database, its deletion was decided and audited: it goes.
    let marked = seed(&s3, &bucket, "legacy", 1, 3, Seed::Good);
    let legacy_meta = s3.get(&bucket, &format!("prod/legacy/{marked}.json"));
    s3.put(
        &bucket,
        &format!("prod/legacy/{marked}.deleting.json"),
        &legacy_meta,
    );
    let st = start(&pg, &redis, &s3, &bucket);
    assert!(
        !list(&st).iter().any(|m| m.id == cut || m.id == marked),
        "a backup being deleted is not listed"
    );

    let real: PruneReply = st.ctl(&["backup", "prune"]).data();
    let want: BTreeSet<String> = [cut.clone(), marked.clone()].into();
    assert_eq!(remote_ids(&real), want, "{real:?}");
    let after = all_keys(&s3, &bucket);
    assert!(keys_of(&after, &cut).is_empty(), "{after:?}");
    assert!(keys_of(&after, &marked).is_empty(), "{after:?}");
    assert_eq!(keys_of(&after, &newest).len(), 2, "{after:?}");
    let audited: BTreeSet<String> = remote_deletions(&st)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(audited, want);
}

#[test]
fn a_checked_upload_prunes_the_bucket() {
    let (pg, redis, s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    let old = seed(&s3, &bucket, PG_DB, 15, 1, Seed::Good);
    let st = start(&pg, &redis, &s3, &bucket);
    // The old copy is the newest intact one until a new backup is in the bucket.
    let b = create_good(&st);
    st.wait_until(Duration::from_secs(90), "the old copy to be pruned", |_| {
        keys_of(&all_keys(&s3, &bucket), &old).is_empty()
    });
    let after = all_keys(&s3, &bucket);
    assert_eq!(keys_of(&after, &b.id).len(), 3, "{after:?}");
    assert_eq!(
        remote_deletions(&st),
        vec![(old.clone(), "after_upload".to_string())]
    );
    st.wait_until(Duration::from_secs(30), "the listing to show it", |st| {
        let l = list(st);
        !l.iter().any(|m| m.id == old)
            && l.iter()
                .any(|m| m.id == b.id && m.location == Some(Location::Both))
    });
}
