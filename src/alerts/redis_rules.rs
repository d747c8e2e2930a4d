//! The Redis depth rules: RedisPersistenceFailing (the last RDB save or AOF write failed),
//! RedisReplicaLinkDown (a replica lost its master) and RedisRejectedConnections (connections
//! refused at `maxclients` since the previous check). Each judges the last Redis check only;
//! while Redis is down they are inactive with a note (ServiceDown speaks then).

use super::facts::Facts;
use super::observation::{Key, Observation};
use crate::config::Rule;
use crate::model::check::RedisDepth;

const NOT_UP: &str = "no figures: Redis is not up";

fn blank(alert: &'static str, rule: &Rule, summary: &str) -> Observation {
    let key = Key {
        alert,
        service: "redis",
        severity: rule.severity,
    };
    Observation::new(key, summary.into())
}

/// The deeper facts of the last Redis check, when it reached Redis.
fn depth(f: &Facts) -> Option<&RedisDepth> {
    let c = f.redis.as_deref().filter(|c| c.up)?;
    c.redis.as_ref().map(|r| &r.depth)
}

/// RedisPersistenceFailing: the last RDB save (`rdb_last_bgsave_status`) or, with AOF on, the
/// last AOF write (`aof_last_write_status`) failed; the next one that succeeds resolves it.
pub fn persistence_failing(rule: &Rule, f: &Facts) -> Observation {
    let mut o = blank(
        "RedisPersistenceFailing",
        rule,
        "Redis cannot persist its data",
    );
    let Some(d) = depth(f) else {
        o.note = Some(NOT_UP.into());
        return o;
    };
    let mut failing = Vec::new();
    if d.rdb_last_bgsave_ok == Some(false) {
        failing.push("the last RDB save (BGSAVE) failed");
    }
    if d.aof_enabled == Some(true) && d.aof_last_write_ok == Some(false) {
        failing.push("the last append-only file write failed");
    }
    o.active = !failing.is_empty();
    o.value = Some(failing.len() as f64);
    o.description = if failing.is_empty() {
        "the last RDB save and AOF write succeeded".into()
    } else {
        format!(
            "{}; {} writes are not saved (see the Redis log: disk full or an unwritable dir)",
            failing.join(" and "),
            d.rdb_changes_since_last_save.unwrap_or(0)
        )
    };
    o
}

/// RedisReplicaLinkDown: on a replica, the link to its master is down
/// (`master_link_status:down`); on a master it has nothing to judge.
pub fn replica_link_down(rule: &Rule, f: &Facts) -> Observation {
    let mut o = blank(
        "RedisReplicaLinkDown",
        rule,
        "Redis replica lost its master",
    );
    let Some(d) = depth(f) else {
        o.note = Some(NOT_UP.into());
        return o;
    };
    let Some(up) = d.master_link_up else {
        o.note = Some("Redis is a master: there is no replication link to judge".into());
        return o;
    };
    o.active = !up;
    o.value = Some(f64::from(u8::from(!up)));
    o.description = if up {
        "the replica's link to its master is up".into()
    } else {
        "the replica's link to its master is down: it serves stale data and takes no writes \
         from the master"
            .into()
    };
    o
}

/// RedisRejectedConnections: more than `threshold` (default 0) connections were refused at
/// `maxclients` since the previous check.
pub fn rejected_connections(rule: &Rule, f: &Facts) -> Observation {
    let mut o = blank(
        "RedisRejectedConnections",
        rule,
        "Redis refuses connections (maxclients reached)",
    );
    let limit = rule.threshold.unwrap_or(0.0);
    o.threshold = Some(limit);
    let Some(d) = depth(f) else {
        o.note = Some(NOT_UP.into());
        return o;
    };
    let Some(n) = d.rejected_connections_delta else {
        o.note = Some("needs two Redis checks to count refused connections".into());
        return o;
    };
    o.value = Some(n as f64);
    o.active = n as f64 > limit;
    o.description = format!(
        "{n} connections refused at maxclients since the previous check ({} in all since Redis started)",
        d.rejected_connections.unwrap_or(0)
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AlertsConfig;
    use crate::model::check::{CheckResult, RedisFigures, Service};
    use std::sync::Arc;

    fn facts(up: bool, depth: RedisDepth) -> Facts {
        let mut c = CheckResult::unchecked(Service::Redis);
        c.up = up;
        c.redis = Some(RedisFigures {
            depth,
            ..RedisFigures::default()
        });
        Facts {
            redis: Some(Arc::new(c)),
            ..Facts::default()
        }
    }

    #[test]
    fn persistence_failing_judges_rdb_and_aof() {
        let rule = &AlertsConfig::default().redis_persistence_failing;
        let judge = |d: RedisDepth| persistence_failing(rule, &facts(true, d));
        let ok = RedisDepth {
            rdb_last_bgsave_ok: Some(true),
            aof_enabled: Some(false),
            aof_last_write_ok: Some(false),
            ..RedisDepth::default()
        };
        assert!(
            !judge(ok.clone()).active,
            "AOF off: its status does not count"
        );
        let aof = RedisDepth {
            aof_enabled: Some(true),
            ..ok.clone()
        };
        assert!(judge(aof).active);
        let rdb = RedisDepth {
            rdb_last_bgsave_ok: Some(false),
            rdb_changes_since_last_save: Some(7),
            ..ok
        };
        let o = judge(rdb);
        assert!(o.active && o.description.contains("7 writes"), "{o:?}");
        let down = persistence_failing(rule, &facts(false, RedisDepth::default()));
        assert!(!down.active && down.note.is_some());
    }

    #[test]
    fn replica_link_and_rejected_connections() {
        let cfg = AlertsConfig::default();
        let link = |up: Option<bool>| {
            let d = RedisDepth {
                master_link_up: up,
                ..RedisDepth::default()
            };
            replica_link_down(&cfg.redis_replica_link_down, &facts(true, d))
        };
        assert!(link(Some(false)).active);
        assert!(!link(Some(true)).active);
        assert!(link(None).note.unwrap().contains("master"));
        let rejected = |n: Option<u64>| {
            let d = RedisDepth {
                rejected_connections_delta: n,
                ..RedisDepth::default()
            };
            rejected_connections(&cfg.redis_rejected_connections, &facts(true, d))
        };
        assert!(rejected(Some(2)).active);
        assert!(!rejected(Some(0)).active);
        assert!(rejected(None).note.is_some());
    }
}
