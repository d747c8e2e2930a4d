//! The shipped Grafana dashboard and provisioning files: the dashboard is importable as it is
//! (fixed uid, a datasource variable that every panel and query goes through, unique panel ids,
//! no overlapping panels), every query is valid PromQL (checked by promtool) over metric names
//! steward registers and limited to steward's own jobs and instances, every metric family
//! steward registers has a panel, and the provisioning files agree with the dashboard and
//! docs/deployment.md. (tests/dashboard_data.rs runs every query against a real Prometheus.)

use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

const DASHBOARD: &str = "grafana/dashboards/steward.json";
const DATASOURCE_YML: &str = "grafana/provisioning/datasources/steward.yml";
const PROVIDER_YML: &str = "grafana/provisioning/dashboards/steward.yml";
/// Where the provider reads dashboards from; docs/deployment.md and the provider must agree.
const DASHBOARD_DIR: &str = "/var/lib/grafana/dashboards/steward";
const UID: &str = "steward-overview";
const DS_UID: &str = "${datasource}";

/// Metrics the dashboard must show (the issue's list), whatever else it shows.
const REQUIRED_METRICS: &[&str] = &[
    "steward_up",
    "steward_check_duration_seconds_bucket",
    "steward_last_check_timestamp_seconds",
    "steward_postgres_connections",
    "steward_postgres_connection_usage_ratio",
    "steward_postgres_database_size_bytes",
    "steward_redis_memory_used_bytes",
    "steward_redis_memory_max_bytes",
    "steward_redis_cache_hit_ratio",
    "steward_redis_evicted_keys_total",
    "steward_write_read_test_success",
    "steward_backup_last_success_timestamp_seconds",
    "steward_backup_last_size_bytes",
    "steward_backup_last_duration_seconds",
    "steward_backups_total",
    "steward_backup_dir_free_bytes",
    "steward_alert_active",
    "steward_alert_transitions_total",
    "steward_maintenance_mode",
    "steward_task_up",
    "steward_task_restarts_total",
    "steward_config_last_reload_successful",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD))
        .unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

/// Every panel, rows and the panels nested in (collapsed) rows included, with the row each
/// nested one belongs to.
fn all_panels(dash: &Value) -> Vec<(Option<u64>, &Value)> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels is an array") {
        out.push((None, p));
        if let Some(nested) = p.get("panels").and_then(Value::as_array) {
            for n in nested {
                out.push((p["id"].as_u64(), n));
            }
        }
    }
    out
}

fn is_row(p: &Value) -> bool {
    p["type"] == "row"
}

fn title(p: &Value) -> String {
    format!("panel {} {:?}", p["id"], p["title"].as_str().unwrap_or(""))
}

/// Every query of the dashboard: panel targets, annotation queries and variable queries.
fn all_exprs(dash: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (_, p) in all_panels(dash) {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(t["expr"].as_str().unwrap_or_default().to_string());
        }
    }
    for a in dash["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(e) = a["expr"].as_str() {
            out.push(e.to_string());
        }
    }
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if let Some((expr, _)) = v["definition"].as_str().and_then(label_values) {
            out.push(expr.to_string());
        }
    }
    out
}

/// The series selector and the label of a `label_values(SELECTOR, LABEL)` variable query.
fn label_values(q: &str) -> Option<(&str, &str)> {
    let inner = q.strip_prefix("label_values(")?.strip_suffix(')')?;
    let (expr, label) = inner.rsplit_once(',')?;
    Some((expr.trim(), label.trim()))
}

/// Each metric selector in a PromQL expression: the metric name and its `{…}` matchers (empty
/// when it has none). Quoted strings are skipped; names are `steward_…` and `process_…`.
fn selectors(expr: &str) -> Vec<(String, String)> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        let word = c.is_ascii_alphabetic() || c == b'_';
        let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if !(word && boundary) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
            i += 1;
        }
        let name = &expr[start..i];
        if !(name.starts_with("steward_") || name.starts_with("process_")) {
            continue;
        }
        let matchers = if b.get(i) == Some(&b'{') {
            let end = expr[i..].find('}').map_or(b.len(), |e| i + e + 1);
            let m = &expr[i..end];
            i = end;
            m.to_string()
        } else {
            String::new()
        };
        out.push((name.to_string(), matchers));
    }
    out
}

/// `steward_…` names in a string.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("steward_") {
        let start = i + pos;
        let boundary = start == 0 || {
            let c = bytes[start - 1];
            !(c.is_ascii_alphanumeric() || c == b'_' || c == b':')
        };
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Metric names registered in src/: every `"steward_…"` string literal, plus the sample
/// names a histogram adds.
fn registered_names() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut names = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for part in text.split("\"steward_").skip(1) {
            if let Some(end) = part.find('"') {
                let name = &part[..end];
                if name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
                    names.insert(format!("steward_{name}"));
                }
            }
        }
        if text.contains("HistogramOpts::new(") {
            // Histograms are named on the line after HistogramOpts::new(.
            for part in text.split("HistogramOpts::new(").skip(1) {
                if let Some(name) = part.split('"').nth(1) {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{suffix}"));
                    }
                }
            }
        }
    }
    names
}

/// Metric families registered in src/ outside its tests: every `"steward_…"` literal followed
/// by a help string (`Opts::new(name, help)`, `HistogramOpts::new(name, help)`, steward's
/// `Reg` helpers, or a table of `(name, help, …)`), as steward names them when it registers
/// them. Families whose names are built at run time are caught by tests/dashboard_data.rs,
/// which reads a live steward's /metrics.
fn registered_families() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut names = BTreeSet::new();
    for f in files {
        let is_test_file = f.file_name().is_some_and(|n| n == "tests.rs")
            || f.components().any(|c| c.as_os_str() == "tests");
        if is_test_file {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for part in text.split("\"steward_").skip(1) {
            let Some(end) = part.find('"') else { continue };
            let name = &part[..end];
            if !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
                continue;
            }
            let rest = part[end + 1..].trim_start();
            let Some(rest) = rest.strip_prefix(',') else {
                continue;
            };
            let rest = rest.trim_start();
            if rest.starts_with('"') || rest.starts_with("concat!(") {
                names.insert(format!("steward_{name}"));
            }
        }
    }
    names
}

/// Families a dashboard panel need not show. Each must say why; prefer showing a family (an
/// info metric in a table, a timestamp as an age) to listing it here.
const NOT_ON_A_PANEL: &[&str] = &[];

#[test]
fn dashboard_identity_and_variables() {
    let d = dashboard();
    assert_eq!(
        d["uid"], UID,
        "fixed uid, so links and provisioning stay stable"
    );
    assert_eq!(d["title"], "steward");
    let schema = d["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    assert!(
        d["id"].is_null(),
        "no instance-specific id, so it imports anywhere"
    );
    assert!(
        d.get("__inputs").is_none(),
        "the datasource comes from the variable, not from import-time inputs"
    );

    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let ds = vars
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("a `datasource` template variable");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");

    // The job first (only jobs that scrape steward: those with steward_build_info), then the
    // instances of those jobs; "All" jobs is every such job, never `.*` (which would let
    // other exporters' series on the same instances in).
    let query_of = |name: &str| {
        let v = vars
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("a `{name}` template variable"));
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["datasource"]["type"], "prometheus", "{name}");
        assert_eq!(v["datasource"]["uid"], DS_UID, "{name}");
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or_else(|| panic!("{name} query"));
        assert_eq!(v["definition"], q, "{name}");
        (v.clone(), q.to_string())
    };
    let (job, q) = query_of("job");
    assert_eq!(q, "label_values(steward_build_info, job)");
    assert!(
        job["allValue"].as_str().unwrap_or_default().is_empty(),
        "All jobs must expand to the jobs found, not to a catch-all regex: {job}"
    );
    let (_, q) = query_of("instance");
    assert_eq!(
        q,
        "label_values(steward_build_info{job=~\"$job\"}, instance)"
    );
    let names: Vec<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
    let (j, i) = (
        names.iter().position(|n| *n == "job"),
        names.iter().position(|n| *n == "instance"),
    );
    assert!(
        j < i,
        "job must come before instance, which depends on it: {names:?}"
    );
}

/// Every selector in every query (targets, annotations) is limited to the chosen jobs and
/// instances, and `process_*` series (which every exporter has) are joined with
/// steward_build_info, so that "All" never brings in other exporters' series.
#[test]
fn every_selector_is_limited_to_stewards_jobs_and_instances() {
    let d = dashboard();
    let vars = d["templating"]["list"].as_array().unwrap();
    let var_exprs: Vec<String> = vars
        .iter()
        .filter_map(|v| v["definition"].as_str().and_then(label_values))
        .map(|(e, _)| e.to_string())
        .collect();
    let mut checked = 0;
    for e in all_exprs(&d) {
        if var_exprs.contains(&e) {
            continue;
        }
        for (name, matchers) in selectors(&e) {
            checked += 1;
            for m in ["job=~\"$job\"", "instance=~\"$instance\""] {
                assert!(
                    matchers.contains(m),
                    "{e:?}: the selector {name}{matchers} lacks {m}"
                );
            }
        }
        if e.contains("process_") {
            assert!(
                e.contains("and on (job, instance) steward_build_info{"),
                "{e:?}: process_* series must be joined with steward_build_info"
            );
        }
    }
    assert!(checked >= 50, "only {checked} selectors found");
    let s = selectors(r#"rate(a_total[1m]) + steward_x{job=~"$job"} / process_y and steward_z"#);
    let names: Vec<&str> = s.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["steward_x", "process_y", "steward_z"]);
    assert_eq!(s[0].1, r#"{job=~"$job"}"#);
}

/// Every family steward registers is on a panel, so that what steward measures can be seen
/// without writing queries (NOT_ON_A_PANEL lists the exceptions, with their reasons). New
/// families fail this until a panel shows them.
#[test]
fn every_registered_family_has_a_panel() {
    let d = dashboard();
    let registered = registered_families();
    assert!(
        registered.len() >= 70 && registered.contains("steward_up"),
        "registered families not found: {registered:?}"
    );
    let mut shown = BTreeSet::new();
    for (_, p) in all_panels(&d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            shown.extend(metric_names(t["expr"].as_str().unwrap_or_default()));
        }
    }
    let on_a_panel = |family: &str| {
        ["", "_bucket", "_sum", "_count"]
            .iter()
            .any(|suffix| shown.contains(&format!("{family}{suffix}")))
    };
    let missing: Vec<&String> = registered
        .iter()
        .filter(|f| !on_a_panel(f) && !NOT_ON_A_PANEL.contains(&f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} registered families have no panel in {DASHBOARD}: {missing:?}",
        missing.len()
    );
    for f in NOT_ON_A_PANEL {
        assert!(
            registered.contains(*f),
            "NOT_ON_A_PANEL names {f}, which is not registered"
        );
    }
}

/// Grafana evaluates an annotation query once per step (at least `step`, longer on wide
/// ranges): the maintenance query takes the maximum over each whole step, so a maintenance
/// window shorter than the step still shows. tests/dashboard_data.rs shows it with a real
/// Prometheus.
#[test]
fn maintenance_annotation_sees_windows_shorter_than_its_step() {
    let d = dashboard();
    let a = d["annotations"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Maintenance mode")
        .expect("a maintenance annotation");
    let expr = a["expr"].as_str().unwrap();
    assert!(
        expr.starts_with("max_over_time(steward_maintenance_mode{")
            && expr.contains("[$__interval])"),
        "{expr:?}: a window between two steps would be missed"
    );
    let step = a["step"].as_str().expect("an explicit step");
    let secs: u64 = step.strip_suffix('s').and_then(|n| n.parse().ok()).unwrap();
    assert!(secs <= 15, "step {step}: regions coarser than a scrape");
}

#[test]
fn every_panel_queries_through_the_datasource_variable() {
    let d = dashboard();
    let panels = all_panels(&d);
    assert!(panels.iter().filter(|(_, p)| !is_row(p)).count() >= 20);
    for (_, p) in &panels {
        if is_row(p) {
            continue;
        }
        let name = title(p);
        assert!(
            !p["title"].as_str().unwrap_or_default().is_empty(),
            "{name}: no title"
        );
        assert_eq!(p["datasource"]["type"], "prometheus", "{name}");
        assert_eq!(p["datasource"]["uid"], DS_UID, "{name}");
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no targets"));
        assert!(!targets.is_empty(), "{name}: no targets");
        let mut refs = HashSet::new();
        for t in targets {
            assert_eq!(t["datasource"]["type"], "prometheus", "{name}");
            assert_eq!(t["datasource"]["uid"], DS_UID, "{name}");
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(
                !expr.trim().is_empty(),
                "{name}: a target with an empty expr"
            );
            let r = t["refId"].as_str().expect("refId");
            assert!(refs.insert(r.to_string()), "{name}: refId {r} twice");
        }
    }
    // No datasource anywhere else in the file is pinned to one Grafana's uid (Grafana's own
    // built-in annotation source aside).
    fn walk(v: &Value, path: &str) {
        match v {
            Value::Object(m) => {
                if let Some(ds) = m.get("datasource") {
                    if ds.is_object() && ds["type"] != "grafana" {
                        assert_eq!(ds["uid"], DS_UID, "datasource at {path}");
                    }
                }
                for (k, x) in m {
                    walk(x, &format!("{path}.{k}"));
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, &format!("{path}[{i}]"));
                }
            }
            _ => {}
        }
    }
    walk(&d, "$");
}

#[test]
fn panel_ids_are_unique_and_the_grid_has_no_overlaps() {
    let d = dashboard();
    let panels = all_panels(&d);
    let mut ids = HashSet::new();
    for (_, p) in &panels {
        let id = p["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: no id", title(p)));
        assert!(ids.insert(id), "panel id {id} used twice");
    }
    let rect = |p: &Value| {
        let g = &p["gridPos"];
        let f = |k: &str| {
            g[k].as_u64()
                .unwrap_or_else(|| panic!("{}: gridPos.{k}", title(p)))
        };
        let (x, y, w, h) = (f("x"), f("y"), f("w"), f("h"));
        assert!(w > 0 && h > 0 && x + w <= 24, "{}: gridPos {g}", title(p));
        (x, y, w, h)
    };
    // Top-level panels share one grid; the panels inside each collapsed row share another.
    let mut groups: Vec<(Option<u64>, Vec<&Value>)> = Vec::new();
    for (parent, p) in &panels {
        match groups.iter_mut().find(|(g, _)| g == parent) {
            Some((_, v)) => v.push(p),
            None => groups.push((*parent, vec![p])),
        }
    }
    for (_, group) in groups {
        for (i, a) in group.iter().enumerate() {
            let (ax, ay, aw, ah) = rect(a);
            for b in &group[i + 1..] {
                let (bx, by, bw, bh) = rect(b);
                let apart = ax + aw <= bx || bx + bw <= ax || ay + ah <= by || by + bh <= ay;
                assert!(apart, "{} overlaps {}", title(a), title(b));
            }
        }
    }
}

#[test]
fn queries_name_only_registered_metrics_and_cover_the_issue_list() {
    let d = dashboard();
    let registered = registered_names();
    let mut used = BTreeSet::new();
    for e in all_exprs(&d) {
        used.extend(metric_names(&e));
        // Counters go through rate() or increase(); gauges never do.
        for name in metric_names(&e) {
            let counter = name.ends_with("_total") || name.ends_with("_bucket");
            let windowed = e.contains("rate(") || e.contains("increase(");
            assert!(
                !counter || windowed,
                "{e:?}: counter {name} without rate()/increase()"
            );
        }
    }
    // Names anywhere in the file (descriptions, variables) count too: a reader copies them.
    let everywhere = metric_names(&read(DASHBOARD));
    let unknown: Vec<_> = everywhere.difference(&registered).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard names metrics steward does not register: {unknown:?}"
    );
    let missing: Vec<_> = REQUIRED_METRICS
        .iter()
        .filter(|m| !used.contains(**m))
        .collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}");
}

/// Every query is valid PromQL: promtool parses them as recording rules, with Grafana's
/// variables replaced by values of the right kind.
#[test]
fn queries_parse_as_promql() {
    let d = dashboard();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in all_exprs(&d).iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "1m")
            .replace("$__range", "1h")
            .replace("$__interval", "1m")
            .replace("$instance", ".*")
            .replace("$job", "steward");
        assert!(!e.contains('$'), "an unhandled Grafana variable in {e:?}");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yml");
    std::fs::write(&file, &rules).unwrap();
    let out = std::process::Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
        .expect("promtool (Debian package prometheus) must be installed; tests/run.sh installs it");
    assert!(
        out.status.success(),
        "promtool rejects a dashboard query:\n{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn provisioning_files_agree_with_the_dashboard_and_the_readme() {
    let ds = read(DATASOURCE_YML);
    let prov = read(PROVIDER_YML);
    for (file, text) in [(DATASOURCE_YML, &ds), (PROVIDER_YML, &prov)] {
        assert!(!text.contains('\t'), "{file}: YAML does not allow tabs");
        assert!(text.contains("apiVersion: 1\n"), "{file}: apiVersion 1");
    }
    // The datasource is of the type the dashboard's variable asks for.
    for needed in [
        "datasources:\n",
        "type: prometheus\n",
        "url: http://localhost:9090\n",
    ] {
        assert!(ds.contains(needed), "{DATASOURCE_YML} lacks {needed:?}");
    }
    for needed in [
        "providers:\n",
        "type: file\n",
        &format!("path: {DASHBOARD_DIR}\n"),
        // The comment on where to copy the JSON names the same directory and the uid.
        &format!("{DASHBOARD_DIR}/steward.json"),
        UID,
    ] {
        assert!(prov.contains(needed), "{PROVIDER_YML} lacks {needed:?}");
    }

    let readme = read("docs/deployment.md");
    let start = readme
        .find("\n## Grafana")
        .expect("docs/deployment.md has a Grafana section");
    let section = &readme[start + 1..];
    let section = &section[..section[1..].find("\n## ").map_or(section.len(), |e| e + 1)];
    for needed in [
        DASHBOARD,
        DATASOURCE_YML,
        PROVIDER_YML,
        DASHBOARD_DIR,
        UID,
        "/etc/grafana/provisioning/datasources/",
        "/etc/grafana/provisioning/dashboards/",
    ] {
        assert!(
            section.contains(needed),
            "the Grafana section of docs/deployment.md does not mention {needed:?}"
        );
    }
}
