//! Secrets in values that cannot be read (issue 12, items 1–3): a connection URL with a
//! mistyped scheme, a key=value string with an unquoted space in its password, an age secret
//! key among the recipients. Each makes the config invalid; the refusal names the key and shows
//! the value only masked — in `check-config` (with and without `--json`), in the start-up error
//! of `steward run` (value in the file or in DATABASE_URL / REDIS_URL), and in the `reload`
//! reply, log and audit log of a daemon running with a good config.

mod common;

use common::*;

/// One unreadable value: where it goes, and the secrets in it that must not show.
struct Bad {
    name: String,
    /// `postgres.url`, `redis.url` or `backup.encryption.recipients`.
    key: &'static str,
    value: String,
    secrets: Vec<String>,
    /// Text the refusal must show (the value masked), if any.
    masked: Option<String>,
}

/// The mistyped URLs of issue 12 with a fresh password each, an unquoted DSN password with a
/// space, and an age secret key.
fn bad_values() -> Vec<Bad> {
    let url = |key, shape: &str| {
        let pw = random_password();
        Bad {
            name: format!("{key} = {shape:?}"),
            key,
            value: shape.replace("PW", &pw),
            masked: Some(shape.replace("PW", "***")),
            secrets: vec![pw],
        }
    };
    let mut out: Vec<Bad> = [
        "postgres:/u:PW@127.0.0.1/app",
        "postgres//u:PW@h",
        "//u:PW@h/app",
        "u:PW@h/app",
    ]
    .into_iter()
    .map(|s| url("postgres.url", s))
    .collect();
    out.extend(
        ["redis:/:PW@h", "redis//:PW@h", ":PW@h:6379/0"]
            .into_iter()
            .map(|s| url("redis.url", s)),
    );
    let (head, tail) = (random_password(), format!("TAIL{}", random_hex(6)));
    out.push(Bad {
        name: "postgres.url with an unquoted space in the password".into(),
        key: "postgres.url",
        value: format!("host=127.0.0.1 user=u password={head} {tail} dbname=x"),
        secrets: vec![head, tail],
        masked: Some("password=*** *** dbname=x".into()),
    });
    let body = random_hex(24).to_uppercase();
    out.push(Bad {
        name: "an age secret key among the recipients".into(),
        key: "backup.encryption.recipients",
        value: format!("AGE-SECRET-KEY-1{body}"),
        secrets: vec![body],
        masked: None,
    });
    out
}

/// The settings with one bad value in place (a URL in the file, or the recipients).
fn with_bad(s: &Settings, bad: &Bad) -> Settings {
    let mut s = s.clone();
    match bad.key {
        "postgres.url" => s.pg_url = Some(bad.value.clone()),
        "redis.url" => s.redis_url = Some(bad.value.clone()),
        _ => s.backup += &format!("\n[backup.encryption]\nrecipients = [{:?}]\n", bad.value),
    }
    s
}

/// The environment variable a URL can come from instead of the file.
fn env_var(key: &str) -> Option<&'static str> {
    match key {
        "postgres.url" => Some("DATABASE_URL"),
        "redis.url" => Some("REDIS_URL"),
        _ => None,
    }
}

/// Every place a secret of `bad` shows in `texts`, as "case (what): secret in line".
fn leaks(bad: &Bad, texts: &[(String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (what, text) in texts {
        for secret in &bad.secrets {
            if let Some(line) = text.lines().find(|l| l.contains(secret.as_str())) {
                found.push(format!("{} ({what}): {secret:?} in {line:?}", bad.name));
            }
        }
    }
    found
}

/// A refusal must say which key is wrong and exit 1, and show the value only masked.
fn assert_refused(bad: &Bad, what: &str, out: &CmdOutput, key: &str) {
    assert_eq!(
        out.code, 1,
        "{} ({what}) was not refused: {out:?}",
        bad.name
    );
    assert!(
        out.all().contains(key),
        "{} ({what}): the refusal does not name {key}: {out:?}",
        bad.name
    );
    if let Some(m) = &bad.masked {
        assert!(
            out.all().contains(m.as_str()),
            "{} ({what}): the refusal does not show {m:?}: {out:?}",
            bad.name
        );
    }
}

/// check-config and `steward run` with each bad value in the file, and (for URLs) in the
/// environment: refused, the key named, no secret shown.
#[test]
fn unreadable_values_are_refused_without_their_secrets() {
    let mut found = Vec::new();
    for bad in bad_values() {
        let b = Steward::builder_urls(
            Some("postgres://steward@127.0.0.1:1/db".into()),
            Some("redis://127.0.0.1:1/0".into()),
        );
        let dir = b.dir().to_path_buf();
        let file = dir.join("bad.toml");
        std::fs::write(&file, with_bad(&b.settings, &bad).render()).unwrap();
        let cfg = file.to_string_lossy().into_owned();
        let mut texts = Vec::new();
        for args in [
            &["check-config", "--config", &cfg][..],
            &["--json", "check-config", "--config", &cfg],
            &["run", "--config", &cfg],
        ] {
            let what = args.join(" ");
            let out = steward_cmd(args, &dir, &[]);
            assert_refused(&bad, &what, &out, bad.key);
            texts.push((what, out.all()));
        }
        if let Some(var) = env_var(bad.key) {
            let mut s = b.settings.clone();
            match bad.key {
                "postgres.url" => s.pg_url = None,
                _ => s.redis_url = None,
            }
            let file = dir.join("env.toml");
            std::fs::write(&file, s.render()).unwrap();
            let cfg = file.to_string_lossy().into_owned();
            let env = [(var.to_string(), bad.value.clone())];
            for args in [
                &["check-config", "--config", &cfg][..],
                &["run", "--config", &cfg],
            ] {
                let what = format!("{var}=… {}", args.join(" "));
                let out = steward_cmd(args, &dir, &env);
                assert_refused(&bad, &what, &out, bad.key);
                texts.push((what, out.all()));
            }
        }
        found.extend(leaks(&bad, &texts));
    }
    assert!(found.is_empty(), "secrets shown:\n{}", found.join("\n"));
}

/// A daemon running with a good config is sent each bad value by `reload` (JSON and human
/// replies) and SIGHUP: every reload is refused naming the key, the daemon keeps its config,
/// and neither the replies, the log (at trace) nor the audit log show a secret.
#[test]
fn reload_to_an_unreadable_value_shows_no_secret() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder(&pg, &redis).log_level("trace").start();
    st.wait_up("postgres", true, INTERVAL * 3 + SLACK);
    let good = st.settings.render();
    let bads = bad_values();
    let mut found = Vec::new();
    for (i, bad) in bads.iter().enumerate() {
        st.write_config(&with_bad(&st.settings, bad).render());
        let mut texts = Vec::new();
        let out = st.ctl(&["reload"]);
        assert_refused(bad, "reload --json", &out, bad.key);
        texts.push(("reload --json".to_string(), out.all()));
        let out = st.ctl_human(&["reload"]);
        assert_refused(bad, "reload", &out, bad.key);
        texts.push(("reload".to_string(), out.all()));
        st.signal(libc::SIGHUP);
        let failed = (3 * (i + 1)) as f64;
        st.wait_until(
            std::time::Duration::from_secs(10),
            "the refused SIGHUP",
            |st| {
                st.metric("steward_config_reloads_total", &[("result", "failure")])
                    .unwrap_or(0.0)
                    >= failed
            },
        );
        texts.push(("log".into(), st.log()));
        texts.push((
            "audit".into(),
            std::fs::read_to_string(&st.settings.audit_path).unwrap_or_default(),
        ));
        found.extend(leaks(bad, &texts));
    }
    st.write_config(&good);
    assert_eq!(st.ctl(&["reload"]).code, 0, "the good config again");
    assert!(
        st.up("postgres").unwrap_or(false),
        "{}",
        tail(&st.log(), 40)
    );
    assert!(found.is_empty(), "secrets shown:\n{}", found.join("\n"));
}
