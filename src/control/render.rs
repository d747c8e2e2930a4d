//! Human-readable output of replies: small aligned tables for terminals.

use super::protocol::{
    CheckResult, HealthReply, InfoReply, ReloadReply, Reply, Request, ServiceReport, StatusReply,
    TaskInfo,
};
use super::render_fmt::{ago, bytes, duration, table};
use serde::de::DeserializeOwned;

/// Renders a successful reply to `req` for a person; falls back to pretty JSON if the shape is unexpected.
pub fn render(req: &Request, reply: &Reply) -> String {
    let now = crate::unix_now();
    let out = match req {
        Request::Status => parse::<StatusReply>(reply).map(|s| status(&s, now)),
        Request::Health { .. } | Request::Check { .. } => {
            parse::<HealthReply>(reply).map(|h| services(&h.services, now))
        }
        Request::Tasks => parse::<Vec<TaskInfo>>(reply).map(|t| tasks(&t, now)),
        Request::Task { .. } => {
            parse::<TaskInfo>(reply).map(|t| format!("{}: {}\n", t.name, t.state))
        }
        Request::Reload => parse::<ReloadReply>(reply).map(|r| reload(&r)),
        Request::Info => parse::<InfoReply>(reply).map(|i| info(&i)),
        Request::Alerts => parse::<crate::alerts::AlertsReply>(reply)
            .map(|a| super::render_alerts::alerts(&a, now)),
        Request::History { .. } => {
            parse::<super::protocol::HistoryReply>(reply).map(|h| history(&h))
        }
        Request::MaintenanceOn { .. } | Request::MaintenanceOff | Request::MaintenanceStatus => {
            super::render_maintenance::render(reply, now)
        }
        Request::CacheClear { .. } => super::render_cache::clear(reply),
        Request::CacheWarmUp { .. } => super::render_cache::warm_up(reply),
        Request::CacheStats => super::render_cache_stats::render(reply, now),
        other => super::render_backup::render(other, reply),
    };
    out.unwrap_or_else(|| serde_json::to_string_pretty(&reply.data).unwrap_or_default() + "\n")
}

fn parse<T: DeserializeOwned>(reply: &Reply) -> Option<T> {
    serde_json::from_value(reply.data.clone()).ok()
}

fn status(s: &StatusReply, now: f64) -> String {
    let health = if s.healthy { "healthy" } else { "UNHEALTHY" };
    format!(
        "steward {}, up {}, {health}\n{}{}\n{}\n{}",
        s.version,
        duration(s.uptime_seconds),
        maintenance_line(s.maintenance.as_ref(), now),
        pending_line(&s.pending_restart),
        services(&s.services, now),
        tasks(&s.tasks, now)
    )
}

/// `MAINTENANCE on since …, until … (reason)`, first, because it explains silenced alerts
/// and skipped backups.
fn maintenance_line(m: Option<&crate::maintenance::Maintenance>, now: f64) -> String {
    let Some(m) = m else {
        return String::new();
    };
    let until = m.until.map_or("until turned off".to_string(), |u| {
        format!("ends in {}", duration((u - now).max(0.0)))
    });
    let reason = m
        .reason
        .as_deref()
        .map_or(String::new(), |r| format!(": {r}"));
    format!(
        "MAINTENANCE on for {}, {until}{reason}\n",
        duration((now - m.since).max(0.0))
    )
}

fn pending_line(keys: &[String]) -> String {
    if keys.is_empty() {
        return String::new();
    }
    format!(
        "RESTART NEEDED to apply {} (changed in the config file)\n",
        keys.join(", ")
    )
}

fn services(list: &[ServiceReport], now: f64) -> String {
    let mut rows = vec![vec![
        "SERVICE".into(),
        "STATE".into(),
        "LATENCY".into(),
        "CHECKED".into(),
        "DETAIL".into(),
    ]];
    for r in list {
        rows.push(match &r.last {
            None => vec![
                r.service.to_string(),
                "unknown".into(),
                "-".into(),
                "never".into(),
                "not checked yet".into(),
            ],
            Some(c) => vec![
                r.service.to_string(),
                if c.up { "up".into() } else { "DOWN".into() },
                c.latency_seconds
                    .map_or("-".into(), |l| format!("{:.1}ms", l * 1000.0)),
                ago(now - c.checked_at),
                detail(c),
            ],
        });
    }
    table(&rows)
}

fn detail(c: &CheckResult) -> String {
    let mut parts = Vec::new();
    if let Some(p) = &c.postgres {
        parts.push(format!("PostgreSQL {}", p.server_version));
        parts.push(format!(
            "{}/{} connections ({:.0}%)",
            p.connections,
            p.max_connections - p.reserved_connections,
            p.connection_usage_ratio * 100.0
        ));
        parts.push(format!(
            "{} {}",
            p.database,
            bytes(p.database_size_bytes as f64)
        ));
        if p.in_recovery {
            parts.push("standby".into());
        }
    }
    if let Some(r) = &c.redis {
        parts.push(format!("Redis {}", r.server_version));
        let max = if r.maxmemory_bytes == 0 {
            "no limit".to_string()
        } else {
            bytes(r.maxmemory_bytes as f64)
        };
        parts.push(format!(
            "{} / {max} ({})",
            bytes(r.used_memory_bytes as f64),
            r.maxmemory_policy
        ));
        parts.push(format!("{} clients", r.connected_clients));
        if let Some(h) = r.hit_ratio {
            parts.push(format!("hit ratio {:.1}%", h * 100.0));
        }
        parts.push(format!("{} keys", r.keys.values().sum::<u64>()));
    }
    if let Some(w) = &c.write_read {
        parts.push(match (&w.ok, &w.error) {
            (true, _) => "write/read ok".into(),
            (false, Some(e)) => format!("write/read FAILED: {e}"),
            (false, None) => "write/read FAILED".into(),
        });
    }
    if let Some(e) = &c.error {
        parts.push(e.clone());
    }
    parts.join(", ")
}

fn tasks(list: &[TaskInfo], now: f64) -> String {
    let mut rows = vec![vec![
        "TASK".into(),
        "STATE".into(),
        "SINCE".into(),
        "RESTARTS".into(),
        "LAST ERROR".into(),
    ]];
    for t in list {
        rows.push(vec![
            t.name.clone(),
            t.state.to_string(),
            ago(now - t.since),
            t.restarts.to_string(),
            t.last_error.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    table(&rows)
}

fn history(h: &super::protocol::HistoryReply) -> String {
    let mut rows = vec![[
        "TIME (UTC)",
        "STATE",
        "LATENCY",
        "CONNECTIONS",
        "MEMORY",
        "HIT RATIO",
        "WRITE/READ",
        "ERROR",
    ]
    .map(String::from)
    .to_vec()];
    for e in &h.entries {
        let at = chrono::DateTime::from_timestamp_millis((e.at * 1000.0) as i64)
            .map_or("-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string());
        rows.push(vec![
            at,
            if e.ok { "up".into() } else { "DOWN".into() },
            e.latency_seconds
                .map_or("-".into(), |l| format!("{:.1}ms", l * 1000.0)),
            e.connections.map_or("-".into(), |c| c.to_string()),
            e.memory_bytes.map_or("-".into(), |m| bytes(m as f64)),
            e.hit_ratio
                .map_or("-".into(), |r| format!("{:.1}%", r * 100.0)),
            e.write_read_ok.map_or(
                "-".into(),
                |ok| if ok { "ok".into() } else { "FAILED".into() },
            ),
            e.error.clone().unwrap_or_default(),
        ]);
    }
    let s = &h.summary;
    let ms = |v: Option<f64>| v.map_or("-".into(), |l| format!("{:.1}ms", l * 1000.0));
    let mut out = if h.entries.is_empty() {
        format!("no checks of {} recorded in this window\n", h.service)
    } else {
        table(&rows)
    };
    out += &format!(
        "\n{}: {} checks, availability {}, latency min {} / mean {} / p95 {} / max {}, {} incidents{}\n",
        h.service,
        s.entries,
        s.availability.map_or("-".into(), |a| format!("{:.2}%", a * 100.0)),
        ms(s.latency_min),
        ms(s.latency_mean),
        ms(s.latency_p95),
        ms(s.latency_max),
        s.incidents,
        s.longest_outage_seconds.map_or(String::new(), |o| format!(", longest outage {}", duration(o)))
    );
    out
}

fn reload(r: &ReloadReply) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let mut s = format!(
        "reloaded {}\n  changed:   {}\n  restarted: {}\n",
        r.config_file,
        list(&r.changed),
        list(&r.restarted)
    );
    if !r.needs_restart.is_empty() {
        s += &format!(
            "  needs a restart of steward to apply: {}\n",
            r.needs_restart.join(", ")
        );
    }
    s
}

fn info(i: &InfoReply) -> String {
    let per = |m: &std::collections::BTreeMap<String, f64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {}", duration(*v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let reload = match (&i.last_reload_ok, &i.last_reload_error) {
        (true, _) => "ok".to_string(),
        (false, Some(e)) => format!("FAILED: {e}"),
        (false, None) => "FAILED".to_string(),
    };
    format!(
        "version:      {}\npid:          {}\nuptime:       {}\nconfig file:  {}\nmetrics:      http://{}/metrics\nsocket:       {}\nintervals:    {}\ntimeouts:     {}\ntasks:        {} running, {} backing off, {} paused, {} stopped\nlast reload:  {reload}\nrestart for:  {}\n",
        i.version,
        i.pid,
        duration(i.uptime_seconds),
        i.config_file,
        i.metrics_listen,
        i.socket,
        per(&i.intervals),
        per(&i.timeouts),
        i.tasks.running,
        i.tasks.backing_off,
        i.tasks.paused,
        i.tasks.stopped,
        if i.pending_restart.is_empty() {
            "-".to_string()
        } else {
            i.pending_restart.join(", ")
        }
    )
}
