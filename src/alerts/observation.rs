//! What a rule says about one alert instance: its key (the labels it is published with), and
//! its observation at one evaluation — is its condition true, with what value against what
//! threshold, in which unit.

use crate::config::Severity;

/// One alert instance: the labels it is published with. All three come from fixed sets,
/// so the metric's cardinality is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub alert: &'static str,
    pub service: &'static str,
    pub severity: Severity,
}

/// What an alert's value and threshold measure, so they can be shown in their own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    #[default]
    Count,
    Seconds,
    Ratio,
    Bytes,
}

/// One alert instance's condition at one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub key: Key,
    pub active: bool,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub unit: Unit,
    /// One line for people: what is wrong.
    pub summary: String,
    /// The detail: which database, what error, which task.
    pub description: String,
    /// Why the rule cannot judge right now (no data, a limit that makes it moot).
    pub note: Option<String>,
}

impl Observation {
    /// An inactive observation, counted, with nothing measured yet: a rule fills it in.
    pub(super) fn new(key: Key, summary: String) -> Self {
        Self {
            key,
            active: false,
            value: None,
            threshold: None,
            unit: Unit::Count,
            summary,
            description: String::new(),
            note: None,
        }
    }

    pub(super) fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    pub(super) fn unit(mut self, unit: Unit) -> Self {
        self.unit = unit;
        self
    }
}
