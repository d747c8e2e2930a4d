//! Real Prometheus and Alertmanager servers as test peers (Debian packages `prometheus` and
//! `prometheus-alertmanager`), each in its own temp dir on a free port and killed on drop,
//! plus the small HTTP/JSON client the tests use to read their APIs.
//!
//! `Alertmanager::start()`, then `Prometheus::start(yaml)` with the Alertmanager's `addr()` as
//! its alerting target; `prom.query(expr)`, `prom.alerts()` and `am.alerts()` read their APIs.

use super::{free_port, poll, short_tempdir, tail};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a peer may take to become ready (two cores, tests in parallel).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// An Alertmanager config that accepts everything and notifies nobody, grouping fast.
pub const ALERTMANAGER_SILENT_CONFIG: &str = "\
route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: blackhole
";

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// Percent-encodes `s` for a query string (everything but unreserved characters).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP/1.0 request to 127.0.0.1:`port` with an optional JSON body; returns the status and
/// the body (not parsed, so that errors can show it).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    json: Option<&Value>,
) -> std::io::Result<(u16, String)> {
    let body = json.map(|v| v.to_string());
    super::http_full(port, method, path, body.as_deref()).map(|(status, _, body)| (status, body))
}

/// GET returning parsed JSON; panics (naming the request) on a transport error, a status
/// other than 200 or a body that is not JSON.
pub fn get_json(port: u16, path: &str) -> Value {
    json_call(port, "GET", path, None)
}

/// POST of a JSON body, with the same checks as [`get_json`]; an empty reply body is `null`.
pub fn post_json(port: u16, path: &str, body: &Value) -> Value {
    json_call(port, "POST", path, Some(body))
}

fn json_call(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let (code, text) = http_request(port, method, path, body)
        .unwrap_or_else(|e| panic!("{method} 127.0.0.1:{port}{path}: {e}"));
    assert_eq!(
        code, 200,
        "{method} 127.0.0.1:{port}{path} → {code}: {text}"
    );
    if text.trim().is_empty() {
        return Value::Null;
    }
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {path}: reply is not JSON ({e}): {text}"))
}

// ---------------------------------------------------------------------------------------------
// A peer process
// ---------------------------------------------------------------------------------------------

/// A server process in its temp dir, with its output in `<dir>/log`.
struct Peer {
    name: &'static str,
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
}

impl Peer {
    /// Writes `config_name` with `config` into a fresh temp dir, then starts `program` with the
    /// arguments `args(dir, port)` until `/-/ready` answers 200. A port taken by someone else
    /// between [`free_port`] and the bind is retried with another one; `fixed_port` is used as
    /// given.
    fn start(
        fixed_port: Option<u16>,
        name: &'static str,
        program: &str,
        config_name: &str,
        config: &str,
        args: impl Fn(&Path, u16) -> Vec<String>,
    ) -> Peer {
        let dir = short_tempdir("stw-peer-");
        fs::write(dir.path().join(config_name), config).unwrap();
        let mut peer = Peer {
            name,
            dir,
            child: None,
            port: 0,
        };
        for _attempt in 0..3 {
            peer.port = fixed_port.unwrap_or_else(free_port);
            let log = fs::File::create(peer.log_path()).unwrap();
            let child = Command::new(program)
                .args(args(peer.dir.path(), peer.port))
                .current_dir(peer.dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {program} (is it installed?): {e}"));
            peer.child = Some(child);
            let mut exited = false;
            let ready = poll(READY_TIMEOUT, || {
                if let Some(c) = peer.child.as_mut() {
                    exited = c.try_wait().unwrap().is_some();
                }
                exited
                    || matches!(
                        http_request(peer.port, "GET", "/-/ready", None),
                        Ok((200, _))
                    )
            });
            if ready && !exited {
                return peer;
            }
            peer.kill();
            if !peer.log().contains("address already in use") {
                break;
            }
        }
        panic!(
            "{name} did not become ready on 127.0.0.1:{}\n--- {name} log\n{}",
            peer.port,
            tail(&peer.log(), 40)
        );
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- {} log (tail)\n{}", self.name, tail(&self.log(), 40));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Alertmanager
// ---------------------------------------------------------------------------------------------

/// A real Alertmanager (no clustering), killed on drop.
pub struct Alertmanager {
    peer: Peer,
}

impl Alertmanager {
    /// With [`ALERTMANAGER_SILENT_CONFIG`].
    pub fn start() -> Alertmanager {
        Self::start_with_config(ALERTMANAGER_SILENT_CONFIG)
    }

    /// With the given alertmanager.yml text.
    pub fn start_with_config(config: &str) -> Alertmanager {
        Self::start_at(None, config)
    }

    /// On a given port (e.g. one a steward was told about before Alertmanager existed).
    pub fn start_on(port: u16) -> Alertmanager {
        Self::start_at(Some(port), ALERTMANAGER_SILENT_CONFIG)
    }

    fn start_at(port: Option<u16>, config: &str) -> Alertmanager {
        let peer = Peer::start(
            port,
            "alertmanager",
            "prometheus-alertmanager",
            "alertmanager.yml",
            config,
            |dir, port| {
                vec![
                    format!("--config.file={}", dir.join("alertmanager.yml").display()),
                    format!("--storage.path={}", dir.join("data").display()),
                    format!("--web.listen-address=127.0.0.1:{port}"),
                    "--cluster.listen-address=".into(),
                ]
            },
        );
        Alertmanager { peer }
    }

    pub fn port(&self) -> u16 {
        self.peer.port
    }

    /// `127.0.0.1:PORT`, for a Prometheus `static_configs` target.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// `http://127.0.0.1:PORT`, for steward's `[alertmanager] url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// GET /api/v2/alerts: the array of alerts Alertmanager holds (by default the active,
    /// silenced, inhibited and unprocessed ones; alerts whose `endsAt` has passed are left out).
    pub fn alerts(&self) -> Value {
        get_json(self.port(), "/api/v2/alerts")
    }

    /// The alerts named `alertname` from [`Alertmanager::alerts`].
    pub fn alerts_named(&self, alertname: &str) -> Vec<Value> {
        named(self.alerts(), alertname)
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.peer.log()
    }
}

/// The elements of a JSON array of alerts whose `labels.alertname` is `alertname`.
pub fn named(alerts: Value, alertname: &str) -> Vec<Value> {
    match alerts {
        Value::Array(a) => a
            .into_iter()
            .filter(|x| x["labels"]["alertname"] == alertname)
            .collect(),
        other => panic!("expected an array of alerts, got {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------------------------

/// A real Prometheus with its TSDB in a temp dir, killed on drop.
pub struct Prometheus {
    peer: Peer,
}

impl Prometheus {
    /// Starts it with `config` as prometheus.yml (relative paths in it are relative to the temp
    /// dir; use absolute ones for shipped files).
    pub fn start(config: &str) -> Prometheus {
        let peer = Peer::start(
            None,
            "prometheus",
            "prometheus",
            "prometheus.yml",
            config,
            |dir, port| {
                vec![
                    format!("--config.file={}", dir.join("prometheus.yml").display()),
                    format!("--storage.tsdb.path={}", dir.join("data").display()),
                    format!("--web.listen-address=127.0.0.1:{port}"),
                ]
            },
        );
        Prometheus { peer }
    }

    pub fn port(&self) -> u16 {
        self.peer.port
    }

    /// An instant query; returns `data.result` (an array for vector results).
    pub fn query(&self, expr: &str) -> Value {
        let v = get_json(
            self.port(),
            &format!("/api/v1/query?query={}", url_encode(expr)),
        );
        assert_eq!(v["status"], "success", "query {expr}: {v}");
        v["data"]["result"].clone()
    }

    /// The value of a query that returns exactly one sample (None for none; panics on more).
    pub fn query_value(&self, expr: &str) -> Option<f64> {
        let r = self.query(expr);
        let a = r
            .as_array()
            .unwrap_or_else(|| panic!("{expr}: not a vector: {r}"));
        assert!(a.len() <= 1, "{expr}: more than one sample: {r}");
        a.first()
            .map(|s| s["value"][1].as_str().unwrap().parse().unwrap())
    }

    /// GET /api/v1/alerts: `data.alerts`, the pending and firing alerts.
    pub fn alerts(&self) -> Value {
        let v = get_json(self.port(), "/api/v1/alerts");
        v["data"]["alerts"].clone()
    }

    /// The alerts named `alertname` from [`Prometheus::alerts`].
    pub fn alerts_named(&self, alertname: &str) -> Vec<Value> {
        named(self.alerts(), alertname)
    }

    /// GET /api/v1/rules: `data.groups` (rule health and last errors included).
    pub fn rules(&self) -> Value {
        get_json(self.port(), "/api/v1/rules")["data"]["groups"].clone()
    }

    /// GET /api/v1/targets: `data.activeTargets`.
    pub fn targets(&self) -> Value {
        get_json(self.port(), "/api/v1/targets")["data"]["activeTargets"].clone()
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.peer.log()
    }
}
