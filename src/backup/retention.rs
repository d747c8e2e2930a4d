//! Retention: which backups to delete, as a pure function of the catalog, the policy and now.
//!
//! The rules, per database and per kind:
//! - A **good** daily, weekly or manual backup is kept while it is younger than its kind's
//!   retention (daily: `retention_days`; weekly: `weekly_retention_weeks` × 7 days; manual:
//!   `manual_retention`, and forever when that is unset), **or** while it is among the newest
//!   `min_keep` good backups of its kind for its database. "Younger" is strict: a backup exactly
//!   as old as the retention is due, so `retention_days = 7` with one daily a day keeps seven.
//! - A **good pre-restore** backup (taken by every `restore --force`) is kept by count alone:
//!   the newest `pre_restore_keep` good pre-restore backups of each database are kept, older
//!   ones are due whatever their age. Neither `manual_retention` nor `min_keep` applies to them:
//!   a restore tried again and again must not pile up full copies of a database forever, and
//!   an age limit would take the only copy of what a restore replaced a month ago.
//! - The newest good backup of each database, whatever its kind, is **never** deleted, even when
//!   it is older than every retention and `min_keep` (or `pre_restore_keep`) is 0.
//! - A **failed** entry (or any entry not known to be complete and good) never counts toward
//!   `min_keep` or `pre_restore_keep` and never protects anything. It is removed once it is as
//!   old as its kind's retention, like a good one would be — so a failed manual entry stays as
//!   long as manual backups do (forever when `manual_retention` is unset: steward deletes
//!   nothing of a manual kind unless told to). Pre-restore backups have no age retention, so a
//!   failed pre-restore entry is removed once it is as old as `retention_days` (like a failed
//!   daily): long enough to be seen in `backup list` and `backup status`, never forever.
//! - Entries are never looked at as files here; files steward did not write are the caller's
//!   concern (they are not in the catalog, so they are never candidates).

use super::kind::BackupKind;
use crate::config::BackupConfig;
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};

/// How long each kind of backup is kept, and how many are kept whatever their age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Days a daily backup is kept.
    pub daily_days: u32,
    /// Weeks a weekly backup is kept.
    pub weekly_weeks: u32,
    /// Good daily, weekly and manual backups of each kind, per database, kept whatever their
    /// age.
    pub min_keep: u32,
    /// How long manual backups are kept; `None` keeps them.
    pub manual: Option<std::time::Duration>,
    /// Good pre-restore backups kept per database (the newest ones); they have no age limit.
    pub pre_restore_keep: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::from_config(&BackupConfig::default())
    }
}

impl Policy {
    pub fn from_config(cfg: &BackupConfig) -> Policy {
        Policy {
            daily_days: cfg.retention_days,
            weekly_weeks: cfg.weekly_retention_weeks,
            min_keep: cfg.min_keep,
            manual: cfg.manual_retention,
            pre_restore_keep: cfg.pre_restore_keep,
        }
    }

    /// How long a good backup of `kind` is kept by age; `None` means not by age: forever for
    /// manual ones without `manual_retention`, and always for pre-restore ones, which are
    /// kept by count ([`Policy::pre_restore_keep`]).
    pub fn retention(&self, kind: BackupKind) -> Option<Duration> {
        match kind {
            BackupKind::Daily => Some(Duration::days(self.daily_days.into())),
            BackupKind::Weekly => Some(Duration::weeks(self.weekly_weeks.into())),
            // A retention too long for chrono is as good as forever.
            BackupKind::Manual => self.manual.and_then(|d| Duration::from_std(d).ok()),
            BackupKind::PreRestore => None,
        }
    }

    /// How many good backups of `kind` each database keeps whatever their age.
    pub fn keep(&self, kind: BackupKind) -> u32 {
        match kind {
            BackupKind::PreRestore => self.pre_restore_keep,
            _ => self.min_keep,
        }
    }

    /// The kind whose age retention a failed entry of `kind` follows: its own, except
    /// pre-restore (kept by count, which a failure has no place in), which follows daily.
    fn failed_follows(kind: BackupKind) -> BackupKind {
        match kind {
            BackupKind::PreRestore => BackupKind::Daily,
            k => k,
        }
    }

    /// The retention of `kind` in words, for reasons: "7 days", "4 weeks", "36 hours".
    fn retention_words(&self, kind: BackupKind) -> String {
        match kind {
            BackupKind::Daily => plural(self.daily_days.into(), "day"),
            BackupKind::Weekly => plural(self.weekly_weeks.into(), "week"),
            BackupKind::Manual => match self.manual {
                None => "forever".into(),
                Some(d) => words(d.as_secs()),
            },
            BackupKind::PreRestore => "forever".into(),
        }
    }
}

/// "1st", "2nd", "3rd", "4th", "11th", "22nd": a rank in words, for reasons.
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// Seconds in the largest unit that divides them evenly.
fn words(secs: u64) -> String {
    for (size, unit) in [
        (604_800, "week"),
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
    ] {
        if secs >= size && secs % size == 0 {
            return plural(secs / size, unit);
        }
    }
    plural(secs, "second")
}

/// One catalog entry, as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub database: String,
    pub kind: BackupKind,
    /// Complete, verified at write time, status ok: the only entries that count as backups.
    pub good: bool,
    pub started_at: DateTime<Utc>,
}

/// An entry to delete, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: String,
    pub database: String,
    pub kind: BackupKind,
    /// In words, for logs and `backup prune`: "daily backup older than 7 days".
    pub reason: String,
}

/// The entries to delete under `policy` at `now`, in the order of `entries`.
pub fn select(entries: &[Candidate], policy: &Policy, now: DateTime<Utc>) -> Vec<Decision> {
    // Newest first, ties broken by id so that the answer does not depend on input order.
    let newest_first =
        |a: &&Candidate, b: &&Candidate| (b.started_at, &b.id).cmp(&(a.started_at, &a.id));

    let mut protected: HashSet<&str> = HashSet::new();
    // Each good pre-restore backup's rank among its database's, newest = 1.
    let mut pre_restore_rank: HashMap<&str, usize> = HashMap::new();
    let mut good_by_db: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    for c in entries.iter().filter(|c| c.good) {
        good_by_db.entry(&c.database).or_default().push(c);
    }
    for good in good_by_db.values_mut() {
        good.sort_by(newest_first);
        // The newest good backup of the database, whatever its kind.
        protected.insert(&good[0].id);
        // The newest `min_keep` (pre-restore: `pre_restore_keep`) good backups of each kind.
        for kind in BackupKind::ALL {
            let keep = usize::try_from(policy.keep(kind)).unwrap_or(usize::MAX);
            let of_kind = good.iter().filter(|c| c.kind == kind);
            for (i, c) in of_kind.enumerate() {
                if i < keep {
                    protected.insert(&c.id);
                }
                if kind == BackupKind::PreRestore {
                    pre_restore_rank.insert(&c.id, i + 1);
                }
            }
        }
    }

    entries
        .iter()
        .filter(|c| !(c.good && protected.contains(c.id.as_str())))
        .filter_map(|c| {
            let reason = if c.good && c.kind == BackupKind::PreRestore {
                // Not protected: beyond the count.
                let rank = pre_restore_rank.get(c.id.as_str()).copied().unwrap_or(0);
                format!(
                    "{} backup: {} newest, pre_restore_keep = {}",
                    c.kind,
                    ordinal(rank),
                    policy.pre_restore_keep
                )
            } else {
                let follows = if c.good {
                    c.kind
                } else {
                    Policy::failed_follows(c.kind)
                };
                let limit = policy.retention(follows)?;
                if now - c.started_at < limit {
                    return None;
                }
                let what = if c.good { "backup" } else { "failed entry" };
                format!(
                    "{} {what} older than {}",
                    c.kind,
                    policy.retention_words(follows)
                )
            };
            Some(Decision {
                id: c.id.clone(),
                database: c.database.clone(),
                kind: c.kind,
                reason,
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "retention/tests.rs"]
mod tests;
