//! Human-readable output of `cache stats`: the server's figures, the eviction policy (with its
//! warning), then one row per namespace from the last complete statistics pass.

use super::protocol::Reply;
use super::render_fmt::{bytes, duration, table};
use crate::cache::report::CacheStatsReply;

/// Renders a `cache_stats` reply; `None` when the shape is unexpected.
pub fn render(reply: &Reply, now: f64) -> Option<String> {
    let r: CacheStatsReply = serde_json::from_value(reply.data.clone()).ok()?;
    Some(stats(&r, now))
}

fn stats(r: &CacheStatsReply, now: f64) -> String {
    let mut out = String::new();
    match &r.redis_error {
        Some(e) => out += &format!("redis: {e}\n"),
        None => {
            let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0));
            out += &format!(
                "hit ratio    {} (last {})\n",
                pct(r.hit_ratio),
                duration(r.window_seconds)
            );
            let max = match r.maxmemory_bytes {
                Some(0) | None => "no limit".to_string(),
                Some(m) => bytes(m as f64),
            };
            out += &format!(
                "memory       {} / {max}, fragmentation {}\n",
                r.used_memory_bytes.map_or("-".into(), |b| bytes(b as f64)),
                r.fragmentation_ratio
                    .map_or("-".into(), |f| format!("{f:.2}"))
            );
            out += &format!(
                "evictions    {}\n",
                r.evictions_per_second
                    .map_or("- (needs two checks)".into(), |e| format!("{e:.1}/s"))
            );
            out += &format!(
                "policy       {}{}\n",
                r.maxmemory_policy.as_deref().unwrap_or("-"),
                match &r.expected_policy {
                    Some(e) => format!(" (expected {e})"),
                    None => String::new(),
                }
            );
        }
    }
    if let Some(w) = &r.policy_warning {
        out += &format!("WARNING: {w}\n");
    }
    if let Some(p) = &r.policy_enforcement {
        out += &format!("enforcement: {p}\n");
    }
    if let Some(e) = &r.scan_error {
        out += &format!("scan: {e}\n");
    }
    for n in &r.notes {
        out += &format!("note: {n}\n");
    }
    out += "\n";
    match &r.last_pass {
        None => out += "no complete statistics pass yet\n",
        Some(p) => {
            out += &format!(
                "last complete pass: {} ago, {} ticks, {:.3}s scanning; {} keys outside every namespace\n",
                duration(now - p.finished_at),
                p.ticks,
                p.scan_seconds,
                p.other_keys
            );
            let mut rows = vec![[
                "NAMESPACE",
                "KEYS",
                "NO TTL",
                "TTL MIN/MEDIAN/MAX",
                "MEMORY (EST.)",
                "ENFORCED",
            ]
            .map(String::from)
            .to_vec()];
            for n in &p.namespaces {
                rows.push(vec![
                    n.name.clone(),
                    n.keys.to_string(),
                    n.keys_without_ttl.to_string(),
                    n.ttl.map_or("-".into(), |t| {
                        format!(
                            "{} / {} / {}",
                            duration(t.min_seconds),
                            duration(t.median_seconds),
                            duration(t.max_seconds)
                        )
                    }),
                    bytes(n.memory_bytes as f64),
                    if n.enforce_ttl {
                        n.ttl_enforced.to_string()
                    } else {
                        "off".into()
                    },
                ]);
            }
            out += &table(&rows);
        }
    }
    if let Some(p) = &r.pass_in_progress {
        out += &format!(
            "pass in progress: {} ticks, {} keys so far\n",
            p.ticks, p.keys_seen
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cache_pass::{NamespaceFigures, PassFigures};

    #[test]
    fn stats_show_the_warning_and_a_row_per_namespace() {
        let mut r = CacheStatsReply::from_check(None, 10.0, Some("allkeys-lru"));
        r.policy_warning = Some("maxmemory-policy is noeviction, expected allkeys-lru".into());
        r.last_pass = Some(PassFigures {
            started_at: 90.0,
            finished_at: 95.0,
            ticks: 4,
            scan_seconds: 0.02,
            other_keys: 3,
            namespaces: vec![NamespaceFigures {
                name: "sessions".into(),
                prefix: "cache:sessions:".into(),
                ttl_seconds: 3600.0,
                enforce_ttl: false,
                keys: 120,
                keys_without_ttl: 7,
                ttl_enforced: 0,
                ttl: None,
                memory_bytes: 4096,
                memory_sampled_keys: 64,
            }],
        });
        let out = stats(&r, 100.0);
        assert!(
            out.contains("redis: Redis has not been checked yet"),
            "{out}"
        );
        assert!(
            out.contains("WARNING: maxmemory-policy is noeviction"),
            "{out}"
        );
        assert!(out.contains("4 ticks"), "{out}");
        let row = out.lines().find(|l| l.starts_with("sessions")).unwrap();
        assert!(
            row.contains("120") && row.contains(" 7 ") && row.contains("off"),
            "{row}"
        );
    }
}
