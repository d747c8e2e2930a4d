//! The systemd notify protocol, against a real notify socket: READY=1 once serving,
//! WATCHDOG=1 pings while healthy when WATCHDOG_USEC is set, STOPPING=1 at shutdown.

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Reads datagrams until `done` holds for the lines seen so far, or the time runs out.
fn read_until(
    sock: &UnixDatagram,
    lines: &mut Vec<String>,
    timeout: Duration,
    done: impl Fn(&[String]) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if done(lines) {
            return true;
        }
        if let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            lines.extend(text.lines().map(str::to_string));
        }
    }
    done(lines)
}

fn count(lines: &[String], what: &str) -> usize {
    lines.iter().filter(|l| l.as_str() == what).count()
}

#[test]
fn notifies_ready_watchdog_and_stopping() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let dir = short_tempdir("ntf-");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // 400 ms watchdog period: steward pings about every 200 ms.
    let mut st = Steward::builder(&pg, &redis)
        .env("NOTIFY_SOCKET", path.to_str().unwrap())
        .env("WATCHDOG_USEC", "400000")
        .start();
    let mut lines = Vec::new();
    let ok = read_until(&sock, &mut lines, Duration::from_secs(10), |l| {
        count(l, "READY=1") >= 1 && count(l, "WATCHDOG=1") >= 3
    });
    assert!(
        ok,
        "no READY=1 and three WATCHDOG=1 pings; got {lines:?}\n{}",
        tail(&st.log(), 30)
    );
    let ready_at = lines.iter().position(|l| l == "READY=1").unwrap();
    let first_ping = lines.iter().position(|l| l == "WATCHDOG=1").unwrap();
    assert!(
        ready_at < first_ping,
        "READY=1 comes before the first ping: {lines:?}"
    );
    assert_eq!(count(&lines, "STOPPING=1"), 0);

    st.signal(libc::SIGTERM);
    let ok = read_until(&sock, &mut lines, SHUTDOWN_TIMEOUT + SLACK, |l| {
        count(l, "STOPPING=1") == 1
    });
    assert!(ok, "no STOPPING=1 after SIGTERM; got {lines:?}");
    let status = st
        .wait_exit(SHUTDOWN_TIMEOUT + SLACK)
        .expect("steward exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sighup_reports_reloading_then_ready() {
    let dir = short_tempdir("ntf-");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let st = Steward::builder_without_services()
        .env("NOTIFY_SOCKET", path.to_str().unwrap())
        .start();
    let mut lines = Vec::new();
    assert!(
        read_until(&sock, &mut lines, Duration::from_secs(10), |l| count(
            l, "READY=1"
        ) == 1),
        "{lines:?}"
    );
    assert_eq!(
        count(&lines, "WATCHDOG=1"),
        0,
        "no pings without WATCHDOG_USEC: {lines:?}"
    );
    st.signal(libc::SIGHUP);
    let ok = read_until(&sock, &mut lines, Duration::from_secs(10), |l| {
        count(l, "RELOADING=1") == 1 && count(l, "READY=1") == 2
    });
    assert!(
        ok,
        "SIGHUP did not send RELOADING=1 then READY=1: {lines:?}"
    );
}

/// The shipped unit passes `systemd-analyze verify` (with ExecStart pointed at the binary
/// under test, since the unit expects it installed in /usr/local/bin).
#[test]
fn shipped_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/steward.service"
    ))
    .unwrap();
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=",
        "Restart=on-failure",
        "User=steward",
        "StateDirectory=",
        "RuntimeDirectory=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed:?}");
    }
    let dir = short_tempdir("unit-");
    let path = dir.path().join("steward.service");
    let bin = env!("CARGO_BIN_EXE_steward");
    std::fs::write(&path, unit.replace("/usr/local/bin/steward", bin)).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect(
            "systemd-analyze (Debian package systemd) must be installed; tests/run.sh installs it",
        );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Lines about other units of this host (not ours) are not the unit's fault.
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("steward")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify failed:\n{text}"
    );
}
