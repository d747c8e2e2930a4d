//! Secrets: one table-driven test walks every kind of secret (URL userinfo of the postgres and
//! redis URLs, `password=` in a key=value DSN, quoted or with a backslash-escaped space, a
//! `?password=` query parameter, Redis AUTH from `redis.password_file`) through every output
//! surface (logs at trace level, /metrics, /health, check-config, every command with and without
//! `--json`, error messages, audit lines, state files, the Redis maintenance key, backup
//! metadata) and asserts the secret appears in none. Values that cannot be read at all are in
//! tests/secrets_malformed.rs. Besides: group/world-readable secret files are warned about, and
//! a wrong password is reported as an authentication failure.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// How the passwords reach steward, in one row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// URL userinfo, postgres and redis URLs in DATABASE_URL / REDIS_URL.
    UrlUserinfoFromEnvironment,
    /// URL userinfo, postgres and redis URLs in the config file.
    UrlUserinfoInFile,
    /// `postgres.url` as a key=value DSN with a quoted `password='…'` (space and quote inside).
    DsnPassword,
    /// `postgres.url` as a key=value DSN with an unquoted password whose space is escaped
    /// (`password=head\ TAIL…`), which libpq reads as one value.
    DsnEscapedPassword,
    /// `postgres.url` with `?password=` as a query parameter.
    QueryPassword,
    /// `postgres.url_file` and Redis AUTH from `redis.password_file`.
    SecretFiles,
    /// Wrong passwords from the environment from the start: every error path shows them.
    WrongUrlsFromEnvironment,
}

const KINDS: &[Kind] = &[
    Kind::UrlUserinfoFromEnvironment,
    Kind::UrlUserinfoInFile,
    Kind::DsnPassword,
    Kind::DsnEscapedPassword,
    Kind::QueryPassword,
    Kind::SecretFiles,
    Kind::WrongUrlsFromEnvironment,
];

/// The output surfaces; each yields (what exactly, text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    Log,
    Metrics,
    Health,
    CheckConfig,
    StatusJson,
    BackupListJson,
    Errors,
    /// `maintenance status` and `cache stats`, with and without `--json`.
    Commands,
    /// Every file under `[state] dir`.
    StateFiles,
    /// The Redis key `steward:maintenance` (the maintenance reason quotes the passwords).
    RedisKey,
    /// The metadata files of the backups taken.
    BackupMetadata,
    /// The audit log at `[audit] path` (another part of issue 6 writes it): every line steward
    /// appended, checked when the file exists.
    Audit,
}

const SURFACES: &[Surface] = &[
    Surface::Metrics,
    Surface::Health,
    Surface::CheckConfig,
    Surface::StatusJson,
    Surface::BackupListJson,
    Surface::Errors,
    Surface::Commands,
    Surface::StateFiles,
    Surface::RedisKey,
    Surface::BackupMetadata,
    Surface::Audit,
    // Last, so it holds whatever the requests above made steward write.
    Surface::Log,
];

/// One row: the servers, the daemon, and every secret value that must not show.
struct Row {
    kind: Kind,
    _pg: Postgres,
    _redis: Redis,
    st: Steward,
    secrets: Vec<String>,
    /// Error messages gathered while the row ran (wrong passwords, failed backups, reloads).
    errors: Vec<(String, String)>,
}

fn dsn(pg: &Postgres, password: &str) -> String {
    let quoted = password.replace('\\', "\\\\").replace('\'', "\\'");
    format!("host=127.0.0.1 port={} user={PG_USER} password='{quoted}' dbname={PG_DB} connect_timeout=5", pg.port)
}

/// A key=value DSN whose password is unquoted, its spaces, quotes and backslashes escaped.
fn dsn_escaped(pg: &Postgres, password: &str) -> String {
    let escaped: String = password
        .chars()
        .flat_map(|c| match c {
            ' ' | '\\' | '\'' => vec!['\\', c],
            _ => vec![c],
        })
        .collect();
    format!(
        "host=127.0.0.1 port={} user={PG_USER} password={escaped} dbname={PG_DB} connect_timeout=5",
        pg.port
    )
}

fn query_url(pg: &Postgres, password: &str) -> String {
    format!(
        "postgres://{PG_USER}@127.0.0.1:{}/{PG_DB}?password={password}",
        pg.port
    )
}

fn write_secret(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The `[postgres]`/`[redis]` URL settings of a kind, for the right or the wrong passwords.
fn set_urls(kind: Kind, s: &mut Settings, pg: &Postgres, redis: &Redis, pg_pw: &str, r_pw: &str) {
    match kind {
        Kind::UrlUserinfoInFile => {
            s.pg_url = Some(pg.url_with_password(pg_pw));
            s.redis_url = Some(redis.url_with_password(r_pw));
        }
        Kind::DsnPassword => {
            s.pg_url = Some(dsn(pg, pg_pw));
            s.redis_url = Some(redis.url_with_password(r_pw));
        }
        Kind::DsnEscapedPassword => {
            s.pg_url = Some(dsn_escaped(pg, pg_pw));
            s.redis_url = Some(redis.url_with_password(r_pw));
        }
        Kind::QueryPassword => {
            s.pg_url = Some(query_url(pg, pg_pw));
            s.redis_url = Some(redis.url_with_password(r_pw));
        }
        Kind::SecretFiles => {
            let dir = s.state_dir.parent().unwrap().to_path_buf();
            let (url_file, pw_file) = (dir.join("pg.url"), dir.join("redis.pw"));
            write_secret(&url_file, &format!("{}\n", pg.url_with_password(pg_pw)));
            write_secret(&pw_file, &format!("{r_pw}\n"));
            s.pg_url = None;
            s.redis_url = Some(format!("redis://127.0.0.1:{}/0", redis.port));
            s.pg_extra = format!("url_file = {:?}\n", url_file.to_string_lossy());
            s.redis_extra = format!("password_file = {:?}\n", pw_file.to_string_lossy());
        }
        Kind::UrlUserinfoFromEnvironment | Kind::WrongUrlsFromEnvironment => {}
    }
}

/// Starts a row: servers, daemon at trace level, the passwords used (services up, a backup
/// taken) and then, where the kind allows, replaced by wrong ones so that errors show.
fn run_row(kind: Kind) -> Row {
    let pg = Postgres::start();
    let redis = Redis::start();
    let (wrong_pg, wrong_redis) = (random_password(), random_password());
    let mut secrets = vec![
        pg.password.clone(),
        redis.password.clone(),
        wrong_pg.clone(),
        wrong_redis.clone(),
    ];
    if kind == Kind::DsnPassword {
        // A password libpq must read quoted: a space and a quote inside.
        let pw = format!("dsn {}'q", random_hex(8));
        pg.psql_as_postgres(&format!(
            "ALTER ROLE {PG_USER} PASSWORD '{}'",
            pw.replace('\'', "''")
        ));
        secrets.push(pw);
    }
    if kind == Kind::DsnEscapedPassword {
        // A password with a space, written unquoted with the space escaped; its tail is a
        // secret of its own (a redaction that stops at the space shows it).
        let tail = format!("TAIL{}", random_hex(6));
        let pw = format!("{} {tail}", random_hex(6));
        pg.psql_as_postgres(&format!("ALTER ROLE {PG_USER} PASSWORD '{pw}'"));
        secrets.push(tail);
        secrets.push(pw);
    }
    let pg_pw = secrets
        .last()
        .filter(|_| matches!(kind, Kind::DsnPassword | Kind::DsnEscapedPassword))
        .unwrap_or(&pg.password)
        .clone();
    let mut b = Steward::builder_urls(None, None).log_level("trace");
    match kind {
        Kind::UrlUserinfoFromEnvironment => {
            b = b
                .env("DATABASE_URL", &pg.url())
                .env("REDIS_URL", &redis.url());
        }
        Kind::WrongUrlsFromEnvironment => {
            // Every library at trace too (as an operator debugging a connection problem would
            // set it), in JSON lines.
            b = b
                .env("DATABASE_URL", &pg.url_with_password(&wrong_pg))
                .env("REDIS_URL", &redis.url_with_password(&wrong_redis))
                .log_level("trace,steward=trace")
                .log_format("json");
        }
        _ => {}
    }
    let b = b.with(|s| set_urls(kind, s, &pg, &redis, &pg_pw, &redis.password));
    let st = b.start();
    let mut errors = Vec::new();
    let right = kind != Kind::WrongUrlsFromEnvironment;
    st.wait_up("postgres", right, INTERVAL * 3 + SLACK);
    st.wait_up("redis", right, INTERVAL * 3 + SLACK);
    st.wait_checks("postgres", 2);
    st.wait_checks("redis", 2);
    let out = st.ctl(&["backup", "create", "--wait"]);
    if right {
        assert!(out.reply().ok, "{kind:?}: backup failed: {}", out.all());
    } else {
        assert!(
            !out.reply().ok,
            "{kind:?}: backup with a wrong password: {}",
            out.all()
        );
    }
    errors.push(("backup create --wait".into(), out.all()));
    // An operator's reason that quotes the passwords: stored and published only masked.
    // (The configured ones: steward cannot know a password it was not given.)
    let reason = if right {
        format!("pw {pg_pw} and {}", redis.password)
    } else {
        format!("pw {wrong_pg} and {wrong_redis}")
    };
    assert_eq!(st.ctl(&["maintenance", "on", "--reason", &reason]).code, 0);
    if right {
        st.wait_until(Duration::from_secs(30), "the Redis maintenance key", |_| {
            redis
                .command(&["GET", "steward:maintenance"])
                .is_ok_and(|v| v.contains("pw "))
        });
    }
    // More log lines: task restarts and a reload.
    assert_eq!(st.ctl(&["task", "restart", "monitor.postgres"]).code, 0);
    assert_eq!(st.ctl(&["task", "restart", "monitor.redis"]).code, 0);
    let out = st.ctl(&["reload"]);
    assert_eq!(out.code, 0, "{kind:?}: {}", out.all());
    st.signal(libc::SIGHUP);
    st.wait_until(Duration::from_secs(10), "the SIGHUP reload", |st| {
        st.metric("steward_config_reloads_total", &[("result", "success")])
            .unwrap_or(0.0)
            >= 2.0
    });
    if kind == Kind::UrlUserinfoInFile {
        let out = st.cli(&["check-config", "--config", st.config_path.to_str().unwrap()]);
        assert!(out.code == 0 && out.stdout.contains("***"), "{out:?}");
    }
    if kind == Kind::WrongUrlsFromEnvironment {
        assert!(
            st.log().contains("password authentication failed"),
            "the refusal should be logged: {}",
            st.log()
        );
        for line in st.log().lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                serde_json::from_str::<serde_json::Value>(line).is_ok(),
                "not a JSON log line: {line:?}"
            );
        }
    }
    if !matches!(
        kind,
        Kind::UrlUserinfoFromEnvironment | Kind::WrongUrlsFromEnvironment
    ) {
        // Now the wrong passwords, of the same kind, through a reload: connect errors show.
        let mut s = st.settings.clone();
        set_urls(kind, &mut s, &pg, &redis, &wrong_pg, &wrong_redis);
        st.write_config(&s.render());
        let out = st.ctl(&["reload"]);
        assert_eq!(
            out.code,
            0,
            "{kind:?}: reload to wrong passwords: {}",
            out.all()
        );
        st.wait_up("postgres", false, INTERVAL * 3 + SLACK);
        st.wait_up("redis", false, INTERVAL * 3 + SLACK);
        let out = st.ctl(&["backup", "create", "--wait"]);
        assert!(!out.reply().ok, "{kind:?}: {}", out.all());
        errors.push(("backup create --wait (wrong password)".into(), out.all()));
        // A broken config whose URL still carries a password: the rejection must not echo it.
        let mut broken = s.clone();
        broken.pg_url = Some(format!(
            "postgres://{PG_USER}:{wrong_pg}@127.0.0.1:notaport/db"
        ));
        broken.pg_extra.clear();
        st.write_config(&broken.render());
        let out = st.ctl(&["reload"]);
        assert_eq!(
            out.code,
            1,
            "{kind:?}: broken config accepted: {}",
            out.all()
        );
        errors.push(("reload (broken config)".into(), out.all()));
        st.write_config(&s.render());
    }
    // Where wrong passwords are in effect now, the checks carry the services' errors
    // (authentication failed).
    let out = st.ctl(&["check"]);
    let h: HealthReply = serde_json::from_value(out.reply().data).unwrap();
    for s in h
        .services
        .iter()
        .filter(|_| kind != Kind::UrlUserinfoFromEnvironment)
    {
        let err = s
            .last
            .as_ref()
            .and_then(|l| l.error.clone())
            .unwrap_or_default();
        assert!(
            !err.is_empty(),
            "{kind:?}: {}: no error to check: {}",
            s.service,
            out.stdout
        );
    }
    errors.push(("check --json".into(), out.all()));
    errors.push(("check".into(), st.ctl_human(&["check"]).all()));
    Row {
        kind,
        _pg: pg,
        _redis: redis,
        st,
        secrets,
        errors,
    }
}

/// What one surface shows of a row.
fn surface(row: &Row, s: Surface) -> Vec<(String, String)> {
    let st = &row.st;
    let ctl = |args: &[&str]| {
        vec![
            (
                format!("steward --json {}", args.join(" ")),
                st.ctl(args).all(),
            ),
            (
                format!("steward {}", args.join(" ")),
                st.ctl_human(args).all(),
            ),
        ]
    };
    match s {
        Surface::Log => vec![("log".into(), st.log())],
        Surface::Metrics => vec![("GET /metrics".into(), st.http_get("/metrics").1)],
        Surface::Health => ["/health", "/-/ready", "/-/healthy", "/nope"]
            .iter()
            .map(|p| (format!("GET {p}"), st.http_get(p).1))
            .collect(),
        Surface::CheckConfig => {
            let cfg = st.config_path.to_string_lossy().into_owned();
            vec![
                (
                    "steward check-config".into(),
                    st.cli(&["check-config", "--config", &cfg]).all(),
                ),
                (
                    "steward check-config (STEWARD_CONFIG)".into(),
                    st.cli_with_env(&["check-config"], &[("STEWARD_CONFIG", &cfg)])
                        .all(),
                ),
            ]
        }
        Surface::StatusJson => [
            &["status"][..],
            &["health"],
            &["tasks"],
            &["info"],
            &["alerts"],
            &["history", "postgres"],
            &["history", "redis"],
        ]
        .iter()
        .flat_map(|a| ctl(a))
        .collect(),
        Surface::BackupListJson => [&["backup", "list"][..], &["backup", "status"]]
            .iter()
            .flat_map(|a| ctl(a))
            .collect(),
        Surface::Errors => {
            let mut out = row.errors.clone();
            for line in [
                "garbage",
                r#"{"cmd":"task","action":"pause","name":"x"}"#,
                r#"{"cmd":"backup_verify","id":"nosuch"}"#,
                r#"{"cmd":"backup_restore","id":"nosuch","target_db":"x"}"#,
            ] {
                out.push((
                    format!("request {line}"),
                    format!("{:?}", st.raw_request(line).unwrap()),
                ));
            }
            out
        }
        Surface::Commands => [&["maintenance", "status"][..], &["cache", "stats"]]
            .iter()
            .flat_map(|a| ctl(a))
            .collect(),
        Surface::StateFiles => files_under(&st.settings.state_dir, |_| true),
        Surface::RedisKey => vec![(
            "redis GET steward:maintenance".into(),
            row._redis
                .command(&["GET", "steward:maintenance"])
                .unwrap_or_else(|e| format!("{e}")),
        )],
        Surface::BackupMetadata => files_under(&st.dir().join("backups"), |p| {
            p.extension().is_some_and(|e| e == "json")
        }),
        Surface::Audit => {
            // Slot for the audit log: read whatever exists at `[audit] path`.
            let path = &st.settings.audit_path;
            match std::fs::read_to_string(path) {
                Ok(text) => vec![(format!("audit {}", path.display()), text)],
                Err(_) => vec![],
            }
        }
    }
}

/// The text of every file under `dir` (recursively) that `keep` selects, lossily decoded.
fn files_under(dir: &Path, keep: impl Fn(&Path) -> bool + Copy) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path, keep));
        } else if keep(&path) {
            let bytes = std::fs::read(&path).unwrap_or_default();
            out.push((
                format!("file {}", path.display()),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    out
}

/// Surfaces a row may leave empty: the audit log (when not configured), and where Redis and
/// PostgreSQL refused steward from the start, the maintenance key and backup metadata.
fn may_be_empty(kind: Kind, s: Surface) -> bool {
    s == Surface::Audit
        || (kind == Kind::WrongUrlsFromEnvironment
            && matches!(s, Surface::RedisKey | Surface::BackupMetadata))
}

/// Every place a secret of the row shows, as "kind × surface (what): line".
fn leaks(row: &Row) -> (Vec<String>, Vec<String>) {
    let mut found = Vec::new();
    let mut empty = Vec::new();
    let mut cells = Vec::new();
    for &s in SURFACES {
        let texts = surface(row, s);
        let bytes: usize = texts.iter().map(|(_, t)| t.len()).sum();
        cells.push(format!("{s:?} {}/{bytes}B", texts.len()));
        if texts.iter().all(|(_, t)| t.trim().is_empty()) && !may_be_empty(row.kind, s) {
            empty.push(format!("{:?} × {s:?}: nothing to check", row.kind));
        }
        for (what, text) in &texts {
            for secret in &row.secrets {
                if let Some(pos) = text.find(secret.as_str()) {
                    let from = text[..pos].rfind('\n').map_or(0, |i| i + 1);
                    let to = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
                    found.push(format!(
                        "{:?} × {s:?} ({what}): {secret:?} in {:?}",
                        row.kind,
                        &text[from..to]
                    ));
                }
            }
        }
    }
    // What was checked, for the test output: outputs/bytes per surface.
    eprintln!("{:?}: {}", row.kind, cells.join(", "));
    (found, empty)
}

/// The table: every kind of secret × every output surface; each cell asserts that none of
/// the row's passwords (right or wrong) appears.
#[test]
fn no_secret_in_any_surface() {
    let rows: Vec<Row> = std::thread::scope(|scope| {
        let handles: Vec<_> = KINDS
            .iter()
            .map(|&k| scope.spawn(move || run_row(k)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut found = Vec::new();
    let mut empty = Vec::new();
    for row in &rows {
        let (f, e) = leaks(row);
        found.extend(f);
        empty.extend(e);
        // The passwords were really used: a backup exists, or the services were refused.
        if row.kind != Kind::WrongUrlsFromEnvironment {
            let list = row.st.ctl(&["backup", "list"]);
            assert!(
                list.reply().ok && list.stdout.contains(PG_DB),
                "{:?}: no backup listed: {}",
                row.kind,
                list.all()
            );
            assert!(row.st.log().contains("postgres is up"), "{:?}", row.kind);
        }
    }
    assert!(
        empty.is_empty(),
        "surfaces that showed nothing:\n{}",
        empty.join("\n")
    );
    assert!(found.is_empty(), "secrets shown:\n{}", found.join("\n"));
}

/// A secret file that group or others can read is warned about at start and on every reload,
/// naming the file and its mode and saying `chmod 600`, never showing the content.
#[test]
fn readable_secret_files_are_warned_about() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let dir = short_tempdir("stw-secf-");
    let url_file = dir.path().join("pg.url");
    let pw_file = dir.path().join("redis.pw");
    std::fs::write(&url_file, format!("{}\n", pg.url())).unwrap();
    std::fs::write(&pw_file, format!("{}\n", redis.password)).unwrap();
    std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let st = Steward::builder_urls(None, Some(format!("redis://127.0.0.1:{}/0", redis.port)))
        .with(|s| {
            s.pg_extra = format!("url_file = {:?}\n", url_file.to_string_lossy());
            s.redis_extra = format!("password_file = {:?}\n", pw_file.to_string_lossy());
        })
        .start();
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    st.wait_up("redis", true, INTERVAL * 2 + SLACK);
    let name = url_file.to_string_lossy().into_owned();
    let warnings = |st: &Steward| -> Vec<String> {
        st.log_lines_with("chmod 600")
            .into_iter()
            .filter(|l| l.contains(&name))
            .collect()
    };
    let at_start = warnings(&st);
    assert_eq!(at_start.len(), 1, "one warning at start: {}", st.log());
    assert!(
        at_start[0].contains("0644") && at_start[0].contains("postgres.url_file"),
        "{}",
        at_start[0]
    );
    // The private file is not warned about.
    let pw_name = pw_file.to_string_lossy().into_owned();
    assert!(
        !st.log().lines().any(|l| l.contains(&pw_name)),
        "{}",
        st.log()
    );
    // On reload again; a file made private is not warned about any more, and a newly
    // exposed one is.
    assert_eq!(st.ctl(&["reload"]).code, 0);
    st.wait_until(Duration::from_secs(10), "the warning on reload", |st| {
        warnings(st).len() == 2
    });
    std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(st.ctl(&["reload"]).code, 0);
    st.wait_until(
        Duration::from_secs(10),
        "the redis.password_file warning",
        |st| {
            st.log_lines_with("chmod 600")
                .iter()
                .any(|l| l.contains(&pw_name) && l.contains("0640"))
        },
    );
    assert_eq!(warnings(&st).len(), 2, "{}", st.log());
    // check-config warns too, on stderr.
    let out = st.cli(&["check-config", "--config", st.config_path.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("chmod 600") && out.stderr.contains(&pw_name),
        "{out:?}"
    );
    // In the configured log format: JSON lines when log.format is json.
    let cfg = st.config_path.to_string_lossy().into_owned();
    let json = st.cli_with_env(
        &["check-config", "--config", &cfg],
        &[("STEWARD_LOG__FORMAT", "json")],
    );
    assert_eq!(json.code, 0, "{json:?}");
    let line = json
        .stderr
        .lines()
        .find(|l| l.contains("chmod 600"))
        .unwrap_or_else(|| panic!("no warning: {json:?}"));
    let v: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(v["level"], "WARN", "{line}");
    assert_eq!(v["key"], "redis.password_file", "{line}");
    for secret in [&pg.password, &redis.password] {
        assert!(!json.all().contains(secret.as_str()), "{json:?}");
        assert!(!st.log().contains(secret.as_str()), "{}", st.log());
        assert!(!out.all().contains(secret.as_str()), "{out:?}");
    }
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
    // On a loaded machine an attempt may fail only after the check that started it timed
    // out; the next checks then say why. Bounded, not timed.
    let mut last = Vec::new();
    let said_auth = poll(Duration::from_secs(60), || {
        let out = st.ctl(&["check"]);
        let h: HealthReply = serde_json::from_value(out.reply().data).unwrap();
        last = h
            .services
            .iter()
            .map(|s| {
                let err = s.last.as_ref().and_then(|l| l.error.clone());
                (s.service, err.unwrap_or_default().to_lowercase())
            })
            .collect();
        last.iter()
            .all(|(_, err)| err.contains("password") || err.contains("auth"))
    });
    assert!(
        said_auth,
        "the errors should say authentication failed: {last:?}"
    );
}
