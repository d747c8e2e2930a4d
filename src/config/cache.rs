//! `[cache]` and `[[cache.namespace]]`: how steward manages the application's Redis cache —
//! one policy (prefix, TTL, codec, compression, warm-up) per kind of cached data.

use super::problem::Problem;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a namespace's values are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// Bytes as they come.
    #[default]
    Raw,
    /// A JSON document (warm-up checks each value parses).
    Json,
}

/// `[cache.namespace.warmup]`: where a namespace's keys come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmupConfig {
    /// A query whose rows give the key suffix (first column) and the value (second column).
    pub query: String,
    /// Optional cron expression (5 fields, UTC) for a scheduled warm-up.
    #[serde(default)]
    pub schedule: Option<String>,
}

/// One `[[cache.namespace]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceConfig {
    pub name: String,
    /// Every key of the namespace starts with it, e.g. `cache:sessions:`.
    pub prefix: String,
    /// The TTL keys get when steward writes them (warm-up) or enforces it.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    #[serde(default)]
    pub codec: Codec,
    /// Gzip values above `cache.compression_threshold` bytes.
    #[serde(default)]
    pub compress: bool,
    /// Give keys found without a TTL the namespace TTL.
    #[serde(default)]
    pub enforce_ttl: bool,
    #[serde(default)]
    pub warmup: Option<WarmupConfig>,
}

/// Default `cache.warmup_timeout`: long enough for a big table, short enough to notice.
pub const DEFAULT_WARMUP_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Default `cache.max_value_bytes` (16 MiB): far above a typical cached value, far below what
/// would strain steward's memory.
pub const DEFAULT_MAX_VALUE_BYTES: u64 = 16 * 1024 * 1024;

/// Upper bound of `cache.max_value_bytes`: Redis' own limit on a string (512 MiB).
pub const MAX_VALUE_BYTES_LIMIT: u64 = 512 * 1024 * 1024;

/// Upper bound of `cache.warmup_timeout`: PostgreSQL's `statement_timeout` is an `int` of
/// milliseconds (about 24.8 days).
const WARMUP_TIMEOUT_LIMIT: Duration = Duration::from_millis(i32::MAX as u64);

/// `[cache]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Values larger than this many bytes are compressed in namespaces with `compress`.
    pub compression_threshold: usize,
    /// Commands per pipeline round trip (UNLINK, SET, EXPIRE).
    pub pipeline_batch: usize,
    /// How long one tick of the statistics scan may walk the keyspace; the rest waits for the
    /// next tick, so Redis is never held up for long.
    #[serde(with = "humantime_serde")]
    pub scan_budget: Duration,
    /// The `maxmemory-policy` Redis should have, e.g. `allkeys-lru`; unset: no expectation.
    pub expect_eviction_policy: Option<String>,
    /// Set `expect_eviction_policy` with CONFIG SET when Redis differs (and allows it).
    pub enforce_eviction_policy: bool,
    /// How long one warm-up query may run, streaming its rows included (PostgreSQL's
    /// `statement_timeout` on the warm-up's read-only transaction), so a runaway query cannot
    /// hold a connection and a snapshot for ever.
    #[serde(with = "humantime_serde")]
    pub warmup_timeout: Duration,
    /// Largest key suffix or value a warm-up writes; PostgreSQL measures each row first, so a
    /// larger one is rejected without ever reaching steward's memory.
    pub max_value_bytes: u64,
    #[serde(rename = "namespace")]
    pub namespaces: Vec<NamespaceConfig>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            compression_threshold: 1024,
            pipeline_batch: 100,
            scan_budget: Duration::from_millis(50),
            expect_eviction_policy: None,
            enforce_eviction_policy: false,
            warmup_timeout: DEFAULT_WARMUP_TIMEOUT,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            namespaces: Vec::new(),
        }
    }
}

impl CacheConfig {
    /// The namespace a key belongs to, if any (prefixes never overlap, so at most one).
    pub fn namespace_of(&self, key: &str) -> Option<&NamespaceConfig> {
        self.namespaces.iter().find(|n| key.starts_with(&n.prefix))
    }

    /// The namespace called `name`.
    pub fn namespace(&self, name: &str) -> Option<&NamespaceConfig> {
        self.namespaces.iter().find(|n| n.name == name)
    }
}

/// Redis' eviction policies, for `expect_eviction_policy`.
pub const EVICTION_POLICIES: &[&str] = &[
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
];

/// Checks names, prefixes (non-empty, not overlapping), TTLs, limits and warm-up schedules.
pub(super) fn validate(c: &CacheConfig, out: &mut Vec<Problem>) {
    if c.pipeline_batch == 0 || c.pipeline_batch > 10_000 {
        out.push(Problem::new(
            "cache.pipeline_batch",
            "must be between 1 and 10000",
        ));
    }
    if c.scan_budget.is_zero() {
        out.push(Problem::new(
            "cache.scan_budget",
            "must be greater than zero (e.g. \"50ms\")",
        ));
    }
    if c.warmup_timeout < Duration::from_millis(1) || c.warmup_timeout > WARMUP_TIMEOUT_LIMIT {
        out.push(Problem::new(
            "cache.warmup_timeout",
            "must be between 1ms and 24 days (e.g. \"5m\")",
        ));
    }
    if c.max_value_bytes == 0 || c.max_value_bytes > MAX_VALUE_BYTES_LIMIT {
        out.push(Problem::new(
            "cache.max_value_bytes",
            format!(
                "must be between 1 and {MAX_VALUE_BYTES_LIMIT} (512 MiB, Redis' limit on a value)"
            ),
        ));
    }
    match &c.expect_eviction_policy {
        Some(p) if !EVICTION_POLICIES.contains(&p.as_str()) => out.push(Problem::new(
            "cache.expect_eviction_policy",
            format!(
                "{p:?} is not a Redis maxmemory-policy; use one of {}",
                EVICTION_POLICIES.join(", ")
            ),
        )),
        None if c.enforce_eviction_policy => out.push(Problem::new(
            "cache.enforce_eviction_policy",
            "needs cache.expect_eviction_policy (the policy to enforce)",
        )),
        _ => {}
    }
    for (i, n) in c.namespaces.iter().enumerate() {
        let key = |field: &str| format!("cache.namespace[{i}] ({}).{field}", n.name);
        if !is_name(&n.name) {
            out.push(Problem::new(
                format!("cache.namespace[{i}].name"),
                format!("{:?} must be letters, digits, '_' or '-'", n.name),
            ));
        }
        if c.namespaces[..i].iter().any(|m| m.name == n.name) {
            out.push(Problem::new(
                key("name"),
                "is used by an earlier namespace too",
            ));
        }
        if n.prefix.is_empty() {
            out.push(Problem::new(
                key("prefix"),
                "must not be empty (an empty prefix would cover every key in Redis)",
            ));
        } else if let Some(m) = c.namespaces[..i].iter().find(|m| {
            !m.prefix.is_empty()
                && (m.prefix.starts_with(&n.prefix) || n.prefix.starts_with(&m.prefix))
        }) {
            out.push(Problem::new(
                key("prefix"),
                format!(
                    "{:?} overlaps namespace {:?} ({:?}): a key must belong to one namespace only",
                    n.prefix, m.name, m.prefix
                ),
            ));
        }
        if n.prefix.contains(['*', '?', '[', ']', '\\']) {
            out.push(Problem::new(
                key("prefix"),
                "must not contain glob characters (* ? [ ] \\)",
            ));
        }
        if n.ttl.is_zero() {
            out.push(Problem::new(
                key("ttl"),
                "must be greater than zero (e.g. \"30m\")",
            ));
        }
        if let Some(w) = &n.warmup {
            if w.query.trim().is_empty() {
                out.push(Problem::new(key("warmup.query"), "must not be empty"));
            }
            if let Some(s) = &w.schedule {
                if let Err(e) = check_cron(s) {
                    out.push(Problem::new(key("warmup.schedule"), e));
                }
            }
        }
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check_cron(expr: &str) -> Result<(), String> {
    if expr.split_whitespace().count() != 5 {
        return Err(format!(
            "{expr:?} must have 5 fields: minute hour day-of-month month day-of-week"
        ));
    }
    expr.parse::<croner::Cron>()
        .map(|_| ())
        .map_err(|e| format!("{expr:?} is not a cron expression: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str, prefix: &str, ttl: u64) -> NamespaceConfig {
        NamespaceConfig {
            name: name.into(),
            prefix: prefix.into(),
            ttl: Duration::from_secs(ttl),
            codec: Codec::Raw,
            compress: false,
            enforce_ttl: false,
            warmup: None,
        }
    }

    fn problems(c: &CacheConfig) -> Vec<String> {
        let mut out = Vec::new();
        validate(c, &mut out);
        out.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn bad_policies_are_named() {
        let c = CacheConfig {
            namespaces: vec![
                ns("sessions", "cache:sessions:", 3600),
                ns("sess", "cache:sess", 60),
                ns("empty", "", 60),
                ns("zero", "cache:zero:", 0),
            ],
            ..CacheConfig::default()
        };
        let p = problems(&c);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            p[0].contains("cache.namespace[1] (sess).prefix")
                && p[0].contains("overlaps namespace \"sessions\""),
            "{p:?}"
        );
        assert!(
            p[1].contains("cache.namespace[2] (empty).prefix")
                && p[1].contains("must not be empty"),
            "{p:?}"
        );
        assert!(p[2].contains("cache.namespace[3] (zero).ttl"), "{p:?}");
    }

    #[test]
    fn limits_and_eviction_policy() {
        let mut c = CacheConfig {
            pipeline_batch: 0,
            expect_eviction_policy: Some("lru".into()),
            ..CacheConfig::default()
        };
        let p = problems(&c);
        assert!(
            p.iter().any(|p| p.contains("cache.pipeline_batch")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|p| p.contains("not a Redis maxmemory-policy")),
            "{p:?}"
        );
        c = CacheConfig {
            enforce_eviction_policy: true,
            ..CacheConfig::default()
        };
        assert!(problems(&c)[0].contains("needs cache.expect_eviction_policy"));
        assert!(problems(&CacheConfig::default()).is_empty());
    }

    #[test]
    fn warm_up_limits_are_named_and_default_sensibly() {
        let d = CacheConfig::default();
        assert_eq!(d.warmup_timeout, Duration::from_secs(300));
        assert_eq!(d.max_value_bytes, 16_777_216);
        let parsed: CacheConfig =
            toml::from_str("warmup_timeout = \"90s\"\nmax_value_bytes = 1048576").unwrap();
        assert_eq!(parsed.warmup_timeout, Duration::from_secs(90));
        assert_eq!(parsed.max_value_bytes, 1_048_576);
        for (timeout, bytes) in [
            (Duration::ZERO, 0),
            (Duration::from_micros(500), MAX_VALUE_BYTES_LIMIT + 1),
            (Duration::from_secs(25 * 24 * 3600), 0),
        ] {
            let c = CacheConfig {
                warmup_timeout: timeout,
                max_value_bytes: bytes,
                ..CacheConfig::default()
            };
            let p = problems(&c);
            assert_eq!(p.len(), 2, "{p:?}");
            assert!(p[0].contains("cache.warmup_timeout"), "{p:?}");
            assert!(p[1].contains("cache.max_value_bytes"), "{p:?}");
        }
        let edge = CacheConfig {
            warmup_timeout: Duration::from_millis(1),
            max_value_bytes: MAX_VALUE_BYTES_LIMIT,
            ..CacheConfig::default()
        };
        assert!(problems(&edge).is_empty());
    }

    #[test]
    fn namespace_lookup_by_key_and_name() {
        let c = CacheConfig {
            namespaces: vec![ns("a", "cache:a:", 1), ns("b", "cache:b:", 1)],
            ..CacheConfig::default()
        };
        assert_eq!(c.namespace_of("cache:b:42").unwrap().name, "b");
        assert!(c.namespace_of("other").is_none());
        assert_eq!(c.namespace("a").unwrap().prefix, "cache:a:");
    }
}
