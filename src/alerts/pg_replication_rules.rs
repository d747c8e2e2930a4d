//! The rules over the PostgreSQL collector groups' replication and vacuum facts:
//! ReplicationLag (a replica, or this standby, trails by more than `threshold` seconds),
//! ReplicationSlotInactive (an inactive slot retains more than `threshold` bytes of WAL) and
//! XidWraparound (the oldest database's transaction ID age over `threshold` / `critical` of
//! the 2^31 before wraparound).

use super::facts::Facts;
use super::observation::{Observation, Unit};
use super::pg_rule::{self, Head};
use crate::config::{Rule, Severity};
use crate::model::pg_facts::{PgFacts, ReplicationFacts, VacuumFacts};

fn no_group(group: &str) -> String {
    format!(
        "no result from the {group} collector group yet (PostgreSQL down, or the group failed: \
         see steward_postgres_collector_up{{group=\"{group}\"}})"
    )
}

fn pg(f: &Facts) -> Option<&PgFacts> {
    f.pg.as_deref()
}

fn replication(f: &Facts) -> Result<&ReplicationFacts, String> {
    pg(f)
        .and_then(|p| p.replication.as_ref())
        .ok_or_else(|| no_group("replication"))
}

fn vacuum(f: &Facts) -> Result<&VacuumFacts, String> {
    pg(f)
        .and_then(|p| p.vacuum.as_ref())
        .ok_or_else(|| no_group("vacuum"))
}

/// ReplicationLag: on a primary the largest replay lag among its replicas, on a standby its
/// replay delay, above `threshold` seconds.
pub fn lag(rule: &Rule, f: &Facts) -> Observation {
    let head = Head::of(
        rule,
        "ReplicationLag",
        Unit::Seconds,
        "PostgreSQL replication lags behind",
    );
    let limit = head.limit;
    pg_rule::judge(head, replication(f), |o, r| judge_lag(o, r, limit))
}

fn judge_lag(mut o: Observation, r: &ReplicationFacts, limit: f64) -> Observation {
    let (who, lag) = if r.in_recovery {
        match r.standby_replay_delay_seconds {
            Some(d) => ("this standby's replay".to_string(), d),
            None => return o.note("this standby has not replayed a transaction yet"),
        }
    } else {
        match &r.max_lag_seconds {
            Some((name, s)) => (format!("replica {name:?}"), *s),
            None if r.replicas == 0 => return o.note("no replica is streaming from this server"),
            None => {
                return o
                    .note("replica positions are hidden from steward's role: grant it pg_monitor")
            }
        }
    };
    o.value = Some(lag);
    o.active = lag > limit;
    o.description = format!("{who} trails by {lag:.1} s (limit {limit} s)");
    if let Some((name, bytes)) = r.max_lag_bytes.as_ref().filter(|_| !r.in_recovery) {
        o.description += &format!("; most WAL not replayed: {bytes:.0} bytes on {name:?}");
    }
    if let Some(b) = r.standby_lag_bytes.filter(|_| r.in_recovery) {
        o.description += &format!("; {b:.0} bytes received but not replayed");
    }
    o
}

/// ReplicationSlotInactive: a slot nobody consumes holds more than `threshold` bytes of WAL
/// on disk (it grows until the disk fills or `max_slot_wal_keep_size` invalidates the slot).
pub fn slot_inactive(rule: &Rule, f: &Facts) -> Observation {
    let head = Head::of(
        rule,
        "ReplicationSlotInactive",
        Unit::Bytes,
        "an inactive replication slot retains WAL",
    );
    let limit = head.limit;
    pg_rule::judge(head, replication(f), |mut o, r| {
        o.value = Some(r.inactive_slots.first().map_or(0.0, |(_, b)| *b));
        let over: Vec<String> = r
            .inactive_slots
            .iter()
            .filter(|(_, b)| *b > limit)
            .map(|(name, b)| format!("{name} retains {b:.0} bytes"))
            .collect();
        o.active = !over.is_empty();
        o.description = if over.is_empty() {
            format!("no inactive slot retains more than {limit:.0} bytes of WAL")
        } else {
            format!(
                "inactive replication slots: {} (limit {limit:.0} bytes); drop a slot no \
                 longer needed with pg_drop_replication_slot()",
                over.join(", ")
            )
        };
        o
    })
}

/// XidWraparound: the oldest database's `age(datfrozenxid) / 2^31` above `threshold`
/// (warning) and `critical` (critical).
pub fn xid_wraparound(rule: &Rule, f: &Facts) -> Vec<Observation> {
    [
        (Severity::Warning, rule.threshold),
        (Severity::Critical, rule.critical),
    ]
    .into_iter()
    .filter_map(|(severity, limit)| Some((severity, limit?)))
    .map(|(severity, limit)| {
        let head = Head {
            severity,
            limit,
            ..Head::of(
                rule,
                "XidWraparound",
                Unit::Ratio,
                "PostgreSQL transaction IDs near wraparound",
            )
        };
        pg_rule::judge(head, vacuum(f), |mut o, v| {
            o.value = Some(v.max_wraparound_ratio);
            o.active = v.max_wraparound_ratio > limit;
            o.description = format!(
                "database {} has datfrozenxid {} transactions old ({:.1}% of the way to \
                 wraparound); VACUUM (FREEZE) its oldest tables and look for what blocks \
                 autovacuum (long transactions, stale slots, prepared transactions)",
                v.oldest_database,
                v.max_xid_age,
                v.max_wraparound_ratio * 100.0
            );
            o
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AlertsConfig;
    use std::sync::Arc;

    fn facts(pg: PgFacts) -> Facts {
        Facts {
            pg: Some(Arc::new(pg)),
            ..Facts::default()
        }
    }

    fn primary(lag: f64, slots: Vec<(&str, f64)>) -> PgFacts {
        PgFacts {
            replication: Some(ReplicationFacts {
                replicas: 1,
                max_lag_seconds: Some(("replica1".into(), lag)),
                max_lag_bytes: Some(("replica1".into(), 4096.0)),
                inactive_slots: slots.into_iter().map(|(n, b)| (n.into(), b)).collect(),
                ..ReplicationFacts::default()
            }),
            ..PgFacts::default()
        }
    }

    #[test]
    fn lag_on_a_primary_and_on_a_standby() {
        let cfg = AlertsConfig::default();
        let o = lag(&cfg.replication_lag, &facts(primary(400.0, vec![])));
        assert!(o.active, "{o:?}");
        assert!(o.description.contains("replica1"), "{}", o.description);
        assert!(!lag(&cfg.replication_lag, &facts(primary(3.0, vec![]))).active);
        let standby = PgFacts {
            replication: Some(ReplicationFacts {
                in_recovery: true,
                standby_replay_delay_seconds: Some(301.0),
                standby_lag_bytes: Some(10.0),
                ..ReplicationFacts::default()
            }),
            ..PgFacts::default()
        };
        let o = lag(&cfg.replication_lag, &facts(standby));
        assert_eq!((o.active, o.value), (true, Some(301.0)));
        let alone = PgFacts {
            replication: Some(ReplicationFacts::default()),
            ..PgFacts::default()
        };
        let o = lag(&cfg.replication_lag, &facts(alone));
        assert!(!o.active && o.note.as_deref().unwrap().contains("no replica"));
        let o = lag(&cfg.replication_lag, &Facts::default());
        assert!(!o.active && o.note.as_deref().unwrap().contains("replication"));
    }

    #[test]
    fn only_inactive_slots_over_the_threshold_fire() {
        let cfg = AlertsConfig::default();
        let gib = 1024.0 * 1024.0 * 1024.0;
        let o = slot_inactive(
            &cfg.replication_slot_inactive,
            &facts(primary(0.0, vec![("old", 2.0 * gib), ("new", 1.0)])),
        );
        assert!(o.active && o.description.contains("old"), "{o:?}");
        assert!(!o.description.contains("new"), "{}", o.description);
        let o = slot_inactive(
            &cfg.replication_slot_inactive,
            &facts(primary(0.0, vec![("small", 1.0)])),
        );
        assert_eq!((o.active, o.value), (false, Some(1.0)));
    }

    #[test]
    fn wraparound_warns_then_goes_critical() {
        let cfg = AlertsConfig::default();
        let at = |ratio: f64| {
            let pg = PgFacts {
                vacuum: Some(VacuumFacts {
                    oldest_database: "app".into(),
                    max_xid_age: (ratio * 2f64.powi(31)) as i64,
                    max_wraparound_ratio: ratio,
                }),
                ..PgFacts::default()
            };
            xid_wraparound(&cfg.xid_wraparound, &facts(pg))
                .iter()
                .map(|o| (o.key.severity, o.active))
                .collect::<Vec<_>>()
        };
        use Severity::{Critical, Warning};
        assert_eq!(at(0.1), [(Warning, false), (Critical, false)]);
        assert_eq!(at(0.6), [(Warning, true), (Critical, false)]);
        assert_eq!(at(0.9), [(Warning, true), (Critical, true)]);
    }
}
