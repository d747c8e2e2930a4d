//! One thing wrong with the config: the key at fault and what to do.

use std::fmt;

/// One thing wrong with the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key (`postgres.interval`) or environment variable at fault.
    pub key: String,
    /// What is wrong, and what would be right.
    pub reason: String,
}

impl Problem {
    pub(crate) fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// A variable whose value is not `expected`; the value is not quoted (it may be a secret
    /// set to the wrong variable).
    pub(crate) fn env(var: &str, expected: &str) -> Self {
        Self::new(
            format!("{var} (environment)"),
            format!("its value is not {expected}; set it to {expected} or unset it"),
        )
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.reason)
    }
}
