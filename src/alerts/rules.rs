//! The alert rules as pure functions: what steward knows now (the [`Facts`]) in, one
//! [`Observation`] per alert instance out. [`evaluate`] runs every rule — the per-topic rule
//! files and the service rules kept here (down, slow, write/read, connections, memory, hit
//! ratio, restarts, eviction policy).

use super::facts::Facts;
use super::observation::{Key, Observation, Unit};
use super::{backup_rules, drill_rules, offsite_rules};
use super::{pg_replication_rules, pg_session_rules, redis_rules};
use crate::config::{AlertsConfig, Rule, Severity};
use crate::model::check::{CheckResult, Service};

fn key(alert: &'static str, service: Service, rule: &Rule) -> Key {
    Key {
        alert,
        service: service.as_str(),
        severity: rule.severity,
    }
}

/// Evaluates every rule; disabled rules are listed, inactive, with a note saying so.
pub fn evaluate(cfg: &AlertsConfig, f: &Facts) -> Vec<Observation> {
    let mut out = Vec::new();
    for (s, check) in [(Service::Postgres, &f.postgres), (Service::Redis, &f.redis)] {
        let check = check.as_deref();
        out.push(service_down(&cfg.service_down, s, check));
        out.push(slow_response(&cfg.slow_response, s, check));
        out.push(write_read(&cfg.write_read_test_failed, s, check));
    }
    out.extend(connections(
        &cfg.postgres_connections_high,
        f.postgres.as_deref(),
    ));
    out.push(redis_memory(&cfg.redis_memory_high, f.redis.as_deref()));
    out.push(hit_ratio(&cfg.cache_hit_ratio_low, f));
    out.push(backup_rules::failed(&cfg.backup_failed, f));
    out.push(backup_rules::damaged(&cfg.backup_damaged, f));
    out.push(backup_rules::stale(&cfg.backup_stale, f));
    out.push(drill_rules::failed(&cfg.backup_restore_test_failed, f));
    out.push(drill_rules::stale(&cfg.backup_restore_test_stale, f));
    out.push(backup_rules::storage_low(&cfg.backup_storage_low, f));
    out.push(offsite_rules::stale(&cfg.backup_offsite_stale, f));
    out.push(offsite_rules::upload_failing(&cfg.backup_upload_failing, f));
    out.push(pg_session_rules::long_transaction(&cfg.long_transaction, f));
    out.push(pg_session_rules::idle_in_transaction(
        &cfg.idle_in_transaction,
        f,
    ));
    out.push(pg_session_rules::lock_waits(&cfg.lock_waits, f));
    out.push(pg_session_rules::deadlocks(&cfg.deadlocks, f));
    out.push(task_restarting(&cfg.task_restarting, f));
    out.push(eviction_policy(&cfg.cache_eviction_policy, f));
    out.push(redis_rules::persistence_failing(
        &cfg.redis_persistence_failing,
        f,
    ));
    out.push(redis_rules::replica_link_down(
        &cfg.redis_replica_link_down,
        f,
    ));
    out.push(redis_rules::rejected_connections(
        &cfg.redis_rejected_connections,
        f,
    ));
    out.push(pg_replication_rules::lag(&cfg.replication_lag, f));
    out.push(pg_replication_rules::slot_inactive(
        &cfg.replication_slot_inactive,
        f,
    ));
    out.extend(pg_replication_rules::xid_wraparound(&cfg.xid_wraparound, f));
    let disabled: Vec<&str> = cfg
        .rules()
        .into_iter()
        .filter(|(_, _, r)| !r.enabled)
        .map(|(_, name, _)| name)
        .collect();
    for o in &mut out {
        if disabled.contains(&o.key.alert) {
            o.active = false;
            o.note = Some("disabled in the config (enabled = false)".into());
        }
    }
    out
}

fn up(check: Option<&CheckResult>) -> Option<&CheckResult> {
    check.filter(|c| c.up)
}

fn service_down(rule: &Rule, s: Service, check: Option<&CheckResult>) -> Observation {
    let mut o = Observation::new(key("ServiceDown", s, rule), format!("{s} is down"));
    match check {
        None => o.note("not checked yet"),
        Some(c) => {
            o.active = !c.up;
            o.description = match &c.error {
                Some(e) if !c.up => format!("{s} cannot be reached: {e}"),
                _ => format!("{s} answers its checks"),
            };
            o
        }
    }
}

fn slow_response(rule: &Rule, s: Service, check: Option<&CheckResult>) -> Observation {
    let limit = rule.threshold.unwrap_or(f64::INFINITY);
    let mut o = Observation::new(key("SlowResponse", s, rule), format!("{s} responds slowly"))
        .unit(Unit::Seconds);
    o.threshold = Some(limit);
    let Some(latency) = up(check).and_then(|c| c.latency_seconds) else {
        return o.note("no latency: the service is not up");
    };
    o.value = Some(latency);
    o.active = latency > limit;
    o.description = format!("{s} took {latency:.3} s to answer (limit {limit} s)");
    o
}

fn write_read(rule: &Rule, s: Service, check: Option<&CheckResult>) -> Observation {
    let mut o = Observation::new(
        key("WriteReadTestFailed", s, rule),
        format!("{s} write/read test fails"),
    );
    let Some(wr) = up(check).and_then(|c| c.write_read.as_ref()) else {
        return o.note("no write/read result (service not up, or the test is off)");
    };
    o.active = !wr.ok;
    o.description = match &wr.error {
        Some(e) => format!("{s} write/read test: {e}"),
        None => format!("{s} write/read test passes"),
    };
    o
}

fn connections(rule: &Rule, check: Option<&CheckResult>) -> Vec<Observation> {
    let limits = [
        (Severity::Warning, rule.threshold),
        (Severity::Critical, rule.critical),
    ];
    let figures = up(check).and_then(|c| c.postgres.as_ref());
    limits
        .into_iter()
        .filter_map(|(severity, limit)| Some((severity, limit?)))
        .map(|(severity, limit)| {
            let k = Key {
                alert: "PostgresConnectionsHigh",
                service: "postgres",
                severity,
            };
            let mut o = Observation::new(k, "PostgreSQL connections are running out".into())
                .unit(Unit::Ratio);
            o.threshold = Some(limit);
            let Some(p) = figures.filter(|p| p.max_connections > 0) else {
                return o.note("no connection figures: PostgreSQL is not up");
            };
            o.value = Some(p.connection_usage_ratio);
            o.active = p.connection_usage_ratio > limit;
            o.description = format!(
                "{} of {} connections available to applications are in use ({:.0}%)",
                p.connections,
                p.max_connections - p.reserved_connections,
                p.connection_usage_ratio * 100.0
            );
            o
        })
        .collect()
}

fn redis_memory(rule: &Rule, check: Option<&CheckResult>) -> Observation {
    let limit = rule.threshold.unwrap_or(1.0);
    let mut o = Observation::new(
        key("RedisMemoryHigh", Service::Redis, rule),
        "Redis memory is nearly full".into(),
    )
    .unit(Unit::Ratio);
    o.threshold = Some(limit);
    let Some(r) = up(check).and_then(|c| c.redis.as_ref()) else {
        return o.note("no memory figures: Redis is not up");
    };
    if r.maxmemory_bytes == 0 {
        return o.note(
            "maxmemory is 0 (no limit), so RedisMemoryHigh cannot fire; set maxmemory on the \
             Redis server to get this alert",
        );
    }
    let ratio = r.used_memory_bytes as f64 / r.maxmemory_bytes as f64;
    o.value = Some(ratio);
    o.active = ratio > limit;
    o.description = format!(
        "Redis uses {} of {} bytes of maxmemory ({:.0}%, policy {})",
        r.used_memory_bytes,
        r.maxmemory_bytes,
        ratio * 100.0,
        r.maxmemory_policy
    );
    o
}

fn hit_ratio(rule: &Rule, f: &Facts) -> Observation {
    let limit = rule.threshold.unwrap_or(0.0);
    let min = rule.min_lookups_per_second.unwrap_or(0.0);
    let mut o = Observation::new(
        key("CacheHitRatioLow", Service::Redis, rule),
        "Redis cache hit ratio is low".into(),
    )
    .unit(Unit::Ratio);
    o.threshold = Some(limit);
    let ratio = up(f.redis.as_deref())
        .and_then(|c| c.redis.as_ref())
        .and_then(|r| r.hit_ratio);
    let (Some(ratio), Some(rate)) = (ratio, f.redis_lookups_per_second) else {
        return o.note("no hit ratio yet (needs two Redis checks with lookups between them)");
    };
    o.value = Some(ratio);
    if rate < min {
        return o.note(format!(
            "traffic of {rate:.1} lookups/s is below min_lookups_per_second ({min}); not judged"
        ));
    }
    o.active = ratio < limit;
    o.description = format!(
        "{:.1}% of {rate:.1} lookups/s hit the cache (limit {:.1}%)",
        ratio * 100.0,
        limit * 100.0
    );
    o
}

fn task_restarting(rule: &Rule, f: &Facts) -> Observation {
    let limit = rule.threshold.unwrap_or(f64::INFINITY);
    let window = rule.window.map_or(0, |w| w.as_secs());
    let mut o = Observation::new(
        Key {
            alert: "TaskRestarting",
            service: "steward",
            severity: rule.severity,
        },
        "a steward task keeps restarting".into(),
    );
    o.threshold = Some(limit);
    let over: Vec<String> = f
        .restarts_in_window
        .iter()
        .filter(|(_, n)| *n as f64 > limit)
        .map(|(t, n)| format!("{t} restarted {n} times"))
        .collect();
    o.value = Some(
        f.restarts_in_window
            .iter()
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0) as f64,
    );
    o.active = !over.is_empty();
    o.description = if over.is_empty() {
        format!("no task restarted more than {limit} times in {window} s")
    } else {
        format!(
            "{} in the last {window} s (see `steward tasks`)",
            over.join(", ")
        )
    };
    o
}

fn eviction_policy(rule: &Rule, f: &Facts) -> Observation {
    let mut o = Observation::new(
        key("CacheEvictionPolicy", Service::Redis, rule),
        "Redis eviction policy is not the expected one".into(),
    );
    let Some(expected) = &f.expect_eviction_policy else {
        return o.note("no cache.expect_eviction_policy set: nothing to compare with");
    };
    let Some(r) = up(f.redis.as_deref()).and_then(|c| c.redis.as_ref()) else {
        return o.note("no maxmemory-policy: Redis is not up");
    };
    o.active = r.maxmemory_policy != *expected;
    o.description = format!(
        "Redis maxmemory-policy is {}, cache.expect_eviction_policy is {expected}",
        r.maxmemory_policy
    );
    o
}

#[cfg(test)]
mod tests;
