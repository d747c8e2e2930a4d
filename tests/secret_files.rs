//! Secret, key and certificate files that are not small regular files (a FIFO, `/dev/zero`, a
//! huge file) are refused at once, naming the key, the file and what is wrong: by check-config,
//! and by a running daemon's reload, which never hangs, so SIGHUP after SIGHUP is answered and
//! SIGTERM still ends steward within `shutdown.timeout`.

mod common;

use common::*;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(20);

fn mkfifo(path: &Path) {
    let c = CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn toml_path(p: &Path) -> String {
    serde_json::to_string(&p.to_string_lossy()).unwrap()
}

/// What check-config says about the config `settings` renders, with `env` set.
fn check_config(dir: &Path, settings: &Settings, env: &[(String, String)]) -> CmdOutput {
    let path = dir.join("check.toml");
    std::fs::write(&path, settings.render()).unwrap();
    steward_cmd(
        &["check-config", "--config", path.to_str().unwrap()],
        dir,
        env,
    )
}

/// Points `key` at the file `bad`, in the settings or (for `[metrics]`) the environment.
fn set(s: &mut Settings, key: &str, bad: &Path, cert: &Path) -> Vec<(String, String)> {
    let env = |pairs: &[(&str, &Path)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string_lossy().into_owned()))
            .collect()
    };
    match key {
        "postgres.url_file" => {
            s.pg_url = None;
            s.pg_extra = format!("url_file = {}\n", toml_path(bad));
        }
        "redis.password_file" => s.redis_extra = format!("password_file = {}\n", toml_path(bad)),
        "backup.encryption.identity_file" => {
            s.backup += &format!(
                "\n[backup.encryption]\nidentity_file = {}\n",
                toml_path(bad)
            )
        }
        "metrics.tls_cert" => {
            return env(&[
                ("STEWARD_METRICS__TLS_CERT", bad),
                ("STEWARD_METRICS__TLS_KEY", &cert.with_file_name("key.pem")),
            ])
        }
        "metrics.tls_key" => {
            return env(&[
                ("STEWARD_METRICS__TLS_CERT", cert),
                ("STEWARD_METRICS__TLS_KEY", bad),
            ])
        }
        "metrics.basic_auth_users_file" => {
            return env(&[("STEWARD_METRICS__BASIC_AUTH_USERS_FILE", bad)])
        }
        other => panic!("no such case {other}"),
    }
    Vec::new()
}

#[test]
fn check_config_refuses_fifos_devices_and_huge_files_naming_key_and_file() {
    let b = Steward::builder_without_services();
    let dir = b.dir().to_path_buf();
    let fifo = dir.join("secret.fifo");
    mkfifo(&fifo);
    let huge = dir.join("huge");
    std::fs::write(&huge, vec![b'x'; 64 * 1024 + 1]).unwrap();
    let cert = dir.join("cert.pem");
    common::tls::make_cert(&cert, &dir.join("key.pem"));
    let zero = PathBuf::from("/dev/zero");
    let cases: [(&str, &Path, &str); 8] = [
        ("postgres.url_file", &fifo, "a FIFO"),
        ("postgres.url_file", &huge, "larger than 64 KiB"),
        ("redis.password_file", &zero, "a character device"),
        ("redis.password_file", &fifo, "a FIFO"),
        ("metrics.tls_key", &fifo, "a FIFO"),
        ("metrics.tls_cert", &zero, "a character device"),
        ("metrics.basic_auth_users_file", &zero, "a character device"),
        ("backup.encryption.identity_file", &fifo, "a FIFO"),
    ];
    for (key, bad, what) in cases {
        let mut s = b.settings.clone();
        let env = set(&mut s, key, bad, &cert);
        let out = check_config(&dir, &s, &env);
        let all = out.all();
        assert_ne!(out.code, 0, "{key} = {bad:?} accepted: {all}");
        assert!(
            all.contains(key) && all.contains(&bad.display().to_string()) && all.contains(what),
            "{key} = {bad:?}: the error must name the key, the file and {what:?}:\n{all}"
        );
    }
}

#[test]
fn a_fifo_url_file_on_reload_is_refused_and_sigterm_still_ends_steward() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let b = Steward::builder(&pg, &redis);
    let url_file = b.dir().join("pg.url");
    std::fs::write(&url_file, format!("{}\n", pg.url())).unwrap();
    let fifo = b.dir().join("pg.fifo");
    mkfifo(&fifo);
    let mut st = b
        .with(|s| {
            s.pg_url = None;
            s.pg_extra = format!("url_file = {}\n", toml_path(&url_file));
        })
        .start();
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    let failures = |st: &Steward| {
        st.metric("steward_config_reloads_total", &[("result", "failure")])
            .unwrap_or(0.0)
    };

    let mut s = st.settings.clone();
    s.pg_extra = format!("url_file = {}\n", toml_path(&fifo));
    st.write_config(&s.render());
    st.signal(libc::SIGHUP);
    st.wait_until(BOUND, "the SIGHUP reload to be refused", |st| {
        failures(st) >= 1.0
    });
    st.wait_until(BOUND, "the refusal in the log", |st| {
        let log = st.log();
        log.contains("postgres.url_file") && log.contains("a FIFO")
    });
    // `steward reload` gets the same refusal as its reply.
    let out = st.ctl(&["reload"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.all().contains("postgres.url_file") && out.all().contains("a FIFO"),
        "{}",
        out.all()
    );
    st.signal(libc::SIGHUP);
    st.wait_until(BOUND, "the second SIGHUP reload to be refused", |st| {
        failures(st) >= 3.0
    });
    // The running config stays: PostgreSQL is still checked and up.
    assert_eq!(st.up("postgres"), Some(true));

    st.signal(libc::SIGTERM);
    let status = st
        .wait_exit(SHUTDOWN_TIMEOUT + SLACK)
        .unwrap_or_else(|| panic!("steward ignored SIGTERM\n--- log\n{}", tail(&st.log(), 40)));
    assert_eq!(status.code(), Some(0), "{}", tail(&st.log(), 40));
}
