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
    assert!(!text.contains("soon"), "{text}");
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
    assert!(err.reason.contains("No such file"), "{err}");
}

#[test]
fn a_secret_written_in_place_of_its_file_is_not_shown() {
    for (key, text, var) in [
        (
            "redis.password_file",
            "[redis]\npassword_file = \"Sp3cPw9x\"\n",
            None,
        ),
        (
            "postgres.url_file",
            "[postgres]\nurl_file = \"Sp3c/Pw9x\"\n",
            None,
        ),
        (
            "redis.password_file",
            "",
            Some("STEWARD_REDIS__PASSWORD_FILE"),
        ),
    ] {
        let vars: Vec<(&str, &str)> = var.map(|v| (v, "Sp3cPw9x")).into_iter().collect();
        let (k, reason) = one_problem(text, &vars);
        assert_eq!(k, key);
        assert!(reason.contains("does not exist"), "{reason}");
        assert!(
            !reason.contains("Sp3c") && !reason.contains("Pw9x"),
            "{reason}"
        );
    }
    // A path where something is still names it.
    let dir = tempfile::tempdir().unwrap();
    let (_, reason) = one_problem(&format!("[redis]\npassword_file = {:?}\n", dir.path()), &[]);
    assert!(reason.contains(dir.path().to_str().unwrap()), "{reason}");
}

/// Every part of the password of `SYNTAX_PW`, none of which may be shown.
const PW_PARTS: [&str; 3] = ["Sp3c", "Pw9x", "Tail7"];

fn assert_no_password(text: &str) {
    for part in PW_PARTS {
        assert!(!text.contains(part), "{part:?} shown in: {text}");
    }
}

#[test]
fn syntax_errors_name_line_column_and_key_but_no_secret() {
    for broken in [
        // The closing quote is missing.
        "url = \"host=h password='Sp3c Pw9x Tail7' dbname=x\n",
        // A stray character after the quoted value.
        "url = \"host=h password='Sp3c Pw9x Tail7' dbname=x\" z\n",
        // An unterminated password quote inside a literal string, then junk.
        "url = 'host=h password=\"Sp3c Pw9x Tail7 dbname=x' ]\n",
    ] {
        let f = file(&format!("[log]\nlevel = \"info\"\n[postgres]\n{broken}"));
        let e = load(f.path(), &env(&[])).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, LoadError::Parse { .. }), "{text}");
        assert!(text.contains(&f.path().display().to_string()), "{text}");
        assert!(text.contains("line 4, column "), "{text}");
        assert!(text.contains("`postgres.url`"), "{text}");
        assert!(text.contains("url = ***"), "{text}");
        assert_no_password(&text);
    }
}

#[test]
fn a_syntax_error_inside_a_multi_line_secret_shows_none_of_it() {
    for broken in [
        // A bad escape on the second line of a multi-line string.
        "url = \"\"\"host=h\nSp3c Pw9x Tail7 \\q\"\"\"\n",
        // The continuation line looks like a harmless key = value.
        "url = \"\"\"\nhost = h Sp3c Pw9x Tail7 \\q\"\"\"\n",
        // Junk after the closing quotes of a multi-line literal string.
        "url = '''host=h\nSp3c Pw9x Tail7'''x\n",
        // A multi-line array.
        "url = [\n  \"Sp3c Pw9x Tail7\" x\n]\n",
    ] {
        let f = file(&format!("[log]\nlevel = \"info\"\n[postgres]\n{broken}"));
        let e = load(f.path(), &env(&[])).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, LoadError::Parse { .. }), "{text}");
        assert!(text.contains("`postgres.url`"), "{broken:?}: {text}");
        assert_no_password(&text);
    }
    // A harmless multi-line array still shows its broken line.
    let f = file("[backup]\ndatabases = [\n  \"app\" x\n]\n");
    let text = load(f.path(), &env(&[])).unwrap_err().to_string();
    assert!(text.contains("`backup.databases`"), "{text}");
    assert!(text.contains("\"app\" x"), "{text}");
}

#[test]
fn a_syntax_error_in_a_file_that_is_no_config_shows_none_of_it() {
    // An environment file or a secret file given as the config by mistake.
    for text in [
        "DB_PASS=Sp3cPw9x\n",
        "# env\nAPI_KEY = Sp3cPw9x\n",
        "MYSQL_PWD=Sp3cPw9x\n",
        "export DB_PASS=Sp3cPw9x\n",
        "Sp3cPw9x Tail7\n",
        "Sp3cPw9x\n",
    ] {
        let f = file(text);
        let text = load(f.path(), &env(&[])).unwrap_err().to_string();
        assert!(text.contains("line "), "{text}");
        assert_no_password(&text);
    }
    // A key steward does not know may hold anything.
    let f = file("[postgres]\npw = \"Sp3cPw9x \\q\"\n");
    let text = load(f.path(), &env(&[])).unwrap_err().to_string();
    assert!(text.contains("`postgres.pw`"), "{text}");
    assert_no_password(&text);
    // A broken table header is still shown.
    let f = file("[postgres\n");
    let text = load(f.path(), &env(&[])).unwrap_err().to_string();
    assert!(text.contains("reads: [postgres"), "{text}");
}

#[test]
fn syntax_errors_show_a_harmless_line_and_mask_a_password_anywhere() {
    let f = file("[redis]\npool_max = 4 4\n");
    let text = load(f.path(), &env(&[])).unwrap_err().to_string();
    assert!(text.contains("`redis.pool_max`"), "{text}");
    assert!(text.contains("line 2 reads: pool_max = 4 4"), "{text}");
    // A password where no secret belongs, on a broken line: still not shown.
    let f = file("[log]\nlevel = \"x password='Sp3c Pw9x Tail7' y\" z\n");
    let text = load(f.path(), &env(&[])).unwrap_err().to_string();
    assert!(text.contains("`log.level`"), "{text}");
    assert_no_password(&text);
    let f = file("[postgres]\n\"url\" = \"postgres://u:Sp3c@h/db\" \"x\"\n");
    let text = load(f.path(), &env(&[])).unwrap_err().to_string();
    assert!(text.contains("`postgres.url`"), "{text}");
    assert_no_password(&text);
}

#[test]
fn the_config_file_must_be_a_small_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("steward.toml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Returns at once rather than waiting for a writer.
    let e = load(&fifo, &env(&[])).unwrap_err().to_string();
    assert!(
        e.contains(fifo.to_str().unwrap()) && e.contains("a FIFO"),
        "{e}"
    );
    let e = load(dir.path(), &env(&[])).unwrap_err().to_string();
    assert!(e.contains("a directory, not a regular file"), "{e}");
    let big = dir.path().join("big.toml");
    let mut text = "# filler\n".repeat(1024 * 1024 / 9);
    text.push_str("[redis]\npool_max = 7\n");
    std::fs::write(&big, &text).unwrap();
    assert!(text.len() > 1024 * 1024);
    let e = load(&big, &env(&[])).unwrap_err();
    assert!(matches!(e, LoadError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("1024 KiB"), "{e}");
    text.truncate(1000);
    std::fs::write(&big, &text).unwrap();
    assert!(load(&big, &env(&[])).is_ok());
}

/// Runs `load` on `text` and returns its one problem as (key, reason).
fn one_problem(text: &str, vars: &[(&str, &str)]) -> (String, String) {
    let f = file(text);
    match load(f.path(), &env(vars)) {
        Err(LoadError::Invalid { problems, .. }) if problems.len() == 1 => {
            (problems[0].key.clone(), problems[0].reason.clone())
        }
        other => panic!("{text:?}: expected one problem, got {other:?}"),
    }
}

#[test]
fn file_values_must_have_the_keys_type() {
    for (text, key, hint) in [
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
            "[postgres]\nwrite_read_test = \"yes\"\n",
            "postgres.write_read_test",
            "true or false",
        ),
        (
            "[backup]\ndatabases = \"app\"\n",
            "backup.databases",
            "array",
        ),
        (
            "[redis]\ninterval = 30\n",
            "redis.interval",
            "interval = \"30s\"",
        ),
        (
            "[[cache.namespace]]\nname = \"a\"\nprefix = \"a:\"\nttl = 60\n",
            "cache.namespace[0].ttl",
            "quoted",
        ),
        (
            "[alerts.slow_response]\nthreshold = \"2\"\n",
            "alerts.slow_response.threshold",
            "number",
        ),
    ] {
        let (k, reason) = one_problem(text, &[]);
        assert_eq!(k, key, "{text:?}: {reason}");
        assert!(
            reason.contains("line ") && reason.contains(hint),
            "{text:?}: {reason}"
        );
    }
    // An integer where a number is expected is a number.
    let f = file("[alerts.slow_response]\nthreshold = 2\n");
    assert_eq!(
        load(f.path(), &env(&[]))
            .unwrap()
            .alerts
            .slow_response
            .threshold,
        Some(2.0)
    );
}

#[test]
fn a_password_in_any_value_is_masked_wherever_a_problem_quotes_part_of_it() {
    // log.level's check quotes the piece after the last `=` on its own.
    let (k, reason) = one_problem("[log]\nlevel = \"info,steward=password=Sp3cPw9x\"\n", &[]);
    assert_eq!(k, "log.level");
    assert!(!reason.contains("Sp3c"), "{reason}");
    let (_, reason) = one_problem("", &[("STEWARD_LOG__LEVEL", "password=Sp3cPw9x")]);
    assert!(!reason.contains("Sp3c"), "{reason}");
}

#[test]
fn a_mistyped_secret_is_not_quoted() {
    let (k, reason) = one_problem("[metrics]\nbasic_auth_users = \"$2y$Sp3c\"\n", &[]);
    assert_eq!(k, "metrics.basic_auth_users");
    assert!(!reason.contains("Sp3c"), "{reason}");
    let (k, reason) = one_problem("[postgres]\npool_max = \"postgres://u:Sp3c@h/d\"\n", &[]);
    assert_eq!(k, "postgres.pool_max");
    assert!(!reason.contains("Sp3c"), "{reason}");
    // A password of digits, or a number where a secret file's path belongs.
    for (key, text) in [
        ("postgres.url", "[postgres]\nurl = 73619284\n"),
        ("postgres.url", "[postgres]\nurl = 7361.9284\n"),
        ("redis.password_file", "[redis]\npassword_file = 73619284\n"),
    ] {
        let (k, reason) = one_problem(text, &[]);
        assert_eq!(k, key);
        assert!(reason.contains("invalid type"), "{reason}");
        assert!(!reason.contains("7361"), "{reason}");
    }
}

#[test]
fn environment_strings_are_converted_and_a_bad_one_names_its_variable() {
    let f = file("[redis]\npool_max = 7\n");
    let c = load(f.path(), &env(&[("STEWARD_REDIS__POOL_MAX", "9")])).unwrap();
    assert_eq!(c.redis.pool_max, 9);
    let (k, reason) = one_problem(
        "[redis]\npool_max = 7\n",
        &[("STEWARD_REDIS__POOL_MAX", "lots")],
    );
    assert_eq!(k, "STEWARD_REDIS__POOL_MAX (environment)", "{reason}");
    // The variable's value is not quoted: it may be a secret set to the wrong variable.
    for (var, value) in [
        ("STEWARD_REDIS__POOL_MAX", "Sp3c\"Pw9x\", expected"),
        ("STEWARD_POSTGRES__INTERVAL", "Sp3cPw9x"),
        ("STEWARD_POSTGRES__WRITE_READ_TEST", "Sp3cPw9x"),
    ] {
        let (k, reason) = one_problem("", &[(var, value)]);
        assert_eq!(k, format!("{var} (environment)"), "{reason}");
        assert!(reason.contains("a string"), "{reason}");
        let lower = reason.to_ascii_lowercase();
        assert!(
            !lower.contains("sp3c") && !lower.contains("pw9x"),
            "{reason}"
        );
    }
}

/// `backup.pre_restore_keep` (issue 14 item 7): 3 by default, set by the file or by
/// `STEWARD_BACKUP__PRE_RESTORE_KEEP`, a whole number no larger than 1000.
#[test]
fn pre_restore_keep_from_file_and_environment() {
    let f = file("[backup]\npre_restore_keep = 5\n");
    assert_eq!(
        load(f.path(), &env(&[])).unwrap().backup.pre_restore_keep,
        5
    );
    let c = load(f.path(), &env(&[("STEWARD_BACKUP__PRE_RESTORE_KEEP", "0")])).unwrap();
    assert_eq!(c.backup.pre_restore_keep, 0);
    assert_eq!(
        load(file("").path(), &env(&[]))
            .unwrap()
            .backup
            .pre_restore_keep,
        3
    );
    for (text, vars, key) in [
        (
            "[backup]\npre_restore_keep = \"3\"\n",
            &[][..],
            "backup.pre_restore_keep",
        ),
        (
            "[backup]\npre_restore_keep = -1\n",
            &[][..],
            "backup.pre_restore_keep",
        ),
        (
            "[backup]\npre_restore_keep = 1001\n",
            &[][..],
            "backup.pre_restore_keep",
        ),
        (
            "",
            &[("STEWARD_BACKUP__PRE_RESTORE_KEEP", "many")][..],
            "STEWARD_BACKUP__PRE_RESTORE_KEEP (environment)",
        ),
        (
            "",
            &[("STEWARD_BACKUP__PRE_RESTORE_KEEP", "5000")][..],
            "backup.pre_restore_keep",
        ),
    ] {
        let (k, reason) = one_problem(text, vars);
        assert_eq!(k, key, "{text:?} {vars:?}: {reason}");
    }
}

#[test]
fn directories_and_kernel_trees_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (k, reason) = one_problem(&format!("[audit]\npath = {:?}\n", dir.path()), &[]);
    assert_eq!(k, "audit.path", "{reason}");
    assert!(reason.contains("names a directory"), "{reason}");
    let a_file = dir.path().join("f");
    std::fs::write(&a_file, "").unwrap();
    let (k, reason) = one_problem(&format!("[backup]\ndir = {a_file:?}\n"), &[]);
    assert_eq!(k, "backup.dir", "{reason}");
    assert!(reason.contains("not a directory"), "{reason}");
    let link = dir.path().join("to-proc");
    std::os::unix::fs::symlink("/proc/self", &link).unwrap();
    for d in [
        "/proc/steward-backups".into(),
        "/sys/x".into(),
        "/dev/shm/b".into(),
        link.join("new").display().to_string(),
        format!("{}/../../../../../../proc/b", dir.path().display()),
    ] {
        let (k, reason) = one_problem(&format!("[backup]\ndir = {d:?}\n"), &[]);
        assert_eq!(k, "backup.dir", "{d}: {reason}");
        assert!(reason.contains("kernel file system"), "{d}: {reason}");
    }
    let f = file(&format!(
        "[backup]\ndir = {:?}\n",
        dir.path().join("new/backups")
    ));
    assert!(load(f.path(), &env(&[])).is_ok());
}

#[test]
fn pg_dump_path_must_be_pg_dump_and_log_level_must_log() {
    let (k, reason) = one_problem("[backup]\npg_dump_path = \"/bin/sh\"\n", &[]);
    assert_eq!(k, "backup.pg_dump_path");
    assert!(reason.contains("not PostgreSQL's pg_dump"), "{reason}");
    for level in [
        "verbose",
        "bogus",
        "tokio_postgres=warn",
        "steward=loud",
        "",
    ] {
        let (k, reason) = one_problem(&format!("[log]\nlevel = {level:?}\n"), &[]);
        assert_eq!(k, "log.level", "{level}: {reason}");
    }
    for level in [
        "info",
        "WARN",
        "off",
        "steward=debug,tokio_postgres=warn",
        "warn,steward::backup=trace",
    ] {
        let f = file(&format!("[log]\nlevel = {level:?}\n"));
        assert!(load(f.path(), &env(&[])).is_ok(), "{level}");
    }
}

#[test]
fn lines_are_placed_under_their_table() {
    use super::syntax::{key_at_line, position};
    let text = "top = 1\n[backup.schedule]  # when\ndaily = \"x\n[[cache.namespace]]\n\"name\" = 1\n  arr = [\n[1, 2],\n";
    assert_eq!(key_at_line(text, 1).as_deref(), Some("top"));
    assert_eq!(key_at_line(text, 2).as_deref(), Some("backup.schedule"));
    assert_eq!(
        key_at_line(text, 3).as_deref(),
        Some("backup.schedule.daily")
    );
    assert_eq!(
        key_at_line(text, 5).as_deref(),
        Some("cache.namespace.name")
    );
    assert_eq!(key_at_line(text, 7), None, "an array line is no header");
    let p = position("ab\ncdé f", 8);
    assert_eq!((p.line, p.column), (2, 5));
}

#[test]
fn a_boolean_word_is_not_a_number_in_the_environment() {
    for (var, word) in [
        ("STEWARD_POSTGRES__POOL_MAX", "yes"),
        ("STEWARD_POSTGRES__POOL_MAX", "on"),
        ("STEWARD_REDIS__POOL_MAX", "true"),
        ("STEWARD_REDIS__POOL_MAX", "False"),
        ("STEWARD_BACKUP__RETENTION_DAYS", "on"),
        ("STEWARD_ALERTS__REDIS_MEMORY_HIGH__THRESHOLD", "yes"),
    ] {
        let (k, reason) = one_problem("[redis]\npool_max = 7\n", &[(var, word)]);
        assert_eq!(k, format!("{var} (environment)"), "{word}: {reason}");
        // The variable is named, its value not quoted (it might be a secret put there).
        assert!(reason.contains("not a number"), "{word}: {reason}");
    }
    // A key that takes true or false still takes these words.
    let f = file("");
    let vars = env(&[("STEWARD_ALERTS__REDIS_MEMORY_HIGH__ENABLED", "no")]);
    assert!(
        !load(f.path(), &vars)
            .unwrap()
            .alerts
            .redis_memory_high
            .enabled
    );
}

#[test]
fn an_unknown_section_set_only_by_a_variable_is_the_variables_one_problem() {
    // fuzz: STEWARD_NOSUCH__KEY="" gave a keyless `config: unknown field` beside the section.
    for value in ["", "1"] {
        let (k, reason) = one_problem("", &[("STEWARD_NOSUCH__KEY", value)]);
        assert_eq!(k, "STEWARD_NOSUCH__KEY (environment)", "{reason}");
        assert!(reason.contains("unknown section \"nosuch\""), "{reason}");
    }
    let (k, reason) = one_problem("", &[("STEWARD_POSTGRE__URL", "x")]);
    assert_eq!(k, "STEWARD_POSTGRE__URL (environment)", "{reason}");
    assert!(reason.contains("did you mean \"postgres\""), "{reason}");
    // The file's own unknown section is still the file's.
    let f = file("[nosuch]\na = 1\n");
    let Err(LoadError::Invalid { problems, .. }) =
        load(f.path(), &env(&[("STEWARD_NOSUCH__B", "2")]))
    else {
        panic!("accepted");
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["STEWARD_NOSUCH__B (environment)", "nosuch"],
        "{problems:?}"
    );
}

#[test]
fn backup_remote_from_steward_and_aws_variables_with_the_secret_kept_out_of_sight() {
    let f = file("[backup.remote]\nurl = \"s3://file-bucket/x\"\nregion = \"eu-west-3\"\n");
    let e = env(&[
        ("STEWARD_BACKUP__REMOTE__URL", "s3://env-bucket/prod"),
        ("STEWARD_BACKUP__REMOTE__LOCAL_KEEP", "0"),
        ("STEWARD_BACKUP__REMOTE__PATH_STYLE", "true"),
        ("AWS_ACCESS_KEY_ID", "AKIAFROMENV"),
        ("AWS_SECRET_ACCESS_KEY", "Sp3cPw9xSecretKey"),
        ("AWS_REGION", "us-west-2"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
    ]);
    let c = load(f.path(), &e).unwrap();
    let r = &c.backup.remote;
    assert_eq!(r.url, "s3://env-bucket/prod");
    assert_eq!(r.local_keep, Some(0));
    assert!(r.path_style);
    // The file's region wins over AWS_REGION; the rest came from the variables.
    assert_eq!(r.region, "eu-west-3");
    assert_eq!(r.endpoint, "http://127.0.0.1:9000");
    assert_eq!(r.access_key_id, "AKIAFROMENV");
    assert_eq!(
        r.secret_access_key.as_ref().unwrap().expose(),
        "Sp3cPw9xSecretKey"
    );
    assert_no_password(&c.to_redacted_toml());
    assert_no_password(&format!("{c:?}"));
    assert_eq!(c.scrubber().scrub("key Sp3cPw9xSecretKey"), "key ***");
}
