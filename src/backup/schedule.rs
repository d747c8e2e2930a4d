//! Backup schedules: cron expressions in a time zone, their next run times, and catch-up.
//!
//! Everything here is pure: the current time is always a parameter (the injected clock).
//!
//! # Daylight-saving changes
//! Expressions are read in the schedule's IANA time zone (`backup.schedule.timezone`) and the
//! next run is computed there, with croner's rules plus one guarantee of our own:
//! - **A wall-clock time that does not exist** (spring forward: 02:30 on the day Europe/Berlin
//!   jumps from 02:00 to 03:00) runs at the first valid moment after the gap (03:00 local), once,
//!   for an expression with a single fixed minute and hour such as `30 2 * * *`. An expression
//!   with a range, list or step in the minute or hour (`*/15 * * * *`) simply has no runs inside
//!   the gap.
//! - **A wall-clock time that happens twice** (fall back: 02:30 on the day Berlin goes from 03:00
//!   back to 02:00) runs once, at its first occurrence (the earlier UTC instant), for a fixed
//!   expression; an expression with a range, list or step runs at both occurrences.
//! - The answer of [`Schedule::next_after`] is always strictly after `now`, even when `now` lies
//!   inside the repeated hour after the first occurrence of an ambiguous time (croner alone
//!   would hand back that first occurrence, which is already past).

use super::kind::BackupKind;
use crate::config::ScheduleConfig;
use chrono::{DateTime, Duration, DurationRound, LocalResult, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use croner::{Cron, JobType};
use std::str::FromStr;

/// Why a schedule could not be built; each names the config key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{key}: {expr:?} is not a cron expression: {reason}")]
    InvalidCron {
        key: &'static str,
        expr: String,
        reason: String,
    },
    #[error("backup.schedule.timezone: {0:?} is not an IANA time zone such as \"UTC\" or \"Europe/Berlin\"")]
    InvalidTimezone(String),
    #[error("{0} backups are taken on demand, not on a schedule")]
    NotScheduled(BackupKind),
}

/// The config key that holds the expression of a scheduled kind.
fn config_key(kind: BackupKind) -> &'static str {
    match kind {
        BackupKind::Weekly => "backup.schedule.weekly",
        _ => "backup.schedule.daily",
    }
}

/// One scheduled kind (daily or weekly): a parsed cron expression read in a time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    kind: BackupKind,
    expr: String,
    tz: Tz,
    cron: Cron,
}

impl Schedule {
    /// Parses a 5-field cron expression (minute hour day-of-month month day-of-week) for
    /// `kind`, which must be [`BackupKind::Daily`] or [`BackupKind::Weekly`].
    pub fn new(kind: BackupKind, expr: &str, tz: Tz) -> Result<Schedule, ScheduleError> {
        if !matches!(kind, BackupKind::Daily | BackupKind::Weekly) {
            return Err(ScheduleError::NotScheduled(kind));
        }
        let expr = expr.trim();
        let invalid = |reason: String| ScheduleError::InvalidCron {
            key: config_key(kind),
            expr: expr.to_string(),
            reason,
        };
        if expr.split_whitespace().count() != 5 {
            return Err(invalid(
                "it must have 5 fields: minute hour day-of-month month day-of-week".into(),
            ));
        }
        let cron = Cron::from_str(expr).map_err(|e| invalid(e.to_string()))?;
        Ok(Schedule {
            kind,
            expr: expr.to_string(),
            tz,
            cron,
        })
    }

    /// The schedule of restore drills (`backup.restore_test.schedule`): the same cron rules,
    /// read in `backup.schedule.timezone`; `None` when it is off (""). Its kind is
    /// meaningless and reported as weekly.
    pub fn drills(expr: &str, cfg: &ScheduleConfig) -> Result<Option<Schedule>, ScheduleError> {
        if expr.trim().is_empty() {
            return Ok(None);
        }
        let tz = Tz::from_str(cfg.timezone.trim())
            .map_err(|_| ScheduleError::InvalidTimezone(cfg.timezone.clone()))?;
        Schedule::new(BackupKind::Weekly, expr, tz)
            .map(Some)
            .map_err(|e| match e {
                ScheduleError::InvalidCron { expr, reason, .. } => ScheduleError::InvalidCron {
                    key: "backup.restore_test.schedule",
                    expr,
                    reason,
                },
                e => e,
            })
    }

    pub fn kind(&self) -> BackupKind {
        self.kind
    }

    /// The cron expression, as configured (trimmed).
    pub fn expression(&self) -> &str {
        &self.expr
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The next run strictly after `now`, computed in the schedule's time zone (see the
    /// module documentation for daylight-saving changes); `None` when the expression never
    /// matches again (e.g. February 30th).
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Whole seconds: croner steps by seconds, and an exclusive search from a truncated
        // `now` yields a time at least one second later, hence strictly after `now`.
        let whole = now.duration_trunc(Duration::seconds(1)).ok()?;
        let local = whole.with_timezone(&self.tz);
        let first = self.next_by_croner(local, now)?;
        match self.second_pass_run(local, now) {
            Some(second) => Some(first.min(second)),
            None => Some(first),
        }
    }

    /// croner's next run after `from` (the local form of `now`), moved on when croner answers
    /// the first, already past, occurrence of an ambiguous local time.
    fn next_by_croner(&self, mut from: DateTime<Tz>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Each pass moves the local search start past one ambiguous time; a few are plenty.
        for _ in 0..4 {
            let next = self.cron.find_next_occurrence(&from, false).ok()?;
            if next.with_timezone(&Utc) > now {
                return Some(next.with_timezone(&Utc));
            }
            // `now` is in the repeated hour, past the first occurrence of an ambiguous time.
            // A fixed job had its one run then; an interval job also runs at the second.
            let later = self.tz.from_local_datetime(&next.naive_local()).latest()?;
            if self.is_interval() && later.with_timezone(&Utc) > now {
                return Some(later.with_timezone(&Utc));
            }
            from = later;
        }
        None
    }

    /// For an interval expression, when `now` is in the first pass of a repeated hour: the
    /// earliest run of the second pass. croner searches by local time, and local times up to
    /// `now`'s come round again once the clocks go back.
    fn second_pass_run(&self, local: DateTime<Tz>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.is_interval() {
            return None;
        }
        let naive = local.naive_local();
        let LocalResult::Ambiguous(early, late) = self.tz.from_local_datetime(&naive) else {
            return None;
        };
        if local != early {
            return None;
        }
        let late_offset = late.offset().fix();
        let shift = early.offset().fix().local_minus_utc() - late_offset.local_minus_utc();
        // Walk the local times [naive - shift, naive] at a fixed offset (no DST there); those
        // that are ambiguous in the zone come round again after the change.
        let mut at = late_offset
            .from_local_datetime(&(naive - Duration::seconds(shift.into())))
            .single()?;
        let mut inclusive = true;
        loop {
            at = self.cron.find_next_occurrence(&at, inclusive).ok()?;
            inclusive = false;
            if at.naive_local() > naive {
                return None;
            }
            if let LocalResult::Ambiguous(_, second) =
                self.tz.from_local_datetime(&at.naive_local())
            {
                let second = second.with_timezone(&Utc);
                if second > now {
                    return Some(second);
                }
            }
        }
    }

    fn is_interval(&self) -> bool {
        self.cron.determine_job_type() == JobType::IntervalWildcard
    }

    /// The interval the kind is meant to cover: one day for daily, seven for weekly.
    pub fn period(&self) -> Duration {
        match self.kind {
            BackupKind::Weekly => Duration::days(7),
            _ => Duration::days(1),
        }
    }

    /// Whether a catch-up run is due at start: there is no good backup of this kind, or the
    /// newest one is at least one [`period`](Self::period) old. The boundary is inclusive —
    /// a backup exactly one period old no longer covers the period. A newest backup dated in
    /// the future (clock moved back) counts as fresh.
    pub fn catch_up_due(&self, newest_good: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        match newest_good {
            None => true,
            Some(at) => now - at >= self.period(),
        }
    }
}

/// The enabled schedules of `[backup.schedule]`; `None` where the expression is "".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schedules {
    pub daily: Option<Schedule>,
    pub weekly: Option<Schedule>,
}

impl Schedules {
    /// Builds the schedules from the config: an empty (or blank) expression turns that kind
    /// off; a bad expression or time zone is an error naming its key.
    pub fn from_config(cfg: &ScheduleConfig) -> Result<Schedules, ScheduleError> {
        let tz = Tz::from_str(cfg.timezone.trim())
            .map_err(|_| ScheduleError::InvalidTimezone(cfg.timezone.clone()))?;
        let one = |kind, expr: &str| {
            if expr.trim().is_empty() {
                Ok(None)
            } else {
                Schedule::new(kind, expr, tz).map(Some)
            }
        };
        Ok(Schedules {
            daily: one(BackupKind::Daily, &cfg.daily)?,
            weekly: one(BackupKind::Weekly, &cfg.weekly)?,
        })
    }

    /// The enabled schedules, daily first.
    pub fn iter(&self) -> impl Iterator<Item = &Schedule> {
        self.daily.iter().chain(self.weekly.iter())
    }

    /// The next run of each enabled schedule strictly after `now`, earliest first (daily
    /// before weekly at the same instant).
    pub fn next_runs(&self, now: DateTime<Utc>) -> Vec<(BackupKind, DateTime<Utc>)> {
        let mut runs: Vec<_> = self
            .iter()
            .filter_map(|s| s.next_after(now).map(|at| (s.kind(), at)))
            .collect();
        runs.sort_by_key(|&(kind, at)| (at, kind));
        runs
    }

    /// The earliest next run of any enabled schedule.
    pub fn next(&self, now: DateTime<Utc>) -> Option<(BackupKind, DateTime<Utc>)> {
        self.next_runs(now).into_iter().next()
    }

    /// [`next`](Self::next) from the system clock.
    pub fn next_from_now(&self) -> Option<(BackupKind, DateTime<Utc>)> {
        self.next(Utc::now())
    }
}

#[cfg(test)]
#[path = "schedule/tests.rs"]
mod tests;
