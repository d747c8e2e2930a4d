//! HTTP hardening: TLS (served, plain HTTP refused, certificate renewed on SIGHUP, a broken
//! one rejected), basic auth (401 with a challenge, right/wrong/missing credentials, open
//! probes, users file reloaded), slowloris and a connection flood, and fairness: one client
//! address holding slow connections (plain or TLS) does not starve a scraper on another.

mod common;

use base64::Engine;
use common::tls::{curl_https, file_fingerprint, make_cert, served_fingerprint};
use common::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

const SLOW_HEAD: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";

/// Opens `n` connections from 127.0.0.2 that each send a partial request head and then stall
/// (those over the per-address cap are closed at once).
fn stalled(port: u16, n: usize) -> Vec<TcpStream> {
    let rt = client_runtime();
    (0..n)
        .map(|_| {
            let mut s = connect_from(&rt, Ipv4Addr::new(127, 0, 0, 2), port).unwrap();
            let _ = s.write_all(SLOW_HEAD);
            s
        })
        .collect()
}

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A non-blocking connection to 127.0.0.1:`port` from the loopback address `source`.
fn connect_from(
    rt: &tokio::runtime::Runtime,
    source: Ipv4Addr,
    port: u16,
) -> std::io::Result<TcpStream> {
    rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4()?;
        s.bind((source, 0).into())?;
        let connect = s.connect((Ipv4Addr::LOCALHOST, port).into());
        tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| std::io::Error::other("connect timed out"))??
            .into_std()
    })
}

/// `n` connections from 127.0.0.2 that send `head` (a partial request or TLS record) and then
/// one byte every half second, reconnecting whenever steward closes one; stops when dropped
/// (or after two minutes at most).
struct Slowloris {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Slowloris {
    fn start(port: u16, n: usize, head: &'static [u8]) -> Slowloris {
        Self::start_from(port, &[Ipv4Addr::new(127, 0, 0, 2)], n, head)
    }

    /// `n` slow connections from each of `sources`.
    fn start_from(port: u16, sources: &[Ipv4Addr], n: usize, head: &'static [u8]) -> Slowloris {
        let sources = sources.to_vec();
        let (stop, rounds) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (stop2, rounds2) = (stop.clone(), rounds.clone());
        let thread = std::thread::spawn(move || {
            let rt = client_runtime();
            let mut conns: Vec<(Ipv4Addr, Option<TcpStream>)> = sources
                .iter()
                .flat_map(|s| (0..n).map(|_| (*s, None)))
                .collect();
            let started = Instant::now();
            while !stop2.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(120) {
                for (source, c) in conns.iter_mut() {
                    let alive = c
                        .as_mut()
                        .is_some_and(|s| !closed(s) && s.write_all(b"a").is_ok());
                    if !alive {
                        *c = connect_from(&rt, *source, port)
                            .ok()
                            .and_then(|mut s| s.write_all(head).ok().map(|_| s));
                    }
                }
                rounds2.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        Slowloris {
            stop,
            rounds,
            thread: Some(thread),
        }
    }

    /// Waits until every connection has been tried twice.
    fn wait_started(&self) {
        wait_until(BOUND, "the slow clients to connect", || {
            self.rounds.load(Ordering::Relaxed) >= 2
        });
    }
}

impl Drop for Slowloris {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Scrapes 30 times (`scrape` gives the body of an answered scrape) and asserts that at least
/// 29 were answered while `attack` runs from 127.0.0.2, and that its excess was refused.
fn scrapes_get_through(
    st: &Steward,
    attack: &Slowloris,
    mut scrape: impl FnMut() -> Option<String>,
) {
    attack.wait_started();
    let answered = (0..30)
        .filter(|_| {
            let ok = scrape().is_some();
            std::thread::sleep(Duration::from_millis(100));
            ok
        })
        .count();
    eprintln!("{answered} of 30 scrapes answered during the slow clients' attack");
    assert!(
        answered >= 29,
        "only {answered} of 30 scrapes answered while 127.0.0.2 held slow connections\n{}",
        tail(&st.log(), 20)
    );
    let body = scrape().unwrap_or_default();
    let per_address = metric_value(
        &body,
        "steward_http_connections_refused_total",
        &[("reason", "per_address")],
    );
    assert!(per_address.is_some_and(|v| v >= 1.0), "{per_address:?}");
}

#[test]
fn slow_clients_on_one_address_do_not_starve_a_scraper_on_another() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    let port = st.metrics_port();
    let attack = Slowloris::start(port, 300, SLOW_HEAD);
    scrapes_get_through(&st, &attack, || {
        get(port, "/metrics", None)
            .ok()
            .filter(|(c, _, b)| *c == 200 && b.contains("steward_up"))
            .map(|(_, _, b)| b)
    });
}

/// Many addresses together at the total cap (any local user can bind every 127.x address): the
/// address holding the most gives up its oldest connection, so a scraper holding none still
/// gets in.
#[test]
fn slow_clients_on_many_addresses_do_not_starve_a_scraper_on_another() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    let port = st.metrics_port();
    let sources: Vec<Ipv4Addr> = (2..=11).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
    let attack = Slowloris::start_from(port, &sources, 40, SLOW_HEAD);
    scrapes_get_through(&st, &attack, || {
        get(port, "/metrics", None)
            .ok()
            .filter(|(c, _, b)| *c == 200 && b.contains("steward_up"))
            .map(|(_, _, b)| b)
    });
    let body = get(port, "/metrics", None)
        .map(|(_, _, b)| b)
        .unwrap_or_default();
    let evicted = metric_value(
        &body,
        "steward_http_connections_refused_total",
        &[("reason", "evicted")],
    );
    assert!(evicted.is_some_and(|v| v >= 1.0), "{evicted:?}");
}

#[test]
fn slow_tls_handshakes_on_one_address_do_not_starve_a_scraper_on_another() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let (st, tls) = tls_steward(&pg, &redis);
    let port = st.metrics_port();
    // The start of a 512-byte TLS handshake record, never finished.
    let attack = Slowloris::start(port, 300, &[0x16, 0x03, 0x01, 0x02, 0x00]);
    scrapes_get_through(&st, &attack, || {
        curl_https(port, "/metrics", &tls.cert, None)
            .ok()
            .filter(|(c, b)| *c == 200 && b.contains("steward_up"))
            .map(|(_, b)| b)
    });
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
    // The header deadline (5 s) drops every stalled client.
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
    // 40 connections from each of ten addresses in turn: the first eight go over their share
    // (32) and then fill the limit (256), so the last two find it full and take places of the
    // biggest holders until they hold almost as many; the excess (144) is closed at once,
    // refused or evicted.
    let rt = client_runtime();
    let mut flood: Vec<TcpStream> = (0..400)
        .filter_map(|i| connect_from(&rt, Ipv4Addr::new(127, 0, 0, 10 + (i / 40) as u8), port).ok())
        .collect();
    st.wait_until(BOUND, "the excess connections to be closed", |_| {
        flood.iter_mut().map(closed).filter(|c| *c).count() >= 144
    });
    // The control socket answers throughout.
    let out = st.ctl(&["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    // Once the flood is dropped by the header timeout, scrapes work and the refusals show.
    st.wait_until(Duration::from_secs(60), "a scrape after the flood", |_| {
        get(port, "/metrics", None).is_ok_and(|(c, _, b)| {
            let refused = |reason| {
                metric_value(
                    &b,
                    "steward_http_connections_refused_total",
                    &[("reason", reason)],
                )
                .unwrap_or(0.0)
            };
            c == 200
                && refused("limit") >= 1.0
                && refused("per_address") >= 1.0
                && refused("evicted") >= 1.0
                && refused("limit") + refused("per_address") + refused("evicted") >= 144.0
        })
    });
    drop(flood);
    let out = st.ctl(&["status"]);
    assert_eq!(out.code, 0, "{out:?}");
}
