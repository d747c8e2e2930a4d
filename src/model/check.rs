//! A monitored service and what one check of it found: figures, pool state, the write/read
//! test, and the per-service report `health` answers with.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A monitored service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Postgres,
    Redis,
}

impl Service {
    /// Both services, in display order.
    pub const ALL: [Service; 2] = [Service::Postgres, Service::Redis];

    /// The label value and display name.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Redis => "redis",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Service {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "postgres" => Ok(Service::Postgres),
            "redis" => Ok(Service::Redis),
            other => Err(format!(
                "unknown service {other:?}; expected postgres or redis"
            )),
        }
    }
}

/// The outcome of the write/read test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteRead {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A connection pool's occupancy at check time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct PoolState {
    pub max: u32,
    pub open: u32,
    pub idle: u32,
    pub in_use: u32,
}

impl PoolState {
    /// A bb8 pool's state, with its configured maximum.
    pub fn of(s: &bb8::State, max: u32) -> Self {
        Self {
            max,
            open: s.connections,
            idle: s.idle_connections,
            in_use: s.connections.saturating_sub(s.idle_connections),
        }
    }
}

/// What a PostgreSQL check measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PgFigures {
    pub server_version: String,
    pub server_version_num: i64,
    pub database: String,
    pub database_size_bytes: i64,
    pub connections: i64,
    pub max_connections: i64,
    pub reserved_connections: i64,
    /// Connections in use over those available to ordinary users.
    pub connection_usage_ratio: f64,
    pub in_recovery: bool,
}

/// What a Redis check measured (from `INFO`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RedisFigures {
    pub server_version: String,
    pub used_memory_bytes: u64,
    pub maxmemory_bytes: u64,
    pub maxmemory_policy: String,
    /// INFO `mem_fragmentation_ratio`: memory the OS gave Redis over what Redis uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_fragmentation_ratio: Option<f64>,
    pub connected_clients: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxclients: Option<u64>,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    /// Hits over lookups since the previous check; absent when there were no lookups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hit_ratio: Option<f64>,
    /// The application's keyspace lookups since the previous check (steward's own left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookups: Option<u64>,
    pub evicted_keys: u64,
    pub expired_keys: u64,
    pub ops_per_sec: u64,
    /// Keys per database, e.g. {"db0": 12}; the configured database and databases seen
    /// before are listed with 0 when empty.
    pub keys: BTreeMap<String, u64>,
    /// Persistence, replication, clients and server facts (`INFO all`); `None` where the
    /// server does not report them.
    #[serde(default)]
    pub depth: RedisDepth,
}

/// The deeper facts of a Redis check: persistence, replication, clients, memory and server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RedisDepth {
    /// INFO `rdb_last_bgsave_status` is `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdb_last_bgsave_ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdb_changes_since_last_save: Option<u64>,
    /// INFO `rdb_last_save_time`, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdb_last_save_time: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aof_enabled: Option<bool>,
    /// INFO `aof_last_write_status` is `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aof_last_write_ok: Option<bool>,
    /// `master` or `replica`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_replicas: Option<u64>,
    /// On a replica: INFO `master_link_status` is `up`; `None` on a master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_link_up: Option<bool>,
    /// On a master: bytes each replica (`ip:port`, at most 32, the rest as `other`) is behind.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replica_lag_bytes: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_clients: Option<u64>,
    /// INFO `rejected_connections`: connections refused (maxclients) since the server started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_connections: Option<u64>,
    /// Connections refused since the previous check (none on the first check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_connections_delta: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_rss_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_peak_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_input_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_output_bytes: Option<u64>,
    /// Unix time the server started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time_seconds: Option<f64>,
    /// SLOWLOG LEN, when the server allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowlog_length: Option<u64>,
}

/// One probe of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub service: Service,
    pub up: bool,
    /// When the check finished, Unix seconds.
    pub checked_at: f64,
    /// Connect + round trip (`SELECT 1` / `PING`), when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_seconds: Option<f64>,
    /// The whole probe, all queries included.
    pub duration_seconds: f64,
    /// Why the service is down, secrets removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_read: Option<WriteRead>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PgFigures>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisFigures>,
}

impl CheckResult {
    /// A check of `service` that has found nothing yet: down, no figures; probes fill it in.
    pub fn unchecked(service: Service) -> Self {
        Self {
            service,
            up: false,
            checked_at: 0.0,
            latency_seconds: None,
            duration_seconds: 0.0,
            error: None,
            write_read: None,
            pool: None,
            postgres: None,
            redis: None,
        }
    }
}

/// A service and its newest check (none yet right after start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceReport {
    pub service: Service,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<CheckResult>,
}

impl ServiceReport {
    /// Up means checked and found up.
    pub fn up(&self) -> bool {
        self.last.as_ref().is_some_and(|c| c.up)
    }
}

/// Reply to `health` (and the body of `/health`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReply {
    pub healthy: bool,
    pub services: Vec<ServiceReport>,
    /// Why the backup directory cannot be used, when it cannot (it does not make steward
    /// unhealthy: the services are what `healthy` is about).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_dir_problem: Option<String>,
}
