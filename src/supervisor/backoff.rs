//! Restart delays of a failing task: doubling from an initial delay up to a maximum.

use std::time::Duration;

/// Restart delays: `initial`, doubling up to `max`; a run that lasted `stable_after` resets it.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub stable_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
            stable_after: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// Delay before the restart that follows the `n`th consecutive failure (n ≥ 1).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
        self.initial.saturating_mul(factor).min(self.max)
    }
}
