//! Config strictness (issue 12 items 4, 9, 10): values of the wrong type, filters that log
//! nothing, paths that cannot work and files that are not config files are refused by
//! `check-config` naming the key; a TOML syntax error shows no part of a password in
//! check-config, the reload reply, the daemon log or the audit log.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::time::Duration;

/// Runs `steward check-config --config FILE` in `dir` with `env`.
fn check_config(dir: &Path, file: &Path, env: &[(String, String)]) -> CmdOutput {
    steward_cmd(
        &["check-config", "--config", file.to_str().unwrap()],
        dir,
        env,
    )
}

/// Writes `text` as a config and asserts that check-config refuses it naming `key` and the file.
fn assert_refused(text: &str, key: &str) -> CmdOutput {
    let dir = short_tempdir("stw-strict-");
    let file = dir.path().join("steward.toml");
    fs::write(&file, text).unwrap();
    let out = check_config(dir.path(), &file, &[]);
    assert_eq!(
        out.code, 1,
        "check-config on {text:?} should exit 1: {out:?}"
    );
    assert!(
        out.stderr.contains(&format!("`{key}`")),
        "the error does not name `{key}`: {out:?}"
    );
    assert!(
        out.stderr.contains(file.to_str().unwrap()),
        "the error does not name the file: {out:?}"
    );
    out
}

#[test]
fn check_config_refuses_values_of_the_wrong_type() {
    for (text, key, fix) in [
        (
            "[redis]\npool_max = 4.5\n",
            "redis.pool_max",
            "whole number",
        ),
        (
            "[postgres]\npool_max = \"4\"\n",
            "postgres.pool_max",
            "whole number",
        ),
        ("[control]\nmode = 660\n", "control.mode", "mode = \"0660\""),
        (
            "[redis]\nwrite_read_test = 1\n",
            "redis.write_read_test",
            "true or false",
        ),
    ] {
        let out = assert_refused(text, key);
        assert!(out.stderr.contains("line 2, column"), "{out:?}");
        assert!(out.stderr.contains(fix), "no fix said: {out:?}");
    }
}

#[test]
fn check_config_refuses_a_log_filter_that_logs_nothing() {
    for level in ["verbose", "bogus", "tokio_postgres=warn"] {
        let out = assert_refused(&format!("[log]\nlevel = {level:?}\n"), "log.level");
        assert!(out.stderr.contains("info"), "no fix said: {out:?}");
    }
    let dir = short_tempdir("stw-strict-");
    let file = dir.path().join("steward.toml");
    fs::write(
        &file,
        "[log]\nlevel = \"steward=debug,tokio_postgres=warn\"\n",
    )
    .unwrap();
    let out = check_config(dir.path(), &file, &[]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn check_config_refuses_paths_that_cannot_work() {
    let dir = short_tempdir("stw-strict-");
    let a_file = dir.path().join("a-file");
    fs::write(&a_file, "").unwrap();
    let out = assert_refused(&format!("[audit]\npath = {:?}\n", dir.path()), "audit.path");
    assert!(out.stderr.contains("directory"), "{out:?}");
    let out = assert_refused(&format!("[backup]\ndir = {a_file:?}\n"), "backup.dir");
    assert!(out.stderr.contains("not a directory"), "{out:?}");
    let out = assert_refused("[backup]\ndir = \"/proc/steward\"\n", "backup.dir");
    assert!(out.stderr.contains("/proc"), "{out:?}");
    let out = assert_refused(
        "[backup]\npg_dump_path = \"/bin/sh\"\n",
        "backup.pg_dump_path",
    );
    assert!(out.stderr.contains("not PostgreSQL's pg_dump"), "{out:?}");
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    let dir = short_tempdir("stw-strict-");
    let file = dir.path().join("steward.toml");
    fs::write(&file, "[redis]\npool_max = 7\n").unwrap();
    let env = [("STEWARD_REDIS__POOL_MAX".to_string(), "lots".to_string())];
    let out = check_config(dir.path(), &file, &env);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("STEWARD_REDIS__POOL_MAX (environment)"),
        "{out:?}"
    );
}

#[test]
fn the_config_file_must_be_a_regular_file_of_at_most_1_mib() {
    let dir = short_tempdir("stw-strict-");
    let fifo = dir.path().join("fifo.toml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Refused at once: no writer ever comes, so waiting for one would hang check-config.
    let out = check_config(dir.path(), &fifo, &[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("a FIFO") && out.stderr.contains(fifo.to_str().unwrap()),
        "{out:?}"
    );
    let big = dir.path().join("big.toml");
    fs::write(&big, "#".repeat(1024 * 1024 + 1)).unwrap();
    let out = check_config(dir.path(), &big, &[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("larger than 1024 KiB") && out.stderr.contains(big.to_str().unwrap()),
        "{out:?}"
    );
}

/// The key named, the config text, the environment.
type WrongPlace = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// A secret where a config puts it by mistake — a password in another value, in place of a
/// secret file's path, a mangled age secret key among the recipients, a variable of the wrong
/// type — is refused by check-config (text and --json) naming the key, and never shown.
#[test]
fn a_secret_in_the_wrong_place_is_refused_without_showing_it() {
    let cases: [WrongPlace; 6] = [
        (
            "log.level",
            "[log]\nlevel = \"info,steward=password=Sp3cPw9xTail7\"\n",
            &[],
        ),
        (
            "redis.password_file",
            "[redis]\npassword_file = \"Sp3cPw9xTail7\"\n",
            &[],
        ),
        (
            "postgres.url_file",
            "",
            &[("STEWARD_POSTGRES__URL_FILE", "Sp3c/Pw9x/Tail7")],
        ),
        (
            "backup.encryption.recipients",
            "[backup.encryption]\nrecipients = [\"GE-SECRET-KEY-1SP3CPW9XTAIL7\"]\n",
            &[],
        ),
        (
            "STEWARD_REDIS__POOL_MAX",
            "",
            &[("STEWARD_REDIS__POOL_MAX", "Sp3cPw9xTail7")],
        ),
        (
            "postgres.url",
            "[postgres]\nurl = [\n  \"Sp3c Pw9x Tail7\" x\n]\n",
            &[],
        ),
    ];
    for (key, text, vars) in cases {
        let dir = short_tempdir("stw-strict-");
        let file = dir.path().join("steward.toml");
        fs::write(&file, text).unwrap();
        let env: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for json in [false, true] {
            let mut args = vec!["check-config", "--config", file.to_str().unwrap()];
            if json {
                args.insert(0, "--json");
            }
            let out = steward_cmd(&args, dir.path(), &env);
            assert_eq!(out.code, 1, "{key}: {out:?}");
            assert!(out.all().contains(key), "{key} not named: {out:?}");
            assert_hidden(
                &format!("check-config for {key}"),
                &out.all().replace("SP3CPW9X", "Sp3cPw9x"),
            );
        }
    }
}

/// The password whose parts must never be shown.
const PARTS: [&str; 3] = ["Sp3c", "Pw9x", "Tail7"];

fn assert_hidden(surface: &str, text: &str) {
    for p in PARTS {
        assert!(!text.contains(p), "{p:?} shown in {surface}:\n{text}");
    }
}

/// A running steward whose file is changed to one with a syntax error on the line of a quoted
/// DSN password: neither check-config, nor the reload reply (JSON and human), nor `info`, nor
/// the daemon's log, nor the audit log shows any part of the password, and each says where.
#[test]
fn a_syntax_error_on_a_password_line_shows_no_part_of_it() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder(&pg, &redis).log_level("trace").start();
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    let broken_lines = [
        // The closing quote is missing.
        "url = \"host=127.0.0.1 password='Sp3c Pw9x Tail7' dbname=steward\n",
        // A stray character after the quoted value.
        "url = \"host=127.0.0.1 password='Sp3c Pw9x Tail7' dbname=steward\" x\n",
        // A bad escape on a continuation line of a multi-line string.
        "url = \"\"\"host=127.0.0.1 dbname=steward\n Sp3c Pw9x Tail7 \\q\"\"\"\n",
    ];
    for line in broken_lines {
        let mut s = st.settings.clone();
        s.pg_url = None;
        s.pg_extra = line.to_string();
        st.write_config(&s.render());

        let out = check_config(st.dir(), &st.config_path, &[]);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stderr.contains("`postgres.url`"), "{out:?}");
        assert!(out.stderr.contains("column"), "{out:?}");
        assert_hidden("check-config", &out.all());

        let out = st.ctl(&["reload"]);
        assert_eq!(out.code, 1, "{out:?}");
        let err = out.reply().error.unwrap_or_default();
        assert!(
            err.contains("postgres.url") && err.contains("line "),
            "the reply should say where: {err}"
        );
        assert_hidden("the reload reply", &out.all());
        let human = st.ctl_human(&["reload"]);
        assert_eq!(human.code, 1, "{human:?}");
        assert_hidden("the human reload reply", &human.all());
        let info = st.ctl(&["info"]);
        assert_hidden("info", &info.all());
    }
    st.wait_until(
        Duration::from_secs(10),
        "the reload failure in the log",
        |st| st.log().contains("postgres.url"),
    );
    assert_hidden("the daemon log", &st.log());
    let audit = fs::read_to_string(&st.settings.audit_path).unwrap();
    assert!(
        audit.contains("postgres.url"),
        "reload failure not audited: {audit}"
    );
    assert_hidden("the audit log", &audit);

    // The file replaced by a FIFO: the reload is refused at once instead of hanging.
    fs::remove_file(&st.config_path).unwrap();
    let c = std::ffi::CString::new(st.config_path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let out = st.ctl(&["reload"]);
    assert_eq!(out.code, 1, "{out:?}");
    let err = out.reply().error.unwrap_or_default();
    assert!(err.contains("a FIFO, not a regular file"), "{err}");
    assert_eq!(st.status().services.len(), 2, "still serving");
}
