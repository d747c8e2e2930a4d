//! The audit log: one JSON line per admin command (with peer, arguments with secrets masked,
//! outcome, duration) and per backup retention deletes; an unwritable log makes admin commands
//! fail closed while read-only ones keep working.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

/// Checks the fields every client entry has.
fn assert_client_entry(l: &serde_json::Value) {
    let time = l["time"].as_str().expect("time");
    let t = chrono::DateTime::parse_from_rfc3339(time).unwrap_or_else(|e| panic!("{time}: {e}"));
    assert_eq!(t.offset().local_minus_utc(), 0, "UTC: {time}");
    assert!(time.ends_with('Z'), "{time}");
    let age = chrono::Utc::now().signed_duration_since(t);
    assert!(age.num_seconds() >= 0 && age.num_seconds() < 600, "{time}");
    assert_eq!(l["actor"], "client", "{l}");
    assert_eq!(l["peer"]["uid"], 0, "{l}");
    assert_eq!(l["peer"]["gid"], 0, "{l}");
    assert!(l["peer"]["pid"].as_i64().unwrap() > 0, "{l}");
    assert!(
        l["arguments"].is_object() || l["arguments"].is_null(),
        "{l}"
    );
    assert!(l["duration_seconds"].as_f64().unwrap() >= 0.0, "{l}");
}

#[test]
fn every_admin_command_is_audited_with_secrets_masked() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder(&pg, &redis)
        .with(|s| s.pg_extra = "write_read_test = false\n".into())
        .start();
    let reason = format!(
        "migrating; password={} and postgres://app:{}@db.example/app",
        pg.password, redis.password
    );
    let commands: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["maintenance", "on", "--reason", &reason],
            "maintenance_on",
            "ok",
        ),
        (vec!["maintenance", "off"], "maintenance_off", "ok"),
        (vec!["task", "pause", "monitor.redis"], "task", "ok"),
        (vec!["task", "resume", "monitor.redis"], "task", "ok"),
        (vec!["reload"], "reload", "ok"),
        (vec!["backup", "create", "--wait"], "backup_create", "ok"),
        (vec!["backup", "prune", "--dry-run"], "backup_prune", "ok"),
        (
            vec!["backup", "verify", "no-such-backup"],
            "backup_verify",
            "error",
        ),
        (
            vec![
                "cache",
                "clear",
                "--pattern",
                "nothing:*",
                "--dry-run",
                "--force",
            ],
            "cache_clear",
            "ok",
        ),
    ];
    for (args, _, outcome) in &commands {
        let out = st.ctl(args);
        assert_eq!(out.code == 0, *outcome == "ok", "{args:?}: {out:?}");
    }
    // A real clear destroys data and can run long: its start has a line of its own.
    let clear = ["cache", "clear", "--pattern", "nothing:*", "--force"];
    assert_eq!(st.ctl(&clear).code, 0);
    // Read-only commands are not audited.
    assert_eq!(st.ctl(&["status"]).code, 0);
    assert_eq!(st.ctl(&["backup", "list"]).code, 0);

    let lines = audit_check::lines(&st.settings.audit_path);
    let client: Vec<&serde_json::Value> = lines.iter().filter(|l| l["actor"] == "client").collect();
    let got: Vec<(&str, &str)> = client
        .iter()
        .map(|l| {
            (
                l["command"].as_str().unwrap(),
                l["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    let mut want: Vec<(&str, &str)> = commands.iter().map(|(_, c, o)| (*c, *o)).collect();
    want.extend([("cache_clear", "started"), ("cache_clear", "ok")]);
    assert_eq!(
        got, want,
        "one line per admin command (two for a real clear), in order, none for reads"
    );
    let (start, end) = (client[9], client[10]);
    assert_eq!(start["peer"], end["peer"]);
    assert!(
        start["time"].as_str() <= end["time"].as_str(),
        "{start} {end}"
    );
    for l in &client {
        assert_client_entry(l);
    }
    assert_eq!(client[2]["arguments"]["action"], "pause");
    assert_eq!(client[2]["arguments"]["name"], "monitor.redis");
    assert!(client[7]["error"]
        .as_str()
        .unwrap()
        .contains("no-such-backup"));
    assert_eq!(client[8]["arguments"]["pattern"], "nothing:*");
    assert_eq!(client[8]["arguments"]["dry_run"], true);

    let text = std::fs::read_to_string(&st.settings.audit_path).unwrap();
    for secret in [&pg.password, &redis.password] {
        assert!(
            !text.contains(secret.as_str()),
            "a secret in the audit log:\n{text}"
        );
    }
    let logged = client[0]["arguments"]["reason"].as_str().unwrap();
    assert!(logged.starts_with("migrating; password=***"), "{logged}");
    assert!(logged.contains("app:***@db.example"), "{logged}");

    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&st.settings.audit_path)
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let m = st.metrics();
    let ok = metric_value(&m, "steward_audit_writes_total", &[("result", "ok")]).unwrap();
    assert!(ok >= commands.len() as f64, "{ok}");
}

#[test]
fn an_unwritable_audit_log_fails_closed_and_recovers() {
    let st = Steward::builder_without_services().start();
    let path = st.settings.audit_path.clone();
    // A directory where the file should be: root ignores file modes, not file types. (The
    // daemon created the file at start-up, checking it could.)
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let out = st.ctl_human(&["maintenance", "on", "--reason", "no audit"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("maintenance_on refused, nothing was done"),
        "{out:?}"
    );
    assert!(out.stderr.contains(&path.display().to_string()), "{out:?}");
    assert!(out.stderr.contains("audit log"), "{out:?}");
    let st_data = st.raw_request(r#"{"cmd":"maintenance_status"}"#).unwrap();
    assert_eq!(st_data.data["on"], false, "nothing changed unaudited");
    // Read-only commands keep working.
    assert!(st.ctl(&["status"]).answered());
    assert_eq!(st.ctl(&["maintenance", "status"]).code, 0);
    let m = st.metrics();
    let errors = metric_value(&m, "steward_audit_writes_total", &[("result", "error")]).unwrap();
    assert!(errors >= 1.0, "{errors}");

    // Its parent a regular file: the same.
    std::fs::remove_dir(&path).unwrap();
    let blocker = st.dir().join("blocker");
    std::fs::write(&blocker, "").unwrap();
    let moved = blocker.join("audit.log");
    let cfg = std::fs::read_to_string(&st.config_path).unwrap();
    let toml = |p: &Path| serde_json::to_string(&p.to_string_lossy()).unwrap();
    std::fs::write(&st.config_path, cfg.replace(&toml(&path), &toml(&moved))).unwrap();
    assert_eq!(send_sighup_and_wait(&st), 1.0);
    let out = st.ctl(&["maintenance", "on"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.reply().error.unwrap().contains("blocker/audit.log"),
        "{out:?}"
    );

    // Writable again (back to the first path, now free): admin commands work and are logged.
    std::fs::write(&st.config_path, &cfg).unwrap();
    assert_eq!(send_sighup_and_wait(&st), 2.0);
    let out = st.ctl(&["maintenance", "on"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines = audit_check::lines(&path);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["command"], "maintenance_on");
    assert_eq!(lines[0]["outcome"], "ok");
}

/// Sends SIGHUP, waits for the reload to be counted; returns the successful reload count.
fn send_sighup_and_wait(st: &Steward) -> f64 {
    let ok = |st: &Steward| {
        metric_value(
            &st.metrics(),
            "steward_config_reloads_total",
            &[("result", "success")],
        )
        .unwrap_or(0.0)
    };
    let before = ok(st);
    send_signal(st.pid(), libc::SIGHUP);
    st.wait_until(Duration::from_secs(10), "the reload after SIGHUP", |st| {
        ok(st) > before
    });
    ok(st)
}

#[test]
fn retention_deletes_are_audited_per_backup() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder(&pg, &redis)
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            s.backup = s.backup.replacen(
                "[backup]\n",
                "[backup]\nmin_keep = 0\nmanual_retention = \"1s\"\n",
                1,
            );
        })
        .start();
    let create = |st: &Steward| -> (String, chrono::DateTime<chrono::Utc>) {
        let r = st.ctl(&["backup", "create", "--wait"]).reply();
        assert!(r.ok, "{r:?}");
        let b = &r.data[0];
        let at = b["started_at"].as_str().unwrap().parse().unwrap();
        (b["id"].as_str().unwrap().to_string(), at)
    };
    let (first, at) = create(&st);
    // Retention keeps a manual backup for 1 s: wait until the first one is older than that.
    wait_until(
        Duration::from_secs(10),
        "the first backup to be older than 1 s",
        || {
            chrono::Utc::now()
                .signed_duration_since(at)
                .num_milliseconds()
                > 1500
        },
    );
    let (second, _) = create(&st);
    let path = st.settings.audit_path.clone();
    st.wait_until(
        Duration::from_secs(20),
        "the retention delete in the audit log",
        |_| {
            audit_check::lines(&path)
                .iter()
                .any(|l| l["command"] == "backup_delete")
        },
    );
    let deletes: Vec<serde_json::Value> = audit_check::lines(&path)
        .into_iter()
        .filter(|l| l["command"] == "backup_delete")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    let d = &deletes[0];
    assert_eq!(d["actor"], "backup.retention");
    assert!(d.get("peer").is_none(), "{d}");
    assert_eq!(d["arguments"]["id"], first.as_str());
    assert_eq!(d["arguments"]["trigger"], "after_backup");
    assert_eq!(d["outcome"], "ok");
    let listed = st.ctl(&["backup", "list"]).reply();
    let ids: Vec<&str> = listed
        .data
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![second.as_str()], "the audited deletion happened");
}

/// The harness's check (every answered admin command leaves a line) knows every admin command.
#[test]
fn client_words_map_to_the_protocol_admin_commands() {
    for (args, line) in [
        (
            &["task", "restart", "x"][..],
            r#"{"cmd":"task","action":"restart","name":"x"}"#,
        ),
        (&["reload"][..], r#"{"cmd":"reload"}"#),
        (&["maintenance", "on"][..], r#"{"cmd":"maintenance_on"}"#),
        (&["maintenance", "off"][..], r#"{"cmd":"maintenance_off"}"#),
        (&["backup", "create"][..], r#"{"cmd":"backup_create"}"#),
        (
            &["backup", "verify", "i"][..],
            r#"{"cmd":"backup_verify","id":"i"}"#,
        ),
        (
            &["backup", "restore", "i"][..],
            r#"{"cmd":"backup_restore","id":"i"}"#,
        ),
        (&["backup", "prune"][..], r#"{"cmd":"backup_prune"}"#),
        (
            &["cache", "clear", "--pattern", "x"][..],
            r#"{"cmd":"cache_clear","pattern":"x"}"#,
        ),
        (&["cache", "warm-up"][..], r#"{"cmd":"cache_warm_up"}"#),
    ] {
        assert_eq!(
            audit_check::admin_command_of_args(args),
            audit_check::admin_command_of_line(line),
            "{args:?}"
        );
        assert!(audit_check::admin_command_of_args(args).is_some());
    }
    for args in [
        &["status"][..],
        &["backup", "list"],
        &["maintenance", "status"],
        &["cache", "stats"],
    ] {
        assert_eq!(audit_check::admin_command_of_args(args), None);
    }
}

/// Issue 11 item 9: on a full filesystem under the audit log, `backup prune` deletes nothing
/// (its lines could not be written first) and admin commands are refused, though the file
/// still opens for appending; once there is room, both work and are recorded.
#[test]
fn a_full_filesystem_under_the_audit_log_stops_destructive_actions() {
    use steward::backup::catalog::{self, BackupMeta};
    use steward::backup::BackupKind;
    let Some(fs) = common::tmpfs::Tmpfs::mount("256k") else {
        return;
    };
    let pg = Postgres::start();
    let redis = Redis::start();
    let backups = tempfile::tempdir().unwrap();
    let audit = fs.path().join("audit.log");
    let st = Steward::builder(&pg, &redis)
        .with(|s| {
            s.audit_path = audit.clone();
            s.backup = common::faults::backup_section(
                backups.path(),
                "min_keep = 0\nmanual_retention = \"1d\"",
            );
        })
        .start();
    let real = common::faults::create_good(&st);
    // Two older manual backups that retention may delete.
    let dir = catalog::db_dir(backups.path(), PG_DB);
    let data = std::fs::read(dir.join(real.file.as_deref().unwrap())).unwrap();
    let mut old_ids = Vec::new();
    for days in [3, 4] {
        let started = chrono::Utc::now() - chrono::Duration::days(days);
        let mut m: BackupMeta = real.clone();
        m.id = catalog::new_id(started, BackupKind::Manual);
        m.started_at = started;
        m.finished_at = Some(started);
        let name = catalog::data_file_name(&m.id, m.format, m.compression, false);
        std::fs::write(dir.join(&name), &data).unwrap();
        m.file = Some(name);
        m.globals = None; // as a backup taken before steward stored globals
        catalog::commit(backups.path(), &mut m).unwrap();
        old_ids.push(m.id);
    }
    // Fill the filesystem.
    let filler = fs.path().join("filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    assert!(std::fs::OpenOptions::new()
        .append(true)
        .open(&audit)
        .is_ok());
    // Room reserved for the log earlier is used up by admin commands, each of which the
    // harness checks left its line; then the next is refused.
    let mut refused = None;
    for _ in 0..2000 {
        let out = st.ctl(&["maintenance", "on", "--reason", &"r".repeat(450)]);
        if out.code != 0 {
            refused = Some(out);
            break;
        }
    }
    let refused = refused.expect("admin commands kept running on a full filesystem");
    assert!(refused.all().contains("audit"), "{refused:?}");
    let before = audit_check::lines(&audit).len();

    let out = st.ctl(&["backup", "prune"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.all().contains("audit"), "{out:?}");
    let listed: Vec<BackupMeta> = st.ctl(&["backup", "list"]).data();
    for id in &old_ids {
        assert!(listed.iter().any(|m| &m.id == id), "{id} deleted unaudited");
    }
    let out = st.ctl(&["maintenance", "off"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(audit_check::lines(&audit).len(), before);

    std::fs::remove_file(&filler).unwrap();
    let p: steward::backup::api::PruneReply = st.ctl(&["backup", "prune"]).data();
    assert_eq!(p.deleted.len(), 2, "{p:?}");
    let lines = audit_check::lines(&audit);
    for id in &old_ids {
        assert!(
            lines
                .iter()
                .any(|l| l["command"] == "backup_delete" && l["arguments"]["id"] == id.as_str()),
            "no audit line for the deletion of {id}"
        );
    }
}
