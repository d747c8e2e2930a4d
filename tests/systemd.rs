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

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/steward.service");
/// Where docs/deployment.md installs the binary and the config (the unit's ExecStart names both).
const BIN_PATH: &str = "/usr/local/bin/steward";
const CONFIG_PATH: &str = "/etc/steward/steward.toml";
/// The backup directory docs/deployment.md creates and the unit makes writable.
const BACKUP_DIR: &str = "/var/backups/steward";

/// `(section, key, value)` for every assignment of a unit file, in order (comments, blank
/// lines and backslash continuations handled as systemd does).
fn directives(unit: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut pending = String::new();
    for raw in unit.lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with(';'))
        {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        let line = std::mem::take(&mut pending) + line;
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// What the issue requires of the unit, each as a problem when it is missing or wrong.
fn unit_problems(unit: &str) -> Vec<String> {
    let all = directives(unit);
    // Every value a [Service] key is given, in order (an empty assignment resets a list).
    let values = |key: &str| -> Vec<&str> {
        all.iter()
            .filter(|(s, k, _)| s == "Service" && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    };
    let last = |key: &str| values(key).last().copied();
    let mut problems = Vec::new();
    let mut expect = |key: &str, ok: bool, want: &str| {
        if !ok {
            problems.push(format!(
                "[Service] {key}= must be {want}; it is {:?}",
                values(key)
            ));
        }
    };
    expect("Type", last("Type") == Some("notify"), "notify");
    expect(
        "WatchdogSec",
        last("WatchdogSec").is_some_and(|v| !v.is_empty() && v != "0" && v != "infinity"),
        "a finite period",
    );
    expect(
        "ExecReload",
        last("ExecReload").is_some_and(|v| {
            v.contains("kill")
                && (v.contains("-HUP") || v.contains("SIGHUP"))
                && v.contains("$MAINPID")
        }),
        "a SIGHUP to $MAINPID",
    );
    expect(
        "Restart",
        last("Restart") == Some("on-failure"),
        "on-failure",
    );
    expect(
        "User",
        last("User") == Some("steward"),
        "the dedicated user steward",
    );
    expect("Group", last("Group") == Some("steward"), "steward");
    expect(
        "StateDirectory",
        last("StateDirectory") == Some("steward"),
        "steward",
    );
    expect(
        "RuntimeDirectory",
        last("RuntimeDirectory") == Some("steward"),
        "steward",
    );
    expect(
        "NoNewPrivileges",
        last("NoNewPrivileges") == Some("yes"),
        "yes",
    );
    expect(
        "ProtectSystem",
        last("ProtectSystem") == Some("strict"),
        "strict",
    );
    expect(
        "ReadWritePaths",
        values("ReadWritePaths").iter().any(|v| {
            v.split_whitespace()
                .any(|p| p.trim_start_matches(['-', '+']) == BACKUP_DIR)
        }),
        "including the backup directory",
    );
    expect("PrivateTmp", last("PrivateTmp") == Some("yes"), "yes");
    expect("ProtectHome", last("ProtectHome") == Some("yes"), "yes");
    // Capabilities are only ever dropped: one empty assignment and nothing added after it.
    let caps = values("CapabilityBoundingSet");
    expect(
        "CapabilityBoundingSet",
        !caps.is_empty() && caps.iter().all(|v| v.is_empty()),
        "empty",
    );
    let families = last("RestrictAddressFamilies").unwrap_or_default();
    let families: Vec<&str> = families.split_whitespace().collect();
    expect(
        "RestrictAddressFamilies",
        families.len() == 3
            && ["AF_UNIX", "AF_INET", "AF_INET6"]
                .iter()
                .all(|f| families.contains(f)),
        "AF_UNIX AF_INET AF_INET6",
    );
    expect(
        "SystemCallFilter",
        values("SystemCallFilter").first() == Some(&"@system-service"),
        "@system-service (then only denials)",
    );
    expect(
        "ExecStart",
        last("ExecStart") == Some(&format!("{BIN_PATH} run --config {CONFIG_PATH}")[..]),
        "the installed binary with the installed config",
    );
    problems
}

#[test]
fn shipped_unit_has_every_required_directive() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let problems = unit_problems(&unit);
    assert!(
        problems.is_empty(),
        "systemd/steward.service:\n{}",
        problems.join("\n")
    );

    // The check is not vacuous: dropping any one required directive is caught.
    for key in [
        "Type",
        "WatchdogSec",
        "ExecReload",
        "Restart",
        "User",
        "StateDirectory",
        "RuntimeDirectory",
        "NoNewPrivileges",
        "ProtectSystem",
        "ReadWritePaths",
        "PrivateTmp",
        "ProtectHome",
        "CapabilityBoundingSet",
        "RestrictAddressFamilies",
        "SystemCallFilter",
    ] {
        let without: String = unit
            .lines()
            .filter(|l| !l.starts_with(&format!("{key}=")))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(without, unit, "{key} is not in the unit at all");
        assert!(
            !unit_problems(&without).is_empty(),
            "removing {key}= went unnoticed"
        );
    }
    // Nor is re-adding a capability after the empty assignment.
    let widened = unit.replace(
        "CapabilityBoundingSet=\n",
        "CapabilityBoundingSet=\nCapabilityBoundingSet=CAP_NET_ADMIN\n",
    );
    assert!(!unit_problems(&widened).is_empty());
}

/// The install walk-through (docs/deployment.md) matches the unit: same binary and config paths, the
/// unit's user, the backup directory the unit makes writable (owned by that user), and the
/// systemctl/journalctl steps from enable to reload.
#[test]
fn readme_install_section_matches_the_unit() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/deployment.md"))
            .unwrap();
    let start = readme
        .find("\n## systemd")
        .expect("docs/deployment.md has a systemd section");
    let section = &readme[start + 1..];
    let section = &section[..section[1..].find("\n## ").map_or(section.len(), |e| e + 1)];
    for needed in [
        "cargo build --release",
        &format!("install -m 0755 target/release/steward {BIN_PATH}"),
        "useradd --system",
        &format!("install -m 0640 -g steward config/steward.toml {CONFIG_PATH}"),
        "[control] socket = \"/run/steward/steward.sock\"",
        "[state]   dir    = \"/var/lib/steward/state\"",
        &format!("[backup]  dir    = \"{BACKUP_DIR}\""),
        &format!("install -d -m 0700 -o steward -g steward {BACKUP_DIR}"),
        "install -m 0644 systemd/steward.service /etc/systemd/system/",
        "systemctl daemon-reload",
        "systemctl enable --now steward",
        "systemctl status steward",
        "journalctl -u steward",
        "systemctl reload steward",
        "steward_up",
        "job_name: steward",
    ] {
        assert!(
            section.contains(needed),
            "the systemd section of docs/deployment.md lacks {needed:?}"
        );
    }
}

/// The shipped unit passes `systemd-analyze verify` (with ExecStart pointed at the binary
/// under test, since the unit expects it installed in /usr/local/bin), and its hardening
/// keeps `systemd-analyze security` exposure at 2.0 or below (1.4 when written).
#[test]
fn shipped_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let dir = short_tempdir("unit-");
    let path = dir.path().join("steward.service");
    let bin = env!("CARGO_BIN_EXE_steward");
    std::fs::write(&path, unit.replace(BIN_PATH, bin)).unwrap();
    let analyze = |args: &[&str]| {
        let out = std::process::Command::new("systemd-analyze")
            .args(args)
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
        (out.status.success(), text)
    };
    let (ok, text) = analyze(&["verify"]);
    // Lines about other units of this host (not ours) are not the unit's fault.
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("steward")).collect();
    assert!(
        ok && ours.is_empty(),
        "systemd-analyze verify failed:\n{text}"
    );
    // --threshold is on systemd's 0–100 scale, shown divided by 10.
    let (ok, text) = analyze(&["security", "--offline=yes", "--threshold=20"]);
    assert!(ok, "systemd-analyze security: exposure above 2.0:\n{text}");
}
