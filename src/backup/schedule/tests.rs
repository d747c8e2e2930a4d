//! Unit tests of `backup::schedule`, with an injected clock.

use super::*;
use crate::config::ScheduleConfig;
use chrono::{Datelike, NaiveDate, Weekday};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn sched(kind: BackupKind, expr: &str, tz: &str) -> Schedule {
    Schedule::new(kind, expr, tz.parse().unwrap()).unwrap()
}

fn config(daily: &str, weekly: &str, tz: &str) -> ScheduleConfig {
    ScheduleConfig {
        daily: daily.into(),
        weekly: weekly.into(),
        timezone: tz.into(),
    }
}

/// Every run of `s` in (from, to], by repeated `next_after`.
fn runs(s: &Schedule, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut at = from;
    while let Some(next) = s.next_after(at).filter(|n| *n <= to) {
        assert!(next > at, "{next} is not after {at}");
        out.push(next);
        at = next;
    }
    out
}

#[test]
fn defaults_run_daily_at_two_and_monday_at_three_utc() {
    let s = Schedules::from_config(&ScheduleConfig::default()).unwrap();
    let now = utc(2026, 1, 14, 10, 0); // a Wednesday
    assert_eq!(
        s.next_runs(now),
        vec![
            (BackupKind::Daily, utc(2026, 1, 15, 2, 0)),
            (BackupKind::Weekly, utc(2026, 1, 19, 3, 0)),
        ]
    );
    assert_eq!(
        s.next(now),
        Some((BackupKind::Daily, utc(2026, 1, 15, 2, 0)))
    );
    assert_eq!(utc(2026, 1, 19, 3, 0).weekday(), Weekday::Mon);
    let kinds: Vec<BackupKind> = s.iter().map(Schedule::kind).collect();
    assert_eq!(kinds, vec![BackupKind::Daily, BackupKind::Weekly]);
}

#[test]
fn next_run_is_strictly_after_now() {
    let daily = sched(BackupKind::Daily, "0 2 * * *", "UTC");
    let two = utc(2026, 1, 15, 2, 0);
    assert_eq!(daily.next_after(two), Some(utc(2026, 1, 16, 2, 0)));
    let just_before = two - Duration::milliseconds(1);
    assert_eq!(daily.next_after(just_before), Some(two));
    let just_after = two + Duration::milliseconds(500);
    assert_eq!(daily.next_after(just_after), Some(utc(2026, 1, 16, 2, 0)));

    let weekly = sched(BackupKind::Weekly, "0 3 * * 1", "UTC");
    let monday_three = utc(2026, 1, 19, 3, 0);
    assert_eq!(
        weekly.next_after(monday_three),
        Some(utc(2026, 1, 26, 3, 0))
    );
    assert_eq!(
        weekly.next_after(utc(2026, 1, 19, 2, 59)),
        Some(monday_three)
    );
}

#[test]
fn next_runs_are_sorted_by_time() {
    let s = Schedules::from_config(&ScheduleConfig::default()).unwrap();
    let monday_half_past_two = utc(2026, 1, 19, 2, 30);
    assert_eq!(
        s.next_runs(monday_half_past_two),
        vec![
            (BackupKind::Weekly, utc(2026, 1, 19, 3, 0)),
            (BackupKind::Daily, utc(2026, 1, 20, 2, 0)),
        ]
    );
    assert_eq!(s.next(monday_half_past_two).unwrap().0, BackupKind::Weekly);
}

#[test]
fn env_override_expressions() {
    // BACKUP_SCHEDULE_DAILY_HOUR=5 becomes this expression in the config layer.
    let daily = sched(BackupKind::Daily, "0 5 * * *", "UTC");
    assert_eq!(
        daily.next_after(utc(2026, 1, 14, 4, 0)),
        Some(utc(2026, 1, 14, 5, 0))
    );
    assert_eq!(
        daily.next_after(utc(2026, 1, 14, 5, 0)),
        Some(utc(2026, 1, 15, 5, 0))
    );
    // BACKUP_SCHEDULE_WEEKLY_DAY counts from 0 = Monday; cron from 0 = Sunday.
    let now = utc(2026, 1, 14, 12, 0); // Wednesday
    for (expr, day) in [
        ("0 3 * * 1", Weekday::Mon), // WEEKLY_DAY=0
        ("0 3 * * 4", Weekday::Thu), // WEEKLY_DAY=3
        ("0 3 * * 0", Weekday::Sun), // WEEKLY_DAY=6
    ] {
        let next = sched(BackupKind::Weekly, expr, "UTC")
            .next_after(now)
            .unwrap();
        assert_eq!(
            (next.weekday(), next.time()),
            (day, utc(2026, 1, 1, 3, 0).time())
        );
        assert!(next - now < Duration::days(7));
    }
}

#[test]
fn env_overrides_through_the_config_layer() {
    use std::io::Write;
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"").unwrap();
    for (hour, day, daily, weekly) in [
        ("5", "0", "0 5 * * *", "0 3 * * 1"),
        ("23", "6", "0 23 * * *", "0 3 * * 0"),
    ] {
        let env = [
            ("BACKUP_SCHEDULE_DAILY_HOUR", hour),
            ("BACKUP_SCHEDULE_WEEKLY_DAY", day),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cfg = crate::config::load(f.path(), &env).unwrap();
        let s = Schedules::from_config(&cfg.backup.schedule).unwrap();
        assert_eq!(s.daily.as_ref().unwrap().expression(), daily);
        assert_eq!(s.weekly.as_ref().unwrap().expression(), weekly);
    }
}

#[test]
fn berlin_spring_forward_runs_a_missing_time_once_after_the_gap() {
    // 2026-03-29: 02:00 CET (01:00 UTC) jumps to 03:00 CEST; 02:30 does not exist that day.
    let s = sched(BackupKind::Daily, "30 2 * * *", "Europe/Berlin");
    assert_eq!(
        s.next_after(utc(2026, 3, 28, 12, 0)),
        Some(utc(2026, 3, 29, 1, 0))
    );
    assert_eq!(
        runs(&s, utc(2026, 3, 27, 0, 0), utc(2026, 3, 31, 0, 0)),
        vec![
            utc(2026, 3, 27, 1, 30), // 02:30 CET
            utc(2026, 3, 28, 1, 30), // 02:30 CET
            utc(2026, 3, 29, 1, 0),  // 03:00 CEST, first moment after the gap
            utc(2026, 3, 30, 0, 30), // 02:30 CEST
        ]
    );
    // Exactly on the hour that vanishes, too.
    let two = sched(BackupKind::Daily, "0 2 * * *", "Europe/Berlin");
    assert_eq!(
        two.next_after(utc(2026, 3, 28, 12, 0)),
        Some(utc(2026, 3, 29, 1, 0))
    );
    assert_eq!(
        two.next_after(utc(2026, 3, 29, 1, 0)),
        Some(utc(2026, 3, 30, 0, 0))
    );
}

#[test]
fn berlin_fall_back_runs_a_repeated_time_once_at_its_first_occurrence() {
    // 2026-10-25: 03:00 CEST (01:00 UTC) goes back to 02:00 CET; 02:30 happens twice.
    let s = sched(BackupKind::Daily, "30 2 * * *", "Europe/Berlin");
    assert_eq!(
        runs(&s, utc(2026, 10, 23, 12, 0), utc(2026, 10, 27, 12, 0)),
        vec![
            utc(2026, 10, 24, 0, 30), // 02:30 CEST
            utc(2026, 10, 25, 0, 30), // 02:30 CEST, the first of the two
            utc(2026, 10, 26, 1, 30), // 02:30 CET
            utc(2026, 10, 27, 1, 30),
        ]
    );
    // Asked during the repeated hour, after the run: not again that day, and never in the past.
    let repeated_two_fifteen = utc(2026, 10, 25, 1, 15); // 02:15 CET, second pass
    assert_eq!(
        s.next_after(repeated_two_fifteen),
        Some(utc(2026, 10, 26, 1, 30))
    );
    assert_eq!(
        s.next_after(utc(2026, 10, 25, 0, 45)),
        Some(utc(2026, 10, 26, 1, 30))
    );
}

#[test]
fn new_york_across_both_changes_of_2026() {
    // Spring: 2026-03-08 02:00 EST (07:00 UTC) jumps to 03:00 EDT.
    let s = sched(BackupKind::Daily, "30 2 * * *", "America/New_York");
    assert_eq!(
        runs(&s, utc(2026, 3, 7, 0, 0), utc(2026, 3, 10, 0, 0)),
        vec![
            utc(2026, 3, 7, 7, 30), // 02:30 EST
            utc(2026, 3, 8, 7, 0),  // 03:00 EDT
            utc(2026, 3, 9, 6, 30), // 02:30 EDT
        ]
    );
    // Fall: 2026-11-01 02:00 EDT (06:00 UTC) goes back to 01:00 EST; 01:30 happens twice.
    let s = sched(BackupKind::Daily, "30 1 * * *", "America/New_York");
    assert_eq!(
        runs(&s, utc(2026, 10, 31, 0, 0), utc(2026, 11, 3, 0, 0)),
        vec![
            utc(2026, 10, 31, 5, 30), // 01:30 EDT
            utc(2026, 11, 1, 5, 30),  // 01:30 EDT, first of the two
            utc(2026, 11, 2, 6, 30),  // 01:30 EST
        ]
    );
    assert_eq!(
        s.next_after(utc(2026, 11, 1, 6, 15)),
        Some(utc(2026, 11, 2, 6, 30))
    );
    // Both changes fall on a Sunday: a weekly Sunday job on the changing hour.
    let w = sched(BackupKind::Weekly, "0 2 * * 0", "America/New_York");
    assert_eq!(
        w.next_after(utc(2026, 3, 5, 0, 0)),
        Some(utc(2026, 3, 8, 7, 0))
    );
    assert_eq!(
        w.next_after(utc(2026, 3, 8, 7, 0)),
        Some(utc(2026, 3, 15, 6, 0))
    );
    let w = sched(BackupKind::Weekly, "0 1 * * 0", "America/New_York");
    assert_eq!(
        runs(&w, utc(2026, 10, 30, 0, 0), utc(2026, 11, 9, 0, 0)),
        vec![utc(2026, 11, 1, 5, 0), utc(2026, 11, 8, 6, 0)]
    );
}

#[test]
fn interval_expression_runs_in_both_passes_and_skips_the_gap() {
    let s = sched(BackupKind::Daily, "*/30 * * * *", "Europe/Berlin");
    // Fall back: every half hour of real time, through both passes of 02:00–03:00.
    let half_hours: Vec<_> = (1..=6)
        .map(|i| utc(2026, 10, 24, 23, 30) + Duration::minutes(30 * i))
        .collect();
    assert_eq!(
        runs(&s, utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 2, 30)),
        half_hours
    );
    // From late in the first pass, the next run is the start of the second pass.
    assert_eq!(
        s.next_after(utc(2026, 10, 25, 0, 45)),
        Some(utc(2026, 10, 25, 1, 0))
    );
    // Spring forward: local 02:00 and 02:30 do not exist; real time runs on.
    assert_eq!(
        runs(&s, utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 1, 30)),
        vec![
            utc(2026, 3, 29, 0, 30),
            utc(2026, 3, 29, 1, 0),
            utc(2026, 3, 29, 1, 30)
        ]
    );
}

#[test]
fn a_fixed_daily_job_runs_once_per_local_day_all_year() {
    for tz in ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"] {
        let s = sched(BackupKind::Daily, "30 2 * * *", tz);
        let all = runs(&s, utc(2025, 12, 31, 12, 0), utc(2027, 1, 1, 0, 0));
        let zone: Tz = tz.parse().unwrap();
        let days: Vec<NaiveDate> = all
            .iter()
            .map(|t| t.with_timezone(&zone).date_naive())
            .collect();
        let mut unique = days.clone();
        unique.dedup();
        assert_eq!(days, unique, "{tz}: a day ran twice");
        assert!(days.len() >= 365, "{tz}: {} runs", days.len());
    }
}

#[test]
fn catch_up_boundaries() {
    let daily = sched(BackupKind::Daily, "0 2 * * *", "UTC");
    let weekly = sched(BackupKind::Weekly, "0 3 * * 1", "UTC");
    let now = utc(2026, 1, 14, 10, 0);
    assert_eq!(daily.period(), Duration::days(1));
    assert_eq!(weekly.period(), Duration::days(7));
    assert!(daily.catch_up_due(None, now), "no backup at all");
    assert!(
        !daily.catch_up_due(Some(now - Duration::hours(8)), now),
        "fresh"
    );
    assert!(
        daily.catch_up_due(Some(now - Duration::hours(30)), now),
        "stale"
    );
    let one_period = now - Duration::days(1);
    assert!(
        daily.catch_up_due(Some(one_period), now),
        "exactly one period: due"
    );
    let just_inside = one_period + Duration::seconds(1);
    assert!(!daily.catch_up_due(Some(just_inside), now));
    assert!(!weekly.catch_up_due(Some(now - Duration::days(6)), now));
    assert!(weekly.catch_up_due(Some(now - Duration::days(7)), now));
    assert!(
        !daily.catch_up_due(Some(now + Duration::hours(1)), now),
        "future"
    );
}

#[test]
fn empty_expressions_turn_schedules_off() {
    let s = Schedules::from_config(&config("", "0 3 * * 1", "UTC")).unwrap();
    assert!(s.daily.is_none());
    let now = utc(2026, 1, 14, 10, 0);
    assert_eq!(
        s.next_runs(now),
        vec![(BackupKind::Weekly, utc(2026, 1, 19, 3, 0))]
    );
    let s = Schedules::from_config(&config("0 2 * * *", "  ", "UTC")).unwrap();
    assert!(s.weekly.is_none());
    assert_eq!(s.iter().count(), 1);
    let off = Schedules::from_config(&config("", "", "Europe/Berlin")).unwrap();
    assert_eq!(off.iter().count(), 0);
    assert_eq!(off.next_runs(now), vec![]);
    assert_eq!(off.next(now), None);
}

#[test]
fn errors_name_their_key() {
    let err = |c: ScheduleConfig| Schedules::from_config(&c).unwrap_err();
    let e = err(config("0 25 * * *", "0 3 * * 1", "UTC"));
    assert!(matches!(
        &e,
        ScheduleError::InvalidCron {
            key: "backup.schedule.daily",
            ..
        }
    ));
    assert!(
        e.to_string()
            .starts_with("backup.schedule.daily: \"0 25 * * *\""),
        "{e}"
    );
    let e = err(config("0 2 * * *", "every monday", "UTC"));
    assert!(matches!(
        &e,
        ScheduleError::InvalidCron {
            key: "backup.schedule.weekly",
            ..
        }
    ));
    let e = err(config("0 0 2 * * *", "", "UTC"));
    assert!(e.to_string().contains("5 fields"), "{e}");
    let e = err(config("0 2 * * *", "0 3 * * 1", "Mars/Olympus"));
    assert_eq!(e, ScheduleError::InvalidTimezone("Mars/Olympus".into()));
    assert!(e.to_string().starts_with("backup.schedule.timezone"));
    assert_eq!(
        Schedule::new(BackupKind::Manual, "0 2 * * *", Tz::UTC).unwrap_err(),
        ScheduleError::NotScheduled(BackupKind::Manual)
    );
}

#[test]
fn accessors_keep_what_was_configured() {
    let s = Schedules::from_config(&config(" 15 4 * * * ", "", "Europe/Berlin")).unwrap();
    let d = s.daily.unwrap();
    assert_eq!(d.expression(), "15 4 * * *");
    assert_eq!(d.timezone(), chrono_tz::Europe::Berlin);
    assert_eq!(d.kind(), BackupKind::Daily);
}
