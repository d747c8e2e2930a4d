//! Control socket access: the socket's mode and group, and the peer-credential checks that
//! refuse unknown users outright and readers any admin command, each refusal audited. Clients
//! run as other users through `setpriv` (the tests run as root, like CI).

mod common;

use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};

/// `nobody` / `nogroup` on Debian.
const NOBODY: u32 = 65534;
/// A uid and groups no account has, for group-based access.
const OTHER_UID: u32 = 65533;
const READ_GID: u32 = 4242;
const ADMIN_GID: u32 = 4343;

/// A daemon whose socket (mode 0660, group nogroup) the test users can open, in a directory
/// they can traverse, so that only steward's own checks decide.
fn start(control: &str) -> Steward {
    if !is_root() {
        panic!("these tests run clients as other users and need root (CI runs as root)");
    }
    let b = Steward::builder_without_services().with(|s| {
        s.control_mode = "0660".into();
        s.control_extra = format!("group = \"nogroup\"\n{control}");
    });
    std::fs::set_permissions(b.dir(), std::fs::Permissions::from_mode(0o711)).unwrap();
    b.start()
}

/// Runs `steward --socket … --json ARGS` as `uid:gid` with the supplementary `groups`.
fn as_user(st: &Steward, uid: u32, gid: u32, groups: &[u32], args: &[&str]) -> CmdOutput {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"));
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        let g: Vec<String> = groups.iter().map(u32::to_string).collect();
        cmd.arg(format!("--groups={}", g.join(",")));
    }
    cmd.arg(STEWARD)
        .arg("--socket")
        .arg(st.socket())
        .arg("--json")
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .stdin(Stdio::null());
    let out = cmd.output().expect("run setpriv");
    CmdOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Waits for an audit line matching `pred`, returns it.
fn audit_line(
    st: &Steward,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let path = &st.settings.audit_path;
    st.wait_until(std::time::Duration::from_secs(10), what, |_| {
        audit_check::lines(path).iter().any(&pred)
    });
    audit_check::lines(path)
        .into_iter()
        .find(|l| pred(l))
        .unwrap()
}

fn maintenance_on(st: &Steward) -> bool {
    let r = st.raw_request(r#"{"cmd":"maintenance_status"}"#).unwrap();
    assert!(r.ok, "{r:?}");
    r.data["on"] == true
}

#[test]
fn a_denied_uid_is_refused_and_audited() {
    let st = start("");
    let out = as_user(&st, NOBODY, NOBODY, &[], &["status"]);
    assert_ne!(out.code, 0, "{out:?}");
    let reply = out.reply();
    assert!(!reply.ok, "{out:?}");
    let err = reply.error.unwrap();
    assert!(
        err.contains("access denied") && err.contains("uid 65534"),
        "{err}"
    );
    assert!(
        err.contains("allow_uids") && err.contains("admin_uids"),
        "{err}"
    );
    // Human output says the same on stderr.
    let mut human = Command::new("setpriv");
    human
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            STEWARD,
            "--socket",
        ])
        .arg(st.socket())
        .arg("status")
        .env_clear()
        .current_dir("/");
    let h = human.output().unwrap();
    assert_ne!(h.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&h.stderr);
    assert!(
        stderr.contains("access denied") && stderr.contains("uid 65534"),
        "{stderr}"
    );

    let line = audit_line(&st, "the refused status in the audit log", |l| {
        l["outcome"] == "denied" && l["peer"]["uid"] == NOBODY
    });
    assert_eq!(line["command"], "status");
    assert_eq!(line["actor"], "client");
    assert_eq!(line["peer"]["gid"], NOBODY);
    assert!(line["peer"]["pid"].as_i64().unwrap() > 0);
    assert!(line["error"].as_str().unwrap().contains("uid 65534"));
    // Root (the daemon's own user here) is still served.
    assert!(st.raw_request(r#"{"cmd":"status"}"#).unwrap().ok);
}

#[test]
fn a_reader_gets_status_but_not_admin_commands() {
    let st = start(&format!("allow_uids = [0, {NOBODY}]\nadmin_uids = [0]\n"));
    let out = as_user(&st, NOBODY, NOBODY, &[], &["status"]);
    assert!(out.answered(), "{out:?}");
    let out = as_user(&st, NOBODY, NOBODY, &[], &["backup", "list"]);
    assert_eq!(out.code, 0, "read-only: {out:?}");

    let out = as_user(
        &st,
        NOBODY,
        NOBODY,
        &[],
        &["maintenance", "on", "--reason", "x"],
    );
    assert_ne!(out.code, 0, "{out:?}");
    let err = out.reply().error.unwrap();
    assert!(
        err.contains("maintenance_on") && err.contains("uid 65534"),
        "{err}"
    );
    assert!(err.contains("control.admin_uids"), "{err}");
    assert!(!maintenance_on(&st), "refused: nothing changed");
    let line = audit_line(&st, "the refused maintenance_on", |l| {
        l["command"] == "maintenance_on" && l["outcome"] == "denied"
    });
    assert_eq!(line["peer"]["uid"], NOBODY);
    assert_eq!(line["arguments"]["reason"], "x");
    // Reads by an allowed reader are not audited.
    assert!(audit_check::lines(&st.settings.audit_path)
        .iter()
        .all(|l| l["command"] != "status"));
    // Root is an admin by default.
    assert_eq!(st.ctl(&["maintenance", "on"]).code, 0);
    assert!(maintenance_on(&st));
}

#[test]
fn groups_grant_access_primary_and_supplementary() {
    let st = start(&format!(
        "allow_uids = [0]\nallow_gids = [{READ_GID}]\nadmin_uids = [0]\nadmin_gids = [{ADMIN_GID}]\n"
    ));
    // Every client also has nogroup, to open the socket file; that group grants nothing.
    let out = as_user(&st, OTHER_UID, NOBODY, &[], &["status"]);
    assert_ne!(out.code, 0, "no listed group: {out:?}");
    assert!(out.reply().error.unwrap().contains("uid 65533"));
    let out = as_user(&st, OTHER_UID, READ_GID, &[NOBODY], &["status"]);
    assert!(out.answered(), "primary group: {out:?}");
    let out = as_user(&st, OTHER_UID, NOBODY, &[READ_GID], &["status"]);
    assert!(out.answered(), "supplementary group: {out:?}");
    let out = as_user(&st, OTHER_UID, NOBODY, &[READ_GID], &["maintenance", "on"]);
    assert_ne!(out.code, 0, "a reader group is not an admin group: {out:?}");
    assert!(!maintenance_on(&st));
    let out = as_user(&st, OTHER_UID, NOBODY, &[ADMIN_GID], &["maintenance", "on"]);
    assert_eq!(out.code, 0, "admin by supplementary group: {out:?}");
    assert!(maintenance_on(&st));
    let line = audit_line(&st, "the allowed maintenance_on", |l| {
        l["command"] == "maintenance_on" && l["outcome"] == "ok"
    });
    assert_eq!(line["peer"]["uid"], OTHER_UID);
}

#[test]
fn socket_mode_and_group_are_set() {
    let st = start("");
    let md = std::fs::metadata(st.socket()).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o660);
    assert_eq!(md.gid(), NOBODY, "socket group is nogroup");
    assert_eq!(md.uid(), 0, "owned by the daemon's user");
    // Outside the socket's group the file itself is closed, and the client says so.
    let out = as_user(&st, OTHER_UID, OTHER_UID, &[], &["status"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("permission denied opening the control socket"),
        "{out:?}"
    );

    // An unknown group is a validation problem naming the key.
    let b = Steward::builder_without_services()
        .with(|s| s.control_extra = "group = \"no-such-group-x\"\n".into());
    let path = b.dir().join("bad.toml");
    std::fs::write(&path, b.settings.render()).unwrap();
    let out = steward_cmd(
        &["check-config", "--config", path.to_str().unwrap()],
        b.dir(),
        &[],
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.all().contains("control.group"), "{out:?}");
}

/// Issue 11 item 9: a reader flooding the socket with refused admin requests (each with a
/// long argument) adds a bounded number of short lines to the audit log; the rest are counted
/// in `steward_audit_denied_suppressed_total`.
#[test]
fn a_flood_of_refused_requests_is_bounded_in_the_audit_log() {
    let st = start(&format!("allow_uids = [0, {NOBODY}]\nadmin_uids = [0]\n"));
    let reason = "x".repeat(60_000);
    for _ in 0..40 {
        let out = as_user(
            &st,
            NOBODY,
            NOBODY,
            &[],
            &["maintenance", "on", "--reason", &reason],
        );
        assert_ne!(out.code, 0, "{out:?}");
    }
    let path = &st.settings.audit_path;
    let denied: Vec<serde_json::Value> = audit_check::lines(path)
        .into_iter()
        .filter(|l| l["outcome"] == "denied")
        .collect();
    assert!(
        (1..=20).contains(&denied.len()),
        "{} denied lines for 40 refused requests",
        denied.len()
    );
    let size = std::fs::metadata(path).unwrap().len();
    assert!(size < 64 * 1024, "the audit log grew to {size} bytes");
    assert!(denied
        .iter()
        .all(|l| l["arguments"].to_string().len() < 1200));
    let suppressed = st.metric("steward_audit_denied_suppressed_total", &[]);
    assert_eq!(suppressed, Some(40.0 - denied.len() as f64));
    assert!(!maintenance_on(&st));
}

/// The same flood is bounded in steward's own log: a refused request is logged when it is
/// audited, and the rest are only counted (`steward_audit_denied_suppressed_total`), so that
/// a user in the socket's group cannot fill the journal (it was one warning per request,
/// some 9,000 lines a second from one client). Each uid gets 20 lines a minute.
#[test]
fn a_flood_of_refused_requests_is_bounded_in_the_daemon_log() {
    let st = start(&format!("allow_uids = [0, {NOBODY}]\nadmin_uids = [0]\n"));
    for _ in 0..60 {
        let reader = as_user(&st, NOBODY, NOBODY, &[], &["reload"]);
        assert_ne!(reader.code, 0, "{reader:?}");
        // In the socket's group, so it can connect, but allowed nothing.
        let stranger = as_user(&st, OTHER_UID, OTHER_UID, &[NOBODY], &["status"]);
        assert_ne!(stranger.code, 0, "{stranger:?}");
    }
    let warned = st.log().matches("control request denied").count();
    assert!(
        (2..=40).contains(&warned),
        "{warned} log lines for 120 refused requests"
    );
}
