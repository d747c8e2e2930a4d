//! The restore-drill rules: BackupRestoreTestFailed (the newest restore test of a database
//! failed) and BackupRestoreTestStale (with drills scheduled, no restore test of a database
//! has passed within the drill period plus grace). Both read the results the catalog records.

use super::backup_age;
use super::backup_rules::blank;
use super::facts::Facts;
use super::observation::Observation;
use crate::backup::catalog::RestoreTestRecord;
use crate::config::Rule;
use std::collections::BTreeMap;

fn at(r: &RestoreTestRecord) -> f64 {
    crate::unix_seconds(r.at)
}

/// BackupRestoreTestFailed: for some database, the newest restore test (of any of its
/// backups) failed; a later one that passes resolves it.
pub fn failed(rule: &Rule, f: &Facts) -> Observation {
    let mut o = blank(
        "BackupRestoreTestFailed",
        rule,
        "a restore test of a backup failed",
    );
    let Some(b) = &f.backups else {
        o.note = Some("the backup catalog has not been read yet".into());
        return o;
    };
    let mut newest: BTreeMap<&str, (&str, &RestoreTestRecord)> = BTreeMap::new();
    for m in &b.metas {
        if let Some(r) = &m.restore_test {
            let e = newest.entry(m.database.as_str()).or_insert((&m.id, r));
            if at(r) > at(e.1) {
                *e = (&m.id, r);
            }
        }
    }
    let failures: Vec<String> = newest
        .iter()
        .filter(|(_, (_, r))| !r.ok)
        .map(|(db, (id, r))| format!("{db}: restore test of {id} failed: {}", r.detail))
        .collect();
    o.value = Some(failures.len() as f64);
    o.threshold = Some(0.0);
    o.active = !failures.is_empty();
    o.description = if failures.is_empty() {
        "the newest restore test of every database passed".into()
    } else {
        failures.join("; ")
    };
    o
}

/// BackupRestoreTestStale: with drills scheduled (or `max_age` set), a database's newest
/// passing restore test is older than the drill period plus `grace` (or `max_age`); with
/// none at all, the age counts from steward's start.
pub fn stale(rule: &Rule, f: &Facts) -> Observation {
    let mut o = blank(
        "BackupRestoreTestStale",
        rule,
        "no recent passing restore test",
    );
    let Some(b) = &f.backups else {
        o.note = Some("the backup catalog has not been read yet".into());
        return o;
    };
    let grace = rule.grace.map_or(0.0, |g| g.as_secs_f64());
    let limit = match (rule.max_age, b.drill_period) {
        (Some(max), _) => max.as_secs_f64(),
        (None, Some(period)) => period + grace,
        (None, None) => {
            o.note = Some(
                "no backup.restore_test.schedule and no max_age: nothing to be late for".into(),
            );
            return o;
        }
    };
    let newest = |db: &str| {
        b.metas
            .iter()
            .filter(|m| m.database == db)
            .filter_map(|m| m.restore_test.as_ref().filter(|r| r.ok).map(at))
            .fold(None, |a: Option<f64>, t| Some(a.map_or(t, |a| a.max(t))))
    };
    backup_age::judge(
        o,
        f,
        &b.databases,
        limit,
        "passing restore test",
        "every database had a recent passing restore test",
        newest,
    )
}
