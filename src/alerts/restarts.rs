//! Restarts within a sliding window, from samples of a task's ever-growing restart counter:
//! what TaskRestarting judges.

use std::collections::VecDeque;

/// One task's (time, restarts so far) samples, covering at least the window.
#[derive(Debug, Clone)]
pub struct RestartWindow {
    samples: VecDeque<(f64, u64)>,
}

impl RestartWindow {
    /// Counting from `since`, when the counter was 0 (steward's tasks start at 0 restarts).
    pub fn new(since: f64) -> Self {
        Self {
            samples: VecDeque::from([(since, 0)]),
        }
    }

    /// Records the counter at `now` and returns how many restarts happened within the last
    /// `window` seconds (measured from the newest sample taken at or before its start).
    pub fn observe(&mut self, now: f64, restarts: u64, window: f64) -> u64 {
        self.samples.push_back((now, restarts));
        while self.samples.len() > 1 && self.samples[1].0 <= now - window {
            self.samples.pop_front();
        }
        let base = self.samples.front().map_or(0, |s| s.1);
        restarts.saturating_sub(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_what_happened_within_the_window() {
        let mut w = RestartWindow::new(0.0);
        assert_eq!(w.observe(2.0, 0, 10.0), 0);
        assert_eq!(w.observe(4.0, 2, 10.0), 2);
        assert_eq!(w.observe(6.0, 3, 10.0), 3);
        // At 16 the window starts at 6: the baseline is the sample taken at 6 (3 restarts).
        assert_eq!(w.observe(16.0, 3, 10.0), 0);
        assert_eq!(w.observe(18.0, 5, 10.0), 2);
        // Samples older than the window do not pile up.
        for t in 20..200 {
            w.observe(t as f64, 5, 10.0);
        }
        assert!(w.samples.len() <= 12, "{}", w.samples.len());
        assert_eq!(w.observe(200.0, 5, 10.0), 0);
    }

    #[test]
    fn restarts_before_the_first_sample_count_from_the_start() {
        let mut w = RestartWindow::new(100.0);
        assert_eq!(w.observe(103.0, 2, 60.0), 2);
        assert_eq!(w.observe(170.0, 2, 60.0), 0);
    }
}
