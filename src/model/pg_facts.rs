//! What the PostgreSQL collector groups found that steward's own alerts judge (the figures
//! themselves are in the metric families): one snapshot, replaced after each round of groups.

/// The newest round of the collector groups; a group that failed or did not run leaves its
/// part `None`, so a rule never judges a value it does not have.
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
