//! The dead-man's switch the stale backup rules share: per database, the age of its newest
//! good backup, off-site copy or passing restore test against a limit — counted from
//! steward's start when it has none.

use super::facts::Facts;
use super::observation::{Observation, Unit};
use crate::backup::catalog::BackupMeta;

/// When a backup counts from: its end, or its start when no end is recorded.
pub(super) fn finished(m: &BackupMeta) -> f64 {
    crate::unix_seconds(m.finished_at.unwrap_or(m.started_at))
}

/// How old database `db`'s newest `what` is — or, with none, how long steward has run — and,
/// when that is over `limit`, the line saying so.
pub(super) fn age(
    f: &Facts,
    db: &str,
    what: &str,
    newest: Option<f64>,
    limit: f64,
) -> (f64, Option<String>) {
    let age = f.now - newest.unwrap_or(f.started_at);
    let late = (age > limit).then(|| match newest {
        Some(_) => format!("{db}: newest {what} is {age:.0} s old (limit {limit:.0} s)"),
        None => {
            format!("{db}: no {what} in the {age:.0} s since steward started (limit {limit:.0} s)")
        }
    });
    (age, late)
}

/// Fills `o` for one `limit` over every database (`newest` gives each one's newest `what`):
/// its value the oldest age, active when some database is late — each named in the
/// description — and described as `all_recent` when none is.
pub(super) fn judge(
    mut o: Observation,
    f: &Facts,
    databases: &[String],
    limit: f64,
    what: &str,
    all_recent: &str,
    newest: impl Fn(&str) -> Option<f64>,
) -> Observation {
    let mut late = Vec::new();
    let mut worst: f64 = 0.0;
    for db in databases {
        let (age, line) = age(f, db, what, newest(db), limit);
        worst = worst.max(age);
        late.extend(line);
    }
    o.unit = Unit::Seconds;
    o.value = Some(worst);
    o.threshold = Some(limit);
    o.active = !late.is_empty();
    o.description = if late.is_empty() {
        all_recent.into()
    } else {
        late.join("; ")
    };
    o
}
