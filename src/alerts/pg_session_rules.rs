//! The PostgreSQL session rules, judged on what the collector's `sessions` and `database`
//! groups found: LongTransaction, IdleInTransaction, LockWaits and Deadlocks (with the window
//! of recent deadlocks the engine keeps from the counters).

use super::facts::Facts;
use super::observation::{Observation, Unit};
use super::pg_rule::{self, Head};
use crate::config::Rule;
use crate::model::pg_facts::SessionFacts;
use std::collections::{BTreeMap, VecDeque};

/// The sessions group's facts, or the note saying why there are none.
fn sessions(f: &Facts) -> Result<&SessionFacts, &'static str> {
    match &f.pg {
        None => Err("the PostgreSQL collector has not run yet"),
        Some(pg) => pg.sessions.as_ref().ok_or(
            "no session figures: the collector's sessions group failed or PostgreSQL is down \
             (see steward_postgres_collector_up{group=\"sessions\"})",
        ),
    }
}

/// An age against a limit in seconds, shared by the three session rules.
fn age_rule(
    head: Head,
    f: &Facts,
    value: impl Fn(&SessionFacts) -> f64,
    what: &str,
) -> Observation {
    let limit = head.limit;
    pg_rule::judge(head, sessions(f), |mut o, s| {
        let v = value(s);
        o.value = Some(v);
        o.active = v > limit;
        o.description = if v > 0.0 {
            format!("{what} {v:.0} s (limit {limit} s)")
        } else {
            format!("{what}: none")
        };
        o
    })
}

/// LongTransaction: an active session's transaction is older than `threshold` seconds.
pub fn long_transaction(rule: &Rule, f: &Facts) -> Observation {
    age_rule(
        Head::of(
            rule,
            "LongTransaction",
            Unit::Seconds,
            "a PostgreSQL transaction runs long",
        ),
        f,
        |s| s.active_xact_max_age_seconds,
        "the oldest transaction of an active session has been open",
    )
}

/// IdleInTransaction: a session idle in transaction holds a transaction older than
/// `threshold` seconds (its snapshot and locks stay while the application does nothing).
pub fn idle_in_transaction(rule: &Rule, f: &Facts) -> Observation {
    age_rule(
        Head::of(
            rule,
            "IdleInTransaction",
            Unit::Seconds,
            "a PostgreSQL session sits idle in an open transaction",
        ),
        f,
        |s| s.idle_in_xact_max_age_seconds,
        "the oldest transaction of a session idle in transaction has been open",
    )
}

/// LockWaits: a session has waited for a lock longer than `threshold` seconds.
pub fn lock_waits(rule: &Rule, f: &Facts) -> Observation {
    let mut o = age_rule(
        Head::of(
            rule,
            "LockWaits",
            Unit::Seconds,
            "PostgreSQL sessions wait for locks",
        ),
        f,
        |s| s.lock_wait_max_seconds,
        "the longest current lock wait has lasted",
    );
    if let Ok(s) = sessions(f) {
        if s.blocked_sessions > 0 {
            o.description += &format!("; {} sessions blocked", s.blocked_sessions);
        }
    }
    o
}

/// Deadlocks: some database's deadlock counter rose within the last `window`.
pub fn deadlocks(rule: &Rule, f: &Facts) -> Observation {
    let window = rule.window.map_or(0.0, |w| w.as_secs_f64());
    let head = Head {
        limit: 0.0,
        ..Head::of(
            rule,
            "Deadlocks",
            Unit::Count,
            "PostgreSQL detected deadlocks",
        )
    };
    let recent = f
        .pg_deadlocks
        .as_ref()
        .ok_or("no deadlock counters yet: the collector's database group has not run twice");
    pg_rule::judge(head, recent, |mut o, recent| {
        let total: u64 = recent.values().sum();
        o.value = Some(total as f64);
        o.active = total > 0;
        o.description = if total == 0 {
            format!("no deadlock in the last {window:.0} s")
        } else {
            let per: Vec<String> = recent
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(db, n)| format!("{db}: {n}"))
                .collect();
            format!(
                "{total} deadlocks in the last {window:.0} s ({}); the server log has the queries",
                per.join(", ")
            )
        };
        o
    })
}

/// Deadlocks per database within a sliding window, from successive readings of the
/// `pg_stat_database.deadlocks` counters.
#[derive(Debug, Default)]
pub struct DeadlockWindow {
    last: Option<BTreeMap<String, f64>>,
    /// (when, database, how many new deadlocks).
    events: VecDeque<(f64, String, u64)>,
}

impl DeadlockWindow {
    /// Takes a reading at `now` (`None`: the group had none) and returns the deadlocks per
    /// database within the last `window` seconds, or `None` before two readings. A database
    /// seen for the first time, or whose counter went down (a statistics reset), only sets
    /// the baseline.
    pub fn observe(
        &mut self,
        now: f64,
        reading: Option<&BTreeMap<String, f64>>,
        window: f64,
    ) -> Option<BTreeMap<String, u64>> {
        if let Some(r) = reading {
            if let Some(last) = &self.last {
                for (db, v) in r {
                    if let Some(prev) = last.get(db).filter(|p| v > *p) {
                        self.events.push_back((now, db.clone(), (v - prev) as u64));
                    }
                }
            }
            self.last = Some(r.clone());
        }
        self.recent(now, window)
    }

    /// The deadlocks per database within the last `window` seconds, every database known.
    pub fn recent(&mut self, now: f64, window: f64) -> Option<BTreeMap<String, u64>> {
        while self.events.front().is_some_and(|e| e.0 <= now - window) {
            self.events.pop_front();
        }
        let last = self.last.as_ref()?;
        let mut out: BTreeMap<String, u64> = last.keys().map(|k| (k.clone(), 0)).collect();
        for (_, db, n) in &self.events {
            *out.entry(db.clone()).or_insert(0) += n;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AlertsConfig;
    use crate::model::pg_facts::PgFacts;
    use std::sync::Arc;

    fn facts(s: Option<SessionFacts>) -> Facts {
        Facts {
            pg: Some(Arc::new(PgFacts {
                sessions: s,
                ..PgFacts::default()
            })),
            ..Facts::default()
        }
    }

    #[test]
    fn ages_fire_above_their_thresholds_and_say_why_not_without_figures() {
        let c = AlertsConfig::default();
        let s = SessionFacts {
            active_xact_max_age_seconds: 3601.0,
            idle_in_xact_max_age_seconds: 299.0,
            blocked_sessions: 2,
            lock_wait_max_seconds: 61.0,
        };
        let f = facts(Some(s));
        assert!(long_transaction(&c.long_transaction, &f).active);
        assert!(!idle_in_transaction(&c.idle_in_transaction, &f).active);
        let l = lock_waits(&c.lock_waits, &f);
        assert!(
            l.active && l.description.contains("2 sessions blocked"),
            "{l:?}"
        );
        let none = long_transaction(&c.long_transaction, &facts(None));
        assert!(!none.active && none.note.unwrap().contains("sessions group"));
        assert!(lock_waits(&c.lock_waits, &Facts::default()).note.is_some());
    }

    #[test]
    fn deadlocks_count_increases_within_the_window_only() {
        let mut w = DeadlockWindow::default();
        let r = |v: f64| BTreeMap::from([("app".to_string(), v)]);
        assert_eq!(w.observe(0.0, Some(&r(5.0)), 10.0).unwrap()["app"], 0);
        assert_eq!(w.observe(1.0, Some(&r(7.0)), 10.0).unwrap()["app"], 2);
        assert_eq!(w.observe(5.0, None, 10.0).unwrap()["app"], 2);
        assert_eq!(w.observe(11.5, Some(&r(7.0)), 10.0).unwrap()["app"], 0);
        // A statistics reset is a new baseline, not a deadlock.
        assert_eq!(w.observe(12.0, Some(&r(0.0)), 10.0).unwrap()["app"], 0);
        let mut f = Facts::default();
        let rule = AlertsConfig::default().deadlocks;
        assert!(deadlocks(&rule, &f).note.is_some());
        f.pg_deadlocks = Some(BTreeMap::from([("app".into(), 1)]));
        let o = deadlocks(&rule, &f);
        assert!(o.active && o.description.contains("app: 1"), "{o:?}");
    }
}
