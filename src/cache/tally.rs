//! The bookkeeping of one statistics pass over the keyspace, free of I/O: which namespace a key
//! belongs to, what each namespace adds up to (keys, keys without a TTL, TTL spread, sampled
//! memory), and the figures a complete pass publishes.

use crate::config::CacheConfig;
use crate::model::cache_pass::{NamespaceFigures, PassFigures, TtlSpread};

/// Keys per namespace and pass whose `MEMORY USAGE` is read; the namespace's memory is their
/// average times its key count, so the cost of a pass does not grow with the keyspace.
pub const MEMORY_SAMPLE: usize = 64;
/// TTLs per namespace and pass kept for the median (SCAN walks in hash order, so the first ones
/// seen are an unbiased sample); min and max are exact.
pub const TTL_SAMPLE: usize = 1000;

/// The namespace (its index in `cache.namespace`) a key belongs to, by prefix; keys are bytes,
/// so a key that is not UTF-8 still matches its prefix.
pub fn namespace_index(cfg: &CacheConfig, key: &[u8]) -> Option<usize> {
    cfg.namespaces
        .iter()
        .position(|n| key.starts_with(n.prefix.as_bytes()))
}

/// What one namespace adds up to while a pass is under way.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub keys: u64,
    pub without_ttl: u64,
    pub enforced: u64,
    ttl_min: Option<i64>,
    ttl_max: Option<i64>,
    ttl_sample: Vec<i64>,
    memory_sum: u64,
    memory_n: u64,
}

impl Tally {
    /// Counts a key with its `PTTL` answer (ms; -1: no TTL). Keys gone since SCAN (-2) are not
    /// counted.
    pub fn key(&mut self, pttl_ms: i64) {
        match pttl_ms {
            -2 => {}
            -1 => {
                self.keys += 1;
                self.without_ttl += 1;
            }
            ms => {
                self.keys += 1;
                self.ttl_min = Some(self.ttl_min.map_or(ms, |m| m.min(ms)));
                self.ttl_max = Some(self.ttl_max.map_or(ms, |m| m.max(ms)));
                if self.ttl_sample.len() < TTL_SAMPLE {
                    self.ttl_sample.push(ms);
                }
            }
        }
    }

    /// Whether another key's memory should be sampled, `pending` samples being asked for already.
    pub fn wants_memory_sample(&self, pending: usize) -> bool {
        self.memory_n as usize + pending < MEMORY_SAMPLE
    }

    /// Adds one `MEMORY USAGE` answer.
    pub fn memory(&mut self, bytes: u64) {
        self.memory_sum += bytes;
        self.memory_n += 1;
    }

    /// The spread of the TTLs seen: exact min and max, the sample's median.
    pub fn spread(&self) -> Option<TtlSpread> {
        let (min, max) = (self.ttl_min?, self.ttl_max?);
        let mut s = self.ttl_sample.clone();
        s.sort_unstable();
        let median = match s.len() {
            0 => return None,
            n if n % 2 == 1 => s[n / 2] as f64,
            n => (s[n / 2 - 1] + s[n / 2]) as f64 / 2.0,
        };
        Some(TtlSpread {
            min_seconds: min as f64 / 1000.0,
            median_seconds: median / 1000.0,
            max_seconds: max as f64 / 1000.0,
        })
    }

    /// The sample's average size times the key count.
    pub fn memory_estimate(&self) -> u64 {
        scale(self.memory_sum, self.memory_n, self.keys)
    }
}

/// `sum` bytes over `sampled` keys, scaled to `keys` keys.
pub fn scale(sum: u64, sampled: u64, keys: u64) -> u64 {
    if sampled == 0 {
        return 0;
    }
    (sum as f64 / sampled as f64 * keys as f64).round() as u64
}

/// One pass over the keyspace: the cursor it continues from and what it has added up so far.
/// A pass spans as many ticks as the scan budget requires.
#[derive(Debug, Clone)]
pub struct Pass {
    pub cursor: u64,
    pub tallies: Vec<Tally>,
    /// Keys outside every namespace.
    pub other_keys: u64,
    pub ticks: u32,
    /// Time spent scanning, seconds (the waits between ticks left out).
    pub busy_seconds: f64,
    pub started_at: f64,
}

impl Pass {
    /// A fresh pass from cursor 0 for `namespaces` namespaces.
    pub fn new(namespaces: usize, now: f64) -> Self {
        Self {
            cursor: 0,
            tallies: vec![Tally::default(); namespaces],
            other_keys: 0,
            ticks: 0,
            busy_seconds: 0.0,
            started_at: now,
        }
    }

    /// The figures of the finished pass, namespaces in config order.
    pub fn finish(&self, cfg: &CacheConfig, now: f64) -> PassFigures {
        PassFigures {
            started_at: self.started_at,
            finished_at: now,
            ticks: self.ticks,
            scan_seconds: self.busy_seconds,
            other_keys: self.other_keys,
            namespaces: cfg
                .namespaces
                .iter()
                .zip(&self.tallies)
                .map(|(n, t)| NamespaceFigures {
                    name: n.name.clone(),
                    prefix: n.prefix.clone(),
                    ttl_seconds: n.ttl.as_secs_f64(),
                    enforce_ttl: n.enforce_ttl,
                    keys: t.keys,
                    keys_without_ttl: t.without_ttl,
                    ttl_enforced: t.enforced,
                    ttl: t.spread(),
                    memory_bytes: t.memory_estimate(),
                    memory_sampled_keys: t.memory_n,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NamespaceConfig;
    use std::time::Duration;

    fn cfg() -> CacheConfig {
        let ns = |name: &str, prefix: &str| NamespaceConfig {
            name: name.into(),
            prefix: prefix.into(),
            ttl: Duration::from_secs(60),
            codec: Default::default(),
            compress: false,
            enforce_ttl: false,
            warmup: None,
        };
        CacheConfig {
            namespaces: vec![ns("a", "cache:a:"), ns("b", "cache:b:")],
            ..CacheConfig::default()
        }
    }

    #[test]
    fn keys_go_to_the_namespace_of_their_prefix() {
        let c = cfg();
        assert_eq!(namespace_index(&c, b"cache:b:1"), Some(1));
        assert_eq!(namespace_index(&c, b"cache:a:\xff\xfe"), Some(0));
        assert_eq!(namespace_index(&c, b"cache:c:1"), None);
        assert_eq!(namespace_index(&c, b"cache:a"), None);
    }

    #[test]
    fn ttl_spread_is_min_median_max() {
        let mut t = Tally::default();
        assert_eq!(t.spread(), None);
        for ms in [3000, -1, 1000, 2000, -2, 10_000] {
            t.key(ms);
        }
        assert_eq!((t.keys, t.without_ttl), (5, 1), "-2 (gone) is not counted");
        let s = t.spread().unwrap();
        assert_eq!(
            (s.min_seconds, s.median_seconds, s.max_seconds),
            (1.0, 2.5, 10.0)
        );
        t.key(4000);
        assert_eq!(t.spread().unwrap().median_seconds, 3.0);
    }

    #[test]
    fn memory_sample_is_bounded_and_scaled() {
        assert_eq!(scale(300, 3, 1000), 100_000);
        assert_eq!(scale(0, 0, 1000), 0);
        let mut t = Tally::default();
        for _ in 0..200 {
            t.key(-1);
            if t.wants_memory_sample(0) {
                t.memory(50);
            }
        }
        assert_eq!(t.memory_n as usize, MEMORY_SAMPLE);
        assert_eq!(t.memory_estimate(), 200 * 50);
    }

    #[test]
    fn a_pass_publishes_per_namespace_figures_in_config_order() {
        let c = cfg();
        let mut p = Pass::new(2, 100.0);
        p.tallies[1].key(-1);
        p.tallies[1].key(5000);
        p.tallies[1].enforced = 1;
        p.other_keys = 7;
        p.ticks = 3;
        let f = p.finish(&c, 130.0);
        assert_eq!((f.ticks, f.other_keys, f.finished_at), (3, 7, 130.0));
        assert_eq!(f.namespaces[0].name, "a");
        assert_eq!(f.namespaces[0].keys, 0);
        let b = &f.namespaces[1];
        assert_eq!((b.keys, b.keys_without_ttl, b.ttl_enforced), (2, 1, 1));
        assert_eq!(b.ttl.unwrap().max_seconds, 5.0);
    }
}
