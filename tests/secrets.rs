//! Secrets: passwords given in DATABASE_URL / REDIS_URL (or files) appear in no log line (at
//! trace level too), metric, /health body, client output, check-config output or error message.

mod common;

use common::*;
use std::time::Duration;

/// Everything steward shows to the outside, gathered in one string with labels.
fn everything_visible(st: &Steward) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in ["/metrics", "/health", "/-/ready", "/-/healthy", "/nope"] {
        out.push((format!("GET {path}"), st.http_get(path).1));
    }
    for args in [
        vec!["status"],
        vec!["health"],
        vec!["health", "postgres"],
        vec!["check"],
        vec!["check", "postgres"],
        vec!["check", "redis"],
        vec!["tasks"],
        vec!["info"],
        vec!["reload"],
    ] {
        out.push((
            format!("steward --json {}", args.join(" ")),
            st.ctl(&args).all(),
        ));
        out.push((
            format!("steward {}", args.join(" ")),
            st.ctl_human(&args).all(),
        ));
    }
    let cfg = st.config_path.to_string_lossy().into_owned();
    out.push((
        "steward check-config".into(),
        st.cli(&["check-config", "--config", &cfg]).all(),
    ));
    out.push((
        "steward check-config (STEWARD_CONFIG)".into(),
        st.cli_with_env(&["check-config"], &[("STEWARD_CONFIG", &cfg)])
            .all(),
    ));
    // Protocol errors too.
    for line in ["garbage", r#"{"cmd":"task","action":"pause","name":"x"}"#] {
        out.push((
            format!("request {line}"),
            format!("{:?}", st.raw_request(line).unwrap()),
        ));
    }
    // The log last, so it includes whatever the requests above made it write.
    out.push(("log".into(), st.log()));
    out
}

fn assert_nowhere(st: &Steward, secrets: &[&str]) {
    let seen = everything_visible(st);
    for (what, text) in &seen {
        for s in secrets {
            if let Some(pos) = text.find(s) {
                let from = text[..pos].rfind('\n').map_or(0, |i| i + 1);
                let to = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
                panic!("secret {s:?} appears in {what}: {:?}", &text[from..to]);
            }
        }
    }
}

#[test]
fn passwords_from_environment_never_shown() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder_urls(None, None)
        .env("DATABASE_URL", &pg.url())
        .env("REDIS_URL", &redis.url())
        .log_level("trace")
        .start();
    // The passwords were used: both services are up.
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    st.wait_up("redis", true, INTERVAL * 2 + SLACK);
    st.wait_checks("postgres", 2);
    st.wait_checks("redis", 2);
    // A task restart and a reload make more log lines.
    assert_eq!(st.ctl(&["task", "restart", "monitor.postgres"]).code, 0);
    assert_eq!(st.ctl(&["task", "restart", "monitor.redis"]).code, 0);
    st.signal(libc::SIGHUP);
    st.wait_until(Duration::from_secs(10), "reload to succeed", |st| {
        st.metric("steward_config_reloads_total", &[("result", "success")])
            .unwrap_or(0.0)
            >= 1.0
    });
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    st.wait_up("redis", true, INTERVAL * 2 + SLACK);
    assert!(st.log().contains("postgres is up"), "{}", st.log());
    assert_nowhere(&st, &[&pg.password, &redis.password]);
    // check-config shows the URL, redacted.
    let out = st.cli(&["check-config", "--config", st.config_path.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("***"), "{out:?}");
}

#[test]
fn wrong_passwords_in_errors_are_scrubbed() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let wrong_pg = random_password();
    let wrong_redis = random_password();
    let st = Steward::builder_urls(None, None)
        .env("DATABASE_URL", &pg.url_with_password(&wrong_pg))
        .env("REDIS_URL", &redis.url_with_password(&wrong_redis))
        .log_level("trace")
        .log_format("json")
        .start();
    st.wait_until(INTERVAL * 3 + SLACK, "both services reported down", |st| {
        st.up("postgres") == Some(false) && st.up("redis") == Some(false)
    });
    st.wait_checks("postgres", 2);
    st.wait_checks("redis", 2);
    // The errors exist (their wording is checked in `auth_failure_is_reported_as_such`).
    let out = st.ctl(&["check"]);
    let h: HealthReply = serde_json::from_value(out.reply().data).unwrap();
    for s in &h.services {
        let err = s
            .last
            .as_ref()
            .and_then(|l| l.error.clone())
            .unwrap_or_default();
        assert!(!err.is_empty(), "{}: no error: {}", s.service, out.stdout);
    }
    // Every log line is JSON.
    for line in st.log().lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not a JSON log line: {line:?}"
        );
    }
    assert_nowhere(
        &st,
        &[&wrong_pg, &wrong_redis, &pg.password, &redis.password],
    );
}

#[test]
fn passwords_from_files_never_shown() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let dir = short_tempdir("stw-sec-");
    let url_file = dir.path().join("pg.url");
    let pw_file = dir.path().join("redis.pw");
    std::fs::write(&url_file, format!("{}\n", pg.url())).unwrap();
    std::fs::write(&pw_file, format!("{}\n", redis.password)).unwrap();
    let st = Steward::builder_urls(None, Some(format!("redis://127.0.0.1:{}/0", redis.port)))
        .with(|s| {
            s.pg_extra = format!("url_file = {:?}\n", url_file.to_string_lossy());
            s.redis_extra = format!("password_file = {:?}\n", pw_file.to_string_lossy());
        })
        .log_level("trace")
        .start();
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    st.wait_up("redis", true, INTERVAL * 2 + SLACK);
    st.wait_checks("redis", 1);
    assert_nowhere(&st, &[&pg.password, &redis.password]);
}

#[test]
fn password_in_config_file_never_shown() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder(&pg, &redis).log_level("trace").start();
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    st.wait_up("redis", true, INTERVAL * 2 + SLACK);
    // Break the file with a bad URL that still carries the password; reload must fail without
    // echoing it.
    let mut s = st.settings.clone();
    s.pg_url = Some(format!(
        "postgres://{PG_USER}:{}@127.0.0.1:notaport/db",
        pg.password
    ));
    st.write_config(&s.render());
    let out = st.ctl(&["reload"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(!out.all().contains(&pg.password), "{out:?}");
    st.signal(libc::SIGHUP);
    st.wait_until(Duration::from_secs(10), "second reload failure", |st| {
        st.metric("steward_config_reloads_total", &[("result", "failure")])
            .unwrap_or(0.0)
            >= 2.0
    });
    assert_nowhere(&st, &[&pg.password, &redis.password]);
}

/// With every library at trace too (a full filter directive, as an operator debugging a
/// connection problem would set), the passwords still appear nowhere.
#[test]
fn passwords_hidden_with_every_library_at_trace() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let wrong_redis = random_password();
    let st = Steward::builder_urls(None, None)
        .env("DATABASE_URL", &pg.url())
        .env("REDIS_URL", &redis.url_with_password(&wrong_redis))
        .log_level("trace,steward=trace")
        .start();
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    st.wait_until(INTERVAL * 2 + SLACK, "redis checked", |st| {
        st.status()
            .services
            .iter()
            .any(|s| s.service == Service::Redis && s.last.is_some())
    });
    st.wait_checks("postgres", 2);
    assert!(
        st.log().lines().count() > 20,
        "libraries at trace should say something:\n{}",
        st.log()
    );
    assert_nowhere(&st, &[&pg.password, &redis.password, &wrong_redis]);
}

/// Beyond the secrets rule: a wrong password is reported as an authentication failure (the
/// server's reason), not only as a timeout, so the operator knows what to fix.
#[test]
fn auth_failure_is_reported_as_such() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder_urls(
        Some(pg.url_with_password("pw-wrong")),
        Some(redis.url_with_password("pw-wrong")),
    )
    .start();
    st.wait_until(INTERVAL * 2 + SLACK, "both services checked", |st| {
        st.status().services.iter().all(|s| s.last.is_some())
    });
    let out = st.ctl(&["check"]);
    let h: HealthReply = serde_json::from_value(out.reply().data).unwrap();
    for s in &h.services {
        let err = s
            .last
            .as_ref()
            .and_then(|l| l.error.clone())
            .unwrap_or_default()
            .to_lowercase();
        assert!(
            err.contains("password") || err.contains("auth"),
            "{}: the error should say authentication failed: {err:?}",
            s.service
        );
    }
}
