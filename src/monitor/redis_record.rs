//! Writes the persistence, replication, clients, memory and server facts of a Redis check into
//! the metrics (the counters are advanced by `redis_counters`).

use crate::metrics::RedisMetrics;
use crate::model::check::RedisDepth;

/// Sets the gauges from a check's facts; a fact the server did not report leaves its gauge
/// as it was (0 before any server reported it).
pub fn depth(r: &RedisMetrics, d: &RedisDepth) {
    let int = |g: &prometheus::IntGauge, v: Option<u64>| {
        if let Some(v) = v {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    };
    let flag = |g: &prometheus::IntGauge, v: Option<bool>| int(g, v.map(u64::from));
    flag(&r.rdb_last_bgsave_success, d.rdb_last_bgsave_ok);
    int(
        &r.rdb_changes_since_last_save,
        d.rdb_changes_since_last_save,
    );
    if let Some(t) = d.rdb_last_save_time {
        r.last_save_timestamp.set(t as f64);
    }
    flag(&r.aof_enabled, d.aof_enabled);
    flag(&r.aof_last_write_success, d.aof_last_write_ok);
    if let Some(role) = &d.role {
        for known in ["master", "replica"] {
            r.role
                .with_label_values(&[known])
                .set(i64::from(role == known));
        }
    }
    int(&r.connected_replicas, d.connected_replicas);
    r.master_link_up.reset();
    if let Some(up) = d.master_link_up {
        r.master_link_up
            .with_label_values::<&str>(&[])
            .set(i64::from(up));
    }
    r.replica_lag_bytes.reset();
    for (replica, lag) in &d.replica_lag_bytes {
        r.replica_lag_bytes
            .with_label_values(&[replica.as_str()])
            .set(i64::try_from(*lag).unwrap_or(i64::MAX));
    }
    int(&r.blocked_clients, d.blocked_clients);
    int(&r.memory_rss, d.memory_rss_bytes);
    int(&r.memory_peak, d.memory_peak_bytes);
    int(&r.slowlog_length, d.slowlog_length);
    if let Some(t) = d.start_time_seconds {
        r.start_time.set(t);
    }
}
