//! The shipped Grafana dashboard against a real Prometheus scraping a live steward: every
//! query (panel targets, annotations, variables), with Grafana's variables substituted as
//! Grafana does, returns at least one series through Prometheus's HTTP API; every family the
//! live steward emits is on a panel; "All" instances never brings in another exporter's
//! `process_*` series; and a maintenance window shorter than the annotation's step shows.
//!
//! The steward here has done everything the dashboard reports on: checks of PostgreSQL (an
//! autovacuumed table with dead tuples, an inactive replication slot) and Redis (with keys, a
//! maxmemory, a replica, cache namespaces scanned), scheduled backups copied to a bucket
//! (moto), a restore test, a firing alert, and maintenance mode on. States too costly to make
//! here (standbys, a failing archiver) are listed in NO_DATA_EXPECTED with the test that
//! makes them.

mod common;

use common::peers::{Alertmanager, Prometheus};
use common::prom_query::*;
use common::s3::{unique_bucket, wait_uploads_settled, S3Server, ACCESS_KEY_ID};
use common::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// Generous bound for anything that goes through Prometheus' 1 s scrape, on two busy cores.
const WAIT: Duration = Duration::from_secs(90);
/// Backups, uploads and the restore test.
const BACKUP_WAIT: Duration = Duration::from_secs(120);

/// Queries allowed to return nothing here, each with the state they need and the test that
/// makes it. Keep it short: make the state a query needs in this test when that is cheap.
const NO_DATA_EXPECTED: &[(&str, &str)] = &[
    (
        "panel \"Replication lag (time)\" target A",
        "a streaming PostgreSQL replica: tests/pg_replication.rs (a paused replica)",
    ),
    (
        "panel \"Replication lag (bytes)\" target A",
        "a streaming PostgreSQL replica: tests/pg_replication.rs (a paused replica)",
    ),
    (
        "panel \"Standby replay delay\" target A",
        "steward watching a PostgreSQL standby: tests/pg_replication.rs",
    ),
    (
        "panel \"Standby replay delay\" target B",
        "steward watching a PostgreSQL standby: tests/pg_replication.rs",
    ),
    (
        "panel \"Last failed archive attempt\" target A",
        "archive_mode on (a server restart) and a failing archive_command: \
         tests/pg_replication.rs (a failing archiver)",
    ),
    (
        "panel \"Replicas and master link\" target B",
        "steward watching a Redis replica (master_link_up is absent on a master): \
         tests/redis_depth.rs",
    ),
];

/// Families a live steward emits that no panel needs to show (see tests/grafana.rs
/// NOT_ON_A_PANEL): none.
const NOT_ON_A_PANEL: &[&str] = &[];

/// Cache namespaces and keys for them; an eviction policy Redis does not have, so that
/// CacheEvictionPolicy fires at once (a firing alert for the alert panels).
const CACHE_TOML: &str = r#"
[cache]
expect_eviction_policy = "allkeys-lru"

[[cache.namespace]]
name = "sessions"
prefix = "cache:sessions:"
ttl = "1h"

[[cache.namespace]]
name = "analytics"
prefix = "cache:analytics:"
ttl = "10m"

[alerts.cache_eviction_policy]
for = "0s"
"#;

/// The shipped prometheus.yml for `steward`, plus a second job scraping `other` (an exporter
/// with its own `process_*` series, as node_exporter would be).
fn config_with_another_exporter(steward: &str, other: &str) -> String {
    format!(
        "{}\n  - job_name: other-exporter\n    static_configs:\n      - targets: [\"{other}\"]\n",
        shipped_prometheus_config(steward, other).trim_end()
    )
}

/// Grafana's variables: the interval ones as Grafana would set them for a short range on a
/// 1 s scrape, and each query variable from its own query (in the dashboard's order, since
/// instance depends on job), its values as Grafana writes a multi-value regex.
fn variables(prom: &Prometheus, dash: &serde_json::Value) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = vec![
        ("__rate_interval".into(), "1m".into()),
        ("__range".into(), "1h".into()),
        ("__interval".into(), "15s".into()),
    ];
    for v in label_values_vars(dash) {
        let selector = substitute(&v.selector, &vars);
        let result = prom.query(&selector);
        let values: BTreeSet<String> = result
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["metric"][&v.label].as_str().map(str::to_string))
            .collect();
        assert!(
            !values.is_empty(),
            "variable {}: label_values({selector}, {}) finds nothing: {result}",
            v.name,
            v.label
        );
        let values: Vec<String> = values.into_iter().collect();
        vars.push((v.name.clone(), grafana_regex(&values)));
    }
    vars
}

/// The queries of `dash` with no series, as `origin: expr`.
fn empty_queries(prom: &Prometheus, queries: &[DashQuery]) -> Vec<String> {
    queries
        .iter()
        .filter(|q| series_count(prom, &q.expr) == 0)
        .filter(|q| !NO_DATA_EXPECTED.iter().any(|(o, _)| q.origin == *o))
        .map(|q| format!("{}: {}", q.origin, q.expr))
        .collect()
}

/// `steward_*` family names of a /metrics text (from its `# TYPE` lines).
fn emitted_families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("steward_"))
        .map(str::to_string)
        .collect()
}

/// Identifiers in the panel targets (a family is on a panel when one names it, or its
/// `_bucket`/`_sum`/`_count` series).
fn panel_names(dash: &serde_json::Value) -> BTreeSet<String> {
    panel_and_annotation_queries(dash)
        .iter()
        .filter(|q| q.origin.starts_with("panel "))
        .flat_map(|q| {
            q.expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_dashboard_query_returns_data_from_a_live_steward() {
    let (pg, redis, s3) = (Postgres::start(), Redis::start(), S3Server::start());
    let other = Alertmanager::start();
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    pg.psql(
        "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 1000);
         ALTER TABLE t SET (autovacuum_vacuum_threshold = 0, autovacuum_vacuum_scale_factor = 0);
         DELETE FROM t WHERE id <= 100;",
        PG_USER,
        PG_DB,
    );
    pg.psql_as_postgres(&format!("ALTER ROLE {PG_USER} CREATEDB"));
    // An autovacuumed table that has dead tuples again (the vacuum panels), and an inactive
    // replication slot that reserves WAL (the slot panels).
    pg.psql_as_postgres("ALTER SYSTEM SET autovacuum_naptime = '1s'");
    pg.psql_as_postgres("SELECT pg_reload_conf()");
    let vacuumed = poll(WAIT, || {
        let q = "SELECT last_autovacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 't'";
        pg.psql(q, PG_USER, PG_DB).trim() == "t"
    });
    assert!(vacuumed, "autovacuum never vacuumed t");
    pg.psql(
        "ALTER TABLE t SET (autovacuum_enabled = false); DELETE FROM t WHERE id <= 200;",
        PG_USER,
        PG_DB,
    );
    pg.psql_as_postgres("SELECT pg_create_physical_replication_slot('dashboard', true)");
    // A Redis replica: the master's replica lag.
    let _replica = Redis::start_replica_of(&redis);
    redis
        .command(&["CONFIG", "SET", "maxmemory", "64mb"])
        .unwrap();
    for (k, ttl) in [
        ("cache:sessions:1", Some("3600")),
        ("cache:sessions:2", None),
        ("cache:analytics:1", Some("600")),
        ("other:1", None),
    ] {
        let mut args = vec!["SET", k, "v"];
        if let Some(t) = ttl {
            args.extend(["EX", t]);
        }
        redis.command(&args).unwrap();
    }
    let st = Steward::builder(&pg, &redis)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env(
            "AWS_SECRET_ACCESS_KEY",
            &format!("sEcReT/{}", random_hex(12)),
        )
        .with(|s| {
            let dir = s.state_dir.with_file_name("backups");
            // Scheduled backups: the start-up catch-up runs a daily and a weekly one, which
            // also sets the next-run gauges.
            s.backup = s3
                .backup_config(&dir, &bucket, "")
                .replace("daily = \"\"", "daily = \"0 2 * * *\"")
                .replace("weekly = \"\"", "weekly = \"0 3 * * 1\"")
                + CACHE_TOML;
        })
        .start();
    let target = format!("127.0.0.1:{}", st.metrics_port());
    let prom = Prometheus::start(&config_with_another_exporter(&target, &other.addr()));

    st.wait_until(BACKUP_WAIT, "catch-up daily and weekly backups", |st| {
        let m = st.metrics();
        ["daily", "weekly"].iter().all(|k| {
            metric_value(
                &m,
                "steward_backup_last_success_timestamp_seconds",
                &[("kind", k)],
            )
            .is_some()
        })
    });
    // A manual backup once Prometheus has scraped steward: "Backups by result" counts it
    // (its counter was exported at 0 before, so increase() sees it).
    st.wait_until(WAIT, "Prometheus: up{job=\"steward\"} == 1", |_| {
        prom.query_value(r#"up{job="steward"}"#) == Some(1.0)
    });
    let manual = st.ctl(&["backup", "create", "--wait"]);
    assert_eq!(manual.code, 0, "{manual:?}");
    wait_uploads_settled(&st, BACKUP_WAIT);
    // A restore test (as a drill runs it): recovery time and restore-test series.
    let all: Vec<steward::backup::catalog::BackupMeta> = st.ctl(&["backup", "list"]).data();
    let v = st.ctl(&["backup", "verify", &all[0].id, "--restore-test"]);
    assert_eq!(v.code, 0, "{v:?}");
    st.wait_until(WAIT, "a complete cache statistics pass", |st| {
        st.metric("steward_cache_last_scan_timestamp_seconds", &[])
            .is_some_and(|t| t > 0.0)
    });
    st.wait_until(WAIT, "CacheEvictionPolicy firing", |st| {
        st.metric("steward_alert_active", &[("alert", "CacheEvictionPolicy")]) == Some(1.0)
    });
    let on = st.ctl(&["maintenance", "on", "--reason", "dashboard data test"]);
    assert_eq!(on.code, 0, "maintenance on: {on:?}");

    // Every family the live steward emits is on a panel (families named at run time
    // included, which tests/grafana.rs cannot see in the source).
    let dash = dashboard();
    let shown = panel_names(&dash);
    let text = st.metrics();
    let families = emitted_families(&text);
    assert!(families.len() >= 70, "too few families: {families:?}");
    let missing: Vec<&String> = families
        .iter()
        .filter(|f| {
            !["", "_bucket", "_sum", "_count"]
                .iter()
                .any(|s| shown.contains(&format!("{f}{s}")))
        })
        .filter(|f| !NOT_ON_A_PANEL.contains(&f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "a live steward emits families no panel shows: {missing:?}"
    );

    // Prometheus has scraped steward in maintenance mode, after all of the above.
    st.wait_until(WAIT, "Prometheus: steward in maintenance mode", |_| {
        prom.query_value(r#"steward_maintenance_mode{job="steward"}"#) == Some(1.0)
    });
    let vars = variables(&prom, &dash);
    let job = &vars.iter().find(|(k, _)| k == "job").unwrap().1;
    assert_eq!(job, "steward", "the job variable lists steward's job only");
    let queries: Vec<DashQuery> = panel_and_annotation_queries(&dash)
        .into_iter()
        .map(|q| DashQuery {
            expr: substitute(&q.expr, &vars),
            origin: q.origin,
        })
        .collect();
    assert!(queries.len() >= 80, "{} queries", queries.len());
    for (origin, _) in NO_DATA_EXPECTED {
        assert!(
            queries.iter().any(|q| q.origin == *origin),
            "NO_DATA_EXPECTED names {origin}, which the dashboard does not have"
        );
    }
    // The manual backup is in "Backups by result" (a counter born at 1 would show 0).
    let by_result = queries
        .iter()
        .find(|q| q.origin.starts_with("panel \"Backups by result"))
        .expect("the Backups by result panel");
    let counted = |q: &DashQuery| {
        prom.query(&q.expr)
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["metric"]["kind"] == "manual" && s["metric"]["result"] == "success")
            .filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let mut seen = 0.0;
    let found = poll(WAIT, || {
        seen = counted(by_result);
        seen >= 0.9
    });
    assert!(found, "{}: the manual backup counts {seen}", by_result.expr);

    let mut empty = Vec::new();
    let all_answer = poll(WAIT, || {
        empty = empty_queries(&prom, &queries);
        empty.is_empty()
    });
    assert!(
        all_answer,
        "{} dashboard queries return no series from a live steward:\n  {}\nsteward emits: {families:?}",
        empty.len(),
        empty.join("\n  ")
    );

    // "All" instances: the process_* panels show steward's series only, although another
    // exporter with process_* series is scraped by the same Prometheus.
    assert!(
        series_count(&prom, "process_resident_memory_bytes") >= 2,
        "the other exporter is not scraped: {}",
        prom.targets()
    );
    let all_instances: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| match k.as_str() {
            "instance" => (k.clone(), ".*".to_string()),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    for q in panel_and_annotation_queries(&dash)
        .iter()
        .filter(|q| q.expr.contains("process_"))
    {
        let expr = substitute(&q.expr, &all_instances);
        let result = prom.query(&expr);
        let series = result.as_array().unwrap();
        assert!(!series.is_empty(), "{}: {expr}: no series", q.origin);
        for s in series {
            assert_eq!(s["metric"]["job"], "steward", "{}: {expr}: {s}", q.origin);
        }
    }
}

/// Grafana evaluates the maintenance annotation once per step (15 s, or more on a wide
/// range): a window shorter than that, which falls between two steps, still shows, at the
/// step Grafana used before (60 s) as at the dashboard's own.
#[test]
fn a_maintenance_window_between_two_annotation_steps_shows() {
    let (pg, redis) = (Postgres::start(), Redis::start());
    let st = Steward::start(&pg, &redis);
    let target = format!("127.0.0.1:{}", st.metrics_port());
    let nowhere = format!("127.0.0.1:{}", free_port());
    let prom = Prometheus::start(&shipped_prometheus_config(&target, &nowhere));
    st.wait_until(WAIT, "Prometheus: steward in maintenance off", |_| {
        prom.query_value(r#"steward_maintenance_mode{job="steward"}"#) == Some(0.0)
    });

    // A few seconds of maintenance: on until Prometheus has seen it, then off.
    let on = st.ctl(&["maintenance", "on", "--reason", "short window"]);
    assert_eq!(on.code, 0, "{on:?}");
    st.wait_until(WAIT, "Prometheus: maintenance on", |_| {
        prom.query_value(r#"steward_maintenance_mode{job="steward"}"#) == Some(1.0)
    });
    let off = st.ctl(&["maintenance", "off"]);
    assert_eq!(off.code, 0, "{off:?}");
    st.wait_until(WAIT, "Prometheus: maintenance off again", |_| {
        prom.query_value(r#"steward_maintenance_mode{job="steward"}"#) == Some(0.0)
    });

    let dash = dashboard();
    let annotation = panel_and_annotation_queries(&dash)
        .into_iter()
        .find(|q| q.origin == "annotation \"Maintenance mode\"")
        .expect("the maintenance annotation");
    let end = (chrono::Utc::now().timestamp_millis() as f64) / 1000.0;
    for step in [60u64, 15] {
        let vars = vec![
            ("__interval".to_string(), format!("{step}s")),
            ("job".to_string(), "steward".to_string()),
            (
                "instance".to_string(),
                grafana_regex(std::slice::from_ref(&target)),
            ),
        ];
        let expr = substitute(&annotation.expr, &vars);
        let result = query_range(&prom, &expr, end - 3600.0, end, step);
        let points: usize = result
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["values"].as_array().map_or(0, Vec::len))
            .sum();
        assert!(
            points >= 1,
            "step {step}s: the maintenance window is not in {expr}: {result}"
        );
    }
}
