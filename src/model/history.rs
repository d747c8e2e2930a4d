//! Monitoring history: per service, a bounded ring of check results (time, ok, latency and the
//! key figures), a summary of any stretch of it (availability, latency min / mean / p95 / max,
//! incidents, longest outage) and a one-line latency sparkline with the outages marked.
//!
//! Everything here is pure and synchronous; the monitor state owns one [`Ring`] per service and
//! pushes [`Entry::from_check`] after each check.

use super::check::CheckResult;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// How long entries are kept by default (`[history] retention`).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// How many entries a ring keeps at most by default (`[history] max_entries`).
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

/// Longest error text kept in an entry, in bytes; longer messages are cut (at a character
/// boundary) and end in `…`, so that a flood of huge errors cannot grow the ring's memory.
pub const MAX_ERROR_BYTES: usize = 512;

/// The sparkline's latency levels, lowest first.
pub const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The sparkline's mark for a time bucket holding at least one failed check.
pub const OUTAGE: char = '✗';

/// The sparkline's mark for a time bucket without any check.
pub const NO_DATA: char = ' ';

/// One check of one service, as history keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// When the check finished, Unix seconds.
    pub at: f64,
    /// The service was up (the write/read test is recorded apart, in `write_read_ok`).
    pub ok: bool,
    /// Connect + round trip, when the check got that far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_seconds: Option<f64>,
    /// PostgreSQL: backends connected; Redis: clients connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<i64>,
    /// Redis: memory used (PostgreSQL has no single figure for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Redis: keyspace hits over lookups since the previous check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hit_ratio: Option<f64>,
    /// The write/read test passed, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_read_ok: Option<bool>,
    /// Why the service was down, at most [`MAX_ERROR_BYTES`] long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Entry {
    /// The entry for a check result.
    pub fn from_check(r: &CheckResult) -> Self {
        let pg = r.postgres.as_ref();
        let redis = r.redis.as_ref();
        let connections = pg
            .map(|p| p.connections)
            .or_else(|| redis.map(|x| i64::try_from(x.connected_clients).unwrap_or(i64::MAX)));
        Self {
            at: r.checked_at,
            ok: r.up,
            latency_seconds: r.latency_seconds,
            connections,
            memory_bytes: redis.map(|x| x.used_memory_bytes),
            hit_ratio: redis.and_then(|x| x.hit_ratio),
            write_read_ok: r.write_read.as_ref().map(|w| w.ok),
            error: r.error.as_deref().map(clip_error),
        }
    }
}

/// Cuts an error message to at most [`MAX_ERROR_BYTES`] bytes, marking the cut with `…`.
fn clip_error(e: &str) -> String {
    if e.len() <= MAX_ERROR_BYTES {
        return e.to_string();
    }
    let mut end = MAX_ERROR_BYTES - '…'.len_utf8();
    while !e.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &e[..end])
}

/// One service's history: entries in the order they were pushed, bounded by age and by count.
///
/// Memory is bounded whatever happens: there are never more than `max_entries` entries, and
/// each one's error text is clipped. Age is judged against the newest entry's time, so that the
/// ring stays pure (no clock inside); [`Ring::prune`] applies a wall clock when one is wanted.
#[derive(Debug, Clone, PartialEq)]
pub struct Ring {
    entries: VecDeque<Entry>,
    retention: Duration,
    max_entries: usize,
}

impl Default for Ring {
    fn default() -> Self {
        Self::new(DEFAULT_RETENTION, DEFAULT_MAX_ENTRIES)
    }
}

impl Ring {
    /// An empty ring keeping entries for `retention` and at most `max_entries` of them
    /// (`max_entries` 0 keeps none).
    pub fn new(retention: Duration, max_entries: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            retention,
            max_entries,
        }
    }

    /// How long entries are kept.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// How many entries are kept at most.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// Changes the bounds (on reload) and applies them at once, against the newest entry's time.
    pub fn set_limits(&mut self, retention: Duration, max_entries: usize) {
        self.retention = retention;
        self.max_entries = max_entries;
        if let Some(newest) = self.entries.back().map(|e| e.at) {
            self.prune(newest);
        }
        self.trim_count(max_entries);
        self.shrink();
    }

    /// Adds an entry, first dropping those older than `entry.at - retention` and the oldest
    /// beyond `max_entries`. Amortised O(1): each entry is pushed and dropped once.
    pub fn push(&mut self, entry: Entry) {
        self.prune(entry.at);
        if self.max_entries == 0 {
            return;
        }
        self.trim_count(self.max_entries - 1);
        self.entries.push_back(entry);
    }

    /// Drops the entries older than `now - retention` (Unix seconds), oldest first.
    pub fn prune(&mut self, now: f64) {
        let cutoff = now - self.retention.as_secs_f64();
        while self.entries.front().is_some_and(|e| e.at < cutoff) {
            self.entries.pop_front();
        }
    }

    fn trim_count(&mut self, keep: usize) {
        let excess = self.entries.len().saturating_sub(keep);
        self.entries.drain(..excess);
    }

    /// Gives back memory once the ring holds far fewer entries than its capacity (after
    /// lowering `max_entries`), so a smaller bound also means less memory.
    fn shrink(&mut self) {
        if self.entries.capacity() > 2 * self.max_entries.max(16) {
            self.entries.shrink_to(self.max_entries);
        }
    }

    /// The entries at or after `from` (Unix seconds), oldest first.
    pub fn since(&self, from: f64) -> Vec<Entry> {
        self.entries
            .iter()
            .filter(|e| e.at >= from)
            .cloned()
            .collect()
    }

    /// All entries, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Entry> + ExactSizeIterator {
        self.entries.iter()
    }

    /// The newest entry.
    pub fn last(&self) -> Option<&Entry> {
        self.entries.back()
    }

    /// How many entries are kept now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// The figures `steward history` shows about a stretch of entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Summary {
    /// How many entries.
    pub entries: usize,
    /// The earliest entry's time, Unix seconds.
    pub from: Option<f64>,
    /// The latest entry's time, Unix seconds.
    pub to: Option<f64>,
    /// Checks that found the service up over all checks, 0–1.
    pub availability: Option<f64>,
    /// Lowest latency of the checks that found the service up, seconds.
    pub latency_min: Option<f64>,
    /// Arithmetic mean of those latencies, seconds.
    pub latency_mean: Option<f64>,
    /// Nearest-rank 95th percentile: the ⌈0.95·n⌉-th smallest of the n latencies.
    pub latency_p95: Option<f64>,
    /// Highest of those latencies, seconds.
    pub latency_max: Option<f64>,
    /// Runs of consecutive failed checks.
    pub incidents: usize,
    /// The longest run of failures, from its first failed check to the next check that passed
    /// (or to the last check, when the run is still going on at the end).
    pub longest_outage_seconds: Option<f64>,
}

/// Summarises entries given in the order they were recorded (as [`Ring::since`] returns them).
///
/// Latency figures use the ok entries that have a finite latency; the p95 is the nearest-rank
/// percentile: with the n latencies sorted ascending, the one at rank ⌈0.95·n⌉ (1-based), so it
/// is always one of the measured values. An incident is a maximal run of consecutive failed
/// entries; its outage lasts from its first failure to the first ok entry after it, or to the
/// last entry when none follows.
pub fn summarize(entries: &[Entry]) -> Summary {
    if entries.is_empty() {
        return Summary::default();
    }
    let n = entries.len();
    let ok = entries.iter().filter(|e| e.ok).count();
    let mut lat: Vec<f64> = entries
        .iter()
        .filter(|e| e.ok)
        .filter_map(|e| e.latency_seconds)
        .filter(|l| l.is_finite())
        .collect();
    lat.sort_by(f64::total_cmp);
    let (latency_min, latency_mean, latency_p95, latency_max) = if lat.is_empty() {
        (None, None, None, None)
    } else {
        let rank = ((lat.len() as f64) * 0.95).ceil() as usize;
        let p95 = lat[rank.clamp(1, lat.len()) - 1];
        let mean = lat.iter().sum::<f64>() / lat.len() as f64;
        (
            lat.first().copied(),
            Some(mean),
            Some(p95),
            lat.last().copied(),
        )
    };

    let mut incidents = 0;
    let mut longest: Option<f64> = None;
    let mut run_start: Option<f64> = None;
    for e in entries {
        match (e.ok, run_start) {
            (false, None) => {
                incidents += 1;
                run_start = Some(e.at);
            }
            (true, Some(start)) => {
                longest = Some(longest.unwrap_or(0.0).max(e.at - start));
                run_start = None;
            }
            _ => {}
        }
    }
    if let (Some(start), Some(last)) = (run_start, entries.last()) {
        longest = Some(longest.unwrap_or(0.0).max(last.at - start));
    }

    let times = entries.iter().map(|e| e.at);
    Summary {
        entries: n,
        from: times.clone().reduce(f64::min),
        to: times.reduce(f64::max),
        availability: Some(ok as f64 / n as f64),
        latency_min,
        latency_mean,
        latency_p95,
        latency_max,
        incidents,
        longest_outage_seconds: longest,
    }
}

/// One line of `width` characters showing latency over time, left (oldest) to right (newest).
///
/// The time from the earliest to the latest entry is cut into `width` equal buckets (when all
/// entries share one time, they fall in the last bucket). A bucket with any failed check shows
/// [`OUTAGE`]; one without entries shows [`NO_DATA`]; otherwise it shows one of [`LEVELS`]: the
/// bucket's highest latency over the highest latency of the whole line, in eighths rounded up
/// (a bucket of ok checks without a latency shows the lowest level). Pure and deterministic.
pub fn sparkline(entries: &[Entry], width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    #[derive(Clone, Copy)]
    enum Bucket {
        Empty,
        Ok(f64),
        Failed,
    }
    let mut buckets = vec![Bucket::Empty; width];
    let times = entries.iter().map(|e| e.at).filter(|t| t.is_finite());
    let (Some(t0), Some(t1)) = (times.clone().reduce(f64::min), times.reduce(f64::max)) else {
        return NO_DATA.to_string().repeat(width);
    };
    let span = t1 - t0;
    for e in entries.iter().filter(|e| e.at.is_finite()) {
        let i = if span > 0.0 {
            (((e.at - t0) / span * width as f64).floor() as usize).min(width - 1)
        } else {
            width - 1
        };
        let latency = e.latency_seconds.filter(|l| l.is_finite()).unwrap_or(0.0);
        buckets[i] = match (buckets[i], e.ok) {
            (_, false) | (Bucket::Failed, _) => Bucket::Failed,
            (Bucket::Empty, true) => Bucket::Ok(latency),
            (Bucket::Ok(m), true) => Bucket::Ok(m.max(latency)),
        };
    }
    let max = buckets
        .iter()
        .filter_map(|b| match b {
            Bucket::Ok(l) => Some(*l),
            _ => None,
        })
        .fold(0.0_f64, f64::max);
    buckets
        .iter()
        .map(|b| match *b {
            Bucket::Empty => NO_DATA,
            Bucket::Failed => OUTAGE,
            Bucket::Ok(l) => LEVELS[level(l, max)],
        })
        .collect()
}

/// The level index 0–7 of a latency against the line's maximum.
fn level(latency: f64, max: f64) -> usize {
    if max <= 0.0 || latency <= 0.0 {
        return 0;
    }
    let eighths = (latency / max * LEVELS.len() as f64).ceil() as usize;
    eighths.clamp(1, LEVELS.len()) - 1
}

#[cfg(test)]
mod tests;
