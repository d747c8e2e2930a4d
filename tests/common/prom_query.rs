//! The shipped Grafana dashboard's queries against a real Prometheus: the shipped
//! prometheus.yml pointed at a test's steward, every query of the dashboard (panel targets,
//! annotations, variables) with Grafana's variables substituted the way Grafana does, and
//! range queries as Grafana's panels and annotations send them.

use super::peers::{get_json, url_encode, Prometheus};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The dashboard, relative to the crate.
pub const DASHBOARD: &str = "grafana/dashboards/steward.json";

fn crate_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The shipped prometheus.yml (job `steward`) with its targets pointed at `steward` and
/// `alertmanager`, 1 s scrape and evaluation intervals, and the rules file by absolute path.
pub fn shipped_prometheus_config(steward: &str, alertmanager: &str) -> String {
    let mut text = std::fs::read_to_string(crate_path("config/prometheus/prometheus.yml")).unwrap();
    let rules = crate_path("config/prometheus/steward-rules.yml");
    for (from, to) in [
        (
            r#"targets: ["127.0.0.1:9732"]"#,
            format!(r#"targets: ["{steward}"]"#),
        ),
        (
            r#"targets: ["127.0.0.1:9093"]"#,
            format!(r#"targets: ["{alertmanager}"]"#),
        ),
        ("scrape_interval: 15s", "scrape_interval: 1s".into()),
        ("evaluation_interval: 15s", "evaluation_interval: 1s".into()),
        (
            "  - steward-rules.yml",
            format!(
                "  - {}",
                serde_json::to_string(rules.to_str().unwrap()).unwrap()
            ),
        ),
    ] {
        assert_eq!(
            text.matches(from).count(),
            1,
            "prometheus.yml changed shape: expected `{from}` once"
        );
        text = text.replace(from, &to);
    }
    text
}

/// The shipped dashboard as JSON.
pub fn dashboard() -> Value {
    let text = std::fs::read_to_string(crate_path(DASHBOARD)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

/// One query of the dashboard: where it is (for messages) and its PromQL, variables unreplaced.
#[derive(Debug, Clone)]
pub struct DashQuery {
    pub origin: String,
    pub expr: String,
}

/// Every panel target (panels nested in collapsed rows included) and annotation query.
pub fn panel_and_annotation_queries(dash: &Value) -> Vec<DashQuery> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = Vec::new();
    for p in dash["panels"].as_array().into_iter().flatten() {
        panels.push(p);
        panels.extend(p["panels"].as_array().into_iter().flatten());
    }
    for p in panels {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(DashQuery {
                origin: format!(
                    "panel {:?} target {}",
                    p["title"].as_str().unwrap_or_default(),
                    t["refId"].as_str().unwrap_or_default()
                ),
                expr: t["expr"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    for a in dash["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(e) = a["expr"].as_str() {
            out.push(DashQuery {
                origin: format!("annotation {:?}", a["name"].as_str().unwrap_or_default()),
                expr: e.to_string(),
            });
        }
    }
    out
}

/// A `label_values(SELECTOR, LABEL)` query variable, in the dashboard's order.
#[derive(Debug, Clone)]
pub struct LabelValuesVar {
    pub name: String,
    pub selector: String,
    pub label: String,
}

/// The dashboard's query variables; panics on a query variable of another form (this helper
/// would not know how to evaluate it).
pub fn label_values_vars(dash: &Value) -> Vec<LabelValuesVar> {
    let mut out = Vec::new();
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["definition"].as_str().unwrap_or_default();
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|r| r.rsplit_once(','))
            .unwrap_or_else(|| panic!("variable {}: not label_values(…, …): {q:?}", v["name"]));
        out.push(LabelValuesVar {
            name: v["name"].as_str().unwrap().to_string(),
            selector: inner.0.trim().to_string(),
            label: inner.1.trim().to_string(),
        });
    }
    out
}

/// A multi-value variable's value in a regex matcher, as Grafana writes it: each value with
/// regex metacharacters escaped (doubled backslash inside a PromQL string), several values as
/// `(a|b)`.
pub fn grafana_regex(values: &[String]) -> String {
    let escaped: Vec<String> = values
        .iter()
        .map(|v| {
            let mut s = String::new();
            for c in v.chars() {
                if "\\$^*{}[]'+?.()|".contains(c) {
                    s.push_str("\\\\");
                }
                s.push(c);
            }
            s
        })
        .collect();
    match escaped.as_slice() {
        [one] => one.clone(),
        many => format!("({})", many.join("|")),
    }
}

/// `expr` with each `$name` of `vars` replaced (longest names first, so `$__rate_interval`
/// is not taken for `$__range`); panics if a `$` is left.
pub fn substitute(expr: &str, vars: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = vars.iter().collect();
    sorted.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let mut out = expr.to_string();
    for (k, v) in sorted {
        out = out.replace(&format!("${k}"), v);
    }
    assert!(
        !out.contains('$'),
        "an unhandled Grafana variable in {out:?}"
    );
    out
}

/// A range query (`/api/v1/query_range`), as Grafana sends a panel's or an annotation's query;
/// returns `data.result`.
pub fn query_range(prom: &Prometheus, expr: &str, start: f64, end: f64, step_secs: u64) -> Value {
    let v = get_json(
        prom.port(),
        &format!(
            "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step_secs}",
            url_encode(expr)
        ),
    );
    assert_eq!(v["status"], "success", "query_range {expr}: {v}");
    v["data"]["result"].clone()
}

/// The number of series an instant query returns (0 for a scalar or an empty vector).
pub fn series_count(prom: &Prometheus, expr: &str) -> usize {
    prom.query(expr).as_array().map_or(0, Vec::len)
}
