//! HTTP hardening: TLS (served, plain HTTP refused, certificate renewed on SIGHUP, a broken
//! one rejected), basic auth (401 with a challenge, right/wrong/missing credentials, open
//! probes, users file reloaded), slowloris and a connection flood.

mod common;

use base64::Engine;
use common::tls::{curl_https, file_fingerprint, make_cert, served_fingerprint};
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(20);

/// One request with `Connection: close` and optional basic auth: (status, lowercased head, body).
fn get(
    port: u16,
    path: &str,
    auth: Option<(&str, &str)>,
) -> std::io::Result<(u16, String, String)> {
    let header = auth.map(|(u, p)| {
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        format!("Basic {enc}")
    });
    let headers: Vec<(&str, &str)> = header
        .iter()
        .map(|h| ("Authorization", h.as_str()))
        .collect();
    http_with_headers(port, "GET", path, &headers, None)
}

fn status(port: u16, path: &str, auth: Option<(&str, &str)>) -> u16 {
    get(port, path, auth)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .0
}

struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
}

fn tls_steward(pg: &Postgres, redis: &Redis) -> (Steward, TlsFiles) {
    tls_steward_with(Steward::builder(pg, redis))
}

fn tls_steward_with(b: StewardBuilder) -> (Steward, TlsFiles) {
    let files = TlsFiles {
        cert: b.dir().join("cert.pem"),
        key: b.dir().join("key.pem"),
    };
    make_cert(&files.cert, &files.key);
    let st = b
        .env("STEWARD_METRICS__TLS_CERT", &files.cert.to_string_lossy())
        .env("STEWARD_METRICS__TLS_KEY", &files.key.to_string_lossy())
        .start();
    (st, files)
}

#[test]
fn tls_serves_metrics_and_refuses_plain_http() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let pw = random_password();
    let pw_hash = hash(&pw);
    let (st, tls) = tls_steward_with(
        Steward::builder(&pg, &redis)
            .with(|s| s.backup += &format!("\n[metrics.basic_auth_users]\nprom = {pw_hash:?}\n")),
    );
    let port = st.metrics_port();
    let auth = Some(("prom", pw.as_str()));
    let (code, body) = curl_https(port, "/metrics", &tls.cert, auth)
        .unwrap_or_else(|e| panic!("curl over TLS failed: {e}\n{}", tail(&st.log(), 30)));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("steward_http_connections"), "{body}");
    let (code, _) = curl_https(port, "/metrics", &tls.cert, None).unwrap();
    assert_eq!(code, 401, "basic auth applies over TLS too");
    let (code, _) = curl_https(port, "/-/healthy", &tls.cert, None).unwrap();
    assert_eq!(code, 200);
    // Plain HTTP to the TLS port gets no HTTP answer.
    assert!(
        get(port, "/metrics", None).is_err(),
        "plain HTTP must not be answered on the TLS port"
    );
    // A client that does not trust the certificate refuses it: it is really TLS.
    let other = st.dir().join("other.pem");
    make_cert(&other, &st.dir().join("other-key.pem"));
    assert!(curl_https(port, "/metrics", &other, None).is_err());
    st.wait_until(BOUND, "the failed handshake to be counted", |_| {
        curl_https(port, "/metrics", &tls.cert, auth)
            .ok()
            .and_then(|(_, b)| metric_value(&b, "steward_http_tls_handshake_failures_total", &[]))
            .is_some_and(|v| v >= 1.0)
    });
}

#[test]
fn certificate_is_reloaded_on_sighup_and_a_broken_one_is_refused() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let (st, tls) = tls_steward(&pg, &redis);
    let port = st.metrics_port();
    let first = file_fingerprint(&tls.cert);
    assert_eq!(served_fingerprint(port).as_deref(), Some(first.as_str()));

    // A renewed certificate at the same path; the config text does not change.
    make_cert(&tls.cert, &tls.key);
    let second = file_fingerprint(&tls.cert);
    assert_ne!(first, second);
    st.signal(libc::SIGHUP);
    st.wait_until(BOUND, "the renewed certificate to be served", |_| {
        served_fingerprint(port).as_deref() == Some(second.as_str())
    });
    let (code, _) = curl_https(port, "/metrics", &tls.cert, None).unwrap();
    assert_eq!(code, 200);

    // A broken certificate: the reload is refused, naming the key; the old one stays.
    std::fs::write(&tls.cert, "not a certificate\n").unwrap();
    let out = st.ctl(&["reload"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.all().contains("metrics.tls_cert"), "{}", out.all());
    assert_eq!(served_fingerprint(port).as_deref(), Some(second.as_str()));
    // A key that belongs to another certificate is refused too.
    let (other_cert, other_key) = (st.dir().join("o.pem"), st.dir().join("o-key.pem"));
    make_cert(&other_cert, &other_key);
    std::fs::copy(&other_cert, &tls.cert).unwrap();
    let out = st.ctl(&["reload"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.all().contains("metrics.tls_key"), "{}", out.all());
    assert_eq!(served_fingerprint(port).as_deref(), Some(second.as_str()));
    assert!(
        !out.all().contains("PRIVATE KEY"),
        "key material in: {}",
        out.all()
    );
}

fn hash(password: &str) -> String {
    // Cost 4 keeps the test fast; the format is the one htpasswd -B writes.
    bcrypt::hash(password, 4).unwrap()
}

fn write_users_file(path: &Path, user: &str, password: &str) {
    std::fs::write(path, format!("# htpasswd -B\n{user}:{}\n", hash(password))).unwrap();
}

#[test]
fn basic_auth_guards_metrics_and_health_but_not_probes() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let prom_pw = random_password();
    let file_pw = random_password();
    let prom_hash = hash(&prom_pw);
    let b = Steward::builder(&pg, &redis);
    let users = b.dir().join("users");
    write_users_file(&users, "grafana", &file_pw);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let st = b
        .with(|s| s.backup += &format!("\n[metrics.basic_auth_users]\nprom = {prom_hash:?}\n"))
        .env(
            "STEWARD_METRICS__BASIC_AUTH_USERS_FILE",
            &users.to_string_lossy(),
        )
        .start();
    let port = st.metrics_port();

    for path in ["/metrics", "/health", "/"] {
        let (code, head, _) = get(port, path, None).unwrap();
        assert_eq!(code, 401, "{path} without credentials");
        assert!(
            head.contains("www-authenticate: basic realm=\"steward\""),
            "{path}: {head}"
        );
        assert_eq!(status(port, path, Some(("prom", "wrong"))), 401, "{path}");
        assert_eq!(
            status(port, path, Some(("nobody", &prom_pw))),
            401,
            "{path}"
        );
    }
    assert_eq!(status(port, "/metrics", Some(("prom", &prom_pw))), 200);
    // Cached now; still right, and the other user still refused with this password.
    assert_eq!(status(port, "/metrics", Some(("prom", &prom_pw))), 200);
    assert_eq!(status(port, "/metrics", Some(("grafana", &prom_pw))), 401);
    assert_eq!(status(port, "/metrics", Some(("grafana", &file_pw))), 200);
    let health = status(port, "/health", Some(("prom", &prom_pw)));
    assert!(health == 200 || health == 503, "{health}");
    // Liveness and readiness stay open for probes.
    assert_eq!(status(port, "/-/healthy", None), 200);
    assert_ne!(status(port, "/-/ready", None), 401);

    let (_, _, body) = get(port, "/metrics", Some(("prom", &prom_pw))).unwrap();
    assert!(
        metric_value(
            &body,
            "steward_http_auth_failures_total",
            &[("reason", "denied")]
        )
        .is_some_and(|v| v >= 9.0),
        "{body}"
    );
    // The exposed users file was warned about, without its content.
    let log = st.log();
    assert!(
        log.contains("chmod 600") && log.contains(&*users.to_string_lossy()),
        "{}",
        tail(&log, 30)
    );
    assert!(
        !log.contains(&prom_hash) && !log.contains("$2b$"),
        "hash in log"
    );

    // check-config shows the users, never the hashes.
    let out = st.cli_with_env(
        &[
            "check-config",
            "--config",
            &st.config_path.to_string_lossy(),
        ],
        &[(
            "STEWARD_METRICS__BASIC_AUTH_USERS_FILE",
            &users.to_string_lossy(),
        )],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("prom = \"***\""), "{}", out.stdout);
    assert!(!out.all().contains("$2b$"), "{}", out.all());

    // The users file is re-read on reload: a new password replaces the old one.
    let new_pw = random_password();
    write_users_file(&users, "grafana", &new_pw);
    let out = st.ctl(&["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(status(port, "/metrics", Some(("grafana", &new_pw))), 200);
    assert_eq!(status(port, "/metrics", Some(("grafana", &file_pw))), 401);

    // A bad hash is refused by name, and the running users stay.
    std::fs::write(&users, "grafana:plaintext-password\n").unwrap();
    let out = st.ctl(&["reload"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.all().contains("metrics.basic_auth_users_file"),
        "{}",
        out.all()
    );
    assert!(out.all().contains("line 1"), "{}", out.all());
    assert!(!out.all().contains("plaintext-password"), "{}", out.all());
    assert_eq!(status(port, "/metrics", Some(("grafana", &new_pw))), 200);
}

/// Opens `n` connections that each send a partial request head and then stall.
fn stalled(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect()
}

/// True once the server closed the connection (EOF or reset), false while it is open.
fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408 or similar before the close
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn slowloris_does_not_starve_scrapes_and_stalled_clients_are_dropped() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    let port = st.metrics_port();
    // Headers beyond the buffer bound are refused, not buffered.
    let big = format!("/metrics?{}", "a".repeat(20_000));
    assert_eq!(status(port, &big, None), 431);
    let mut slow = stalled(port, 200);
    // A normal scrape still gets through while 200 clients stall.
    st.wait_until(BOUND, "a scrape during the slowloris", |_| {
        get(port, "/metrics", None).is_ok_and(|(c, _, b)| c == 200 && b.contains("steward_up"))
    });
    // The header timeout (10 s) drops every stalled client.
    st.wait_until(
        Duration::from_secs(60),
        "the stalled clients to be closed",
        |_| slow.iter_mut().all(closed),
    );
    st.wait_until(BOUND, "the open-connection gauge to fall", |st| {
        st.metric("steward_http_connections", &[])
            .is_some_and(|v| v <= 2.0)
    });
    let out = st.ctl(&["status"]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn connection_flood_above_the_limit_leaves_the_daemon_serving() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    let port = st.metrics_port();
    // More than the limit (256): the excess is closed at once.
    let mut flood: Vec<TcpStream> = (0..400)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    for s in &flood {
        s.set_nonblocking(true).unwrap();
    }
    st.wait_until(BOUND, "the excess connections to be closed", |_| {
        flood.iter_mut().map(closed).filter(|c| *c).count() >= 100
    });
    // The control socket answers throughout.
    let out = st.ctl(&["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    // Once the flood is dropped by the header timeout, scrapes work and the refusals show.
    st.wait_until(Duration::from_secs(60), "a scrape after the flood", |_| {
        get(port, "/metrics", None).is_ok_and(|(c, _, b)| {
            c == 200
                && metric_value(&b, "steward_http_connections_refused_total", &[])
                    .is_some_and(|v| v >= 100.0)
        })
    });
    drop(flood);
    let out = st.ctl(&["status"]);
    assert_eq!(out.code, 0, "{out:?}");
}
