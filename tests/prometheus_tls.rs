//! A real Prometheus scrapes steward over HTTPS with basic auth: the commented-out HTTPS keys
//! of the shipped config/prometheus/prometheus.yml, uncommented, against a steward serving a
//! self-signed certificate for 127.0.0.1 and bcrypt users in both the `$2y$` (htpasswd) and
//! `$2b$` forms; a wrong password and an untrusted certificate show as down targets with the
//! reason in Prometheus' `lastError`.

mod common;

use common::peers::Prometheus;
use common::tls::make_cert;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Generous bound for Prometheus' 1 s scrapes to land, on two busy cores.
const PEER_TIMEOUT: Duration = Duration::from_secs(60);

/// The line that starts the commented-out HTTPS keys in the shipped prometheus.yml.
const HTTPS_KEYS_START: &str = "    # scheme: https";

fn shipped_prometheus_yml() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/prometheus/prometheus.yml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replaces `from` with `to` in `text`, panicking if `from` is not there (the shipped example
/// changed, and this test must be told how).
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "expected {from:?} once in the shipped prometheus.yml job:\n{text}"
    );
    text.replacen(from, to, 1)
}

/// The shipped `scrape_configs` list with the commented-out HTTPS keys of its job uncommented
/// (from [`HTTPS_KEYS_START`] to the end of that comment block), the target, CA file and
/// password file pointed at this test's.
fn shipped_https_job(target: &str, ca_file: &Path, password_file: &Path) -> String {
    let text = shipped_prometheus_yml();
    let (_, jobs) = text
        .split_once("\nscrape_configs:\n")
        .expect("scrape_configs in the shipped prometheus.yml");
    let mut out = String::new();
    let mut in_keys = false;
    let mut uncommented = 0;
    for line in jobs.lines() {
        in_keys = line == HTTPS_KEYS_START || (in_keys && line.starts_with("    # "));
        if in_keys {
            out += &line.replacen("# ", "", 1);
            uncommented += 1;
        } else {
            out += line;
        }
        out += "\n";
    }
    assert!(
        uncommented >= 6,
        "no commented-out HTTPS keys starting with {HTTPS_KEYS_START:?} in the shipped \
         prometheus.yml:\n{jobs}"
    );
    let quoted = |p: &Path| serde_json::to_string(p.to_str().unwrap()).unwrap();
    let out = replace_once(&out, "127.0.0.1:9732", target);
    let out = replace_once(&out, "/etc/prometheus/steward-ca.pem", &quoted(ca_file));
    replace_once(
        &out,
        "/etc/prometheus/steward-password",
        &quoted(password_file),
    )
}

/// A further scrape job of the same target over HTTPS, with an inline password and an
/// optional CA file (none: the system's CAs, which do not know the test's certificate).
fn extra_job(name: &str, target: &str, ca_file: Option<&Path>, user: &str, pw: &str) -> String {
    let tls = ca_file
        .map(|p| {
            format!(
                "    tls_config:\n      ca_file: {}\n",
                serde_json::to_string(p.to_str().unwrap()).unwrap()
            )
        })
        .unwrap_or_default();
    format!(
        "  - job_name: {name}\n    scheme: https\n{tls}    basic_auth:\n      username: {user}\n      \
         password: {pw:?}\n    static_configs:\n      - targets: [{target:?}]\n"
    )
}

/// The active target of `job` from Prometheus' /api/v1/targets, if listed yet.
fn target(prom: &Prometheus, job: &str) -> Option<Value> {
    prom.targets()
        .as_array()
        .expect("activeTargets is an array")
        .iter()
        .find(|t| t["labels"]["job"] == job)
        .cloned()
}

/// Waits until `job`'s target is down and its lastError contains `needle`; returns that error.
fn wait_down_with(st: &Steward, prom: &Prometheus, job: &str, needle: &str) -> String {
    let mut last = Value::Null;
    st.wait_until(
        PEER_TIMEOUT,
        &format!("target {job} down with {needle:?}"),
        |_| {
            last = target(prom, job).unwrap_or_default();
            last["health"] == "down" && last["lastError"].as_str().unwrap_or("").contains(needle)
        },
    );
    last["lastError"].as_str().unwrap_or_default().to_string()
}

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth_and_reports_a_wrong_password() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let b = Steward::builder(&pg, &redis);
    let dir: PathBuf = b.dir().to_path_buf();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    make_cert(&cert, &key);

    // `prometheus` as `htpasswd -nbB` writes it ($2y$), `grafana` as the bcrypt crate does ($2b$).
    let prom_pw = random_password();
    let prom_hash = bcrypt::hash(&prom_pw, 4).unwrap();
    let prom_hash_2y = format!(
        "$2y${}",
        prom_hash
            .strip_prefix("$2b$")
            .unwrap_or_else(|| panic!("bcrypt crate hash not $2b$: {prom_hash}"))
    );
    let grafana_pw = random_password();
    let grafana_hash = bcrypt::hash(&grafana_pw, 4).unwrap();
    assert!(grafana_hash.starts_with("$2b$"), "{grafana_hash}");
    let st = b
        .with(|s| {
            s.backup += &format!(
                "\n[metrics.basic_auth_users]\nprometheus = {prom_hash_2y:?}\ngrafana = {grafana_hash:?}\n"
            )
        })
        .env("STEWARD_METRICS__TLS_CERT", &cert.to_string_lossy())
        .env("STEWARD_METRICS__TLS_KEY", &key.to_string_lossy())
        .start();
    let addr = format!("127.0.0.1:{}", st.metrics_port());

    // The password file as `echo PASSWORD > file` leaves it: with a trailing newline.
    let password_file = dir.join("steward-password");
    std::fs::write(&password_file, format!("{prom_pw}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    let wrong_pw = random_password();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n{}{}{}{}",
        shipped_https_job(&addr, &cert, &password_file),
        extra_job(
            "steward_bcrypt_2b",
            &addr,
            Some(&cert),
            "grafana",
            &grafana_pw
        ),
        extra_job(
            "steward_wrong_password",
            &addr,
            Some(&cert),
            "prometheus",
            &wrong_pw
        ),
        extra_job("steward_untrusted", &addr, None, "prometheus", &prom_pw),
    );
    let prom = Prometheus::start(&config);

    // The shipped job ($2y$ user, password file) and the $2b$ user both scrape, and steward's
    // own series are queryable under those jobs.
    for job in ["steward", "steward_bcrypt_2b"] {
        let up = poll(PEER_TIMEOUT, || {
            prom.query_value(&format!("up{{job={job:?}}}")) == Some(1.0)
        });
        assert!(
            up,
            "up{{job={job:?}}} not 1 after {PEER_TIMEOUT:?}; target: {}\n--- steward log\n{}",
            target(&prom, job).unwrap_or_default(),
            tail(&st.log(), 30)
        );
        st.wait_until(
            PEER_TIMEOUT,
            &format!("steward_up{{service=\"postgres\",job={job:?}}} == 1 in Prometheus"),
            |_| {
                prom.query_value(&format!(
                    "steward_up{{service=\"postgres\",job={job:?},instance={addr:?}}}"
                )) == Some(1.0)
            },
        );
        let t = target(&prom, job).expect("target listed");
        assert_eq!(t["health"], "up", "{t}");
        assert_eq!(t["scrapeUrl"], format!("https://{addr}/metrics"), "{t}");
    }

    // A wrong password: the target is down, with steward's 401 as the reason.
    let err = wait_down_with(&st, &prom, "steward_wrong_password", "401");
    assert!(err.contains("Unauthorized"), "{err}");
    st.wait_until(
        PEER_TIMEOUT,
        "up{job=\"steward_wrong_password\"} == 0",
        |_| prom.query_value(r#"up{job="steward_wrong_password"}"#) == Some(0.0),
    );
    // …and steward counted the refusals (read through the job that scrapes it).
    st.wait_until(
        PEER_TIMEOUT,
        "Prometheus to see steward's auth failures",
        |_| {
            prom.query_value(
                r#"steward_http_auth_failures_total{job="steward",reason="denied"} >= 1"#,
            )
            .is_some()
        },
    );

    // Without the CA file, Prometheus refuses the self-signed certificate: the scrape really
    // goes through TLS with that certificate.
    let err = wait_down_with(&st, &prom, "steward_untrusted", "x509");
    assert!(err.contains("unknown authority"), "{err}");
    st.wait_until(PEER_TIMEOUT, "up{job=\"steward_untrusted\"} == 0", |_| {
        prom.query_value(r#"up{job="steward_untrusted"}"#) == Some(0.0)
    });

    // The failing jobs do not disturb the good ones (a scrape may time out on a busy
    // machine, hence a poll rather than a single query).
    for job in ["steward", "steward_bcrypt_2b"] {
        st.wait_until(PEER_TIMEOUT, &format!("{job} still up"), |_| {
            prom.query_value(&format!("up{{job={job:?}}}")) == Some(1.0)
        });
    }
    // No password or hash reached steward's log.
    let log = st.log();
    for secret in [
        &prom_pw,
        &grafana_pw,
        &wrong_pw,
        &prom_hash_2y,
        &grafana_hash,
    ] {
        assert!(!log.contains(secret.as_str()), "a secret in steward's log");
    }
}
