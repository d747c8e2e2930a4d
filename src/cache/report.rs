//! What `steward cache stats` answers: the server's figures from the Redis monitor's last
//! check (hit ratio, memory, fragmentation, evictions per second, eviction policy), the last
//! complete statistics pass per namespace, and how the pass in progress is doing.

use crate::model::cache_pass::PassFigures;
use crate::model::check::CheckResult;
use serde::{Deserialize, Serialize};

/// Reply to `cache_stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheStatsReply {
    /// Whether the Redis monitor's last check reached Redis.
    pub redis_up: bool,
    /// Why Redis cannot be used, when it cannot (secrets removed).
    #[serde(default)]
    pub redis_error: Option<String>,
    /// When the server figures below were read (the monitor's last check), Unix seconds.
    #[serde(default)]
    pub checked_at: Option<f64>,
    /// Keyspace hits over lookups during the last check interval (`window_seconds`).
    #[serde(default)]
    pub hit_ratio: Option<f64>,
    pub window_seconds: f64,
    #[serde(default)]
    pub used_memory_bytes: Option<u64>,
    /// 0 means no limit.
    #[serde(default)]
    pub maxmemory_bytes: Option<u64>,
    #[serde(default)]
    pub fragmentation_ratio: Option<f64>,
    /// Keys evicted per second between the monitor's last two checks.
    #[serde(default)]
    pub evictions_per_second: Option<f64>,
    #[serde(default)]
    pub maxmemory_policy: Option<String>,
    /// `cache.expect_eviction_policy`.
    #[serde(default)]
    pub expected_policy: Option<String>,
    /// Set when Redis' policy differs from the expected one.
    #[serde(default)]
    pub policy_warning: Option<String>,
    /// What `enforce_eviction_policy` last did (set the policy, or why Redis refused).
    #[serde(default)]
    pub policy_enforcement: Option<String>,
    /// The newest complete pass; a pass in progress never replaces it.
    #[serde(default)]
    pub last_pass: Option<PassFigures>,
    #[serde(default)]
    pub pass_in_progress: Option<PassProgress>,
    /// Why the last scan tick failed, if it did.
    #[serde(default)]
    pub scan_error: Option<String>,
    /// Commands Redis refused (e.g. `MEMORY USAGE` disabled), with what is missing because.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// How far the current pass has got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassProgress {
    pub started_at: f64,
    pub ticks: u32,
    /// Keys seen so far, namespaced or not.
    pub keys_seen: u64,
}

/// The warning for a policy that differs from the expected one.
pub fn policy_warning(actual: &str, expected: Option<&str>) -> Option<String> {
    let expected = expected?;
    (actual != expected).then(|| {
        format!(
            "maxmemory-policy is {actual}, expected {expected} (cache.expect_eviction_policy); \
             set it in redis.conf, or let steward set it with cache.enforce_eviction_policy = true"
        )
    })
}

impl CacheStatsReply {
    /// The server part, from the monitor's last Redis check; `window` is its interval.
    pub fn from_check(check: Option<&CheckResult>, window: f64, expected: Option<&str>) -> Self {
        let figures = check.filter(|c| c.up).and_then(|c| c.redis.as_ref());
        let redis_error = match check {
            None => Some("Redis has not been checked yet".to_string()),
            Some(c) if !c.up => Some(format!(
                "Redis is down: {}",
                c.error.as_deref().unwrap_or("unknown error")
            )),
            Some(_) => None,
        };
        Self {
            redis_up: check.is_some_and(|c| c.up),
            redis_error,
            checked_at: check.map(|c| c.checked_at),
            hit_ratio: figures.and_then(|f| f.hit_ratio),
            window_seconds: window,
            used_memory_bytes: figures.map(|f| f.used_memory_bytes),
            maxmemory_bytes: figures.map(|f| f.maxmemory_bytes),
            fragmentation_ratio: figures.and_then(|f| f.mem_fragmentation_ratio),
            evictions_per_second: None,
            maxmemory_policy: figures.map(|f| f.maxmemory_policy.clone()),
            expected_policy: expected.map(str::to_string),
            policy_warning: figures.and_then(|f| policy_warning(&f.maxmemory_policy, expected)),
            policy_enforcement: None,
            last_pass: None,
            pass_in_progress: None,
            scan_error: None,
            notes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::check::{RedisFigures, Service};

    #[test]
    fn policy_mismatch_warns_and_a_down_redis_says_so() {
        assert_eq!(policy_warning("allkeys-lru", Some("allkeys-lru")), None);
        assert_eq!(policy_warning("noeviction", None), None);
        assert!(policy_warning("noeviction", Some("allkeys-lru"))
            .unwrap()
            .contains("maxmemory-policy is noeviction, expected allkeys-lru"));
        let mut c = CheckResult::unchecked(Service::Redis);
        c.up = true;
        c.redis = Some(RedisFigures {
            maxmemory_policy: "noeviction".into(),
            mem_fragmentation_ratio: Some(1.5),
            ..RedisFigures::default()
        });
        let r = CacheStatsReply::from_check(Some(&c), 10.0, Some("allkeys-lru"));
        assert!(r.redis_up && r.policy_warning.is_some());
        assert_eq!(r.fragmentation_ratio, Some(1.5));
        c.up = false;
        c.error = Some("Connection refused".into());
        let r = CacheStatsReply::from_check(Some(&c), 10.0, None);
        assert!(!r.redis_up && r.maxmemory_policy.is_none());
        assert!(r
            .redis_error
            .unwrap()
            .contains("Redis is down: Connection refused"));
    }
}
