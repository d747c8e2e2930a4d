//! Graceful shutdown: SIGTERM/SIGINT → exit 0 within shutdown.timeout, socket file removed.

mod common;

use common::*;
use std::net::TcpListener;
use std::time::Instant;

fn assert_graceful_exit(st: &mut Steward, sig: i32) {
    let sock = st.socket().to_path_buf();
    assert!(sock.exists());
    let sent = Instant::now();
    st.signal(sig);
    let status = st.wait_exit(SHUTDOWN_TIMEOUT + SLACK);
    let took = sent.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!(
            "steward still running {took:?} after signal {sig}\n--- log\n{}",
            tail(&st.log(), 60)
        )
    });
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after signal {sig}: {status:?}\n--- log\n{}",
        tail(&st.log(), 60)
    );
    assert!(took <= SHUTDOWN_TIMEOUT + SLACK, "took {took:?}");
    assert!(!sock.exists(), "socket file {} left behind", sock.display());
    eprintln!("signal {sig}: exited 0 after {took:?}");
    // Nothing listens any more on the metrics port either.
    assert!(!port_open(st.metrics_port()));
}

#[test]
fn sigterm_exits_0_and_removes_socket() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let mut st = Steward::start(&pg, &redis);
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    st.wait_up("redis", true, INTERVAL * 2 + SLACK);
    assert_graceful_exit(&mut st, libc::SIGTERM);
    // The client now reports no daemon.
    let out = steward_cmd(
        &["--socket", st.socket().to_str().unwrap(), "status"],
        st.dir(),
        &[],
    );
    assert_eq!(out.code, 3, "{out:?}");
}

#[test]
fn sigint_exits_0_and_removes_socket() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let mut st = Steward::start(&pg, &redis);
    st.wait_up("redis", true, INTERVAL * 2 + SLACK);
    assert_graceful_exit(&mut st, libc::SIGINT);
}

#[test]
fn sigterm_with_services_down_exits_0() {
    let mut st = Steward::builder_without_services().start();
    st.wait_until(INTERVAL * 2 + SLACK, "first checks", |st| {
        st.up("postgres").is_some()
    });
    assert_graceful_exit(&mut st, libc::SIGTERM);
}

#[test]
fn sigterm_while_a_check_hangs_exits_in_time() {
    // A "server" that accepts connections and never says a word: every check hangs until its
    // timeout. Shutdown must not wait for anything longer than shutdown.timeout.
    let hang = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hang.local_addr().unwrap().port();
    let keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in hang.incoming() {
            match c {
                Ok(c) => held.push(c),
                Err(_) => break,
            }
            if held.len() > 200 {
                break;
            }
        }
    });
    let mut st = Steward::builder_urls(
        Some(format!("postgres://u:p@127.0.0.1:{port}/db")),
        Some(format!("redis://127.0.0.1:{port}/0")),
    )
    .with(|s| {
        s.pg_interval = "2s".into();
        s.pg_timeout = "1900ms".into();
        s.redis_interval = "2s".into();
        s.redis_timeout = "1900ms".into();
    })
    .start();
    st.wait_until(INTERVAL * 4 + SLACK, "first checks", |st| {
        st.up("postgres").is_some() && st.up("redis").is_some()
    });
    assert_graceful_exit(&mut st, libc::SIGTERM);
    drop(keep);
}

#[test]
fn socket_in_use_by_another_daemon_is_not_stolen() {
    // A second steward pointed at the socket of a running one must not unlink it.
    let first = Steward::builder_without_services().start();
    let sock = first.socket().to_path_buf();
    let b = Steward::builder_without_services().with(|s| s.socket = sock.clone());
    let cfg = b.dir().join("steward.toml");
    std::fs::write(&cfg, b.settings.render()).unwrap();
    let out = steward_cmd(&["run", "--config", cfg.to_str().unwrap()], b.dir(), &[]);
    assert_ne!(out.code, 0, "second daemon should refuse to start: {out:?}");
    assert!(
        out.stderr.contains(sock.to_str().unwrap()) || out.stderr.contains("in use"),
        "{out:?}"
    );
    // The first still answers.
    assert!(first.raw_request(r#"{"cmd":"status"}"#).unwrap().ok);
}

#[test]
fn sigterm_ends_steward_while_a_reload_cannot_read_its_config() {
    // The config file becomes a FIFO nobody writes to: opening it may block (steward refuses
    // FIFOs, but a reload must be harmless even where a read does block). The reload runs off
    // the signal path, so SIGTERM is still heard and steward stops within shutdown.timeout.
    let pg = Postgres::start();
    let redis = Redis::start();
    let mut st = Steward::start(&pg, &redis);
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    std::fs::remove_file(&st.config_path).unwrap();
    let c = std::ffi::CString::new(st.config_path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    st.signal(libc::SIGHUP);
    st.wait_until(SLACK, "the reload to start", |st| {
        st.log().contains("SIGHUP received")
    });
    st.signal(libc::SIGHUP);
    // The daemon goes on serving meanwhile.
    assert!(st.raw_request(r#"{"cmd":"status"}"#).unwrap().ok);
    // The socket is removed at exit as always (the config is not read again to find it).
    assert_graceful_exit(&mut st, libc::SIGTERM);
}
