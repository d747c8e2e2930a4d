//! Redis metrics: what the Redis probe found at its last good check (memory, clients, keyspace,
//! persistence, replication, commands), server counters turned into steward's own counters,
//! and steward's own keyspace lookups, which are taken out of the hit ratio.

use super::reg::{MetricsError, Reg};
use prometheus::{CounterVec, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Redis figures from the last good check.
pub struct RedisMetrics {
    pub memory_used: IntGauge,
    pub memory_max: IntGauge,
    pub hit_ratio: Gauge,
    pub evicted: IntCounter,
    pub expired: IntCounter,
    pub hits: IntCounter,
    pub misses: IntCounter,
    pub connected_clients: IntGauge,
    pub max_clients: IntGauge,
    pub ops_per_second: IntGauge,
    pub db_keys: IntGaugeVec,
    pub info: IntGaugeVec,
    /// Persistence: the last BGSAVE and AOF write, and what is not saved yet.
    pub rdb_last_bgsave_success: IntGauge,
    pub rdb_changes_since_last_save: IntGauge,
    pub last_save_timestamp: Gauge,
    pub aof_enabled: IntGauge,
    pub aof_last_write_success: IntGauge,
    /// Replication: `role` is always `master` and `replica`, 1 for the current one.
    pub role: IntGaugeVec,
    pub connected_replicas: IntGauge,
    /// No labels; present only on a replica (a master has no link to judge).
    pub master_link_up: IntGaugeVec,
    pub replica_lag_bytes: IntGaugeVec,
    /// Clients.
    pub blocked_clients: IntGauge,
    pub rejected_connections: IntCounter,
    /// Commands (INFO commandstats, SLOWLOG LEN, INFO latencystats).
    pub commands: IntCounterVec,
    pub commands_duration: CounterVec,
    pub commands_failed: IntCounterVec,
    pub slowlog_length: IntGauge,
    pub command_latency: GaugeVec,
    /// Memory and server.
    pub memory_fragmentation_ratio: Gauge,
    pub memory_rss: IntGauge,
    pub memory_peak: IntGauge,
    pub net_input: IntCounter,
    pub net_output: IntCounter,
    pub start_time: Gauge,
    /// steward's own keyspace lookups, subtracted from hits and misses.
    pub own: OwnLookups,
}

/// Keyspace lookups steward itself makes (the statistics scan's `PTTL`s, the write/read test's
/// `GET`): Redis counts them as hits and misses like the application's, so the probe takes
/// them out. Every lookup batch holds [`OwnLookups::batch`] from before it is sent until it is
/// counted, and the probe's `INFO` holds [`OwnLookups::snapshot`], so an `INFO` never lands
/// between a batch's execution and its count: the subtraction is exact.
pub struct OwnLookups {
    hits: IntCounter,
    misses: IntCounter,
    gate: RwLock<()>,
    /// Hits and misses counted since the probe last took them.
    pending_hits: AtomicU64,
    pending_misses: AtomicU64,
}

impl OwnLookups {
    fn new(r: &Reg) -> Result<Self, MetricsError> {
        let v = r.counter(
            "steward_redis_own_lookups_total",
            "Keyspace lookups made by steward itself (statistics scan, write/read test), by \
             result; already taken out of the keyspace hit and miss counters and the hit ratio.",
            &["result"],
        )?;
        Ok(Self {
            hits: v.with_label_values(&["hit"]),
            misses: v.with_label_values(&["miss"]),
            gate: RwLock::new(()),
            pending_hits: AtomicU64::new(0),
            pending_misses: AtomicU64::new(0),
        })
    }

    /// Held by a batch of steward's own lookups from before it is sent until it is counted.
    pub async fn batch(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().await
    }

    /// Held by the probe around its `INFO`: no batch of steward's lookups is in flight.
    pub async fn snapshot(&self) -> RwLockWriteGuard<'_, ()> {
        self.gate.write().await
    }

    /// Counts lookups steward made (call it before releasing the batch guard).
    pub fn count(&self, hits: u64, misses: u64) {
        self.hits.inc_by(hits);
        self.misses.inc_by(misses);
        self.pending_hits.fetch_add(hits, Ordering::Relaxed);
        self.pending_misses.fetch_add(misses, Ordering::Relaxed);
    }

    /// Hits and misses counted since the last call.
    pub fn take(&self) -> (u64, u64) {
        (
            self.pending_hits.swap(0, Ordering::Relaxed),
            self.pending_misses.swap(0, Ordering::Relaxed),
        )
    }
}

fn float_counter(
    r: &Reg,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<CounterVec, MetricsError> {
    let m = CounterVec::new(prometheus::Opts::new(name, help), labels)?;
    r.0.register(Box::new(m.clone()))?;
    Ok(m)
}

impl RedisMetrics {
    pub(super) fn new(r: &Reg) -> Result<Self, MetricsError> {
        let hit_ratio = r.float(
            "steward_redis_cache_hit_ratio",
            "Keyspace hits over lookups during the last check interval, steward's own lookups \
             left out (NaN when there were none).",
        )?;
        hit_ratio.set(f64::NAN);
        let role = r.int_vec(
            "steward_redis_role",
            "1 for the server's current replication role, 0 for the other.",
            &["role"],
        )?;
        let m = Self {
            memory_used: r.int("steward_redis_memory_used_bytes", "INFO used_memory.")?,
            memory_max: r.int(
                "steward_redis_memory_max_bytes",
                "INFO maxmemory (0 means no limit).",
            )?,
            hit_ratio,
            evicted: r.counter0(
                "steward_redis_evicted_keys_total",
                "Keys evicted, as seen by steward.",
            )?,
            expired: r.counter0(
                "steward_redis_expired_keys_total",
                "Keys expired, as seen by steward.",
            )?,
            hits: r.counter0(
                "steward_redis_keyspace_hits_total",
                "Keyspace hits, as seen by steward, its own lookups left out.",
            )?,
            misses: r.counter0(
                "steward_redis_keyspace_misses_total",
                "Keyspace misses, as seen by steward, its own lookups left out.",
            )?,
            connected_clients: r
                .int("steward_redis_connected_clients", "INFO connected_clients.")?,
            max_clients: r.int("steward_redis_max_clients", "The server's maxclients.")?,
            ops_per_second: r.int(
                "steward_redis_ops_per_second",
                "INFO instantaneous_ops_per_sec.",
            )?,
            db_keys: r.int_vec("steward_redis_db_keys", "Keys per database.", &["db"])?,
            info: r.int_vec(
                "steward_redis_info",
                "Always 1; the labels carry the server version and eviction policy.",
                &["version", "maxmemory_policy"],
            )?,
            rdb_last_bgsave_success: r.int(
                "steward_redis_rdb_last_bgsave_success",
                "1 when the last RDB save succeeded (INFO rdb_last_bgsave_status), else 0.",
            )?,
            rdb_changes_since_last_save: r.int(
                "steward_redis_rdb_changes_since_last_save",
                "Writes since the last RDB save (INFO rdb_changes_since_last_save).",
            )?,
            last_save_timestamp: r.float(
                "steward_redis_last_save_timestamp_seconds",
                "Unix time of the last successful RDB save (INFO rdb_last_save_time).",
            )?,
            aof_enabled: r.int(
                "steward_redis_aof_enabled",
                "1 when the append-only file is on.",
            )?,
            aof_last_write_success: r.int(
                "steward_redis_aof_last_write_success",
                "1 when the last AOF write succeeded (INFO aof_last_write_status), else 0.",
            )?,
            role,
            connected_replicas: r.int(
                "steward_redis_connected_replicas",
                "Replicas connected to this server (INFO connected_slaves).",
            )?,
            master_link_up: r.int_vec(
                "steward_redis_master_link_up",
                "On a replica, 1 when its link to the master is up (INFO master_link_status).",
                &[],
            )?,
            replica_lag_bytes: r.int_vec(
                "steward_redis_replica_lag_bytes",
                "On a master, replication bytes each replica is behind (master_repl_offset minus \
                 its offset); at most 32 replicas by ip:port, the rest summed as other.",
                &["replica"],
            )?,
            blocked_clients: r.int(
                "steward_redis_blocked_clients",
                "Clients waiting in a blocking command (BLPOP, XREAD BLOCK, WAIT…).",
            )?,
            rejected_connections: r.counter0(
                "steward_redis_rejected_connections_total",
                "Connections the server refused because of maxclients, as seen by steward.",
            )?,
            commands: r.counter(
                "steward_redis_commands_total",
                "Calls per command (INFO commandstats), as seen by steward; at most 300 \
                 commands, the rest as other.",
                &["command"],
            )?,
            commands_duration: float_counter(
                r,
                "steward_redis_commands_duration_seconds_total",
                "Time the server spent executing each command (INFO commandstats usec).",
                &["command"],
            )?,
            commands_failed: r.counter(
                "steward_redis_commands_failed_total",
                "Calls per command that failed or were rejected (INFO commandstats \
                 failed_calls + rejected_calls).",
                &["command"],
            )?,
            slowlog_length: r.int(
                "steward_redis_slowlog_length",
                "Entries in the slow log (SLOWLOG LEN).",
            )?,
            command_latency: r.float_vec(
                "steward_redis_command_latency_seconds",
                "Per-command latency percentiles since the server started or CONFIG RESETSTAT \
                 (INFO latencystats, Redis 7+): percentile 50, 99 and 99.9.",
                &["command", "percentile"],
            )?,
            memory_fragmentation_ratio: r.float(
                "steward_redis_memory_fragmentation_ratio",
                "INFO mem_fragmentation_ratio: resident memory over memory Redis allocated.",
            )?,
            memory_rss: r.int(
                "steward_redis_memory_rss_bytes",
                "INFO used_memory_rss: memory the OS gave Redis.",
            )?,
            memory_peak: r.int(
                "steward_redis_memory_peak_bytes",
                "INFO used_memory_peak.",
            )?,
            net_input: r.counter0(
                "steward_redis_net_input_bytes_total",
                "Bytes Redis read from the network (INFO total_net_input_bytes), as seen by steward.",
            )?,
            net_output: r.counter0(
                "steward_redis_net_output_bytes_total",
                "Bytes Redis wrote to the network (INFO total_net_output_bytes), as seen by steward.",
            )?,
            start_time: r.float(
                "steward_redis_start_time_seconds",
                "Unix time the Redis server started.",
            )?,
            own: OwnLookups::new(r)?,
        };
        for role in ["master", "replica"] {
            m.role.with_label_values(&[role]);
        }
        m.memory_fragmentation_ratio.set(f64::NAN);
        Ok(m)
    }
}
