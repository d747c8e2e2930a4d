//! Redis's own counters (keyspace hits and misses, evictions, rejected connections, network
//! bytes, per-command calls) turned into steward's Prometheus counters: each check adds what
//! the server counted since the previous one, so a server restart (a counter going down) never
//! makes a counter go down; steward's own lookups are taken out of hits and misses.

use super::redis_info::{valid_command, CommandStat, Info};
use crate::metrics::RedisMetrics;
use std::collections::{BTreeMap, BTreeSet};

/// Commands exported one by one; the rest are counted as `other`.
pub const MAX_COMMANDS: usize = 300;
/// Commands whose previous figures are kept (Redis's command table is smaller).
const MAX_TRACKED: usize = 2000;

/// The server's counters at the previous check, and the command labels handed out so far.
#[derive(Default)]
pub struct Tracker {
    prev: Option<Scalars>,
    commands: BTreeMap<String, CommandStat>,
    /// Command names with a label of their own, at most [`MAX_COMMANDS`]; kept for the run so
    /// that a command's series never moves to `other`.
    labelled: BTreeSet<String>,
}

#[derive(Clone, Copy, Default)]
struct Scalars {
    hits: u64,
    misses: u64,
    evicted: u64,
    expired: u64,
    rejected: u64,
    net_in: u64,
    net_out: u64,
}

impl Scalars {
    fn of(info: &Info) -> Self {
        let n = |k: &str| info.num(k).unwrap_or(0);
        Self {
            hits: n("keyspace_hits"),
            misses: n("keyspace_misses"),
            evicted: n("evicted_keys"),
            expired: n("expired_keys"),
            rejected: n("rejected_connections"),
            net_in: n("total_net_input_bytes"),
            net_out: n("total_net_output_bytes"),
        }
    }
}

/// What the counters say about the last interval.
#[derive(Debug, Default, PartialEq)]
pub struct Interval {
    /// The application's hits over its lookups (steward's own left out); `None` on the first
    /// check or when there were no lookups.
    pub hit_ratio: Option<f64>,
    /// The application's lookups (hits and misses, steward's own left out); `None` on the
    /// first check.
    pub lookups: Option<u64>,
    /// Connections refused since the previous check; `None` on the first check.
    pub rejected: Option<u64>,
}

impl Tracker {
    /// Advances the counters in `m` by what the server counted since the previous check, less
    /// `own` (steward's own hits and misses in that time).
    pub fn advance(&mut self, info: &Info, own: (u64, u64), m: &RedisMetrics) -> Interval {
        let now = Scalars::of(info);
        self.commands(info, m);
        let Some(p) = self.prev.replace(now) else {
            return Interval::default();
        };
        let hits = delta(p.hits, now.hits).saturating_sub(own.0);
        let misses = delta(p.misses, now.misses).saturating_sub(own.1);
        let rejected = delta(p.rejected, now.rejected);
        m.hits.inc_by(hits);
        m.misses.inc_by(misses);
        m.evicted.inc_by(delta(p.evicted, now.evicted));
        m.expired.inc_by(delta(p.expired, now.expired));
        m.rejected_connections.inc_by(rejected);
        m.net_input.inc_by(delta(p.net_in, now.net_in));
        m.net_output.inc_by(delta(p.net_out, now.net_out));
        let lookups = hits + misses;
        Interval {
            hit_ratio: (lookups > 0).then(|| hits as f64 / lookups as f64),
            lookups: Some(lookups),
            rejected: Some(rejected),
        }
    }

    /// Per-command calls, time and failures since the previous check; latency percentiles.
    fn commands(&mut self, info: &Info, m: &RedisMetrics) {
        let stats = info.commandstats();
        let first = self.commands.is_empty();
        let mut next = BTreeMap::new();
        for (name, now) in &stats {
            let label = self.label(name);
            // Series exist from the first sighting, so increase() sees the first calls.
            m.commands.with_label_values(&[&label]);
            m.commands_failed.with_label_values(&[&label]);
            m.commands_duration.with_label_values(&[&label]);
            let prev = self.commands.get(*name).copied();
            if next.len() < MAX_TRACKED {
                next.insert(name.to_string(), *now);
            }
            if first {
                continue;
            }
            // A command first seen now was called since the previous check (or after a
            // restart, which also resets every figure).
            let p = prev.filter(|p| p.calls <= now.calls).unwrap_or_default();
            m.commands
                .with_label_values(&[&label])
                .inc_by(delta(p.calls, now.calls));
            m.commands_failed
                .with_label_values(&[&label])
                .inc_by(delta(p.failed, now.failed));
            m.commands_duration
                .with_label_values(&[&label])
                .inc_by(delta(p.usec, now.usec) as f64 / 1e6);
        }
        self.commands = next;
        m.command_latency.reset();
        for (name, quantiles) in info.latencies() {
            if !self.labelled.contains(name) {
                continue;
            }
            for (q, seconds) in quantiles {
                m.command_latency.with_label_values(&[name, q]).set(seconds);
            }
        }
    }

    /// The label of a command: its own name while there is room, else `other`.
    fn label(&mut self, name: &str) -> String {
        if !valid_command(name) {
            return "other".into();
        }
        if !self.labelled.contains(name) {
            if self.labelled.len() >= MAX_COMMANDS {
                return "other".into();
            }
            self.labelled.insert(name.to_string());
        }
        name.into()
    }
}

/// A server counter's growth; a drop means the server restarted and counts from zero again.
pub fn delta(prev: u64, now: u64) -> u64 {
    if now >= prev {
        now - prev
    } else {
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn info(hits: u64, misses: u64, get_calls: u64) -> Info {
        Info::parse(&format!(
            "keyspace_hits:{hits}\r\nkeyspace_misses:{misses}\r\nrejected_connections:2\r\n\
             cmdstat_get:calls={get_calls},usec=2000000,rejected_calls=0,failed_calls=1\r\n\
             cmdstat_BAD NAME:calls=5,usec=1\r\n"
        ))
    }

    #[test]
    fn deltas_survive_server_restart() {
        assert_eq!(delta(10, 15), 5);
        assert_eq!(delta(10, 3), 3);
    }

    #[test]
    fn own_lookups_are_left_out_and_restarts_never_go_down() {
        let m = Metrics::new().unwrap();
        let r = &m.redis;
        let mut t = Tracker::default();
        assert_eq!(
            t.advance(&info(100, 50, 10), (0, 0), r),
            Interval::default()
        );
        // 200 hits and 100 misses; steward made 130 of those hits and 30 of the misses.
        let i = t.advance(&info(300, 150, 15), (130, 30), r);
        assert_eq!(i.hit_ratio, Some(70.0 / 140.0));
        assert_eq!(i.rejected, Some(0));
        assert_eq!((r.hits.get(), r.misses.get()), (70, 70));
        assert_eq!(r.commands.with_label_values(&["get"]).get(), 5);
        assert_eq!(r.commands.with_label_values(&["other"]).get(), 0);
        // The server restarted: it counts from zero again.
        t.advance(&info(20, 0, 4), (0, 0), r);
        assert_eq!(r.hits.get(), 90);
        assert_eq!(r.commands.with_label_values(&["get"]).get(), 9);
        assert_eq!(r.rejected_connections.get(), 0);
    }

    #[test]
    fn commands_beyond_the_cap_are_other() {
        let m = Metrics::new().unwrap();
        let mut t = Tracker::default();
        let text = |calls: u64| {
            (0..MAX_COMMANDS + 10)
                .map(|i| format!("cmdstat_c{i:04}:calls={calls},usec=1\r\n"))
                .collect::<String>()
        };
        t.advance(&Info::parse(&text(1)), (0, 0), &m.redis);
        t.advance(&Info::parse(&text(3)), (0, 0), &m.redis);
        assert_eq!(t.labelled.len(), MAX_COMMANDS);
        let other = m.redis.commands.with_label_values(&["other"]).get();
        assert_eq!(other, 20);
    }
}
