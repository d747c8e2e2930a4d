//! Evictions and the eviction policy: keys evicted per second between the Redis monitor's
//! checks, and `enforce_eviction_policy`'s bookkeeping — one `CONFIG SET maxmemory-policy` per
//! mismatch, so a Redis that refuses it (CONFIG renamed or forbidden) is not asked every tick.

/// Evictions per second from consecutive checks' `evicted_keys` counters.
#[derive(Debug, Default)]
pub struct Evictions {
    last: Option<(f64, u64)>,
    /// Between the last two checks seen; `None` until there are two.
    pub rate: Option<f64>,
}

impl Evictions {
    /// Takes a check's time and counter; the same check seen again changes nothing.
    pub fn observe(&mut self, checked_at: f64, evicted: u64) {
        match self.last {
            Some((t, _)) if checked_at <= t => return,
            Some((t, n)) => {
                // A drop means Redis restarted and counts from zero again.
                let d = if evicted >= n { evicted - n } else { evicted };
                self.rate = Some(d as f64 / (checked_at - t));
            }
            None => {}
        }
        self.last = Some((checked_at, evicted));
    }
}

/// Remembers the mismatch steward last tried to fix and how that went.
#[derive(Debug, Default)]
pub struct PolicyEnforcer {
    /// The policy Redis had when steward last tried to set the expected one.
    tried_on: Option<String>,
    /// What the last attempt did, for `cache stats`.
    pub outcome: Option<String>,
}

impl PolicyEnforcer {
    /// Whether to send `CONFIG SET` now: on a new mismatch only.
    pub fn should_try(&mut self, actual: &str, expected: &str) -> bool {
        if actual == expected {
            self.tried_on = None;
            return false;
        }
        if self.tried_on.as_deref() == Some(actual) {
            return false;
        }
        self.tried_on = Some(actual.to_string());
        true
    }

    /// Forgets that the current mismatch was tried (its attempt was held back), so the next
    /// tick tries it.
    pub fn forget(&mut self) {
        self.tried_on = None;
    }

    /// Records and logs an attempt's result (`Err` holds Redis' answer, secrets removed).
    pub fn record(&mut self, actual: &str, expected: &str, result: Result<(), String>) {
        self.outcome = Some(match result {
            Ok(()) => {
                tracing::info!(from = %actual, to = %expected, "set Redis maxmemory-policy (cache.enforce_eviction_policy)");
                format!(
                    "set maxmemory-policy from {actual} to {expected} at {:.0} (Unix time)",
                    crate::unix_now()
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, expected = %expected, "Redis refused CONFIG SET maxmemory-policy; not retried until the policy changes");
                format!(
                    "CONFIG SET maxmemory-policy {expected} failed: {e}; set it in redis.conf \
                     (steward retries only when the policy changes or on reload)"
                )
            }
        });
    }
}

/// `CONFIG SET maxmemory-policy <policy>`.
pub async fn set_policy(
    conn: &mut redis::aio::MultiplexedConnection,
    policy: &str,
) -> redis::RedisResult<()> {
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg(policy)
        .query_async(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_rate_from_consecutive_checks() {
        let mut e = Evictions::default();
        e.observe(100.0, 50);
        assert_eq!(e.rate, None);
        e.observe(110.0, 80);
        assert_eq!(e.rate, Some(3.0));
        e.observe(110.0, 90);
        assert_eq!(e.rate, Some(3.0), "the same check twice changes nothing");
        e.observe(120.0, 10);
        assert_eq!(e.rate, Some(1.0), "a restarted server counts from zero");
    }

    #[test]
    fn one_attempt_per_mismatch() {
        let mut p = PolicyEnforcer::default();
        assert!(!p.should_try("allkeys-lru", "allkeys-lru"));
        assert!(p.should_try("noeviction", "allkeys-lru"));
        p.record("noeviction", "allkeys-lru", Err("NOPERM".into()));
        assert!(p.outcome.as_deref().unwrap().contains("failed: NOPERM"));
        assert!(!p.should_try("noeviction", "allkeys-lru"), "not every tick");
        assert!(
            p.should_try("volatile-lru", "allkeys-lru"),
            "a new mismatch"
        );
        assert!(!p.should_try("allkeys-lru", "allkeys-lru"));
        assert!(
            p.should_try("noeviction", "allkeys-lru"),
            "changed back later"
        );
    }
}
