//! The Redis probe: PING, `INFO all` figures (memory, clients, hit ratio, evictions, keys,
//! persistence, replication, commands; read by `redis_info`, counted by `redis_counters`),
//! `SLOWLOG LEN`, and a SET/GET/DEL write/read test.

use super::pool_error::{checkout, redis_refused, LastError};
use super::redis_counters::Tracker;
use super::redis_info::{db_name, Info};
use super::wake::{cannot_persist, RedisManager};
use super::{step, Deadline, Probe};
use crate::config::RedisConfig;
use crate::metrics::Metrics;
use crate::model::check::{CheckResult, PoolState, RedisFigures, Service, WriteRead};
use crate::secret::Scrubber;
use bb8::{Pool, PooledConnection};
use std::collections::BTreeSet;
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
    counters: Tracker,
    /// The database `[redis] url` selects (`db0`), and those seen since: an empty one is
    /// reported with 0 keys rather than left out.
    dbs: BTreeSet<String>,
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
        let db = db_name(
            client(cfg, &scrubber)?
                .get_connection_info()
                .redis_settings()
                .db(),
        );
        Ok(Self {
            pool,
            last_error,
            cfg: cfg.clone(),
            metrics,
            scrubber,
            key: format!("steward:probe:{instance}:{}", std::process::id()),
            counters: Tracker::default(),
            dbs: BTreeSet::from([db]),
        })
    }

    fn pool_state(&self) -> PoolState {
        PoolState::of(&self.pool.state(), self.cfg.pool_max)
    }

    /// A pooled connection that answered PING; a master refusing it because it cannot persist
    /// (`MISCONF`) answered too, so it is up ([`cannot_persist`]).
    async fn connect_and_ping(&self) -> Result<PooledConnection<'static, RedisManager>, String> {
        let mut conn = checkout(&self.pool, &self.last_error, self.cfg.timeout).await?;
        match redis::cmd("PING").query_async::<String>(&mut *conn).await {
            Ok(pong) if pong == "PONG" => Ok(conn),
            Ok(pong) => Err(format!("PING answered {pong:?}")),
            Err(e) if cannot_persist(&e) => Ok(conn),
            Err(e) => Err(e.to_string()),
        }
    }

    /// `INFO all` and `SLOWLOG LEN` in one round trip, while no batch of steward's own
    /// lookups is in flight (so they can be taken out exactly).
    async fn stats(
        &mut self,
        conn: &mut redis::aio::MultiplexedConnection,
    ) -> Result<RedisFigures, redis::RedisError> {
        let own = &self.metrics.redis.own;
        let guard = tokio::time::timeout(self.cfg.timeout / 4, own.snapshot()).await;
        if guard.is_err() {
            tracing::debug!("a cache statistics batch is still in flight; INFO without waiting");
        }
        let (text, slowlog): (String, redis::RedisResult<u64>) = redis::pipe()
            .ignore_errors()
            .cmd("INFO")
            .arg("all")
            .cmd("SLOWLOG")
            .arg("LEN")
            .query_async(conn)
            .await?;
        let own_lookups = own.take();
        drop(guard);
        let info = Info::parse(&text);
        let maxclients = match info.num("maxclients") {
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
        let interval = self
            .counters
            .advance(&info, own_lookups, &self.metrics.redis);
        let mut keys = info.keyspace();
        self.dbs.extend(keys.keys().cloned());
        for db in &self.dbs {
            keys.entry(db.clone()).or_insert(0);
        }
        let mut depth = info.depth(crate::unix_now());
        depth.slowlog_length = slowlog.ok();
        depth.rejected_connections_delta = interval.rejected;
        let num = |k: &str| info.num(k).unwrap_or(0);
        Ok(RedisFigures {
            server_version: info.get("redis_version").unwrap_or_default().to_string(),
            used_memory_bytes: num("used_memory"),
            maxmemory_bytes: num("maxmemory"),
            maxmemory_policy: info.get("maxmemory_policy").unwrap_or_default().to_string(),
            mem_fragmentation_ratio: info.float("mem_fragmentation_ratio"),
            connected_clients: num("connected_clients"),
            maxclients,
            keyspace_hits: num("keyspace_hits"),
            keyspace_misses: num("keyspace_misses"),
            hit_ratio: interval.hit_ratio,
            lookups: interval.lookups,
            evicted_keys: num("evicted_keys"),
            expired_keys: num("expired_keys"),
            ops_per_sec: num("instantaneous_ops_per_sec"),
            keys,
            depth,
        })
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
        // Our GET is a keyspace hit (or miss) Redis counts; not the application's.
        let found = u64::from(got.is_some());
        self.metrics.redis.own.count(found, 1 - found);
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
    r.memory_fragmentation_ratio
        .set(f.mem_fragmentation_ratio.unwrap_or(f64::NAN));
    r.db_keys.reset();
    for (db, n) in &f.keys {
        r.db_keys.with_label_values(&[db.as_str()]).set(*n as i64);
    }
    r.info.reset();
    r.info
        .with_label_values(&[f.server_version.as_str(), f.maxmemory_policy.as_str()])
        .set(1);
    super::redis_record::depth(r, &f.depth);
}
