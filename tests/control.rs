//! The control socket protocol: good requests get typed replies; garbage, oversized, unknown and
//! malformed requests get error replies, and the daemon (and the connection) carry on.

mod common;

use common::*;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};

fn assert_error(r: &Reply, what: &str) -> String {
    assert!(!r.ok, "{what}: want an error reply, got {r:?}");
    let e = r.error.clone().unwrap_or_default();
    assert!(
        !e.trim().is_empty(),
        "{what}: error reply without a message: {r:?}"
    );
    e
}

fn assert_status_ok(conn: &mut ControlConn, what: &str) {
    let r = conn
        .request(r#"{"cmd":"status"}"#)
        .unwrap_or_else(|e| panic!("status after {what}: {e}"));
    assert!(r.ok, "status after {what}: {r:?}");
    let _: StatusReply = serde_json::from_value(r.data).expect("StatusReply");
}

#[test]
fn bad_requests_get_error_replies_and_the_daemon_carries_on() {
    let st = Steward::builder_without_services().start();
    let mut conn = st.connect();

    let e = assert_error(&conn.request("this is not json").unwrap(), "garbage");
    assert!(e.contains("JSON"), "{e}");
    assert_status_ok(&mut conn, "garbage");

    let e = assert_error(
        &conn.request(r#"{"cmd":"explode"}"#).unwrap(),
        "unknown command",
    );
    assert!(e.contains("explode"), "{e}");
    assert_status_ok(&mut conn, "unknown command");

    assert_error(&conn.request(r#"{"nocmd":true}"#).unwrap(), "missing cmd");
    assert_error(&conn.request(r#"{"cmd":42}"#).unwrap(), "non-string cmd");
    assert_error(
        &conn
            .request(r#"{"cmd":"health","service":"mysql"}"#)
            .unwrap(),
        "unknown service",
    );
    assert_error(
        &conn
            .request(r#"{"cmd":"task","action":"explode","name":"http"}"#)
            .unwrap(),
        "bad action",
    );
    assert_error(
        &conn
            .request(r#"{"cmd":"task","action":"pause","name":"no.such.task"}"#)
            .unwrap(),
        "unknown task",
    );
    assert_error(&conn.request("[1,2,3]").unwrap(), "JSON array");
    assert_error(
        &conn.request("\u{0}\u{1}\u{2}\u{ff}binary").unwrap(),
        "binary junk",
    );
    assert_status_ok(&mut conn, "malformed requests");

    // Oversized: a single line over 64 KiB gets an error reply; the daemon answers `status`
    // afterwards (on a new connection; see `oversized_line_keeps_connection_usable` for the
    // same connection).
    {
        let mut big_conn = st.connect();
        let big = format!(r#"{{"cmd":"status","pad":"{}"}}"#, "x".repeat(100 * 1024));
        let e = assert_error(&big_conn.request(&big).unwrap(), "oversized line");
        assert!(
            e.contains("65536") || e.contains("64"),
            "the error should give the bound: {e}"
        );
    }
    assert!(st.raw_request(r#"{"cmd":"status"}"#).unwrap().ok);
    assert_status_ok(&mut conn, "oversized line on another connection");

    // Two requests in one write: two replies, in order.
    conn.send_raw(b"{\"cmd\":\"explode\"}\n{\"cmd\":\"info\"}\n")
        .unwrap();
    let r1: Reply = serde_json::from_str(conn.read_line().unwrap().trim()).unwrap();
    let r2: Reply = serde_json::from_str(conn.read_line().unwrap().trim()).unwrap();
    assert!(!r1.ok && r2.ok, "{r1:?} {r2:?}");

    // A fresh connection works too, and so does the client.
    assert!(st.raw_request(r#"{"cmd":"status"}"#).unwrap().ok);
    assert!(st.ctl(&["status"]).answered());
}

/// The contract: "for oversized lines the rest of the line is discarded" and the connection
/// stays usable.
#[test]
fn oversized_line_keeps_connection_usable() {
    let st = Steward::builder_without_services().start();
    let mut conn = st.connect();
    let big = format!(r#"{{"cmd":"status","pad":"{}"}}"#, "x".repeat(100 * 1024));
    assert_error(&conn.request(&big).unwrap(), "oversized line");
    assert_status_ok(&mut conn, "oversized line on the same connection");
    // Exactly at the bound plus one, then a normal request in the same write.
    let mut raw = vec![b'x'; steward::control::protocol::MAX_LINE + 1];
    raw.extend_from_slice(b"\n{\"cmd\":\"info\"}\n");
    conn.send_raw(&raw).unwrap();
    let r1: Reply = serde_json::from_str(conn.read_line().unwrap().trim()).unwrap();
    let r2: Reply = serde_json::from_str(conn.read_line().unwrap().trim()).unwrap();
    assert!(!r1.ok && r2.ok, "{r1:?} {r2:?}");
}

#[test]
fn oversized_request_without_newline_then_status_on_new_connection() {
    let st = Steward::builder_without_services().start();
    {
        let mut conn = st.connect();
        // 1 MiB with no newline at all, then hang up.
        let _ = conn.send_raw(&vec![b'a'; 1024 * 1024]);
    }
    {
        // Half a request, then hang up.
        let mut conn = st.connect();
        conn.send_raw(br#"{"cmd":"sta"#).unwrap();
    }
    let mut conn = st.connect();
    assert_status_ok(&mut conn, "abandoned connections");
}

#[test]
fn many_clients_at_once() {
    let st = Steward::builder_without_services().start();
    let sock = st.socket().to_path_buf();
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let mut c = ControlConn::connect(&sock).unwrap();
                for _ in 0..20 {
                    assert!(c.request(r#"{"cmd":"status"}"#).unwrap().ok);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(st.raw_request(r#"{"cmd":"tasks"}"#).unwrap().ok);
}

#[test]
fn socket_has_the_configured_mode() {
    let st = Steward::builder_without_services().start();
    let md = std::fs::metadata(st.socket()).unwrap();
    assert!(md.file_type().is_socket());
    assert_eq!(md.permissions().mode() & 0o777, 0o600, "socket mode");
    drop(st);

    let st = Steward::builder_without_services()
        .with(|s| s.control_mode = "0660".into())
        .start();
    let md = std::fs::metadata(st.socket()).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o660, "socket mode");
}

#[test]
fn typed_replies_for_every_command() {
    let st = Steward::builder_without_services().start();

    let status: StatusReply = st.ctl(&["status"]).served();
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(status.services.len(), 2);
    assert!(!status.healthy, "no servers → unhealthy");

    let tasks: Vec<TaskInfo> = st.ctl(&["tasks"]).data();
    let mut names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    names.sort();
    for want in ["control", "http", "monitor.postgres", "monitor.redis"] {
        assert!(names.contains(&want), "tasks: {names:?}");
    }
    for t in &tasks {
        assert_eq!(t.state, TaskState::Running, "{t:?}");
        assert_eq!(t.restarts, 0, "{t:?}");
    }

    let info: InfoReply = st.ctl(&["info"]).data();
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.pid, st.pid());
    assert_eq!(info.config_file, st.config_path.to_string_lossy());
    assert_eq!(info.socket, st.socket().to_string_lossy());
    assert_eq!(info.metrics_listen, st.settings.metrics_listen);
    assert_eq!(info.intervals.get("postgres"), Some(&1.0));
    assert_eq!(info.timeouts.get("redis"), Some(&0.5));
    assert_eq!(info.tasks.running, tasks.len());
    assert!(info.last_reload_ok);

    // Services are down (nothing listening): health is an unhealthy reply and exit 1.
    st.wait_until(INTERVAL * 2 + SLACK, "both services checked", |st| {
        st.status().services.iter().all(|s| s.last.is_some())
    });
    let out = st.ctl(&["health"]);
    assert_eq!(out.code, 1, "{out:?}");
    let h: HealthReply = serde_json::from_value(out.reply().data).unwrap();
    assert!(!h.healthy);
    for s in &h.services {
        let last = s.last.as_ref().unwrap();
        assert!(!last.up && last.error.is_some(), "{s:?}");
    }
    let out = st.ctl(&["health", "redis"]);
    let h: HealthReply = serde_json::from_value(out.reply().data).unwrap();
    assert!(
        h.services.iter().all(|s| s.service == Service::Redis),
        "{}",
        out.stdout
    );

    // Human output of each command.
    // (No services run here: `status` answers and exits 1 once it saw them down.)
    st.wait_until(INTERVAL * 2 + SLACK, "both services checked", |st| {
        st.status().services.iter().all(|s| s.last.is_some())
    });
    for (args, code) in [(vec!["status"], 1), (vec!["tasks"], 0), (vec!["info"], 0)] {
        let out = st.ctl_human(&args);
        assert_eq!(out.code, code, "{args:?}: {out:?}");
        assert!(!out.stdout.trim().is_empty(), "{args:?}: {out:?}");
        assert!(
            !out.stdout.trim_start().starts_with('{'),
            "{args:?} without --json should be a table: {out:?}"
        );
    }
    let out = st.ctl_human(&["tasks"]);
    for want in [
        "control",
        "http",
        "monitor.postgres",
        "monitor.redis",
        "running",
    ] {
        assert!(out.stdout.contains(want), "{out:?}");
    }
    let out = st.ctl_human(&["status"]);
    assert!(
        out.stdout.contains("postgres") && out.stdout.contains("redis"),
        "{out:?}"
    );

    // An error reply makes the client exit 1 with the message.
    let out = st.ctl(&["task", "pause", "no.such.task"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(!out.reply().ok);
    assert!(out.stdout.contains("no.such.task"), "{out:?}");
    let out = st.ctl_human(&["task", "pause", "no.such.task"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no.such.task"), "{out:?}");
}

#[test]
fn http_keeps_serving_with_services_down() {
    let st = Steward::builder_without_services().start();
    st.wait_until(INTERVAL * 2 + SLACK, "both services checked", |st| {
        st.status().services.iter().all(|s| s.last.is_some())
    });
    assert_eq!(st.up("postgres"), Some(false));
    assert_eq!(st.up("redis"), Some(false));
    assert_eq!(st.http_get("/health").0, 503);
    assert_eq!(st.http_get("/-/healthy").0, 200);
    // Both have finished a first check (a failed one), so steward is ready.
    assert_eq!(st.http_get("/-/ready").0, 200);
}

/// `history --since` reaches back at most 366 days; longer, negative or absurd values (which
/// once went straight into the arithmetic) are refused with the option and the bound named.
#[test]
fn history_since_is_bounded() {
    let st = Steward::builder_without_services().start();
    let out = st.ctl(&["history", "postgres", "--since", "400d"]);
    assert_eq!(out.code, 1, "{out:?}");
    let e = out.reply().error.unwrap_or_default();
    assert!(e.contains("--since") && e.contains("366 days"), "{e}");
    for secs in ["1e300", "-5"] {
        let line = format!(r#"{{"cmd":"history","service":"redis","since_seconds":{secs}}}"#);
        let r = st.raw_request(&line).unwrap();
        let e = r.error.unwrap_or_default();
        assert!(!r.ok && e.contains("since_seconds"), "{secs}: {e}");
    }
    assert_eq!(st.ctl(&["history", "postgres", "--since", "1h"]).code, 0);
}
