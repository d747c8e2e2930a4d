//! Unit tests of `backup::retention`: backdated catalogs, fixed clock.

use super::*;
use chrono::{NaiveDate, TimeZone};
use std::collections::BTreeSet;
use BackupKind::{Daily, Manual, PreRestore, Weekly};

fn at(mo: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, mo, d, h, 0, 0).unwrap()
}

fn entry(db: &str, kind: BackupKind, good: bool, started_at: DateTime<Utc>) -> Candidate {
    Candidate {
        id: format!("{db}-{kind}-{}", started_at.format("%m%d%H%M%S")),
        database: db.into(),
        kind,
        good,
        started_at,
    }
}

fn policy(daily_days: u32, weekly_weeks: u32, min_keep: u32) -> Policy {
    Policy {
        daily_days,
        weekly_weeks,
        min_keep,
        manual: None,
        pre_restore_keep: 3,
    }
}

fn deleted(entries: &[Candidate], p: &Policy, now: DateTime<Utc>) -> BTreeSet<String> {
    select(entries, p, now).into_iter().map(|d| d.id).collect()
}

fn ids(entries: &[&Candidate]) -> BTreeSet<String> {
    entries.iter().map(|c| c.id.clone()).collect()
}

#[test]
fn thirty_days_of_backdated_entries() {
    let now = at(2, 4, 12); // Wednesday 2026-02-04 12:00 UTC
    let day = |i: i64| at(2, 4, 2) - Duration::days(i);
    let mut all = Vec::new();
    // A daily at 02:00 on each of the last 30 days (Jan 6 – Feb 4); three of them failed.
    let failed_days = [2, 10, 20];
    for i in 0..30 {
        all.push(entry("app", Daily, !failed_days.contains(&i), day(i)));
    }
    // A weekly on each Monday at 03:00; the one of Jan 26 failed.
    for (d, good) in [(12, true), (19, true), (26, false)] {
        all.push(entry("app", Weekly, good, at(1, d, 3)));
    }
    all.push(entry("app", Weekly, true, at(2, 2, 3)));
    // A few manual ones, one failed.
    all.push(entry("app", Manual, true, at(1, 8, 15)));
    all.push(entry("app", Manual, false, at(1, 20, 9)));
    all.push(entry("app", Manual, true, at(2, 3, 17)));
    assert_eq!(all.len(), 37);

    let p = policy(7, 2, 1);
    let decisions = select(&all, &p, now);
    let gone: BTreeSet<String> = decisions.iter().map(|d| d.id.clone()).collect();
    let kept: BTreeSet<String> = all
        .iter()
        .map(|c| c.id.clone())
        .filter(|id| !gone.contains(id))
        .collect();

    let expect_kept: BTreeSet<String> = [
        // Dailies younger than 7 days: Jan 29 (6 days 10 hours old) to Feb 4, the failed Feb 2 too.
        "app-daily-0129020000",
        "app-daily-0130020000",
        "app-daily-0131020000",
        "app-daily-0201020000",
        "app-daily-0202020000",
        "app-daily-0203020000",
        "app-daily-0204020000",
        // Weeklies younger than 2 weeks, good and failed.
        "app-weekly-0126030000",
        "app-weekly-0202030000",
        // Manual: kept forever by default, the failed one too.
        "app-manual-0108150000",
        "app-manual-0120090000",
        "app-manual-0203170000",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(kept, expect_kept);
    assert_eq!(gone.len(), 25); // 23 dailies (two of them failed) and 2 weeklies

    let reason = |id: &str| {
        decisions
            .iter()
            .find(|d| d.id == id)
            .unwrap()
            .reason
            .clone()
    };
    assert_eq!(
        reason("app-daily-0128020000"),
        "daily backup older than 7 days"
    );
    assert_eq!(
        reason("app-daily-0125020000"),
        "daily failed entry older than 7 days"
    );
    assert_eq!(
        reason("app-weekly-0119030000"),
        "weekly backup older than 2 weeks"
    );
    // Decisions come in the order of the entries, and carry database and kind.
    let order: Vec<&str> = all
        .iter()
        .map(|c| c.id.as_str())
        .filter(|id| gone.contains(*id))
        .collect();
    assert_eq!(
        order,
        decisions.iter().map(|d| d.id.as_str()).collect::<Vec<_>>()
    );
    assert!(decisions.iter().all(|d| d.database == "app"));

    // The default policy keeps 4 weeks of weeklies: both go from the deleted list.
    let with_defaults = deleted(&all, &Policy::default(), now);
    assert_eq!(with_defaults.len(), 23);
    assert!(with_defaults.iter().all(|id| id.starts_with("app-daily-")));
    // The answer does not depend on the order of the catalog.
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(deleted(&reversed, &p, now), gone);
}

#[test]
fn min_keep_keeps_old_backups_when_there_are_few() {
    let now = at(3, 1, 12);
    let old = [at(1, 20, 2), at(1, 21, 2), at(1, 22, 2)].map(|t| entry("app", Daily, true, t));
    assert_eq!(deleted(&old, &policy(7, 4, 2), now), ids(&[&old[0]]));
    assert_eq!(deleted(&old, &policy(7, 4, 5), now), BTreeSet::new());
    // min_keep is per kind: old weeklies keep their own.
    let mut mixed = old.to_vec();
    mixed.push(entry("app", Weekly, true, at(1, 5, 3)));
    mixed.push(entry("app", Weekly, true, at(1, 12, 3)));
    assert_eq!(
        deleted(&mixed, &policy(7, 4, 1), now),
        ids(&[&old[0], &old[1], &mixed[3]])
    );
}

#[test]
fn newest_good_backup_survives_whatever_the_policy() {
    let now = at(6, 1, 12);
    let entries = [
        entry("app", Weekly, true, at(1, 5, 3)),
        entry("app", Daily, true, at(2, 1, 2)),
        entry("app", Daily, false, at(5, 1, 2)),
    ];
    let gone = deleted(&entries, &policy(1, 1, 0), now);
    assert_eq!(gone, ids(&[&entries[0], &entries[2]]));
    // Even a pre-restore or manual one, when it is the newest good backup of its database.
    let p = Policy {
        manual: Some(std::time::Duration::from_secs(3600)),
        ..policy(1, 1, 0)
    };
    let entries = [
        entry("app", Daily, true, at(1, 1, 2)),
        entry("app", PreRestore, true, at(1, 2, 2)),
    ];
    assert_eq!(deleted(&entries, &p, now), ids(&[&entries[0]]));
}

#[test]
fn failed_entries_never_count_nor_protect() {
    let now = at(3, 1, 12);
    let entries = [
        entry("app", Daily, true, at(2, 8, 2)),
        entry("app", Daily, true, at(2, 9, 2)),
        entry("app", Daily, true, at(2, 10, 2)),
        entry("app", Daily, false, at(2, 18, 2)),
        entry("app", Daily, false, at(2, 19, 2)),
        entry("app", Daily, false, at(3, 1, 2)),
    ];
    // min_keep 2 counts the two newest *good* ones; the failed ones older than 7 days go,
    // the recent failed one stays by age alone.
    assert_eq!(
        deleted(&entries, &policy(7, 4, 2), now),
        ids(&[&entries[0], &entries[3], &entries[4]])
    );
    // With min_keep 0 only the newest good backup is left of the old ones.
    assert_eq!(
        deleted(&entries, &policy(7, 4, 0), now),
        ids(&[&entries[0], &entries[1], &entries[3], &entries[4]])
    );
}

#[test]
fn databases_are_independent() {
    let now = at(3, 1, 12);
    let entries = [
        entry("app", Daily, true, at(2, 27, 2)),
        entry("app", Daily, true, at(2, 28, 2)),
        entry("app", Daily, true, at(3, 1, 2)),
        entry("shop", Daily, true, at(1, 10, 2)),
        entry("shop", Daily, true, at(1, 11, 2)),
        entry("shop", Daily, false, at(3, 1, 2)),
    ];
    let decisions = select(&entries, &policy(7, 4, 0), now);
    let gone: BTreeSet<String> = decisions.iter().map(|d| d.id.clone()).collect();
    // app's fresh backups do not make shop's last good one expendable.
    assert_eq!(gone, ids(&[&entries[3]]));
    assert_eq!(decisions[0].database, "shop");
    assert_eq!(decisions[0].kind, Daily);
}

#[test]
fn manual_backups_are_kept_until_manual_retention() {
    let now = at(6, 1, 12);
    let entries = [
        entry("app", Daily, true, at(6, 1, 2)),
        entry("app", Manual, true, at(1, 2, 10)),
        entry("app", Manual, false, at(1, 3, 10)),
        entry("app", Manual, true, at(5, 20, 10)),
        entry("app", PreRestore, true, at(2, 1, 10)),
    ];
    assert_eq!(deleted(&entries, &policy(7, 4, 0), now), BTreeSet::new());
    let p = Policy {
        manual: Some(std::time::Duration::from_secs(30 * 86_400)),
        ..policy(7, 4, 0)
    };
    let decisions = select(&entries, &p, now);
    let reasons: Vec<(&str, &str)> = decisions
        .iter()
        .map(|d| (d.id.as_str(), d.reason.as_str()))
        .collect();
    // The pre-restore backup, four months old, is not the manual retention's: it is one of
    // the newest three pre-restore backups of its database.
    assert_eq!(
        reasons,
        vec![
            ("app-manual-0102100000", "manual backup older than 30 days"),
            (
                "app-manual-0103100000",
                "manual failed entry older than 30 days"
            ),
        ]
    );
    // min_keep 1 keeps the newest of each kind, however old.
    let p = Policy { min_keep: 1, ..p };
    assert_eq!(deleted(&entries, &p, now), ids(&[&entries[1], &entries[2]]));
}

/// Issue 14 item 7: every `restore --force` takes a pre-restore backup; they are kept by
/// count (`pre_restore_keep`) per database, not forever.
#[test]
fn pre_restore_backups_beyond_pre_restore_keep_are_due() {
    let now = at(6, 1, 12);
    let pre: Vec<Candidate> = (1..=5)
        .map(|d| entry("app", PreRestore, true, at(5, d, 10)))
        .collect();
    let mut entries = pre.clone();
    entries.push(entry("app", Daily, true, at(6, 1, 2)));
    // Another database's pre-restore backups are counted apart.
    entries.push(entry("shop", PreRestore, true, at(1, 1, 10)));
    entries.push(entry("shop", PreRestore, true, at(1, 2, 10)));
    entries.push(entry("shop", Daily, true, at(6, 1, 2)));

    let decisions = select(&entries, &policy(7, 4, 1), now);
    let reasons: Vec<(&str, &str)> = decisions
        .iter()
        .map(|d| (d.id.as_str(), d.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (
                "app-pre-restore-0501100000",
                "pre-restore backup: 5th newest, pre_restore_keep = 3"
            ),
            (
                "app-pre-restore-0502100000",
                "pre-restore backup: 4th newest, pre_restore_keep = 3"
            ),
        ]
    );
    assert!(decisions.iter().all(|d| d.kind == PreRestore));
    // The order of the catalog does not matter.
    let mut reversed = entries.clone();
    reversed.reverse();
    assert_eq!(
        deleted(&reversed, &policy(7, 4, 1), now),
        ids(&[&pre[0], &pre[1]])
    );

    // 0 keeps none of them: only the newest good backup of a database survives, whatever
    // its kind.
    let p = Policy {
        pre_restore_keep: 0,
        ..policy(7, 4, 1)
    };
    let gone = deleted(&entries, &p, now);
    assert_eq!(gone.len(), 7, "{gone:?}");
    assert!(
        gone.iter().all(|id| id.contains("-pre-restore-")),
        "{gone:?}"
    );
    let only_pre = &pre[..];
    assert_eq!(
        deleted(only_pre, &p, now),
        ids(&[&pre[0], &pre[1], &pre[2], &pre[3]]),
        "the newest good backup of the database is never deleted"
    );
    let reason = &select(only_pre, &p, now)[3].reason;
    assert_eq!(
        reason,
        "pre-restore backup: 2nd newest, pre_restore_keep = 0"
    );
}

#[test]
fn pre_restore_backups_are_kept_by_count_only() {
    let now = at(6, 1, 12);
    let entries = [
        entry("app", Daily, true, at(6, 1, 2)),
        entry("app", PreRestore, true, at(1, 1, 10)),
        entry("app", PreRestore, true, at(2, 1, 10)),
        entry("app", PreRestore, true, at(5, 31, 10)),
    ];
    // manual_retention is not an age limit for them: old ones within the count stay.
    let p = Policy {
        manual: Some(std::time::Duration::from_secs(86_400)),
        ..policy(7, 4, 1)
    };
    assert_eq!(deleted(&entries, &p, now), BTreeSet::new());
    // min_keep does not keep them beyond pre_restore_keep.
    let p = Policy {
        pre_restore_keep: 1,
        ..policy(7, 4, 5)
    };
    assert_eq!(deleted(&entries, &p, now), ids(&[&entries[1], &entries[2]]));
    // A fresh one is due too when it is beyond the count.
    let fresh = [
        entry("app", PreRestore, true, now - Duration::minutes(2)),
        entry("app", PreRestore, true, now - Duration::minutes(1)),
    ];
    assert_eq!(deleted(&fresh, &p, now), ids(&[&fresh[0]]));
}

/// A failed pre-restore entry takes no place among the newest `pre_restore_keep` and goes
/// once it is as old as `retention_days` (a failed daily's retention), even when
/// `manual_retention` is unset.
#[test]
fn failed_pre_restore_entries_follow_the_daily_retention() {
    let now = at(6, 1, 12);
    let entries = [
        entry("app", PreRestore, true, at(3, 1, 10)),
        entry("app", PreRestore, true, at(3, 2, 10)),
        entry("app", PreRestore, true, at(3, 3, 10)),
        entry("app", PreRestore, false, at(5, 1, 10)),
        entry("app", PreRestore, false, at(5, 30, 10)),
    ];
    let decisions = select(&entries, &policy(7, 4, 1), now);
    let reasons: Vec<(&str, &str)> = decisions
        .iter()
        .map(|d| (d.id.as_str(), d.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![(
            "app-pre-restore-0501100000",
            "pre-restore failed entry older than 7 days"
        )]
    );
}

#[test]
fn retention_boundary_is_exclusive() {
    let now = at(3, 1, 12);
    let entries = [
        entry("app", Daily, true, now),
        entry("app", Daily, true, now - Duration::days(7)),
        entry(
            "app",
            Daily,
            true,
            now - Duration::days(7) + Duration::seconds(1),
        ),
    ];
    assert_eq!(
        deleted(&entries, &policy(7, 4, 0), now),
        ids(&[&entries[1]])
    );
}

#[test]
fn policy_from_config_and_words() {
    let cfg = BackupConfig {
        retention_days: 10,
        manual_retention: Some(std::time::Duration::from_secs(36 * 3600)),
        ..Default::default()
    };
    let p = Policy::from_config(&cfg);
    assert_eq!(
        p,
        Policy {
            daily_days: 10,
            weekly_weeks: 4,
            min_keep: 1,
            manual: Some(std::time::Duration::from_secs(36 * 3600)),
            pre_restore_keep: 3,
        }
    );
    assert_eq!(p.retention(Weekly), Some(Duration::days(28)));
    assert_eq!(p.retention(Manual), Some(Duration::hours(36)));
    // Pre-restore backups are kept by count, not by age.
    assert_eq!(p.retention(PreRestore), None);
    assert_eq!((p.keep(PreRestore), p.keep(Manual)), (3, 1));
    assert_eq!(
        [1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111].map(ordinal),
        [
            "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st",
            "111th"
        ]
    );
    assert_eq!(Policy::default().retention(Manual), None);
    assert_eq!(p.retention_words(Manual), "36 hours");
    assert_eq!(policy(1, 1, 1).retention_words(Daily), "1 day");
    assert_eq!(words(14 * 86_400), "2 weeks");
    assert_eq!(words(5_400), "90 minutes");
    assert_eq!(words(61), "61 seconds");
    let _ = NaiveDate::from_ymd_opt(2026, 1, 1);
}
