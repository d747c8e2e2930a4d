//! What the PostgreSQL collector groups found that steward's own alerts judge (the figures
//! themselves are in the metric families): one snapshot, replaced after each round of groups.

/// The newest round of the collector groups. A group that failed keeps the part of its last
/// good run through two failed runs in a row (`monitor::pg_collect::keep`), so one failed round
/// does not resolve an alert; a group that never succeeded, failed longer, or does not apply to
/// the server leaves its part `None`, so a rule never judges a value it does not have (or a
/// stale one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PgFacts {
    /// Unix time the round finished.
    pub collected_at: f64,
    /// The server's `server_version_num` (0 before the first connection).
    pub version_num: i32,
    /// From the `server` group.
    pub server: Option<ServerFacts>,
    /// From the `sessions` group.
    pub sessions: Option<SessionFacts>,
    /// From the `database` group.
    pub database: Option<DatabaseFacts>,
    /// From the `replication` group.
    pub replication: Option<ReplicationFacts>,
    /// From the `vacuum` group.
    pub vacuum: Option<VacuumFacts>,
    /// From the `checkpoints` group.
    pub archiver: Option<ArchiverFacts>,
}

/// The `server` group: when it started and the settings the other judgements depend on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerFacts {
    pub start_time_seconds: f64,
    pub max_connections: i64,
    pub autovacuum_freeze_max_age: i64,
}

/// The `sessions` group: what LongTransaction, IdleInTransaction and LockWaits judge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionFacts {
    /// Age of the oldest transaction of an active session, seconds (0: none).
    pub active_xact_max_age_seconds: f64,
    /// Age of the oldest transaction of a session idle in transaction, seconds (0: none).
    pub idle_in_xact_max_age_seconds: f64,
    /// Client sessions waiting for a lock another session holds.
    pub blocked_sessions: i64,
    /// The longest current lock wait, seconds (0: none).
    pub lock_wait_max_seconds: f64,
}

/// The `database` group: what Deadlocks judges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatabaseFacts {
    /// Each shown database's `pg_stat_database.deadlocks` counter.
    pub deadlocks: std::collections::BTreeMap<String, f64>,
    /// Connectable databases on the server (more than are shown when over the cap).
    pub databases_total: usize,
}

/// The `replication` group: the worst lag among the replicas (on a primary), the replay delay
/// (on a standby), and the inactive slots holding WAL back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicationFacts {
    pub in_recovery: bool,
    /// Replicas streaming from this server (walsenders of `pg_basebackup` left out).
    pub replicas: u32,
    /// The largest `replay_lag` among them, and whose (its `application_name`); `None` without
    /// replicas or when the role may not see their positions.
    pub max_lag_seconds: Option<(String, f64)>,
    /// The largest `pg_current_wal_lsn() − replay_lsn`, and whose.
    pub max_lag_bytes: Option<(String, f64)>,
    /// On a standby: `now() − pg_last_xact_replay_timestamp()`, 0 when it has replayed all it
    /// received.
    pub standby_replay_delay_seconds: Option<f64>,
    /// On a standby: received but not yet replayed WAL.
    pub standby_lag_bytes: Option<f64>,
    /// Inactive slots and the WAL each retains, most first (at most 32).
    pub inactive_slots: Vec<(String, f64)>,
}

/// The `vacuum` group: how close the oldest database is to transaction ID wraparound.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VacuumFacts {
    /// The database with the oldest `datfrozenxid`.
    pub oldest_database: String,
    pub max_xid_age: i64,
    /// `max_xid_age / 2^31`.
    pub max_wraparound_ratio: f64,
}

/// The WAL archiver's counters (`pg_stat_archiver`), from the `checkpoints` group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArchiverFacts {
    pub archived_count: i64,
    pub failed_count: i64,
    /// Unix times, `None` when it never happened (since the last statistics reset).
    pub last_archived_time: Option<f64>,
    pub last_failed_time: Option<f64>,
}
