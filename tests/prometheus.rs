//! The shipped Prometheus files (config/prometheus/) against the real tools:
//! - `promtool check rules` / `promtool test rules` on steward-rules.yml and its unit tests;
//! - `promtool check config` on the example prometheus.yml, `amtool check-config` on the
//!   example alertmanager.yml;
//! - end to end: a real Prometheus, configured from the shipped prometheus.yml, scrapes a live
//!   steward every second and evaluates the shipped rules; stopping PostgreSQL makes
//!   `ServiceDown` fire there and reach a real Alertmanager; starting it again resolves it;
//! - the cross-check: every `steward_*` metric the rules or the Grafana dashboard name is one a
//!   live steward emits, and every alert steward exports has a rule.

mod common;

use common::peers::{Alertmanager, Prometheus};
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Generous bound for anything that goes through Prometheus' 1 s scrape and evaluation and
/// Alertmanager's ingestion, on two busy cores.
const PEER_TIMEOUT: Duration = Duration::from_secs(60);

fn prometheus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/prometheus")
}

/// Runs a tool to completion; panics with its output unless it exits 0.
fn run_tool(cwd: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}):\n{text}",
        args.join(" "),
        out.status
    );
    text
}

#[test]
fn shipped_rules_pass_promtool_check_and_unit_tests() {
    let dir = prometheus_dir();
    run_tool(&dir, "promtool", &["check", "rules", "steward-rules.yml"]);
    let out = run_tool(
        &dir,
        "promtool",
        &["test", "rules", "steward-rules.test.yml"],
    );
    assert!(out.contains("SUCCESS"), "promtool test rules:\n{out}");
}

#[test]
fn example_prometheus_and_alertmanager_configs_are_valid() {
    let dir = prometheus_dir();
    // From another directory: rule_files must resolve relative to the config file.
    let elsewhere = short_tempdir("stw-promcfg-");
    let config = dir.join("prometheus.yml");
    let out = run_tool(
        elsewhere.path(),
        "promtool",
        &["check", "config", config.to_str().unwrap()],
    );
    assert!(
        out.contains("SUCCESS: 1 rule files found"),
        "prometheus.yml does not load steward-rules.yml:\n{out}"
    );
    let am = dir.join("alertmanager.yml");
    run_tool(
        elsewhere.path(),
        "amtool",
        &["check-config", am.to_str().unwrap()],
    );
}

// ---------------------------------------------------------------------------------------------
// End to end
// ---------------------------------------------------------------------------------------------

/// The alerts in `alerts` whose `service` label is postgres.
fn postgres_down(alerts: Vec<Value>) -> Vec<Value> {
    alerts
        .into_iter()
        .filter(|a| a["labels"]["service"] == "postgres")
        .collect()
}

/// A live steward (ServiceDown after 1 s) against its own PostgreSQL and Redis, scraped by a
/// real Prometheus every second, which alerts to a real Alertmanager.
struct Stack {
    prom: Prometheus,
    am: Alertmanager,
    st: Steward,
    pg: Postgres,
    _redis: Redis,
    /// steward's scrape target, `127.0.0.1:PORT` (the `instance` label).
    target: String,
}

impl Stack {
    /// Starts everything and waits until Prometheus has scraped steward and sees PostgreSQL up.
    fn start() -> Stack {
        let pg = Postgres::start();
        let redis = Redis::start();
        let am = Alertmanager::start();
        let st = Steward::builder(&pg, &redis)
            .with(|s| s.backup += "\n[alerts.service_down]\nfor = \"1s\"\n")
            .start();
        let target = format!("127.0.0.1:{}", st.metrics_port());
        let prom = Prometheus::start(&prom_query::shipped_prometheus_config(&target, &am.addr()));
        st.wait_until(PEER_TIMEOUT, "Prometheus: up{job=\"steward\"} == 1", |_| {
            prom.query_value(r#"up{job="steward"}"#) == Some(1.0)
        });
        st.wait_until(
            PEER_TIMEOUT,
            "Prometheus: steward_up{service=\"postgres\"} == 1",
            |_| prom.query_value(r#"steward_up{service="postgres",job="steward"}"#) == Some(1.0),
        );
        Stack {
            prom,
            am,
            st,
            pg,
            _redis: redis,
            target,
        }
    }

    /// Waits until Prometheus reports the ServiceDown alert for postgres as firing; returns it.
    fn wait_service_down_firing(&self) -> Value {
        let mut fired = Value::Null;
        self.st
            .wait_until(PEER_TIMEOUT, "ServiceDown firing in Prometheus", |_| {
                let alerts = postgres_down(self.prom.alerts_named("ServiceDown"));
                fired = alerts
                    .into_iter()
                    .find(|a| a["state"] == "firing")
                    .unwrap_or_default();
                !fired.is_null()
            });
        fired
    }
}

#[test]
fn prometheus_scrapes_steward_and_service_down_reaches_alertmanager_and_resolves() {
    let s = Stack::start();
    let (prom, am, st) = (&s.prom, &s.am, &s.st);

    // Every shipped rule evaluates without error against the real series (a label-matching
    // mistake shows up here as a rule error, not in promtool's hand-written series).
    st.wait_until(PEER_TIMEOUT, "every rule evaluated once, healthy", |_| {
        let groups = prom.rules();
        let rules: Vec<&Value> = groups
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .collect();
        for r in &rules {
            assert_ne!(
                r["health"], "err",
                "rule {} fails: {}",
                r["name"], r["lastError"]
            );
        }
        rules.len() >= 13 && rules.iter().all(|r| r["health"] == "ok")
    });
    assert!(
        postgres_down(prom.alerts_named("ServiceDown")).is_empty(),
        "ServiceDown while PostgreSQL is up: {}",
        prom.alerts()
    );
    // (Before the first scrape lands, absent(up) makes StewardDown pending; its `for` keeps
    // that from firing.)
    assert!(
        !prom
            .alerts_named("StewardDown")
            .iter()
            .any(|a| a["state"] == "firing"),
        "StewardDown firing while steward is scraped: {}",
        prom.alerts()
    );

    // PostgreSQL down: steward's ServiceDown → the shipped rule fires in Prometheus.
    s.pg.stop();
    let fired = s.wait_service_down_firing();
    let labels = &fired["labels"];
    assert_eq!(labels["severity"], "critical", "{labels}");
    assert_eq!(labels["job"], "steward", "{labels}");
    assert_eq!(labels["instance"], s.target.as_str(), "{labels}");
    assert_eq!(
        fired["annotations"]["summary"], "postgres is down",
        "{fired}"
    );

    // …and Alertmanager lists it as active, sent by Prometheus (steward has no
    // [alertmanager] url here, and the generator URL is Prometheus' graph page).
    let mut received = Value::Null;
    st.wait_until(PEER_TIMEOUT, "ServiceDown active in Alertmanager", |_| {
        let alerts = postgres_down(am.alerts_named("ServiceDown"));
        received = alerts
            .into_iter()
            .find(|a| a["status"]["state"] == "active")
            .unwrap_or_default();
        !received.is_null()
    });
    assert_eq!(received["labels"]["severity"], "critical", "{received}");
    assert_eq!(
        received["labels"]["instance"],
        s.target.as_str(),
        "{received}"
    );
    let generator = received["generatorURL"].as_str().unwrap_or_default();
    assert!(
        generator.contains(&format!(":{}/graph", prom.port())),
        "not from this Prometheus: {received}"
    );
    // Prometheus promises a firing alert for minutes ahead (endsAt = 4 × its resend delay).
    let ends_at = received["endsAt"].as_str().unwrap_or_default();
    let ends_at = chrono::DateTime::parse_from_rfc3339(ends_at)
        .unwrap_or_else(|e| panic!("endsAt {ends_at:?}: {e}"));

    // PostgreSQL back: the alert leaves Prometheus' pending/firing list, and Prometheus sends
    // the resolution (endsAt = now). Alertmanager 0.25 then drops it from /api/v2/alerts
    // altogether (resolved alerts are not listed, even with ?active=false); without that
    // resolution it would stay listed until the endsAt of the firing alert, minutes ahead,
    // which is checked below.
    s.pg.start_again();
    st.wait_until(PEER_TIMEOUT, "ServiceDown resolved in Prometheus", |_| {
        postgres_down(prom.alerts_named("ServiceDown")).is_empty()
    });
    st.wait_until(PEER_TIMEOUT, "ServiceDown resolved in Alertmanager", |_| {
        postgres_down(am.alerts_named("ServiceDown")).is_empty()
    });
    assert!(
        chrono::Utc::now() < ends_at,
        "gone from Alertmanager only after the firing alert's own endsAt ({ends_at}): \
         expiry, not the resolution Prometheus should have sent"
    );
    assert_eq!(
        prom.query_value(r#"steward_up{service="postgres",job="steward"}"#),
        Some(1.0)
    );
}

/// The shipped rules with the labels a real scrape carries: while steward reports maintenance,
/// its ServiceDown (steward_alert_active 1) does not fire in Prometheus; once maintenance
/// ends, it does.
#[test]
fn shipped_rules_are_silenced_by_a_live_stewards_maintenance_mode() {
    let s = Stack::start();
    let (prom, st) = (&s.prom, &s.st);
    let on = st.ctl(&["maintenance", "on", "--reason", "prometheus rules test"]);
    assert_eq!(on.code, 0, "maintenance on: {on:?}");
    s.pg.stop();

    // Prometheus has both series, in the state the silencing is about…
    let both = r#"steward_alert_active{alert="ServiceDown",service="postgres"} == 1
        and on(instance, job) steward_maintenance_mode == 1"#;
    st.wait_until(
        PEER_TIMEOUT,
        "Prometheus: ServiceDown active in maintenance",
        |_| prom.query_value(both).is_some(),
    );
    let seen = chrono::Utc::now();
    // …and the rule has been evaluated since, on those samples or newer ones: no alert.
    st.wait_until(PEER_TIMEOUT, "ServiceDown rule evaluated again", |_| {
        let groups = prom.rules();
        let rule = groups
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .find(|r| r["name"] == "ServiceDown")
            .cloned()
            .expect("ServiceDown rule loaded");
        let last = rule["lastEvaluation"].as_str().unwrap_or_default();
        chrono::DateTime::parse_from_rfc3339(last).is_ok_and(|t| t > seen)
    });
    assert!(
        postgres_down(prom.alerts_named("ServiceDown")).is_empty(),
        "ServiceDown fires in Prometheus during maintenance: {}",
        prom.alerts()
    );

    // Maintenance off, PostgreSQL still down: the same rule now fires.
    let off = st.ctl(&["maintenance", "off"]);
    assert_eq!(off.code, 0, "maintenance off: {off:?}");
    s.wait_service_down_firing();
}

// ---------------------------------------------------------------------------------------------
// Cross-check: the names the rules and the dashboard use exist
// ---------------------------------------------------------------------------------------------

/// Every identifier starting with `steward_` in `text` (names run over `[A-Za-z0-9_:]`).
fn steward_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("steward_"))
        .map(str::to_string)
        .collect()
}

/// The metric names in a PromQL expression: quoted strings (label values) are left out.
fn promql_names(expr: &str) -> BTreeSet<String> {
    let mut bare = String::new();
    let mut quote = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                    bare.push(' ');
                }
            }
            None if matches!(c, '"' | '\'' | '`') => quote = Some(c),
            None => bare.push(c),
        }
    }
    steward_names(&bare)
}

/// The values of `key:` in a YAML file written like steward-rules.yml: inline values (outer
/// quotes removed) or `|`/`>` block scalars (the more-indented lines that follow).
fn yaml_values(text: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start().trim_start_matches("- ");
        let Some(rest) = trimmed.strip_prefix(&format!("{key}:")) else {
            continue;
        };
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let indent = line.len() - line.trim_start().len();
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .copied()
                .collect();
            out.push(block.join("\n"));
        } else {
            let unquoted = rest
                .strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .or_else(|| rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
                .unwrap_or(rest);
            out.push(unquoted.to_string());
        }
    }
    out
}

/// Metric names in steward-rules.yml: in the expressions, and named in the annotations.
fn rules_names(rules: &str) -> BTreeSet<String> {
    let exprs = yaml_values(rules, "expr");
    assert!(exprs.len() >= 13, "expected 13 rules, found {exprs:?}");
    let mut names: BTreeSet<String> = exprs.iter().flat_map(|e| promql_names(e)).collect();
    for key in ["summary", "description"] {
        names.extend(
            yaml_values(rules, key)
                .iter()
                .flat_map(|t| steward_names(t)),
        );
    }
    names
}

/// Every string under an `expr`, `query` or `definition` key anywhere in the dashboard (panel
/// targets, template variables, annotations).
fn dashboard_queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr" | "query" | "definition", Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_queries(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| dashboard_queries(x, out)),
        _ => {}
    }
}

/// Per-database off-site gauges: set from the bucket's listing, so a steward without
/// `[backup.remote]` (as here) has none; the names are checked against the registry by
/// tests/grafana.rs instead.
const ONLY_WITH_A_BUCKET: &[&str] = &[
    "steward_backup_remote_last_success_timestamp_seconds",
    "steward_backup_remote_bytes",
];

/// Per-namespace cache series: a steward without `[[cache.namespace]]` (as here) has none;
/// tests/dashboard_data.rs runs every dashboard query against a steward that has them.
const ONLY_WITH_CACHE_NAMESPACES: &[&str] = &[
    "steward_cache_namespace_keys",
    "steward_cache_namespace_keys_without_ttl",
    "steward_cache_namespace_memory_bytes",
    "steward_cache_ttl_enforced_total",
];

/// Series that exist only in a state this plain steward is not in. tests/dashboard_data.rs
/// makes the cheap ones (an inactive replication slot, a table autovacuum vacuumed that has
/// dead tuples again, a Redis replica) and lists the others, with the test that makes them.
const ONLY_IN_A_STATE: &[&str] = &[
    // A streaming PostgreSQL replica (tests/pg_replication.rs).
    "steward_postgres_replication_lag_seconds",
    "steward_postgres_replication_lag_bytes",
    // A replication slot (tests/pg_replication.rs, tests/dashboard_data.rs).
    "steward_postgres_replication_slot_retained_bytes",
    "steward_postgres_replication_slot_active",
    // steward watching a standby (tests/pg_replication.rs).
    "steward_postgres_standby_replay_delay_seconds",
    "steward_postgres_standby_lag_bytes",
    // Tables with dead tuples, and autovacuumed ones (tests/pg_replication.rs,
    // tests/dashboard_data.rs).
    "steward_postgres_table_dead_tuples",
    "steward_postgres_table_last_autovacuum_age_seconds",
    // A failed archive attempt (tests/pg_replication.rs).
    "steward_postgres_archive_last_failure_age_seconds",
    // A collector group's first failure creates its series.
    "steward_postgres_collector_errors_total",
    // steward watching a Redis replica; a Redis master with a replica (tests/redis_depth.rs,
    // tests/dashboard_data.rs).
    "steward_redis_master_link_up",
    "steward_redis_replica_lag_bytes",
];

#[test]
fn rules_and_dashboard_name_only_metrics_a_live_steward_emits() {
    let rules = std::fs::read_to_string(prometheus_dir().join("steward-rules.yml")).unwrap();
    let dashboard_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/dashboards/steward.json");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(&dashboard_path)
            .unwrap_or_else(|e| panic!("{}: {e}", dashboard_path.display())),
    )
    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", dashboard_path.display()));
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    assert!(!queries.is_empty(), "no queries found in the dashboard");
    let mut wanted: Vec<(String, &str)> = rules_names(&rules)
        .into_iter()
        .map(|n| (n, "steward-rules.yml"))
        .collect();
    wanted.extend(
        queries
            .iter()
            .flat_map(|q| promql_names(q))
            .map(|n| (n, "grafana/dashboards/steward.json")),
    );

    // A steward that has done everything it reports on: checks of both services, a Redis
    // with keys, and scheduled backups (the start-up catch-up runs a daily and a weekly one,
    // which also sets the next-run gauges).
    let pg = Postgres::start();
    let redis = Redis::start();
    redis.command(&["SET", "cross-check", "1"]).unwrap();
    let st = Steward::builder(&pg, &redis)
        .with(|s| {
            s.backup = s
                .backup
                .replace("daily = \"\"", "daily = \"0 2 * * *\"")
                .replace("weekly = \"\"", "weekly = \"0 3 * * 1\"");
        })
        .start();
    st.wait_until(
        Duration::from_secs(120),
        "catch-up daily and weekly backups",
        |st| {
            let m = st.metrics();
            ["daily", "weekly"].iter().all(|k| {
                metric_value(
                    &m,
                    "steward_backup_last_success_timestamp_seconds",
                    &[("kind", k)],
                )
                .is_some()
            })
        },
    );
    st.wait_checks("postgres", 2);
    st.wait_checks("redis", 2);
    // And a restore test (as a drill runs it), for the recovery-time series.
    pg.psql_as_postgres(&format!("ALTER ROLE {PG_USER} CREATEDB"));
    let all: Vec<steward::backup::catalog::BackupMeta> = st.ctl(&["backup", "list"]).data();
    let v = st.ctl(&["backup", "verify", &all[0].id, "--restore-test"]);
    assert_eq!(v.code, 0, "{v:?}");

    // Series names as Prometheus stores them: a histogram is its _bucket/_sum/_count series
    // (the bare family name selects nothing), a counter its _total series.
    let samples = parse_metrics(&st.metrics());
    let emitted: BTreeSet<&str> = samples.iter().map(|s| s.name.as_str()).collect();
    let mut problems: Vec<String> = wanted
        .iter()
        .filter(|(n, _)| !emitted.contains(n.as_str()))
        .filter(|(n, _)| !ONLY_WITH_A_BUCKET.contains(&n.as_str()))
        .filter(|(n, _)| !ONLY_WITH_CACHE_NAMESPACES.contains(&n.as_str()))
        .filter(|(n, _)| !ONLY_IN_A_STATE.contains(&n.as_str()))
        .map(|(n, file)| format!("{n} is named in {file} but steward does not emit it"))
        .collect();

    // The other way round: every alert steward exports has its rule.
    let exprs = yaml_values(&rules, "expr").join("\n");
    let alerts: BTreeSet<&str> = samples
        .iter()
        .filter(|s| s.name == "steward_alert_active")
        .filter_map(|s| s.labels.get("alert").map(String::as_str))
        .collect();
    if alerts.is_empty() {
        problems.push("steward exports no steward_alert_active series".into());
    }
    for a in alerts {
        if !exprs.contains(&format!("steward_alert_active{{alert=\"{a}\"}}")) {
            problems.push(format!(
                "steward exports alert {a} but steward-rules.yml has no rule for it"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "\n  {}\nsteward emits: {emitted:?}",
        problems.join("\n  ")
    );
}

#[test]
fn promql_name_extraction_skips_label_values_and_keeps_suffixes() {
    let names = promql_names(
        r#"histogram_quantile(0.9, sum by (le) (rate(steward_check_duration_seconds_bucket{service="steward_x"}[5m]))) > on(instance) steward_up"#,
    );
    let expected: BTreeSet<String> = ["steward_check_duration_seconds_bucket", "steward_up"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, expected);
    let yaml = "  - alert: A\n    expr: |\n      steward_a == 1\n      unless steward_b\n    for: 0s\n    annotations:\n      summary: \"see steward_c\"\n";
    assert_eq!(
        yaml_values(yaml, "expr"),
        vec!["      steward_a == 1\n      unless steward_b"]
    );
    assert_eq!(yaml_values(yaml, "summary"), vec!["see steward_c"]);
}
