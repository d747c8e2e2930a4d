//! The off-site rules, for `[backup.remote]`: BackupOffsiteStale (a database's newest good
//! backup with a copy in the bucket is older than the schedules allow) and BackupUploadFailing
//! (upload attempts keep failing). Without a bucket both are inactive, with a note.

use super::backup_age::{self, finished};
use super::backup_rules::blank;
use super::facts::Facts;
use super::observation::Observation;
use crate::backup::catalog::{BackupMeta, Location};
use crate::config::Rule;

const NO_BUCKET: &str = "no backup.remote.url: backups are not copied off-site";

/// Whether the bucket holds a copy of this backup (as the merged listing says).
fn offsite(m: &BackupMeta) -> bool {
    matches!(m.location, Some(Location::Remote | Location::Both))
}

/// BackupOffsiteStale: with a bucket configured, a database's newest good backup that is in
/// the bucket (listed as remote or local+remote) is older than the shortest scheduled period
/// plus `grace` (or than `max_age`); with none there at all, the age counts from steward's
/// start.
pub fn stale(rule: &Rule, f: &Facts) -> Observation {
    let mut o = blank("BackupOffsiteStale", rule, "no recent off-site backup");
    let Some(b) = &f.backups else {
        o.note = Some("the backup catalog has not been read yet".into());
        return o;
    };
    if !b.remote {
        o.note = Some(NO_BUCKET.into());
        return o;
    }
    let grace = rule.grace.map_or(0.0, |g| g.as_secs_f64());
    let shortest = b.periods.iter().map(|(_, p)| *p).reduce(f64::min);
    let limit = match (rule.max_age, shortest) {
        (Some(max), _) => max.as_secs_f64(),
        (None, Some(period)) => period + grace,
        (None, None) => {
            o.note = Some("no backup schedule and no max_age: nothing to be late for".into());
            return o;
        }
    };
    let newest = |db: &str| {
        b.metas
            .iter()
            .filter(|m| m.is_good() && m.database == db && offsite(m))
            .map(finished)
            .reduce(f64::max)
    };
    backup_age::judge(
        o,
        f,
        &b.databases,
        limit,
        "good backup in the bucket",
        "every database has a recent good backup in the bucket",
        newest,
    )
}

/// BackupUploadFailing: with a bucket configured, at least `min_failures` upload attempts in
/// a row have failed; the next upload that succeeds resolves it.
pub fn upload_failing(rule: &Rule, f: &Facts) -> Observation {
    let mut o = blank(
        "BackupUploadFailing",
        rule,
        "uploads to the backup bucket keep failing",
    );
    let Some(b) = &f.backups else {
        o.note = Some("the backup catalog has not been read yet".into());
        return o;
    };
    if !b.remote {
        o.note = Some(NO_BUCKET.into());
        return o;
    }
    let Some(u) = &b.upload else {
        o.note = Some("the upload queue has not answered yet".into());
        return o;
    };
    let min = rule.min_failures.unwrap_or(3).max(1);
    o.value = Some(f64::from(u.consecutive_failures));
    o.threshold = Some(f64::from(min));
    o.active = u.consecutive_failures >= min;
    o.description = if u.consecutive_failures == 0 {
        format!("uploads to {} succeed ({} queued)", u.url, u.queued)
    } else {
        let since = u
            .failing_since
            .map(|t| format!(" since {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default();
        format!(
            "{} upload attempts in a row to {} failed{since} ({} backups queued); last error: {}",
            u.consecutive_failures,
            u.url,
            u.queued,
            u.last_error.as_deref().unwrap_or("none recorded")
        )
    };
    o
}
