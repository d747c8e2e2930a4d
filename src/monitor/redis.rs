//! The Redis probe: PING, `INFO` figures (memory, clients, hit ratio, evictions, keys) and a
//! SET/GET/DEL write/read test.

use super::pool_error::{checkout, redis_refused, LastError};
use super::wake::RedisManager;
use super::{step, Deadline, Probe};
use crate::config::RedisConfig;
use crate::metrics::Metrics;
use crate::model::check::{CheckResult, PoolState, RedisFigures, Service, WriteRead};
use crate::secret::Scrubber;
use bb8::{Pool, PooledConnection};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

/// Why the probe could not be built (the URL was validated, so only a driver surprise).
#[derive(Debug, thiserror::Error)]
pub enum RedisProbeError {
    #[error("redis.url is not usable: {0}")]
    Url(String),
}

/// A client for `[redis] url` (the loader has put `password_file`'s password into it), without
/// connecting: the one place both the probe's pool and the maintenance publisher get theirs, so
/// they agree on server, database and credentials.
pub fn client(cfg: &RedisConfig, scrubber: &Scrubber) -> Result<redis::Client, RedisProbeError> {
    redis::Client::open(cfg.url.expose())
        .map_err(|e| RedisProbeError::Url(scrubber.scrub(&e.to_string())))
}

/// Probes one Redis server through steward's own pool.
pub struct RedisProbe {
    pool: Pool<RedisManager>,
    last_error: LastError<redis::RedisError>,
    cfg: RedisConfig,
    metrics: Arc<Metrics>,
    scrubber: Scrubber,
    key: String,
    /// Server counters at the previous check, to turn them into deltas.
    prev: Option<Counters>,
    /// Hits our own write/read test caused since the previous `INFO`; not the application's.
    own_hits: u64,
}

#[derive(Clone, Copy)]
struct Counters {
    hits: u64,
    misses: u64,
    evicted: u64,
    expired: u64,
}

impl RedisProbe {
    /// Builds the pool without connecting, so a server that is down now does not stop the task.
    /// `instance` names this steward's probe key; `wake` is raised when the server ends a
    /// pooled connection.
    pub fn new(
        cfg: &RedisConfig,
        metrics: Arc<Metrics>,
        scrubber: Scrubber,
        instance: &str,
        wake: super::wake::Wake,
    ) -> Result<Self, RedisProbeError> {
        let manager = RedisManager::new(client(cfg, &scrubber)?, cfg.timeout, wake);
        let last_error =
            LastError::with_refusal(|e: &redis::RedisError| e.to_string(), redis_refused);
        let pool = Pool::builder()
            .max_size(cfg.pool_max)
            // Inside the check's own timeout, so the pool's reason is what gets reported.
            .connection_timeout(super::pool_wait(cfg.timeout))
            .error_sink(Box::new(last_error.clone()))
            .retry_connection(false)
            .test_on_check_out(true)
            .build_unchecked(manager);
        Ok(Self {
            pool,
            last_error,
            cfg: cfg.clone(),
            metrics,
            scrubber,
            key: format!("steward:probe:{instance}:{}", std::process::id()),
            prev: None,
            own_hits: 0,
        })
    }

    fn pool_state(&self) -> PoolState {
        PoolState::of(&self.pool.state(), self.cfg.pool_max)
    }

    async fn connect_and_ping(&self) -> Result<PooledConnection<'static, RedisManager>, String> {
        let mut conn = checkout(&self.pool, &self.last_error, self.cfg.timeout).await?;
        let pong: String = redis::cmd("PING")
            .query_async(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
        if pong != "PONG" {
            return Err(format!("PING answered {pong:?}"));
        }
        Ok(conn)
    }

    async fn stats(
        &mut self,
        conn: &mut redis::aio::MultiplexedConnection,
    ) -> Result<RedisFigures, redis::RedisError> {
        let text: String = redis::cmd("INFO").query_async(conn).await?;
        let info = parse_info(&text);
        let num = |k: &str| info.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let maxclients = match info.get("maxclients").and_then(|v| v.parse().ok()) {
            Some(n) => Some(n),
            // Older servers leave it out of INFO; CONFIG may be disabled on managed Redis.
            None => redis::cmd("CONFIG")
                .arg("GET")
                .arg("maxclients")
                .query_async::<Vec<String>>(conn)
                .await
                .ok()
                .and_then(|v| v.get(1).and_then(|n| n.parse().ok())),
        };
        let now = Counters {
            hits: num("keyspace_hits"),
            misses: num("keyspace_misses"),
            evicted: num("evicted_keys"),
            expired: num("expired_keys"),
        };
        let own = std::mem::take(&mut self.own_hits);
        let hit_ratio = self.prev.and_then(|p| {
            let hits = delta(p.hits, now.hits).saturating_sub(own);
            let lookups = hits + delta(p.misses, now.misses);
            (lookups > 0).then(|| hits as f64 / lookups as f64)
        });
        self.count(now, own);
        Ok(RedisFigures {
            server_version: info.get("redis_version").cloned().unwrap_or_default(),
            used_memory_bytes: num("used_memory"),
            maxmemory_bytes: num("maxmemory"),
            maxmemory_policy: info.get("maxmemory_policy").cloned().unwrap_or_default(),
            mem_fragmentation_ratio: info
                .get("mem_fragmentation_ratio")
                .and_then(|v| v.parse().ok()),
            connected_clients: num("connected_clients"),
            maxclients,
            keyspace_hits: now.hits,
            keyspace_misses: now.misses,
            hit_ratio,
            evicted_keys: now.evicted,
            expired_keys: now.expired,
            ops_per_sec: num("instantaneous_ops_per_sec"),
            keys: keyspace(&info),
        })
    }

    /// Advances steward's counters by what the server counted since the last check.
    fn count(&mut self, now: Counters, own_hits: u64) {
        if let Some(p) = self.prev {
            let r = &self.metrics.redis;
            r.hits
                .inc_by(delta(p.hits, now.hits).saturating_sub(own_hits));
            r.misses.inc_by(delta(p.misses, now.misses));
            r.evicted.inc_by(delta(p.evicted, now.evicted));
            r.expired.inc_by(delta(p.expired, now.expired));
        }
        self.prev = Some(now);
    }

    async fn write_read(
        &mut self,
        conn: &mut redis::aio::MultiplexedConnection,
    ) -> Result<(), String> {
        let token = format!("{}", crate::unix_now());
        let _: () = redis::cmd("SET")
            .arg(&self.key)
            .arg(&token)
            .arg("EX")
            .arg(60)
            .query_async(conn)
            .await
            .map_err(|e| format!("SET failed: {e}"))?;
        let got: Option<String> = redis::cmd("GET")
            .arg(&self.key)
            .query_async(conn)
            .await
            .map_err(|e| format!("GET failed: {e}"))?;
        let _: i64 = redis::cmd("DEL")
            .arg(&self.key)
            .query_async(conn)
            .await
            .map_err(|e| format!("DEL failed: {e}"))?;
        match got {
            Some(v) if v == token => Ok(()),
            other => Err(format!("GET returned {other:?}, SET wrote {token:?}")),
        }
    }
}

/// A server counter's growth; a drop means the server restarted and counts from zero again.
fn delta(prev: u64, now: u64) -> u64 {
    if now >= prev {
        now - prev
    } else {
        now
    }
}

impl Probe for RedisProbe {
    fn service(&self) -> Service {
        Service::Redis
    }

    async fn health_check(&mut self) -> bool {
        // Checking a connection out PINGs it (test_on_check_out); a broken one is dropped
        // and replaced by the pool.
        let ok = tokio::time::timeout(self.cfg.timeout, self.connect_and_ping())
            .await
            .unwrap_or_else(|_| Err("no answer within redis.timeout".into()));
        if let Err(e) = &ok {
            tracing::debug!(error = %self.scrubber.scrub(e), "redis pool health check failed");
        }
        ok.is_ok()
    }

    async fn probe(&mut self) -> CheckResult {
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let deadline = Deadline::after(self.cfg.timeout);
        let mut result = CheckResult::unchecked(Service::Redis);
        let (took, conn) = step(
            &metrics,
            Service::Redis,
            "ping",
            deadline,
            self.connect_and_ping(),
        )
        .await;
        match conn {
            Err(e) => result.error = Some(self.scrubber.scrub(&e)),
            Ok(mut conn) => {
                result.up = true;
                result.latency_seconds = Some(took.as_secs_f64());
                let (_, stats) = step(
                    &metrics,
                    Service::Redis,
                    "stats",
                    deadline,
                    self.stats(&mut conn),
                )
                .await;
                match stats {
                    Ok(f) => {
                        record(&metrics, &f);
                        result.redis = Some(f);
                    }
                    Err(e) => {
                        result.error = Some(self.scrubber.scrub(&format!("INFO failed: {e}")))
                    }
                }
                if self.cfg.write_read_test {
                    let fut = self.write_read(&mut conn);
                    let (_, outcome) =
                        step(&metrics, Service::Redis, "write_read", deadline, fut).await;
                    result.write_read = Some(WriteRead {
                        ok: outcome.is_ok(),
                        error: outcome.err().map(|e| self.scrubber.scrub(&e)),
                    });
                }
            }
        }
        result.pool = Some(self.pool_state());
        result.duration_seconds = started.elapsed().as_secs_f64();
        result.checked_at = crate::unix_now();
        result
    }
}

fn record(m: &Metrics, f: &RedisFigures) {
    let r = &m.redis;
    r.memory_used.set(f.used_memory_bytes as i64);
    r.memory_max.set(f.maxmemory_bytes as i64);
    r.hit_ratio.set(f.hit_ratio.unwrap_or(f64::NAN));
    r.connected_clients.set(f.connected_clients as i64);
    r.max_clients.set(f.maxclients.map_or(0, |n| n as i64));
    r.ops_per_second.set(f.ops_per_sec as i64);
    r.db_keys.reset();
    for (db, n) in &f.keys {
        r.db_keys.with_label_values(&[db.as_str()]).set(*n as i64);
    }
    r.info.reset();
    r.info
        .with_label_values(&[f.server_version.as_str(), f.maxmemory_policy.as_str()])
        .set(1);
}

/// `INFO` text → field map (section headers and blank lines skipped).
fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim_end().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `db0:keys=3,expires=1,avg_ttl=0` lines → {"db0": 3}.
fn keyspace(info: &HashMap<String, String>) -> BTreeMap<String, u64> {
    info.iter()
        .filter(|(k, _)| k.starts_with("db") && k[2..].chars().all(|c| c.is_ascii_digit()))
        .filter_map(|(k, v)| {
            let keys = v
                .split(',')
                .find_map(|kv| kv.strip_prefix("keys="))?
                .parse()
                .ok()?;
            Some((k.clone(), keys))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_parsing() {
        let info = parse_info("# Server\r\nredis_version:7.0.15\r\n\r\n# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\ndb12:keys=7,expires=0,avg_ttl=0\r\n");
        assert_eq!(info["redis_version"], "7.0.15");
        let ks = keyspace(&info);
        assert_eq!(ks["db0"], 3);
        assert_eq!(ks["db12"], 7);
        assert_eq!(ks.len(), 2);
    }

    #[test]
    fn deltas_survive_server_restart() {
        assert_eq!(delta(10, 15), 5);
        assert_eq!(delta(10, 3), 3);
    }
}
