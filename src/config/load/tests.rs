//! Tests of config loading: files, environment, secret files and their problems.

use super::super::secret_file::{exposure_warning, read_secret_file};
use super::*;
use std::io::Write;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn cache_namespaces_profile_and_environment() {
    let f = file(
        "[redis]\nprofile = \"production\"\n\
         [[cache.namespace]]\nname = \"sessions\"\nprefix = \"cache:sessions:\"\nttl = \"1h\"\n\
         [[cache.namespace]]\nname = \"analytics\"\nprefix = \"cache:analytics:\"\nttl = \"30m\"\n\
         codec = \"json\"\ncompress = true\n[cache.namespace.warmup]\nquery = \"SELECT 1, 2\"\n",
    );
    let c = load(f.path(), &env(&[("CACHE_COMPRESSION_THRESHOLD", "2048")])).unwrap();
    assert_eq!(c.redis.pool_max, 100);
    assert_eq!(c.cache.compression_threshold, 2048);
    assert_eq!(c.cache.namespaces.len(), 2);
    let a = &c.cache.namespaces[1];
    assert_eq!((a.codec, a.compress), (crate::config::Codec::Json, true));
    assert_eq!(a.warmup.as_ref().unwrap().query, "SELECT 1, 2");
    let c = load(f.path(), &env(&[("REDIS_MAX_CONNECTIONS", "20")])).unwrap();
    assert_eq!(
        c.redis.pool_max, 20,
        "an explicit pool_max beats the profile"
    );
    let bad = file("[[cache.namespace]]\nname = \"x\"\nprefix = \"\"\nttl = \"0s\"\n");
    let e = load(bad.path(), &env(&[])).unwrap_err().to_string();
    assert!(
        e.contains("cache.namespace[0] (x).prefix") && e.contains("(x).ttl"),
        "{e}"
    );
}

#[test]
fn alert_rules_from_file_and_environment() {
    let f =
        file("[alerts.service_down]\nfor = \"5s\"\n[alerts.task_restarting]\nwindow = \"1m\"\n");
    let c = load(
        f.path(),
        &env(&[
            ("ALERT_THRESHOLD_RESPONSE_TIME", "250"),
            ("STEWARD_ALERTS__REDIS_MEMORY_HIGH__THRESHOLD", "0.5"),
        ]),
    )
    .unwrap();
    assert_eq!(c.alerts.service_down.for_.as_secs(), 5);
    assert_eq!(c.alerts.task_restarting.window.unwrap().as_secs(), 60);
    assert_eq!(c.alerts.task_restarting.threshold, Some(3.0));
    assert_eq!(c.alerts.slow_response.threshold, Some(0.25));
    assert_eq!(c.alerts.redis_memory_high.threshold, Some(0.5));
    let bad = load(f.path(), &env(&[("ALERT_THRESHOLD_RESPONSE_TIME", "fast")])).unwrap_err();
    assert!(
        bad.to_string().contains("ALERT_THRESHOLD_RESPONSE_TIME"),
        "{bad}"
    );
    let f = file("[alerts.backup_failed]\nwindow = \"1m\"\n");
    let bad = load(f.path(), &env(&[])).unwrap_err().to_string();
    assert!(bad.contains("alerts.backup_failed.window"), "{bad}");
}

#[test]
fn defaults_and_file_values() {
    let f = file("[postgres]\ninterval = \"10s\"\n[redis]\npool_max = 7\n");
    let c = load(f.path(), &env(&[])).unwrap();
    assert_eq!(c.postgres.interval.as_secs(), 10);
    assert_eq!(c.postgres.timeout.as_secs(), 5);
    assert_eq!(c.redis.pool_max, 7);
    assert_eq!(c.redis.interval.as_secs(), 30);
}

#[test]
fn steward_env_beats_legacy_env_beats_file() {
    let f = file("[redis]\npool_max = 7\n[postgres]\ninterval = \"10s\"\n");
    let e = env(&[
        ("REDIS_MAX_CONNECTIONS", "20"),
        ("MONITORING_INTERVAL", "15"),
        ("STEWARD_POSTGRES__INTERVAL", "12s"),
        ("DATABASE_URL", "postgres://u:pw@db/app"),
        ("REDIS_SOCKET_TIMEOUT", "2.5"),
    ]);
    let c = load(f.path(), &e).unwrap();
    assert_eq!(c.redis.pool_max, 20);
    assert_eq!(c.redis.interval.as_secs(), 15);
    assert_eq!(c.postgres.interval.as_secs(), 12);
    assert_eq!(c.redis.timeout.as_millis(), 2500);
    assert_eq!(c.postgres.url.expose(), "postgres://u:pw@db/app");
}

#[test]
fn every_problem_is_named() {
    let f = file("[postgres]\nintervall = \"1s\"\n[nosuch]\nx = 1\n[redis]\ninterval = \"0s\"\n");
    let err = load(f.path(), &env(&[("MONITORING_INTERVAL", "soon")])).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("postgres.intervall"), "{text}");
    assert!(text.contains("nosuch"), "{text}");
    assert!(text.contains("MONITORING_INTERVAL"), "{text}");
}

#[test]
fn validation_problems_listed_together() {
    let f = file("[redis]\ninterval = \"0s\"\n[postgres]\ninterval = \"5s\"\ntimeout = \"5s\"\nurl = \"mysql://x\"\n");
    let err = load(f.path(), &env(&[])).unwrap_err();
    let p = err.problems();
    assert!(p.iter().any(|p| p.contains("redis.interval")), "{p:?}");
    assert!(p.iter().any(|p| p.contains("postgres.timeout")), "{p:?}");
    assert!(p.iter().any(|p| p.contains("postgres.url")), "{p:?}");
}

#[test]
fn bad_duration_names_key_and_hides_password() {
    let f = file("[postgres]\ninterval = 30\nurl = \"postgres://u:hunter2@h/db\"\n");
    let err = load(f.path(), &env(&[])).unwrap_err().to_string();
    assert!(err.contains("postgres.interval"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let f = file("[postgres]\nurl = 5\n");
    let err = load(f.path(), &env(&[("X", "y")])).unwrap_err().to_string();
    assert!(err.contains("postgres.url"), "{err}");
}

#[test]
fn unset_timeouts_fit_short_intervals() {
    let f = file("[redis]\ntimeout = \"4s\"\n");
    let c = load(f.path(), &env(&[("MONITORING_INTERVAL", "2")])).unwrap_err();
    assert!(c.to_string().contains("redis.timeout"), "{c}");
    let f = file("");
    let c = load(f.path(), &env(&[("MONITORING_INTERVAL", "2")])).unwrap();
    assert_eq!(c.postgres.timeout.as_millis(), 1000);
    assert_eq!(c.redis.timeout.as_millis(), 1000);
    let c = load(f.path(), &env(&[("MONITORING_INTERVAL", "60")])).unwrap();
    assert_eq!(c.postgres.timeout.as_secs(), 5);
}

#[test]
fn unreadable_file_is_named() {
    let err = load(Path::new("/nonexistent/steward.toml"), &env(&[])).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/steward.toml"));
}

#[test]
fn secret_files_are_read() {
    let url = file("postgres://app:fromfile@db/app\n");
    let pw = file("redispw\n");
    let f = file(&format!(
        "[postgres]\nurl_file = \"{}\"\n[redis]\npassword_file = \"{}\"\n",
        url.path().display(),
        pw.path().display()
    ));
    let c = load(f.path(), &env(&[])).unwrap();
    assert_eq!(c.postgres.url.expose(), "postgres://app:fromfile@db/app");
    assert!(c.redis.url.expose().contains(":redispw@"));
    assert!(!c.to_redacted_toml().contains("redispw"));
    assert!(!c.to_redacted_toml().contains("fromfile"));
}

#[test]
fn exposed_secret_files_are_warned_about_without_content() {
    use std::os::unix::fs::PermissionsExt;
    let f = file("postgres://app:hush-hush@db/app\n");
    let set = |mode: u32| {
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set(0o600);
    assert_eq!(exposure_warning("postgres.url_file", f.path()), None);
    set(0o400);
    assert_eq!(exposure_warning("postgres.url_file", f.path()), None);
    for (mode, who) in [
        (0o640, "its group"),
        (0o604, "others"),
        (0o644, "group and others"),
    ] {
        set(mode);
        let w = exposure_warning("postgres.url_file", f.path()).expect("a warning");
        let name = f.path().display().to_string();
        assert!(w.contains(&name), "{w}");
        assert!(w.contains(&format!("{mode:04o}")), "{w}");
        assert!(w.contains(who) && w.contains("chmod 600"), "{w}");
        assert!(w.contains("postgres.url_file"), "{w}");
        assert!(!w.contains("hush-hush"), "{w}");
        // Reading still works: the warning does not refuse the file.
        let text = read_secret_file("postgres.url_file", f.path()).unwrap();
        assert!(text.contains("hush-hush"));
    }
    let err = read_secret_file("redis.password_file", Path::new("/nonexistent/pw")).unwrap_err();
    assert_eq!(err.key, "redis.password_file");
    assert!(err.reason.contains("/nonexistent/pw"), "{err}");
}
