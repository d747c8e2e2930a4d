//! The backup rules: BackupFailed (the newest backup of a kind failed), BackupDamaged (a
//! backup in the catalog failed its verify or its metadata its checksum), BackupStale (the
//! dead-man's switch: no good backup within its period plus grace) and BackupStorageLow.

use super::backup_age::{self, finished};
use super::facts::Facts;
use super::observation::{Key, Observation, Unit};
use crate::backup::catalog::{BackupMeta, BackupStatus};
use crate::config::Rule;
use std::collections::BTreeMap;

fn key(alert: &'static str, rule: &Rule) -> Key {
    Key {
        alert,
        service: "backup",
        severity: rule.severity,
    }
}

/// An inactive observation of a backup alert, for a rule to fill in.
pub(super) fn blank(alert: &'static str, rule: &Rule, summary: &str) -> Observation {
    Observation::new(key(alert, rule), summary.into())
}

/// BackupFailed: for some database and kind, the newest finished backup is a failure.
pub fn failed(rule: &Rule, f: &Facts) -> Observation {
    let mut o = blank("BackupFailed", rule, "the newest backup failed");
    let Some(b) = &f.backups else {
        o.note = Some("the backup catalog has not been read yet".into());
        return o;
    };
    let mut newest: BTreeMap<(&str, &str), &BackupMeta> = BTreeMap::new();
    for m in b.metas.iter().filter(|m| m.status != BackupStatus::Running) {
        newest
            .entry((m.database.as_str(), m.kind.as_str()))
            .or_insert(m);
    }
    let mut failures: Vec<String> = b.dir_problem.iter().cloned().collect();
    failures.extend(
        newest
            .values()
            .filter(|m| m.status == BackupStatus::Failed)
            .map(|m| {
                format!(
                    "{} {} backup {} failed: {}",
                    m.database,
                    m.kind,
                    m.id,
                    m.error.as_deref().unwrap_or("no reason recorded")
                )
            })
            .collect::<Vec<String>>(),
    );
    o.value = Some(failures.len() as f64);
    o.threshold = Some(0.0);
    o.active = !failures.is_empty();
    o.description = if failures.is_empty() {
        "the newest backup of every database and kind is good".into()
    } else {
        failures.join("; ")
    };
    o
}

/// BackupDamaged: some backup in the catalog is damaged; deleting it (or a verify that now
/// passes) resolves it.
pub fn damaged(rule: &Rule, f: &Facts) -> Observation {
    let mut o = blank("BackupDamaged", rule, "a backup is damaged");
    let Some(b) = &f.backups else {
        o.note = Some("the backup catalog has not been read yet".into());
        return o;
    };
    let damaged: Vec<String> = b
        .metas
        .iter()
        .filter(|m| m.status == BackupStatus::Damaged)
        .map(|m| {
            format!(
                "{} backup {} is damaged: {}",
                m.database,
                m.id,
                m.error.as_deref().unwrap_or("no reason recorded")
            )
        })
        .collect();
    o.value = Some(damaged.len() as f64);
    o.threshold = Some(0.0);
    o.active = !damaged.is_empty();
    o.description = if damaged.is_empty() {
        "no damaged backup in the catalog".into()
    } else {
        damaged.join("; ")
    };
    o
}

/// BackupStale: a database's newest good backup of a scheduled kind is older than the kind's
/// period plus `grace` (or, with `max_age`, its newest good backup of any kind is older than
/// that). With no good backup at all, the age counts from steward's start.
pub fn stale(rule: &Rule, f: &Facts) -> Observation {
    let mut o = blank("BackupStale", rule, "no recent good backup");
    let Some(b) = &f.backups else {
        o.note = Some("the backup catalog has not been read yet".into());
        return o;
    };
    let grace = rule.grace.map_or(0.0, |g| g.as_secs_f64());
    let limits: Vec<(Option<crate::backup::BackupKind>, f64)> = match rule.max_age {
        Some(max) => vec![(None, max.as_secs_f64())],
        None => b
            .periods
            .iter()
            .map(|(k, p)| (Some(*k), p + grace))
            .collect(),
    };
    if limits.is_empty() {
        o.note = Some("no backup schedule and no max_age: nothing to be late for".into());
        return o;
    }
    let mut late = Vec::new();
    let mut worst: f64 = 0.0;
    let mut worst_limit = limits[0].1;
    for db in &b.databases {
        for (kind, limit) in &limits {
            let newest = b
                .metas
                .iter()
                .filter(|m| m.is_good() && &m.database == db && kind.is_none_or(|k| m.kind == k))
                .map(finished)
                .fold(None, |a: Option<f64>, t| Some(a.map_or(t, |a| a.max(t))));
            let what = kind.map_or("good backup".to_string(), |k| format!("good {k} backup"));
            let (age, line) = backup_age::age(f, db, &what, newest, *limit);
            if age / limit > worst / worst_limit {
                worst = age;
                worst_limit = *limit;
            }
            late.extend(line);
        }
    }
    o.unit = Unit::Seconds;
    o.value = Some(worst);
    o.threshold = Some(worst_limit);
    o.active = !late.is_empty();
    o.description = if late.is_empty() {
        "every database has a recent good backup".into()
    } else {
        late.join("; ")
    };
    o
}

/// BackupStorageLow: free space where backups go is under `threshold` times the newest good
/// backup's size, so the next backup may not fit.
pub fn storage_low(rule: &Rule, f: &Facts) -> Observation {
    let factor = rule.threshold.unwrap_or(2.0);
    let mut o = blank("BackupStorageLow", rule, "backup storage is running out");
    let Some(b) = &f.backups else {
        o.note = Some("the backup catalog has not been read yet".into());
        return o;
    };
    let Some(free) = b.free_bytes else {
        o.note = Some("free space of the backup directory is unknown".into());
        return o;
    };
    o.unit = Unit::Bytes;
    o.value = Some(free as f64);
    let Some(last) = b.metas.iter().find(|m| m.is_good()) else {
        o.note = Some("no good backup yet to size the next one by".into());
        return o;
    };
    let need = factor * last.stored_bytes as f64;
    o.threshold = Some(need);
    o.active = (free as f64) < need;
    o.description = format!(
        "{free} bytes free for backups; the last one ({}) took {} bytes and the limit is {factor}× that",
        last.id, last.stored_bytes
    );
    o
}
