//! `steward cache stats`, the TTL audit and the eviction policy, end to end against a real
//! throwaway Redis: exact per-namespace counts on a known data set reached over several scan
//! ticks, `enforce_ttl` giving one namespace's keys their TTL while the others keep theirs
//! without, the eviction-policy warning and `CacheEvictionPolicy` alert, `enforce_eviction_policy`
//! (refused once by Redis, then applied), and a Redis outage during which `cache stats` still
//! answers from the last complete pass.

mod common;

use common::*;
use std::time::{Duration, Instant};
use steward::cache::report::CacheStatsReply;
use steward::model::cache_pass::NamespaceFigures;

const WAIT: Duration = Duration::from_secs(60);

/// sessions: 1500 keys with a TTL, 200 without; analytics: 1000 with; user_data: 300 with,
/// 500 without; outside every namespace: 400 `app:` and 100 `cache:other:` keys.
fn fill_known_set(redis: &Redis) {
    fill(redis, "cache:sessions:t:", 1500, 3600);
    fill(redis, "cache:sessions:n:", 200, 0);
    fill(redis, "cache:analytics:", 1000, 600);
    fill(redis, "cache:user_data:t:", 300, 1800);
    fill(redis, "cache:user_data:n:", 500, 0);
    fill(redis, "app:", 400, 0);
    fill(redis, "cache:other:", 100, 0);
}

/// `n` keys `<prefix><i>`, with a TTL of `ttl` seconds (0: none), in one server-side script.
fn fill(redis: &Redis, prefix: &str, n: usize, ttl: u64) {
    let script = "for i = 1, tonumber(ARGV[2]) do \
                    if ARGV[3] == '0' then redis.call('SET', ARGV[1] .. i, 'value-' .. i) \
                    else redis.call('SET', ARGV[1] .. i, 'value-' .. i, 'EX', ARGV[3]) end \
                  end return 1";
    let r = redis
        .command(&[
            "EVAL",
            script,
            "0",
            prefix,
            &n.to_string(),
            &ttl.to_string(),
        ])
        .unwrap();
    assert_eq!(r, ":1", "filling {prefix}");
}

/// Keys matching `pattern` that have no TTL (KEYS inside a script: fine for a test's check).
fn without_ttl(redis: &Redis, pattern: &str) -> u64 {
    let script = "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
                    if redis.call('TTL', k) == -1 then n = n + 1 end end return n";
    let r = redis.command(&["EVAL", script, "0", pattern]).unwrap();
    r.strip_prefix(':').unwrap().parse().unwrap()
}

fn policy(redis: &Redis) -> String {
    let info = redis.command(&["INFO", "memory"]).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("maxmemory_policy:"))
        .unwrap()
        .trim()
        .to_string()
}

fn namespaces(extra: &str) -> String {
    format!(
        r#"
[cache]
{extra}

[[cache.namespace]]
name = "sessions"
prefix = "cache:sessions:"
ttl = "1h"

[[cache.namespace]]
name = "analytics"
prefix = "cache:analytics:"
ttl = "10m"

[[cache.namespace]]
name = "user_data"
prefix = "cache:user_data:"
ttl = "30m"
"#
    )
}

/// A daemon for `redis` (PostgreSQL absent: the cache does not need it) with extra TOML.
fn start(redis: &Redis, toml: String) -> Steward {
    Steward::builder_urls(Some(absent_pg_url()), Some(redis.url()))
        .with(move |s| s.backup += &toml)
        .start()
}

fn stats(st: &Steward) -> CacheStatsReply {
    st.ctl(&["cache", "stats"]).data()
}

/// Waits for a complete pass that started after `after` (Unix seconds); returns the reply.
fn pass_after(st: &Steward, after: f64) -> CacheStatsReply {
    let mut out = None;
    st.wait_until(WAIT, "a complete statistics pass", |st| {
        let r = stats(st);
        let done = r.last_pass.as_ref().is_some_and(|p| p.started_at >= after);
        out = Some(r);
        done
    });
    out.unwrap()
}

fn ns<'a>(r: &'a CacheStatsReply, name: &str) -> &'a NamespaceFigures {
    r.last_pass
        .as_ref()
        .unwrap()
        .namespaces
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no namespace {name} in {r:?}"))
}

#[test]
fn counts_each_namespace_exactly_over_several_ticks() {
    let redis = Redis::start();
    fill_known_set(&redis);
    // 4000 keys, at most one SCAN of ~500 per 1 ms budget: a pass needs several ticks.
    let st = start(
        &redis,
        namespaces("scan_budget = \"1ms\"\npipeline_batch = 500"),
    );
    let r = pass_after(&st, 0.0);
    let pass = r.last_pass.as_ref().unwrap();
    assert!(pass.ticks >= 3, "the pass took {} ticks: {r:?}", pass.ticks);
    let figures = |name| {
        let n = ns(&r, name);
        (n.keys, n.keys_without_ttl)
    };
    assert_eq!(figures("sessions"), (1700, 200), "{r:?}");
    assert_eq!(figures("analytics"), (1000, 0), "{r:?}");
    assert_eq!(figures("user_data"), (800, 500), "{r:?}");
    // Outside every namespace: app: and cache:other:, plus steward's own probe key at times.
    assert!((500..=502).contains(&pass.other_keys), "{r:?}");
    let a = ns(&r, "analytics");
    let spread = a.ttl.expect("analytics keys have TTLs");
    assert!(
        spread.min_seconds > 500.0 && spread.max_seconds <= 600.0,
        "{spread:?}"
    );
    assert!(
        spread.min_seconds <= spread.median_seconds && spread.median_seconds <= spread.max_seconds
    );
    assert!(
        ns(&r, "sessions").memory_bytes > 0 && a.memory_sampled_keys > 0,
        "{r:?}"
    );
    assert!(
        r.redis_up && r.hit_ratio.is_none_or(|h| (0.0..=1.0).contains(&h)),
        "{r:?}"
    );
    assert!(
        r.used_memory_bytes.unwrap() > 0 && r.fragmentation_ratio.is_some(),
        "{r:?}"
    );
    assert_eq!(r.maxmemory_policy.as_deref(), Some("noeviction"));
    assert!(r.policy_warning.is_none(), "no expectation set: {r:?}");
    // The same figures on /metrics, and the audit touched nothing (enforce_ttl is off).
    let m = |name: &str, ns: &str| st.metric(name, &[("namespace", ns)]);
    st.wait_until(WAIT, "the pass on /metrics", |st| {
        st.metric("steward_cache_last_scan_timestamp_seconds", &[]) > Some(0.0)
    });
    assert_eq!(m("steward_cache_namespace_keys", "sessions"), Some(1700.0));
    assert_eq!(
        m("steward_cache_namespace_keys_without_ttl", "user_data"),
        Some(500.0)
    );
    assert!(m("steward_cache_namespace_memory_bytes", "analytics") > Some(0.0));
    assert!(st.metric("steward_cache_scan_duration_seconds", &[]) > Some(0.0));
    assert_eq!(m("steward_cache_ttl_enforced_total", "sessions"), Some(0.0));
    assert_eq!(without_ttl(&redis, "cache:sessions:*"), 200);
    // The human table lists every namespace.
    let out = st.ctl_human(&["cache", "stats"]);
    assert_eq!(out.code, 0, "{out:?}");
    for row in ["sessions", "analytics", "user_data", "last complete pass"] {
        assert!(out.stdout.contains(row), "{row} missing:\n{}", out.stdout);
    }
}

#[test]
fn enforce_ttl_gives_its_namespace_ttls_and_leaves_the_others_alone() {
    let redis = Redis::start();
    fill_known_set(&redis);
    let toml = namespaces("").replace("ttl = \"1h\"\n", "ttl = \"1h\"\nenforce_ttl = true\n");
    let st = start(&redis, toml);
    let first = pass_after(&st, 0.0);
    let s = ns(&first, "sessions");
    // The pass counts what it found, then gives the keys without a TTL the namespace's.
    assert_eq!(
        (s.keys, s.keys_without_ttl, s.ttl_enforced),
        (1700, 200, 200),
        "{first:?}"
    );
    assert_eq!(without_ttl(&redis, "cache:sessions:*"), 0);
    let ttl: i64 = redis
        .command(&["TTL", "cache:sessions:n:7"])
        .unwrap()
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!((3000..=3600).contains(&ttl), "TTL {ttl}");
    // Other namespaces and keys outside every namespace keep theirs without.
    assert_eq!(without_ttl(&redis, "cache:user_data:*"), 500);
    assert_eq!(without_ttl(&redis, "app:*"), 400);
    assert_eq!(without_ttl(&redis, "cache:other:*"), 100);
    assert_eq!(
        st.metric(
            "steward_cache_ttl_enforced_total",
            &[("namespace", "sessions")]
        ),
        Some(200.0)
    );
    // One log line for the pass, not one per key.
    let lines = st.log_lines_with("TTL audit");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("200"), "{lines:?}");
    // The next pass finds nothing left to do.
    let next = pass_after(&st, first.last_pass.as_ref().unwrap().finished_at);
    let s = ns(&next, "sessions");
    assert_eq!(
        (s.keys, s.keys_without_ttl, s.ttl_enforced),
        (1700, 0, 0),
        "{next:?}"
    );
    assert_eq!(ns(&next, "user_data").keys_without_ttl, 500);
}

#[test]
fn eviction_policy_mismatch_warns_alerts_and_is_enforced_when_redis_allows() {
    let redis = Redis::start();
    let alert_toml = "\n[alerts.cache_eviction_policy]\nfor = \"0s\"\n";
    let toml = |extra: &str| {
        namespaces(&format!(
            "expect_eviction_policy = \"allkeys-lru\"\n{extra}"
        )) + alert_toml
    };
    let mut st = start(&redis, toml(""));
    st.wait_until(WAIT, "the policy warning in cache stats", |st| {
        stats(st).policy_warning.is_some()
    });
    let r = stats(&st);
    assert!(
        r.policy_warning
            .as_deref()
            .unwrap()
            .contains("maxmemory-policy is noeviction, expected allkeys-lru"),
        "{r:?}"
    );
    let active = |st: &Steward| {
        st.metric(
            "steward_alert_active",
            &[
                ("alert", "CacheEvictionPolicy"),
                ("service", "redis"),
                ("severity", "warning"),
            ],
        )
    };
    st.wait_until(WAIT, "CacheEvictionPolicy to fire", |st| {
        active(st) == Some(1.0)
    });
    let human = st.ctl_human(&["cache", "stats"]).stdout;
    assert!(
        human.contains("WARNING: maxmemory-policy is noeviction"),
        "{human}"
    );

    // Enforcement while Redis forbids CONFIG: reported once, not retried every tick.
    redis
        .command(&["ACL", "SETUSER", "default", "-config"])
        .unwrap();
    let reload = |st: &mut Steward, from: &str, to: &str| {
        let mut s = st.settings.clone();
        s.backup = s.backup.replace(&toml(from), &toml(to));
        st.write_config(&s.render());
        st.settings = s;
        assert!(st.ctl(&["reload"]).reply().ok);
    };
    let enforce = "enforce_eviction_policy = true\n";
    reload(&mut st, "", enforce);
    st.wait_until(WAIT, "the refusal in cache stats", |st| {
        stats(st)
            .policy_enforcement
            .is_some_and(|p| p.contains("failed"))
    });
    st.wait_checks("redis", 3);
    assert_eq!(
        st.log_lines_with("refused CONFIG SET").len(),
        1,
        "{}",
        st.log()
    );
    assert_eq!(policy(&redis), "noeviction");

    // Allowed again: a reload of [cache] tries once more, and the policy is set on the server.
    redis
        .command(&["ACL", "SETUSER", "default", "+config"])
        .unwrap();
    reload(
        &mut st,
        enforce,
        &format!("{enforce}scan_budget = \"60ms\"\n"),
    );
    st.wait_until(WAIT, "the policy set on the server", |_| {
        policy(&redis) == "allkeys-lru"
    });
    st.wait_until(WAIT, "CacheEvictionPolicy to resolve", |st| {
        active(st) == Some(0.0)
    });
    st.wait_until(WAIT, "the warning gone", |st| {
        stats(st).policy_warning.is_none()
    });
    assert!(stats(&st)
        .policy_enforcement
        .is_some_and(|p| p.contains("set maxmemory-policy from noeviction to allkeys-lru")),);
}

#[test]
fn redis_down_stats_answer_from_the_last_pass_and_the_daemon_carries_on() {
    let mut redis = Redis::start();
    fill(&redis, "cache:sessions:", 300, 0);
    let st = start(&redis, namespaces(""));
    let before = pass_after(&st, 0.0);
    assert_eq!(ns(&before, "sessions").keys, 300);
    redis.kill();
    st.wait_up("redis", false, WAIT);
    let started = Instant::now();
    let r = stats(&st);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(!r.redis_up, "{r:?}");
    assert!(
        r.redis_error
            .as_deref()
            .unwrap()
            .starts_with("Redis is down"),
        "{r:?}"
    );
    assert_eq!(
        r.last_pass, before.last_pass,
        "the last complete pass is kept"
    );
    let human = st.ctl_human(&["cache", "stats"]);
    assert_eq!(human.code, 0, "{human:?}");
    assert!(
        human.stdout.contains("redis: Redis is down"),
        "{}",
        human.stdout
    );
    st.wait_until(WAIT, "the scan to report its failure", |st| {
        stats(st).scan_error.is_some()
    });
    // The daemon and its other tasks carry on.
    assert!(st
        .status()
        .tasks
        .iter()
        .any(|t| t.name == "monitor.postgres"));
    assert_eq!(st.task("cache.stats").state, TaskState::Running);
    // Redis back (empty): a pass started since counts what is there now.
    redis.restart();
    let back = now();
    let after = pass_after(&st, back);
    assert_eq!(ns(&after, "sessions").keys, 0, "{after:?}");
    st.wait_until(WAIT, "stats to see Redis up again", |st| {
        let r = stats(st);
        r.redis_up && r.scan_error.is_none()
    });
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn a_refused_memory_usage_leaves_the_counts_going_and_says_why() {
    let redis = Redis::start();
    fill(&redis, "cache:sessions:", 250, 0);
    redis
        .command(&["ACL", "SETUSER", "default", "-memory"])
        .unwrap();
    let st = start(&redis, namespaces(""));
    let r = pass_after(&st, 0.0);
    let s = ns(&r, "sessions");
    assert_eq!(
        (s.keys, s.keys_without_ttl, s.memory_bytes),
        (250, 250, 0),
        "{r:?}"
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("Redis refused MEMORY USAGE")),
        "{r:?}"
    );
    assert!(r.scan_error.is_none(), "{r:?}");
}
