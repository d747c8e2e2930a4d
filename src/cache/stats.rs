//! The `cache.stats` task: every `[redis] interval` it walks the keyspace with `SCAN cursor
//! COUNT n` for at most `cache.scan_budget`, continuing from the saved cursor at the next tick,
//! so a keyspace of millions is walked over several ticks without holding Redis up. Per
//! namespace it counts keys and keys without a TTL (pipelined `PTTL`), the TTL spread, and
//! samples `MEMORY USAGE`; it gives keys without a TTL their namespace TTL where `enforce_ttl`
//! is set (`EXPIRE … NX`), and sets `maxmemory-policy` where `enforce_eviction_policy` asks.
//! A complete pass publishes its figures; a pass in progress never replaces the last one.

use super::eviction::{Evictions, PolicyEnforcer};
use super::report::{CacheStatsReply, PassProgress};
use super::tally::{namespace_index, Pass};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::board::Board;
use crate::model::cache_pass::PassFigures;
use crate::model::check::Service;
use crate::supervisor::TaskResult;
use redis::aio::MultiplexedConnection;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

mod handle;

use handle::Cmd;
pub use handle::StatsHandle;

/// One run of `cache.stats`: a reload that changes `[cache]` restarts it (the new run starts a
/// fresh pass); a changed `[redis]` is picked up at the next tick.
pub async fn run(
    handle: StatsHandle,
    config: watch::Receiver<Arc<Config>>,
    board: Board,
    metrics: Arc<Metrics>,
    audit: crate::audit::AuditHandle,
    cancel: CancellationToken,
) -> TaskResult {
    let mut rx = tokio::select! {
        _ = cancel.cancelled() => return Ok(()),
        rx = handle.mailbox.take() => rx,
    };
    let cfg = config.borrow().clone();
    for n in &cfg.cache.namespaces {
        metrics
            .cache
            .ttl_enforced
            .with_label_values(&[n.name.as_str()]);
    }
    let stats = Stats {
        pass: Pass::new(cfg.cache.namespaces.len(), crate::unix_now()),
        cfg,
        config,
        board,
        metrics,
        audit,
        conn: None,
        last: None,
        scan_error: None,
        policy: PolicyEnforcer::default(),
        evictions: Evictions::default(),
        memory_off: false,
        enforce_off: false,
        notes: Vec::new(),
    };
    stats.run(&mut rx, cancel).await;
    Ok(())
}

struct Stats {
    /// The config this run started with; `[redis]` is followed live from `config`.
    cfg: Arc<Config>,
    config: watch::Receiver<Arc<Config>>,
    board: Board,
    metrics: Arc<Metrics>,
    /// TTLs given and `CONFIG SET` are recorded there; TTLs are not given while it is unwritable.
    audit: crate::audit::AuditHandle,
    conn: Option<MultiplexedConnection>,
    pass: Pass,
    last: Option<PassFigures>,
    scan_error: Option<String>,
    policy: PolicyEnforcer,
    evictions: Evictions,
    /// Commands Redis refused, switched off for this run, and why (shown by `cache stats`).
    memory_off: bool,
    enforce_off: bool,
    notes: Vec<String>,
}

/// What one batch of keys yields, applied to the pass only once every round trip succeeded.
struct Batch {
    keys: Vec<(usize, Vec<u8>)>,
    other: u64,
}

impl Stats {
    async fn run(mut self, rx: &mut mpsc::Receiver<Cmd>, cancel: CancellationToken) {
        let mut next = Instant::now();
        loop {
            let sleep = tokio::time::sleep_until(next.into());
            tokio::select! {
                _ = cancel.cancelled() => return,
                Some(Cmd::Stats(reply)) = rx.recv() => { let _ = reply.send(self.reply()); }
                _ = sleep => {
                    self.follow_redis_config();
                    next = Instant::now() + self.cfg.redis.interval;
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = self.tick() => {}
                    }
                }
            }
        }
    }

    /// A reload that changed `[redis]` (URL, interval, timeout): a new connection, a fresh pass.
    fn follow_redis_config(&mut self) {
        let current = self.config.borrow().clone();
        if current.redis != self.cfg.redis {
            self.cfg = current;
            self.conn = None;
            self.pass = Pass::new(self.cfg.cache.namespaces.len(), crate::unix_now());
            self.evictions = Evictions::default();
        }
    }

    async fn tick(&mut self) {
        let started = Instant::now();
        self.observe_evictions();
        // Validation bounds the budget; capped here too, so that no config can overflow the clock.
        let budget = self.cfg.cache.scan_budget.min(Duration::from_secs(3600));
        match self.scan(started + budget).await {
            Ok(()) => self.scan_error = None,
            Err(e) => {
                if self.scan_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(error = %e, "cache statistics scan failed; the pass starts over when Redis answers");
                }
                self.scan_error = Some(e);
                // A new connection may reach a restarted server: its cursor means nothing.
                self.conn = None;
                self.audit_ttl();
                self.pass = Pass::new(self.cfg.cache.namespaces.len(), crate::unix_now());
            }
        }
        self.enforce_policy().await;
        self.metrics
            .cache
            .operation_duration
            .with_label_values(&["stats"])
            .observe(started.elapsed().as_secs_f64());
    }

    async fn connection(&mut self) -> Result<MultiplexedConnection, String> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let c = super::conn::connect(&self.cfg)
            .await
            .map_err(|e| e.to_string())?;
        self.conn = Some(c.clone());
        Ok(c)
    }

    /// Scans until the budget is spent (at least one batch, so every tick makes progress) or
    /// the pass completes.
    async fn scan(&mut self, deadline: Instant) -> Result<(), String> {
        let mut conn = self.connection().await?;
        let started = Instant::now();
        self.pass.ticks += 1;
        let count = self.cfg.cache.pipeline_batch;
        let scrubber = self.cfg.scrubber();
        let fail =
            |what: &str, e: redis::RedisError| scrubber.scrub(&format!("{what} failed: {e}"));
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(self.pass.cursor)
                .arg("COUNT")
                .arg(count)
                .query_async(&mut conn)
                .await
                .map_err(|e| fail("SCAN", e))?;
            let mut batch = Batch {
                keys: Vec::with_capacity(keys.len()),
                other: 0,
            };
            for k in keys {
                match namespace_index(&self.cfg.cache, &k) {
                    Some(i) => batch.keys.push((i, k)),
                    None => batch.other += 1,
                }
            }
            self.visit(&mut conn, batch)
                .await
                .map_err(|e| fail(e.0, e.1))?;
            self.pass.cursor = next;
            if next == 0 {
                self.pass.busy_seconds += started.elapsed().as_secs_f64();
                self.complete();
                return Ok(());
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        self.pass.busy_seconds += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Reads the TTLs of a batch, samples memory, enforces TTLs, then counts it.
    async fn visit(
        &mut self,
        conn: &mut MultiplexedConnection,
        batch: Batch,
    ) -> Result<(), (&'static str, redis::RedisError)> {
        if batch.keys.is_empty() {
            self.pass.other_keys += batch.other;
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (_, k) in &batch.keys {
            pipe.cmd("PTTL").arg(k);
        }
        let pttls = self.read_ttls(conn, pipe).await?;
        let mut wants = vec![0usize; self.pass.tallies.len()];
        let mut sample = Vec::new();
        let mut expire = Vec::new();
        for ((i, k), pttl) in batch.keys.iter().zip(&pttls) {
            let t = &self.pass.tallies[*i];
            if *pttl != -2 && !self.memory_off && t.wants_memory_sample(wants[*i]) {
                wants[*i] += 1;
                sample.push((*i, k));
            }
            let ns = &self.cfg.cache.namespaces[*i];
            if *pttl == -1 && ns.enforce_ttl && !self.enforce_off {
                expire.push((*i, k, ns.ttl.as_secs().max(1)));
            }
        }
        if !expire.is_empty() {
            // The intent is on disk before any key changes; if it cannot be, nothing changes.
            let mut planned = vec![0u64; self.cfg.cache.namespaces.len()];
            for (i, _, _) in &expire {
                planned[*i] += 1;
            }
            let counts: Vec<(String, u64)> = (self.cfg.cache.namespaces.iter())
                .zip(planned)
                .map(|(n, c)| (n.name.clone(), c))
                .collect();
            let intent = crate::audit::Entry::ttl_enforced(&counts, 0.0)
                .map(|e| e.outcome(crate::audit::Outcome::Started, None));
            let written = match intent {
                Some(e) => self.audit.record(e).await,
                None => Ok(()),
            };
            if let Err(e) = written {
                // Changing keys unaudited is not allowed: leave them for a later pass.
                tracing::warn!(error = %e, keys = expire.len(), "enforce_ttl skipped: the audit log cannot be written");
                expire.clear();
            }
        }
        let mut pipe = redis::pipe();
        for (_, k) in &sample {
            pipe.cmd("MEMORY").arg("USAGE").arg(*k);
        }
        let sizes: Vec<Option<u64>> = if sample.is_empty() {
            Vec::new()
        } else {
            let r = pipe.query_async(conn).await;
            self.optional("MEMORY USAGE", r)?
        };
        let set = if expire.is_empty() {
            Vec::new()
        } else {
            let started = Instant::now();
            let mut pipe = redis::pipe();
            for (_, k, ttl) in &expire {
                pipe.cmd("EXPIRE").arg(*k).arg(*ttl).arg("NX");
            }
            let r = pipe.query_async(conn).await;
            let set: Vec<i64> = self.optional("EXPIRE NX", r)?;
            self.metrics
                .cache
                .operation_duration
                .with_label_values(&["ttl_enforce"])
                .observe(started.elapsed().as_secs_f64());
            set
        };
        for ((i, _), pttl) in batch.keys.iter().zip(&pttls) {
            self.pass.tallies[*i].key(*pttl);
        }
        for ((i, _), size) in sample.iter().zip(sizes) {
            if let Some(b) = size {
                self.pass.tallies[*i].memory(b);
            }
        }
        for ((i, _, _), n) in expire.iter().zip(set) {
            if n == 1 {
                self.pass.tallies[*i].enforced += 1;
                let name = self.cfg.cache.namespaces[*i].name.as_str();
                self.metrics
                    .cache
                    .ttl_enforced
                    .with_label_values(&[name])
                    .inc();
            }
        }
        self.pass.other_keys += batch.other;
        Ok(())
    }

    /// Sends a batch of `PTTL`s and counts them as steward's own lookups (Redis counts each as
    /// a keyspace hit, or a miss for a key gone since SCAN), so that the hit ratio the probe
    /// reports is the application's: the batch holds the lookup gate until it is counted.
    async fn read_ttls(
        &self,
        conn: &mut MultiplexedConnection,
        pipe: redis::Pipeline,
    ) -> Result<Vec<i64>, (&'static str, redis::RedisError)> {
        let own = &self.metrics.redis.own;
        let _batch = own.batch().await;
        let pttls: Vec<i64> = pipe.query_async(conn).await.map_err(|e| ("PTTL", e))?;
        let misses = pttls.iter().filter(|t| **t == -2).count() as u64;
        own.count(pttls.len() as u64 - misses, misses);
        Ok(pttls)
    }

    /// A command Redis refuses (disabled on a managed Redis, `EXPIRE … NX` before Redis 7) is
    /// switched off for this run and noted, so the counts go on; a connection problem fails
    /// the tick.
    fn optional<T: Default>(
        &mut self,
        what: &'static str,
        r: redis::RedisResult<T>,
    ) -> Result<T, (&'static str, redis::RedisError)> {
        match r {
            Ok(v) => Ok(v),
            Err(e) if super::conn::is_transient(&e) => Err((what, e)),
            Err(e) => {
                let (off, consequence) = match what {
                    "MEMORY USAGE" => (&mut self.memory_off, "memory is not estimated"),
                    _ => (&mut self.enforce_off, "enforce_ttl cannot give keys a TTL"),
                };
                *off = true;
                let note = self.cfg.scrubber().scrub(&format!(
                    "Redis refused {what} ({e}): {consequence}; a reload or restart tries again"
                ));
                tracing::warn!("{note}");
                self.notes.push(note);
                Ok(T::default())
            }
        }
    }

    /// Publishes the finished pass and starts the next one.
    fn complete(&mut self) {
        let now = crate::unix_now();
        self.audit_ttl();
        let figures = self.pass.finish(&self.cfg.cache, now);
        self.metrics.cache.publish_pass(&figures);
        let enforced: Vec<String> = figures
            .namespaces
            .iter()
            .filter(|n| n.ttl_enforced > 0)
            .map(|n| format!("{}={}", n.name, n.ttl_enforced))
            .collect();
        if !enforced.is_empty() {
            let total: u64 = figures.namespaces.iter().map(|n| n.ttl_enforced).sum();
            tracing::info!(
                keys = total,
                namespaces = %enforced.join(", "),
                "TTL audit: gave {total} keys without a TTL their namespace TTL"
            );
        }
        tracing::debug!(
            ticks = figures.ticks,
            scan_seconds = figures.scan_seconds,
            "cache statistics pass complete"
        );
        self.last = Some(figures);
        self.pass = Pass::new(self.cfg.cache.namespaces.len(), now);
    }

    /// Evictions per second between the monitor's last two checks that reached Redis.
    fn observe_evictions(&mut self) {
        let check = self.board.last(Service::Redis).filter(|c| c.up);
        if let Some((at, r)) = check
            .as_ref()
            .and_then(|c| Some((c.checked_at, c.redis.as_ref()?)))
        {
            self.evictions.observe(at, r.evicted_keys);
        }
    }

    /// With `enforce_eviction_policy`, sets the expected policy once per mismatch the monitor
    /// reports; a refusal (CONFIG renamed or forbidden) is reported, not retried every tick.
    async fn enforce_policy(&mut self) {
        let cache = &self.cfg.cache;
        let (Some(expected), true) = (
            cache.expect_eviction_policy.clone(),
            cache.enforce_eviction_policy,
        ) else {
            return;
        };
        let Some(actual) = self
            .board
            .last(Service::Redis)
            .filter(|c| c.up)
            .and_then(|c| c.redis.as_ref().map(|r| r.maxmemory_policy.clone()))
        else {
            return;
        };
        let started = Instant::now();
        if !self.policy.should_try(&actual, &expected) {
            return;
        }
        // The intent is on disk before Redis is changed; if it cannot be, nothing changes.
        let intent = crate::audit::Entry::config_set(&expected, &actual, &Ok(()), started)
            .outcome(crate::audit::Outcome::Started, None);
        if let Err(e) = self.audit.record(intent).await {
            // Tried again at the next tick, once the change can be recorded.
            tracing::debug!(error = %e, "CONFIG SET maxmemory-policy held back");
            self.policy.forget();
            return;
        }
        let result = match self.connection().await {
            Err(e) => Err(e),
            Ok(mut conn) => super::eviction::set_policy(&mut conn, &expected)
                .await
                .map_err(|e| self.cfg.scrubber().scrub(&e.to_string())),
        };
        let entry = crate::audit::Entry::config_set(&expected, &actual, &result, started);
        self.audit.record_detached(entry);
        self.policy.record(&actual, &expected, result);
    }

    /// One audit line for the TTLs the pass gave (counts per namespace, not keys), if any.
    fn audit_ttl(&self) {
        let counts: Vec<(String, u64)> = (self.cfg.cache.namespaces.iter())
            .zip(&self.pass.tallies)
            .map(|(n, t)| (n.name.clone(), t.enforced))
            .collect();
        let seconds = self.pass.busy_seconds;
        if let Some(e) = crate::audit::Entry::ttl_enforced(&counts, seconds) {
            self.audit.record_detached(e);
        }
    }

    fn reply(&self) -> CacheStatsReply {
        let check = self.board.last(Service::Redis);
        let mut r = CacheStatsReply::from_check(
            check.as_deref(),
            self.cfg.redis.interval.as_secs_f64(),
            self.cfg.cache.expect_eviction_policy.as_deref(),
        );
        r.evictions_per_second = self.evictions.rate.filter(|_| r.redis_up);
        r.policy_enforcement = self.policy.outcome.clone();
        r.last_pass = self.last.clone();
        r.pass_in_progress = (self.pass.ticks > 0).then(|| PassProgress {
            started_at: self.pass.started_at,
            ticks: self.pass.ticks,
            keys_seen: self.pass.tallies.iter().map(|t| t.keys).sum::<u64>() + self.pass.other_keys,
        });
        r.scan_error = self.scan_error.clone();
        r.notes = self.notes.clone();
        r
    }
}
