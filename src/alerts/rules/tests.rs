//! The rules on hand-made facts: each condition, its boundaries, and the notes that explain
//! a rule that cannot judge.

use super::*;
use crate::alerts::facts::BackupFacts;
use crate::backup::catalog::{BackupMeta, BackupStatus, Location};
use crate::backup::BackupKind;
use crate::model::check::{PgFigures, RedisFigures, WriteRead};
use chrono::{DateTime, Utc};
use std::sync::Arc;

const NOW: f64 = 1_800_000_000.0;

fn check(service: Service, up: bool) -> Option<Arc<CheckResult>> {
    Some(Arc::new(CheckResult {
        up,
        checked_at: NOW,
        latency_seconds: up.then_some(0.002),
        error: (!up).then(|| "connection refused".to_string()),
        write_read: up.then_some(WriteRead {
            ok: true,
            error: None,
        }),
        ..CheckResult::unchecked(service)
    }))
}

fn with(c: Option<Arc<CheckResult>>, f: impl FnOnce(&mut CheckResult)) -> Option<Arc<CheckResult>> {
    let mut c = (*c.unwrap()).clone();
    f(&mut c);
    Some(Arc::new(c))
}

fn facts() -> Facts {
    Facts {
        now: NOW,
        started_at: NOW - 60.0,
        postgres: check(Service::Postgres, true),
        redis: check(Service::Redis, true),
        ..Facts::default()
    }
}

fn find<'a>(obs: &'a [Observation], alert: &str, service: &str) -> &'a Observation {
    obs.iter()
        .find(|o| o.key.alert == alert && o.key.service == service)
        .unwrap_or_else(|| panic!("no {alert}/{service}"))
}

fn at(t: f64) -> DateTime<Utc> {
    DateTime::from_timestamp(t as i64, 0).unwrap()
}

fn meta(db: &str, kind: BackupKind, status: BackupStatus, finished: f64, size: u64) -> BackupMeta {
    let mut m = BackupMeta::sample(&format!("{db}-{kind}-{finished}"), db, kind, status);
    m.error = (status == BackupStatus::Failed).then(|| "pg_dump exited 1".to_string());
    m.started_at = at(finished - 10.0);
    m.finished_at = Some(at(finished));
    m.stored_bytes = size;
    m
}

#[test]
fn every_instance_is_listed_and_a_healthy_world_fires_nothing() {
    let obs = evaluate(&AlertsConfig::default(), &facts());
    assert_eq!(obs.len(), 31);
    assert!(obs.iter().all(|o| !o.active), "{obs:?}");
}

#[test]
fn service_down_slow_and_write_read() {
    let mut f = facts();
    f.postgres = check(Service::Postgres, false);
    f.redis = with(f.redis, |c| {
        c.latency_seconds = Some(6.0);
        c.write_read = Some(WriteRead {
            ok: false,
            error: Some("OOM".into()),
        });
    });
    let obs = evaluate(&AlertsConfig::default(), &f);
    let down = find(&obs, "ServiceDown", "postgres");
    assert!(down.active && down.description.contains("connection refused"));
    // A down service is not also slow or failing its write/read test.
    assert!(!find(&obs, "SlowResponse", "postgres").active);
    assert!(!find(&obs, "WriteReadTestFailed", "postgres").active);
    let slow = find(&obs, "SlowResponse", "redis");
    assert!(slow.active);
    assert_eq!((slow.value, slow.threshold), (Some(6.0), Some(5.0)));
    assert!(find(&obs, "WriteReadTestFailed", "redis").active);
    assert!(!find(&obs, "ServiceDown", "redis").active);
}

#[test]
fn connections_have_two_severities() {
    let usage = |ratio: f64| {
        let mut f = facts();
        f.postgres = with(f.postgres, |c| {
            c.postgres = Some(PgFigures {
                connections: 10,
                max_connections: 100,
                reserved_connections: 3,
                connection_usage_ratio: ratio,
                ..PgFigures::default()
            })
        });
        let obs = evaluate(&AlertsConfig::default(), &f);
        let sev = |s: Severity| {
            obs.iter()
                .find(|o| o.key.alert == "PostgresConnectionsHigh" && o.key.severity == s)
                .unwrap()
                .active
        };
        (sev(Severity::Warning), sev(Severity::Critical))
    };
    assert_eq!(usage(0.8), (false, false));
    assert_eq!(usage(0.81), (true, false));
    assert_eq!(usage(0.96), (true, true));
}

#[test]
fn redis_memory_needs_a_maxmemory_and_says_so() {
    let mem = |used: u64, max: u64| {
        let mut f = facts();
        f.redis = with(f.redis, |c| {
            c.redis = Some(RedisFigures {
                used_memory_bytes: used,
                maxmemory_bytes: max,
                ..RedisFigures::default()
            })
        });
        find(
            &evaluate(&AlertsConfig::default(), &f),
            "RedisMemoryHigh",
            "redis",
        )
        .clone()
    };
    let unlimited = mem(1 << 30, 0);
    assert!(!unlimited.active);
    assert!(unlimited.note.unwrap().contains("maxmemory is 0"));
    assert!(!mem(90, 100).active);
    let high = mem(95, 100);
    assert!(high.active && high.note.is_none());
    assert_eq!(high.value, Some(0.95));
}

#[test]
fn hit_ratio_is_judged_only_with_enough_traffic() {
    let judge = |ratio: f64, rate: Option<f64>| {
        let mut f = facts();
        f.redis = with(f.redis, |c| {
            c.redis = Some(RedisFigures {
                hit_ratio: Some(ratio),
                ..RedisFigures::default()
            })
        });
        f.redis_lookups_per_second = rate;
        find(
            &evaluate(&AlertsConfig::default(), &f),
            "CacheHitRatioLow",
            "redis",
        )
        .clone()
    };
    assert!(judge(0.1, Some(100.0)).active);
    assert!(!judge(0.9, Some(100.0)).active);
    let quiet = judge(0.1, Some(2.0));
    assert!(!quiet.active && quiet.note.unwrap().contains("below min_lookups_per_second"));
    assert!(judge(0.1, None).note.is_some());
}

/// The catalog of one database, plenty of room, no schedules.
fn catalog(metas: Vec<BackupMeta>) -> BackupFacts {
    BackupFacts {
        metas,
        free_bytes: Some(1 << 40),
        dir_problem: None,
        databases: vec!["app".into()],
        periods: vec![],
        drill_period: None,
        remote: false,
        upload: None,
    }
}

#[test]
fn backup_failed_looks_at_the_newest_of_each_database_and_kind() {
    use BackupStatus::{Failed, Good, Running};
    let mut f = facts();
    // Newest first: a failed manual after a good one fires; a good daily after a failed one
    // does not; a running entry is ignored.
    f.backups = Some(catalog(vec![
        meta("app", BackupKind::Daily, Running, NOW, 0),
        meta("app", BackupKind::Manual, Failed, NOW - 10.0, 0),
        meta("app", BackupKind::Daily, Good, NOW - 20.0, 5),
        meta("app", BackupKind::Daily, Failed, NOW - 30.0, 0),
        meta("app", BackupKind::Manual, Good, NOW - 40.0, 5),
    ]));
    let o = find(
        &evaluate(&AlertsConfig::default(), &f),
        "BackupFailed",
        "backup",
    )
    .clone();
    assert!(o.active);
    assert_eq!(o.value, Some(1.0));
    assert!(
        o.description.contains("app manual backup"),
        "{}",
        o.description
    );
    f.backups = Some(catalog(vec![meta("app", BackupKind::Daily, Good, NOW, 5)]));
    assert!(
        !find(
            &evaluate(&AlertsConfig::default(), &f),
            "BackupFailed",
            "backup"
        )
        .active
    );
}

#[test]
fn backup_damaged_fires_while_a_damaged_backup_is_in_the_catalog() {
    use BackupStatus::{Damaged, Good};
    let mut f = facts();
    // An older damaged backup fires even when newer good ones exist, and it does not count
    // as a failed run.
    f.backups = Some(catalog(vec![
        meta("app", BackupKind::Daily, Good, NOW, 5),
        meta("app", BackupKind::Daily, Damaged, NOW - 10.0, 5),
    ]));
    let obs = evaluate(&AlertsConfig::default(), &f);
    let o = find(&obs, "BackupDamaged", "backup");
    assert!(o.active && o.value == Some(1.0), "{o:?}");
    assert!(!find(&obs, "BackupFailed", "backup").active);
    f.backups = Some(catalog(vec![meta("app", BackupKind::Daily, Good, NOW, 5)]));
    assert!(
        !find(
            &evaluate(&AlertsConfig::default(), &f),
            "BackupDamaged",
            "backup"
        )
        .active
    );
}

#[test]
fn backup_stale_follows_the_schedules_or_max_age() {
    let day = 86_400.0;
    let mut f = facts();
    f.started_at = NOW - 3.0 * day;
    let metas = vec![
        meta(
            "app",
            BackupKind::Daily,
            BackupStatus::Good,
            NOW - day - 3600.0,
            5,
        ),
        meta(
            "app",
            BackupKind::Weekly,
            BackupStatus::Good,
            NOW - 2.0 * day,
            5,
        ),
    ];
    f.backups = Some(BackupFacts {
        metas,
        free_bytes: None,
        dir_problem: None,
        databases: vec!["app".into(), "other".into()],
        periods: vec![(BackupKind::Daily, day), (BackupKind::Weekly, 7.0 * day)],
        drill_period: None,
        remote: false,
        upload: None,
    });
    let mut cfg = AlertsConfig::default();
    // Daily 25 h old is within a day + 2 h; "other" has nothing for 3 days: stale.
    let o = find(&evaluate(&cfg, &f), "BackupStale", "backup").clone();
    assert!(o.active);
    assert!(
        o.description.contains("other: no good daily backup"),
        "{}",
        o.description
    );
    assert!(!o.description.contains("app:"), "{}", o.description);
    f.backups.as_mut().unwrap().databases = vec!["app".into()];
    assert!(!find(&evaluate(&cfg, &f), "BackupStale", "backup").active);
    cfg.backup_stale.grace = Some(std::time::Duration::from_secs(1800));
    assert!(find(&evaluate(&cfg, &f), "BackupStale", "backup").active);
    // max_age: the newest good backup of any kind (the daily, 25 h) against it.
    cfg.backup_stale.max_age = Some(std::time::Duration::from_secs(26 * 3600));
    assert!(!find(&evaluate(&cfg, &f), "BackupStale", "backup").active);
    cfg.backup_stale.max_age = Some(std::time::Duration::from_secs(24 * 3600));
    assert!(find(&evaluate(&cfg, &f), "BackupStale", "backup").active);
    // No schedule and no max_age: nothing to be late for, and it says so.
    cfg.backup_stale.max_age = None;
    f.backups.as_mut().unwrap().periods.clear();
    let o = find(&evaluate(&cfg, &f), "BackupStale", "backup").clone();
    assert!(!o.active && o.note.unwrap().contains("no backup schedule"));
}

#[test]
fn storage_low_compares_free_space_with_the_last_backup() {
    let mut f = facts();
    let with_free = |free: u64| BackupFacts {
        metas: vec![meta(
            "app",
            BackupKind::Daily,
            BackupStatus::Good,
            NOW,
            1000,
        )],
        free_bytes: Some(free),
        dir_problem: None,
        databases: vec!["app".into()],
        periods: vec![],
        drill_period: None,
        remote: false,
        upload: None,
    };
    f.backups = Some(with_free(1999));
    let o = find(
        &evaluate(&AlertsConfig::default(), &f),
        "BackupStorageLow",
        "backup",
    )
    .clone();
    assert!(o.active);
    assert_eq!((o.value, o.threshold), (Some(1999.0), Some(2000.0)));
    f.backups = Some(with_free(2000));
    assert!(
        !find(
            &evaluate(&AlertsConfig::default(), &f),
            "BackupStorageLow",
            "backup"
        )
        .active
    );
}

#[test]
fn task_restarts_over_the_threshold_and_disabled_rules() {
    let mut f = facts();
    f.restarts_in_window = vec![("control".into(), 4), ("http".into(), 3)];
    let mut cfg = AlertsConfig::default();
    let o = find(&evaluate(&cfg, &f), "TaskRestarting", "steward").clone();
    assert!(o.active);
    assert!(o.description.contains("control restarted 4 times"));
    assert!(!o.description.contains("http"));
    cfg.task_restarting.enabled = false;
    let o = find(&evaluate(&cfg, &f), "TaskRestarting", "steward").clone();
    assert!(!o.active && o.note.unwrap().contains("disabled"));
}

#[test]
fn eviction_policy_against_the_expected_one() {
    let judge = |policy: &str, expected: Option<&str>| {
        let mut f = facts();
        f.redis = with(f.redis, |c| {
            c.redis = Some(RedisFigures {
                maxmemory_policy: policy.into(),
                ..RedisFigures::default()
            })
        });
        f.expect_eviction_policy = expected.map(str::to_string);
        find(
            &evaluate(&AlertsConfig::default(), &f),
            "CacheEvictionPolicy",
            "redis",
        )
        .clone()
    };
    let off = judge("noeviction", None);
    assert!(
        !off.active
            && off
                .note
                .unwrap()
                .contains("no cache.expect_eviction_policy")
    );
    let bad = judge("noeviction", Some("allkeys-lru"));
    assert!(bad.active, "{bad:?}");
    assert!(bad.description.contains("maxmemory-policy is noeviction"));
    assert!(!judge("allkeys-lru", Some("allkeys-lru")).active);
}

#[test]
fn restore_test_alerts_follow_the_newest_test_and_the_drill_period() {
    use crate::backup::catalog::RestoreTestRecord;
    let day = 86_400.0;
    let mut f = facts();
    f.backups = Some(catalog(vec![]));
    let now = f.now;
    let tested = |finished: f64, at: f64, ok: bool| {
        let mut m = meta("app", BackupKind::Daily, BackupStatus::Good, finished, 10);
        m.restore_test = Some(RestoreTestRecord {
            at: self::at(at),
            ok,
            duration_seconds: 3.0,
            detail: if ok {
                String::new()
            } else {
                "rows differ".into()
            },
        });
        m
    };
    let cfg = AlertsConfig::default();
    let b = f.backups.as_mut().unwrap();
    b.databases = vec!["app".into()];
    // Drills off and no max_age: nothing to be late for, and no test has failed.
    b.metas = vec![meta(
        "app",
        BackupKind::Daily,
        BackupStatus::Good,
        now - 60.0,
        10,
    )];
    assert!(!find(&evaluate(&cfg, &f), "BackupRestoreTestFailed", "backup").active);
    let o = find(&evaluate(&cfg, &f), "BackupRestoreTestStale", "backup").clone();
    assert!(!o.active && o.note.is_some(), "{o:?}");
    // The newest test failed: firing, naming the database and why.
    let b = f.backups.as_mut().unwrap();
    b.metas = vec![
        tested(now - 60.0, now - 30.0, false),
        tested(now - day, now - day + 60.0, true),
    ];
    let o = find(&evaluate(&cfg, &f), "BackupRestoreTestFailed", "backup").clone();
    assert!(o.active && o.description.contains("rows differ"), "{o:?}");
    // A later passing test resolves it.
    let b = f.backups.as_mut().unwrap();
    b.metas = vec![
        tested(now - 60.0, now - 10.0, true),
        tested(now - day, now - 30.0, false),
    ];
    assert!(!find(&evaluate(&cfg, &f), "BackupRestoreTestFailed", "backup").active);
    // Weekly drills, grace one day: a passing test 9 days old is late, 7 days is not.
    let b = f.backups.as_mut().unwrap();
    b.drill_period = Some(7.0 * day);
    b.metas = vec![tested(now - 9.0 * day, now - 9.0 * day, true)];
    assert!(find(&evaluate(&cfg, &f), "BackupRestoreTestStale", "backup").active);
    let b = f.backups.as_mut().unwrap();
    b.metas = vec![tested(now - 7.0 * day, now - 7.0 * day, true)];
    assert!(!find(&evaluate(&cfg, &f), "BackupRestoreTestStale", "backup").active);
}

fn located(m: BackupMeta, location: Location) -> BackupMeta {
    BackupMeta {
        location: Some(location),
        ..m
    }
}

#[test]
fn offsite_stale_counts_only_backups_in_the_bucket() {
    let day = 86_400.0;
    let judge = |cfg: &AlertsConfig, f: &Facts| {
        find(&evaluate(cfg, f), "BackupOffsiteStale", "backup").clone()
    };
    let mut cfg = AlertsConfig::default();
    let mut f = facts();
    f.started_at = NOW - 3.0 * day;
    // A fresh local backup, but the newest in the bucket is 31 h old: a daily schedule (the
    // shortest period) plus the default 6 h grace allows 30 h.
    f.backups = Some(BackupFacts {
        periods: vec![(BackupKind::Weekly, 7.0 * day), (BackupKind::Daily, day)],
        ..catalog(vec![
            located(
                meta("app", BackupKind::Daily, BackupStatus::Good, NOW - 60.0, 5),
                Location::Local,
            ),
            located(
                meta(
                    "app",
                    BackupKind::Daily,
                    BackupStatus::Failed,
                    NOW - 120.0,
                    0,
                ),
                Location::Remote,
            ),
            located(
                meta(
                    "app",
                    BackupKind::Daily,
                    BackupStatus::Good,
                    NOW - 31.0 * 3600.0,
                    5,
                ),
                Location::Both,
            ),
        ])
    });
    // Without a bucket it cannot judge, and says why.
    let o = judge(&cfg, &f);
    assert!(
        !o.active && o.note.as_deref().unwrap().contains("backup.remote.url"),
        "{o:?}"
    );
    f.backups.as_mut().unwrap().remote = true;
    let o = judge(&cfg, &f);
    assert!(o.active, "{o:?}");
    assert_eq!(
        (o.value, o.threshold),
        (Some(31.0 * 3600.0), Some(30.0 * 3600.0))
    );
    assert!(
        o.description
            .contains("app: newest good backup in the bucket"),
        "{}",
        o.description
    );
    // A good backup only in the bucket (local copy gone, local_keep) counts.
    let b = f.backups.as_mut().unwrap();
    b.metas.push(located(
        meta(
            "app",
            BackupKind::Manual,
            BackupStatus::Good,
            NOW - 29.0 * 3600.0,
            5,
        ),
        Location::Remote,
    ));
    assert!(!judge(&cfg, &f).active);
    // max_age instead of the schedules.
    cfg.backup_offsite_stale.max_age = Some(std::time::Duration::from_secs(28 * 3600));
    assert!(judge(&cfg, &f).active);
    cfg.backup_offsite_stale.max_age = None;
    // A covered database with nothing in the bucket: counted from steward's start (3 days).
    let b = f.backups.as_mut().unwrap();
    b.databases.push("other".into());
    let o = judge(&cfg, &f);
    assert!(
        o.active
            && o.description
                .contains("other: no good backup in the bucket"),
        "{o:?}"
    );
    assert!(!o.description.contains("app:"), "{}", o.description);
    f.started_at = NOW - 3600.0;
    assert!(!judge(&cfg, &f).active);
    // No schedule and no max_age: nothing to be late for.
    f.backups.as_mut().unwrap().periods.clear();
    let o = judge(&cfg, &f);
    assert!(!o.active && o.note.unwrap().contains("no backup schedule"));
}

#[test]
fn upload_failing_fires_at_min_failures_in_a_row_with_the_last_error() {
    use crate::backup::remote::UploadStatus;
    let judge = |cfg: &AlertsConfig, f: &Facts| {
        find(&evaluate(cfg, f), "BackupUploadFailing", "backup").clone()
    };
    let status = |failures: u32| UploadStatus {
        url: "s3://backups/app".into(),
        queued: 2,
        consecutive_failures: failures,
        failing_since: (failures > 0).then(|| at(NOW - 600.0)),
        last_error: (failures > 0).then(|| "PUT: 403 Forbidden (key ***)".to_string()),
        ..UploadStatus::default()
    };
    let mut cfg = AlertsConfig::default();
    let mut f = facts();
    f.backups = Some(BackupFacts {
        upload: Some(status(5)),
        ..catalog(vec![])
    });
    // No bucket: nothing to judge, whatever the status says.
    let o = judge(&cfg, &f);
    assert!(!o.active && o.note.unwrap().contains("backup.remote.url"));
    let b = f.backups.as_mut().unwrap();
    b.remote = true;
    b.upload = None;
    let o = judge(&cfg, &f);
    assert!(!o.active && o.note.unwrap().contains("has not answered"));
    for (failures, active) in [(0, false), (2, false), (3, true), (7, true)] {
        f.backups.as_mut().unwrap().upload = Some(status(failures));
        let o = judge(&cfg, &f);
        assert_eq!(o.active, active, "{failures} failures: {o:?}");
        assert_eq!(
            (o.value, o.threshold),
            (Some(f64::from(failures)), Some(3.0))
        );
    }
    let o = judge(&cfg, &f);
    assert!(
        o.description.contains("7 upload attempts in a row"),
        "{}",
        o.description
    );
    assert!(
        o.description.contains("403 Forbidden (key ***)"),
        "{}",
        o.description
    );
    assert!(
        o.description.contains("2 backups queued"),
        "{}",
        o.description
    );
    cfg.backup_upload_failing.min_failures = Some(8);
    assert!(!judge(&cfg, &f).active);
    cfg.backup_upload_failing.min_failures = Some(1);
    f.backups.as_mut().unwrap().upload = Some(status(1));
    assert!(judge(&cfg, &f).active);
}
