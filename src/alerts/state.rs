//! The alert state machine: inactive → pending → firing → resolved, one per alert instance,
//! driven by observations and each rule's `for` duration.

use super::observation::{Key, Observation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Where an alert instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition does not hold (and never fired since steward started).
    Inactive,
    /// The condition holds, for less than the rule's `for`.
    Pending,
    Firing,
    /// It fired, and the condition no longer holds.
    Resolved,
}

impl AlertState {
    /// The `to` label of `steward_alert_transitions_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One instance's state and its latest observation.
#[derive(Debug, Clone)]
pub struct Entry {
    pub state: AlertState,
    /// When it entered `state`, Unix seconds.
    pub since: f64,
    /// When it last started firing (kept after it resolves).
    pub fired_at: Option<f64>,
    pub last: Observation,
}

/// A change of state, for metrics, logs and notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub key: Key,
    pub to: AlertState,
}

/// Every instance's state machine.
#[derive(Debug, Default)]
pub struct Tracker {
    entries: BTreeMap<Key, Entry>,
}

impl Tracker {
    /// Feeds one evaluation; `hold` gives each instance's `for` in seconds. Instances missing
    /// from `obs` (a rule switched off by a reload) count as not holding.
    pub fn apply(
        &mut self,
        obs: Vec<Observation>,
        hold: impl Fn(&Key) -> f64,
        now: f64,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        let seen: Vec<Key> = obs.iter().map(|o| o.key).collect();
        for o in obs {
            let key = o.key;
            let e = self.entries.entry(key).or_insert_with(|| Entry {
                state: AlertState::Inactive,
                since: now,
                fired_at: None,
                last: o.clone(),
            });
            let active = o.active;
            e.last = o;
            step(e, key, active, hold(&key), now, &mut out);
        }
        for (key, e) in self.entries.iter_mut() {
            if !seen.contains(key) {
                e.last.active = false;
                step(e, *key, false, 0.0, now, &mut out);
            }
        }
        out
    }

    /// Every instance, in a stable order.
    pub fn entries(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.entries.iter()
    }
}

fn step(e: &mut Entry, key: Key, active: bool, hold: f64, now: f64, out: &mut Vec<Transition>) {
    let mut go = |e: &mut Entry, to: AlertState| {
        e.state = to;
        e.since = now;
        if to == AlertState::Firing {
            e.fired_at = Some(now);
        }
        out.push(Transition { key, to });
    };
    match (e.state, active) {
        (AlertState::Inactive | AlertState::Resolved, true) => {
            go(e, AlertState::Pending);
            if hold <= 0.0 {
                go(e, AlertState::Firing);
            }
        }
        (AlertState::Pending, true) if now - e.since >= hold => go(e, AlertState::Firing),
        (AlertState::Pending, false) => go(e, AlertState::Inactive),
        (AlertState::Firing, false) => go(e, AlertState::Resolved),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Severity;

    const K: Key = Key {
        alert: "ServiceDown",
        service: "postgres",
        severity: Severity::Critical,
    };

    fn obs(active: bool) -> Vec<Observation> {
        vec![Observation {
            key: K,
            active,
            value: None,
            threshold: None,
            unit: Default::default(),
            summary: String::new(),
            description: String::new(),
            note: None,
        }]
    }

    fn states(t: &[Transition]) -> Vec<AlertState> {
        t.iter().map(|t| t.to).collect()
    }

    #[test]
    fn pending_until_for_has_passed_then_firing_then_resolved() {
        let mut t = Tracker::default();
        let hold = |_: &Key| 10.0;
        assert!(t.apply(obs(false), hold, 0.0).is_empty());
        assert_eq!(
            states(&t.apply(obs(true), hold, 1.0)),
            [AlertState::Pending]
        );
        assert!(t.apply(obs(true), hold, 10.9).is_empty());
        assert_eq!(
            states(&t.apply(obs(true), hold, 11.0)),
            [AlertState::Firing]
        );
        assert!(t.apply(obs(true), hold, 50.0).is_empty());
        assert_eq!(
            states(&t.apply(obs(false), hold, 60.0)),
            [AlertState::Resolved]
        );
        let (_, e) = t.entries().next().unwrap();
        assert_eq!(
            (e.state, e.since, e.fired_at),
            (AlertState::Resolved, 60.0, Some(11.0))
        );
        // A new episode starts pending again.
        assert_eq!(
            states(&t.apply(obs(true), hold, 70.0)),
            [AlertState::Pending]
        );
    }

    #[test]
    fn a_blip_shorter_than_for_never_fires() {
        let mut t = Tracker::default();
        let hold = |_: &Key| 10.0;
        t.apply(obs(true), hold, 0.0);
        assert_eq!(
            states(&t.apply(obs(false), hold, 5.0)),
            [AlertState::Inactive]
        );
        assert!(t.entries().all(|(_, e)| e.fired_at.is_none()));
    }

    #[test]
    fn zero_for_fires_at_once_and_a_vanished_instance_resolves() {
        let mut t = Tracker::default();
        assert_eq!(
            states(&t.apply(obs(true), |_| 0.0, 0.0)),
            [AlertState::Pending, AlertState::Firing]
        );
        assert_eq!(
            states(&t.apply(Vec::new(), |_| 0.0, 1.0)),
            [AlertState::Resolved]
        );
    }
}
