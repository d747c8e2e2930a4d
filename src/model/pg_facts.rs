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
}

/// The `server` group: when it started and the settings the other judgements depend on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerFacts {
    pub start_time_seconds: f64,
    pub max_connections: i64,
    pub autovacuum_freeze_max_age: i64,
}
