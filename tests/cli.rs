//! The command line without a daemon: help, version, check-config, and the client's behaviour
//! when nothing is listening.

mod common;

use common::*;
use std::fs;
use std::path::Path;

fn in_tmp(args: &[&str]) -> CmdOutput {
    let dir = short_tempdir("stw-cli-");
    steward_cmd(args, dir.path(), &[])
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A config file that is valid and points at nothing in particular.
fn good_config(dir: &Path) -> String {
    format!(
        "[postgres]\nurl = \"postgres://app:{pw}@db.example:5432/app\"\ninterval = \"10s\"\ntimeout = \"2s\"\n\
         [redis]\nurl = \"redis://:{pw}@cache.example:6379/0\"\n\
         [control]\nsocket = \"{sock}\"\n",
        pw = "pw-cli-secret-1234",
        sock = dir.join("s.sock").display()
    )
}

#[test]
fn help_lists_every_command() {
    let out = in_tmp(&["--help"]);
    assert_eq!(out.code, 0, "{out:?}");
    for cmd in [
        "run",
        "check-config",
        "status",
        "health",
        "check",
        "tasks",
        "task",
        "reload",
        "info",
    ] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.split_whitespace().next() == Some(cmd)),
            "`steward --help` does not list `{cmd}`:\n{}",
            out.stdout
        );
    }
    for flag in ["--config", "--socket", "--json"] {
        assert!(
            out.stdout.contains(flag),
            "`steward --help` does not mention {flag}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn every_command_has_help() {
    for cmd in [
        "run",
        "check-config",
        "status",
        "health",
        "check",
        "tasks",
        "task",
        "reload",
        "info",
    ] {
        let out = in_tmp(&[cmd, "--help"]);
        assert_eq!(out.code, 0, "`steward {cmd} --help`: {out:?}");
        assert!(
            out.stdout.trim().lines().count() >= 2,
            "`steward {cmd} --help` says too little: {out:?}"
        );
    }
    let out = in_tmp(&["task", "--help"]);
    for action in ["restart", "pause", "resume"] {
        assert!(
            out.stdout.contains(action),
            "`steward task --help` does not mention {action}: {}",
            out.stdout
        );
    }
}

/// `run` and `check-config` do not offer the client's options they have no use for, and refuse
/// them as a usage error (exit 2) instead of ignoring them; client commands keep them.
#[test]
fn run_offers_no_client_options() {
    let run = in_tmp(&["run", "--help"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("--config"), "{}", run.stdout);
    for flag in ["--socket", "--json"] {
        assert!(
            !run.stdout.contains(flag),
            "run --help offers {flag}:\n{}",
            run.stdout
        );
    }
    let check = in_tmp(&["check-config", "--help"]);
    assert!(!check.stdout.contains("--socket"), "{}", check.stdout);
    assert!(check.stdout.contains("--json"), "{}", check.stdout);
    let status = in_tmp(&["status", "--help"]);
    for flag in ["--config", "--socket", "--json"] {
        assert!(status.stdout.contains(flag), "status --help lacks {flag}");
    }
    for args in [
        &["run", "--socket", "/tmp/x.sock"][..],
        &["--socket", "/tmp/x.sock", "run"],
        &["run", "--json"],
        &["--json", "run"],
        &["check-config", "--socket", "/tmp/x.sock"],
    ] {
        let out = in_tmp(args);
        assert_eq!(out.code, 2, "{args:?} should be a usage error: {out:?}");
        assert!(
            out.stderr.contains("takes no --"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn version_is_printed() {
    let out = in_tmp(&["--version"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.trim(),
        format!("steward {}", env!("CARGO_PKG_VERSION"))
    );
}

/// Runs check-config on `text`; asserts exit 1 and that stderr names the file and `key`.
fn assert_rejected(text: &str, key: &str) -> CmdOutput {
    let dir = short_tempdir("stw-cli-");
    let file = dir.path().join("bad.toml");
    fs::write(&file, text).unwrap();
    let out = steward_cmd(
        &["check-config", "--config", file.to_str().unwrap()],
        dir.path(),
        &[],
    );
    assert_eq!(
        out.code, 1,
        "check-config on {text:?} should exit 1: {out:?}"
    );
    assert!(
        out.stderr.contains(key),
        "the error does not name `{key}`: {out:?}"
    );
    assert!(
        out.stderr.contains(file.to_str().unwrap()),
        "the error does not name the file: {out:?}"
    );
    out
}

#[test]
fn check_config_bad_file_names_the_key() {
    assert_rejected("[postgres]\ninterval = \"0s\"\n", "postgres.interval");
    assert_rejected("[redis]\nbogus = 1\n", "redis.bogus");
    assert_rejected(
        "[redis]\ninterval = \"2s\"\ntimeout = \"2s\"\n",
        "redis.timeout",
    );
    assert_rejected("[postgres]\nurl = \"mysql://u@h/db\"\n", "postgres.url");
    assert_rejected("[redis]\nurl = \"http://h:1/\"\n", "redis.url");
    assert_rejected("[control]\nmode = \"0666\"\n", "control.mode");
    assert_rejected("[nosuchsection]\nx = 1\n", "nosuchsection");
    assert_rejected("[shutdown]\ntimeout = \"soon\"\n", "shutdown.timeout");
    // Not TOML at all: names the file.
    let dir = short_tempdir("stw-cli-");
    let file = dir.path().join("garbage.toml");
    fs::write(&file, "this is [not toml\n").unwrap();
    let out = steward_cmd(
        &["check-config", "--config", file.to_str().unwrap()],
        dir.path(),
        &[],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains(file.to_str().unwrap()), "{out:?}");
}

#[test]
fn check_config_lists_every_problem() {
    let out = assert_rejected(
        "[postgres]\ninterval = \"0s\"\n[redis]\ninterval = \"1s\"\ntimeout = \"3s\"\npool_max = 0\n",
        "postgres.interval",
    );
    assert!(out.stderr.contains("redis.timeout"), "{out:?}");
    assert!(out.stderr.contains("redis.pool_max"), "{out:?}");
}

#[test]
fn check_config_unreadable_file_is_named() {
    let out = in_tmp(&["check-config", "--config", "/nonexistent/dir/steward.toml"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("/nonexistent/dir/steward.toml"),
        "{out:?}"
    );
    assert!(
        out.stderr.trim().len() < 1000,
        "error should be short: {out:?}"
    );
}

#[test]
fn check_config_prints_effective_config_redacted() {
    let dir = short_tempdir("stw-cli-");
    let file = dir.path().join("steward.toml");
    fs::write(&file, good_config(dir.path())).unwrap();
    let out = steward_cmd(
        &["check-config", "--config", file.to_str().unwrap()],
        dir.path(),
        &[],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !out.all().contains("pw-cli-secret-1234"),
        "password shown: {out:?}"
    );
    let v: toml::Value =
        toml::from_str(&out.stdout).unwrap_or_else(|e| panic!("not TOML ({e}): {}", out.stdout));
    let pg_url = v["postgres"]["url"].as_str().unwrap();
    assert!(
        pg_url.contains("***") && pg_url.contains("db.example"),
        "{pg_url}"
    );
    let redis_url = v["redis"]["url"].as_str().unwrap();
    assert!(
        redis_url.contains("***") && redis_url.contains("cache.example"),
        "{redis_url}"
    );
    assert_eq!(v["postgres"]["interval"].as_str(), Some("10s"));
    // Defaults are filled in.
    assert_eq!(v["redis"]["interval"].as_str(), Some("30s"));
    assert_eq!(v["postgres"]["pool_max"].as_integer(), Some(4));
    assert_eq!(v["redis"]["pool_max"].as_integer(), Some(50));
    assert_eq!(
        v["postgres"]["heartbeat_table"].as_str(),
        Some("steward_heartbeat")
    );
    assert_eq!(v["shutdown"]["timeout"].as_str(), Some("10s"));
    assert_eq!(v["log"]["level"].as_str(), Some("info"));
}

#[test]
fn check_config_applies_environment_overrides() {
    let dir = short_tempdir("stw-cli-");
    let file = dir.path().join("steward.toml");
    fs::write(&file, good_config(dir.path())).unwrap();
    let e = env(&[
        ("STEWARD_CONFIG", file.to_str().unwrap()),
        ("MONITORING_INTERVAL", "15"),
        ("STEWARD_POSTGRES__INTERVAL", "12s"),
        ("REDIS_MAX_CONNECTIONS", "20"),
        ("REDIS_SOCKET_TIMEOUT", "3"),
        (
            "DATABASE_URL",
            "postgres://envuser:pw-env-secret-9876@envhost:5433/envdb",
        ),
    ]);
    // No --config: the file comes from STEWARD_CONFIG.
    let out = steward_cmd(&["check-config"], dir.path(), &e);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !out.all().contains("pw-env-secret-9876"),
        "password shown: {out:?}"
    );
    let v: toml::Value = toml::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["postgres"]["interval"].as_str(),
        Some("12s"),
        "{}",
        out.stdout
    );
    assert_eq!(
        v["redis"]["interval"].as_str(),
        Some("15s"),
        "{}",
        out.stdout
    );
    assert_eq!(
        v["redis"]["pool_max"].as_integer(),
        Some(20),
        "{}",
        out.stdout
    );
    assert_eq!(v["redis"]["timeout"].as_str(), Some("3s"), "{}", out.stdout);
    let url = v["postgres"]["url"].as_str().unwrap();
    assert!(url.contains("envhost") && url.contains("***"), "{url}");
}

#[test]
fn check_config_bad_url_in_environment_hides_password() {
    let dir = short_tempdir("stw-cli-");
    let file = dir.path().join("steward.toml");
    fs::write(&file, good_config(dir.path())).unwrap();
    for (var, value) in [
        (
            "DATABASE_URL",
            "postgres://u:pw-bad-url-5555@host:notaport/db",
        ),
        ("REDIS_URL", "redis://:pw-bad-url-5555@host:notaport/0"),
        ("DATABASE_URL", "mysql://u:pw-bad-url-5555@host/db"),
    ] {
        let out = steward_cmd(
            &["check-config", "--config", file.to_str().unwrap()],
            dir.path(),
            &env(&[(var, value)]),
        );
        assert_eq!(out.code, 1, "{var}={value}: {out:?}");
        assert!(
            !out.all().contains("pw-bad-url-5555"),
            "{var}: password in the error: {out:?}"
        );
        let key = if var == "DATABASE_URL" {
            "postgres.url"
        } else {
            "redis.url"
        };
        assert!(
            out.stderr.contains(key) || out.stderr.contains(var),
            "{var}: error names neither key nor variable: {out:?}"
        );
    }
}

#[test]
fn client_without_daemon_exits_3_with_one_line() {
    let dir = short_tempdir("stw-cli-");
    let missing = dir.path().join("missing.sock");
    for args in [
        vec!["status"],
        vec!["--json", "status"],
        vec!["tasks"],
        vec!["health"],
        vec!["reload"],
        vec!["info"],
    ] {
        let mut full = vec!["--socket", missing.to_str().unwrap()];
        full.extend(args.iter().copied());
        let out = steward_cmd(&full, dir.path(), &[]);
        assert_eq!(out.code, 3, "{args:?}: {out:?}");
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "{args:?}: want a one-line error: {out:?}"
        );
        assert!(out.stdout.trim().is_empty(), "{args:?}: {out:?}");
    }
    // A stale socket file with nobody listening behind it.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let out = steward_cmd(
        &["--socket", stale.to_str().unwrap(), "status"],
        dir.path(),
        &[],
    );
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out:?}");
}

#[test]
fn client_finds_socket_in_config() {
    let dir = short_tempdir("stw-cli-");
    let file = dir.path().join("steward.toml");
    fs::write(&file, good_config(dir.path())).unwrap();
    // No daemon: the error must name the socket path taken from the config.
    let out = steward_cmd(
        &["--config", file.to_str().unwrap(), "status"],
        dir.path(),
        &[],
    );
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr
            .contains(dir.path().join("s.sock").to_str().unwrap()),
        "{out:?}"
    );
}

#[test]
fn global_flags_after_the_command() {
    let dir = short_tempdir("stw-cli-");
    let missing = dir.path().join("missing.sock");
    let out = steward_cmd(
        &["status", "--socket", missing.to_str().unwrap(), "--json"],
        dir.path(),
        &[],
    );
    assert_eq!(out.code, 3, "{out:?}");
}

#[test]
fn unknown_command_is_a_usage_error() {
    let out = in_tmp(&["frobnicate"]);
    assert_eq!(out.code, 2, "usage errors exit 2: {out:?}");
    let out = in_tmp(&["backup", "create", "--no-such-flag"]);
    assert_eq!(out.code, 2, "usage errors exit 2: {out:?}");
    assert!(!out.stderr.is_empty(), "{out:?}");
}

/// Issue 12 item 2: an age secret key put among the recipients is never echoed; the error
/// says what it is and where it belongs.
#[test]
fn an_age_secret_key_among_recipients_is_not_echoed() {
    let body = "QQPQQQSQQQQZQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQSQ2KJY6N";
    let out = assert_rejected(
        &format!("[backup.encryption]\nrecipients = [\"AGE-SECRET-KEY-1{body}\"]\n"),
        "backup.encryption.recipients",
    );
    assert!(!out.all().contains(body), "{out:?}");
    assert!(out.stderr.contains("identity_file"), "{out:?}");
}

/// Issue 13 item 4: unknown keys no longer hide the other problems, a near miss gets a "did
/// you mean", and a problem that comes from a variable names the variable, not the file's key.
#[test]
fn check_config_reports_every_problem_naming_its_source() {
    let out = assert_rejected(
        "[postgres]\npoolmax = 3\ninterval = \"0s\"\n[redis]\npool_max = 0\n",
        "postgres.poolmax",
    );
    assert!(out.stderr.contains("did you mean \"pool_max\"?"), "{out:?}");
    assert!(out.stderr.contains("postgres.interval"), "{out:?}");
    assert!(out.stderr.contains("redis.pool_max"), "{out:?}");

    let dir = short_tempdir("stw-cli-");
    let file = dir.path().join("steward.toml");
    fs::write(&file, good_config(dir.path())).unwrap();
    for (var, value) in [
        ("STEWARD_POSTGRES__POOLMAX", "3"),
        ("STEWARD_POSTGRES__INTERVAL", "abc"),
    ] {
        let out = steward_cmd(
            &["check-config", "--config", file.to_str().unwrap()],
            dir.path(),
            &env(&[(var, value)]),
        );
        assert_eq!(out.code, 1, "{var}: {out:?}");
        assert!(
            out.stderr.contains(&format!("{var} (environment)")),
            "{var} is not named: {out:?}"
        );
    }
}

/// `check-config --json`: the effective config with secrets masked, or every problem with its
/// key, for scripts.
#[test]
fn check_config_json_gives_config_or_problems() {
    let dir = short_tempdir("stw-cli-");
    let file = dir.path().join("steward.toml");
    fs::write(&file, good_config(dir.path())).unwrap();
    let args = ["check-config", "--json", "--config", file.to_str().unwrap()];
    let out = steward_cmd(&args, dir.path(), &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        v["config"]["postgres"]["url"]
            .as_str()
            .unwrap()
            .contains("***"),
        "{v}"
    );
    assert!(!out.all().contains("pw-cli-secret-1234"), "{out:?}");

    fs::write(&file, "[postgres]\npoolmax = 3\ninterval = \"0s\"\n").unwrap();
    let out = steward_cmd(&args, dir.path(), &[]);
    assert_eq!(out.code, 1, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["ok"], false, "{v}");
    let keys: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"postgres.poolmax") && keys.contains(&"postgres.interval"),
        "{v}"
    );
}

/// The client reads the config only for the socket path; a FIFO or a device there (such as a
/// `config/steward.toml` someone left in a shared directory) is passed over, not waited on or
/// read whole, and the default socket is used.
#[test]
fn the_client_passes_over_a_config_that_is_not_a_small_regular_file() {
    let dir = short_tempdir("stw-cli-");
    fs::create_dir(dir.path().join("config")).unwrap();
    let fifo = dir.path().join("config/steward.toml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let out = steward_cmd(&["status"], dir.path(), &[]);
    assert!(out.stderr.contains("var/steward.sock"), "{out:?}");
    let out = steward_cmd(&["--config", "/dev/zero", "status"], dir.path(), &[]);
    assert!(out.stderr.contains("var/steward.sock"), "{out:?}");
}
