//! The opening the PostgreSQL rules share: their inactive observation (service `postgres`),
//! its unit and limit from the rule's config, and the collector facts it judges — or, when
//! there are none, the note saying why.

use super::observation::{Key, Observation, Unit};
use crate::config::{Rule, Severity};

/// What a PostgreSQL rule observes before it looks at any facts.
pub(super) struct Head {
    pub alert: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
    pub unit: Unit,
    /// The threshold the value is judged and shown against.
    pub limit: f64,
}

impl Head {
    /// From the rule's config: its severity, and its `threshold` as the limit (none: the
    /// value is never over it).
    pub(super) fn of(rule: &Rule, alert: &'static str, unit: Unit, summary: &'static str) -> Self {
        Head {
            alert,
            severity: rule.severity,
            summary,
            unit,
            limit: rule.threshold.unwrap_or(f64::INFINITY),
        }
    }
}

/// The rule's observation as `on_facts` judges it from `facts`, or, without facts, inactive
/// with the note saying why.
pub(super) fn judge<T: ?Sized>(
    head: Head,
    facts: Result<&T, impl Into<String>>,
    on_facts: impl FnOnce(Observation, &T) -> Observation,
) -> Observation {
    let key = Key {
        alert: head.alert,
        service: "postgres",
        severity: head.severity,
    };
    let mut o = Observation::new(key, head.summary.into()).unit(head.unit);
    o.threshold = Some(head.limit);
    match facts {
        Ok(facts) => on_facts(o, facts),
        Err(note) => o.note(note),
    }
}
