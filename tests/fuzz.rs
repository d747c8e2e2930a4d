//! Fuzzing with proptest (stable Rust, no `fuzz/` crate): the control protocol parser, the
//! bounded line reader, the config loader and the redaction functions, on arbitrary and on
//! mutated valid input.
//!
//! In CI each property runs a small number of cases (`FUZZ_CI_CASES`, fast). `benches/fuzz.sh`
//! runs the same properties for a bounded wall-clock time with fresh seeds and a large
//! `PROPTEST_CASES`. A failure is shrunk and persisted next to this file
//! (`tests/fuzz.proptest-regressions`, replayed first on every later run); a crash worth
//! keeping forever also becomes an explicit `#[test]` at the end of this file.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use std::collections::HashMap;
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};
use steward::control::lines::{BoundedLines, Line};
use steward::control::protocol::{parse_request, Request, COMMANDS};
use steward::secret::{redact_conninfo, scrub_urls, Scrubber, SecretUrl, MASK};

/// Cases per property in CI; `PROPTEST_CASES` (set by benches/fuzz.sh) overrides it.
const FUZZ_CI_CASES: u32 = 48;

fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = FUZZ_CI_CASES;
    }
    c.failure_persistence = Some(Box::new(FileFailurePersistence::WithSource(
        "proptest-regressions",
    )));
    c
}

// --------------------------------------------------------------------------------------------
// Control protocol parser
// --------------------------------------------------------------------------------------------

/// One valid line per command shape (with and without optional fields).
const VALID_REQUESTS: &[&str] = &[
    r#"{"cmd":"status"}"#,
    r#"{"cmd":"health"}"#,
    r#"{"cmd":"health","service":"redis"}"#,
    r#"{"cmd":"check","service":"postgres"}"#,
    r#"{"cmd":"tasks"}"#,
    r#"{"cmd":"task","action":"pause","name":"monitor.redis"}"#,
    r#"{"cmd":"task","action":"restart","name":"monitor.postgres"}"#,
    r#"{"cmd":"reload"}"#,
    r#"{"cmd":"info"}"#,
    r#"{"cmd":"alerts"}"#,
    r#"{"cmd":"history","service":"postgres","since_seconds":3600.5}"#,
    r#"{"cmd":"backup_create","database":"app","label":"before-migration","wait":true}"#,
    r#"{"cmd":"backup_list","database":"app"}"#,
    r#"{"cmd":"backup_status"}"#,
    r#"{"cmd":"backup_verify","id":"app-20240101T000000Z","restore_test":true}"#,
    r#"{"cmd":"backup_restore","id":"app-20240101T000000Z","target_db":"copy","force":false}"#,
    r#"{"cmd":"backup_prune","dry_run":true}"#,
    r#"{"cmd":"backup_jobs"}"#,
    r#"{"cmd":"maintenance_on","reason":"migration","for_seconds":60}"#,
    r#"{"cmd":"maintenance_off"}"#,
    r#"{"cmd":"maintenance_status"}"#,
    r#"{"cmd":"cache_clear","pattern":"cache:sessions:*","dry_run":true,"force":false}"#,
    r#"{"cmd":"cache_clear","namespace":"sessions"}"#,
    r#"{"cmd":"cache_clear_jobs"}"#,
    r#"{"cmd":"cache_stats"}"#,
    r#"{"cmd":"cache_warm_up","namespace":"analytics"}"#,
];

/// Field names the protocol knows, plus a few it does not.
const FIELDS: &[&str] = &[
    "cmd",
    "service",
    "action",
    "name",
    "since_seconds",
    "database",
    "label",
    "wait",
    "id",
    "restore_test",
    "target_db",
    "force",
    "dry_run",
    "reason",
    "for_seconds",
    "pattern",
    "namespace",
    "extra",
    "",
];

/// The result must be a request that survives a round trip, or an error that says what is wrong.
fn check_parse(line: &str) -> Result<(), TestCaseError> {
    match parse_request(line) {
        Ok(req) => {
            let again = serde_json::to_string(&req).expect("a parsed request serializes");
            let back: Request = parse_request(&again)
                .map_err(|e| TestCaseError::fail(format!("round trip of {again}: {e}")))?;
            prop_assert_eq!(back, req);
        }
        Err(msg) => {
            prop_assert!(
                msg.starts_with("malformed request")
                    || msg.starts_with("unknown command")
                    || msg.starts_with("bad arguments for"),
                "unexpected error shape for {:?}: {:?}",
                line,
                msg
            );
            prop_assert!(msg.len() > 20, "error too terse: {:?}", msg);
        }
    }
    Ok(())
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<u64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        "\\PC{0,12}".prop_map(serde_json::Value::String),
        prop::sample::select(COMMANDS).prop_map(|c| serde_json::json!(c)),
        prop::sample::select(&["postgres", "redis", "pause", "resume", "restart"][..])
            .prop_map(|c| serde_json::json!(c)),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(prop::sample::select(FIELDS), inner, 0..4).prop_map(|m| {
                serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// A byte-level edit of a line: delete, insert, replace or duplicate a span.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Replace(usize, char),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1..8usize).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), "[\\PC\"{}\\[\\]:,\\\\]{1,6}").prop_map(|(a, s)| Edit::Insert(a, s)),
        (any::<usize>(), any::<char>()).prop_map(|(a, c)| Edit::Replace(a, c)),
        (any::<usize>(), 1..12usize).prop_map(|(a, n)| Edit::Duplicate(a, n)),
    ]
}

fn apply(line: &str, e: &Edit) -> String {
    let chars: Vec<char> = line.chars().collect();
    let at = |i: usize| {
        if chars.is_empty() {
            0
        } else {
            i % (chars.len() + 1)
        }
    };
    let mut out = chars.clone();
    match e {
        Edit::Delete(a, n) => {
            let a = at(*a);
            let b = (a + n).min(chars.len());
            out.drain(a..b);
        }
        Edit::Insert(a, s) => {
            let a = at(*a);
            out.splice(a..a, s.chars());
        }
        Edit::Replace(a, c) => {
            if !chars.is_empty() {
                out[a % chars.len()] = *c;
            }
        }
        Edit::Duplicate(a, n) => {
            let a = at(*a);
            let b = (a + n).min(chars.len());
            let span: Vec<char> = chars[a..b].to_vec();
            out.splice(b..b, span);
        }
    }
    out.into_iter().collect()
}

proptest! {
    #![proptest_config(config())]

    /// Any string: no panic; a request that round-trips, or an error message.
    #[test]
    fn protocol_arbitrary_strings(line in "\\PC{0,200}") {
        check_parse(&line)?;
    }

    /// Any JSON value (objects with the protocol's own field names, mostly).
    #[test]
    fn protocol_arbitrary_json(v in json_value()) {
        check_parse(&v.to_string())?;
    }

    /// Valid requests with byte-level edits.
    #[test]
    fn protocol_mutated_bytes(
        base in prop::sample::select(VALID_REQUESTS),
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        let mut line = base.to_string();
        for e in &edits {
            line = apply(&line, e);
        }
        check_parse(&line)?;
    }

    /// Valid requests with one field set to any JSON value, or removed.
    #[test]
    fn protocol_mutated_fields(
        base in prop::sample::select(VALID_REQUESTS),
        field in prop::sample::select(FIELDS),
        value in prop::option::of(json_value()),
    ) {
        let mut v: serde_json::Value = serde_json::from_str(base).unwrap();
        let obj = v.as_object_mut().unwrap();
        match value {
            Some(x) => { obj.insert(field.to_string(), x); }
            None => { obj.remove(field); }
        }
        check_parse(&v.to_string())?;
    }
}

// --------------------------------------------------------------------------------------------
// Bounded line reader
// --------------------------------------------------------------------------------------------

/// A reader that hands out the input in the given chunk sizes, one chunk per read, as a
/// socket would.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl tokio::io::AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = &mut *self;
        let left = me.data.len() - me.pos;
        let want = me.sizes[me.turn % me.sizes.len()].max(1);
        me.turn += 1;
        let n = left.min(want).min(buf.remaining());
        buf.put_slice(&me.data[me.pos..me.pos + n]);
        me.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// What `BoundedLines` must return: each newline-terminated line (and a last unterminated
/// one, if not empty) as text when at most `max` bytes, else `TooLong`; then `Eof`.
fn expected_lines(data: &[u8], max: usize) -> Vec<Line> {
    let mut parts: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let last = parts.pop().unwrap_or_default();
    let mut out = Vec::new();
    let mut push = |p: &[u8]| {
        out.push(if p.len() > max {
            Line::TooLong
        } else {
            Line::Text(String::from_utf8_lossy(p).into_owned())
        })
    };
    for p in parts {
        push(p);
    }
    if !last.is_empty() {
        push(last);
    }
    out.push(Line::Eof);
    out
}

fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
    // Mostly short lines and newlines, sometimes long runs and arbitrary bytes.
    prop::collection::vec(
        prop_oneof![
            4 => prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'x'), Just(b'{')], 1..8),
            1 => prop::collection::vec(any::<u8>(), 0..64),
            1 => (1..300usize).prop_map(|n| vec![b'y'; n]),
        ],
        0..24,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    /// Whatever the bytes and however they arrive, the reader returns exactly the model's
    /// lines, never a line longer than the bound, and then `Eof`.
    #[test]
    fn bounded_lines_match_the_model(
        data in line_bytes(),
        max in 0..80usize,
        sizes in prop::collection::vec(1..50usize, 1..6),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let want = expected_lines(&data, max);
        let got = rt.block_on(async {
            let reader = Chunked { data: data.clone(), pos: 0, sizes, turn: 0 };
            let mut lines = BoundedLines::new(reader, max);
            let mut got = Vec::new();
            loop {
                let l = lines.next().await.unwrap();
                let eof = l == Line::Eof;
                got.push(l);
                if eof || got.len() > want.len() {
                    break;
                }
            }
            got
        });
        prop_assert_eq!(got, want);
    }
}

// --------------------------------------------------------------------------------------------
// Config loader (what `steward run`, reload and `check-config` use)
// --------------------------------------------------------------------------------------------

/// Every known key as a dotted path, from the defaults (so keys added later are fuzzed too),
/// plus the keys of a `[[cache.namespace]]` entry.
fn known_keys() -> Vec<String> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        if let serde_json::Value::Object(m) = v {
            for (k, sub) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if sub.is_object() {
                    walk(&path, sub, out);
                }
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    let defaults = serde_json::to_value(steward::config::Config::default()).unwrap();
    walk("", &defaults, &mut out);
    out.sort();
    out
}

const NAMESPACE_KEYS: &[&str] = &[
    "name",
    "prefix",
    "ttl",
    "codec",
    "compress",
    "enforce_ttl",
    "warmup",
    "warmup.query",
];

/// Environment variables the loader reads.
const ENV_VARS: &[&str] = &[
    "DATABASE_URL",
    "REDIS_URL",
    "MONITORING_INTERVAL",
    "ALERT_THRESHOLD_RESPONSE_TIME",
    "BACKUP_RETENTION_DAYS",
    "BACKUP_SCHEDULE_DAILY_HOUR",
    "BACKUP_SCHEDULE_WEEKLY_DAY",
    "REDIS_MAX_CONNECTIONS",
    "REDIS_SOCKET_TIMEOUT",
    "CACHE_COMPRESSION_THRESHOLD",
    "STEWARD_POSTGRES__INTERVAL",
    "STEWARD_REDIS__POOL_MAX",
    "STEWARD_BACKUP__DATABASES",
    "STEWARD_LOG__LEVEL",
    "STEWARD_CONTROL__MODE",
    "STEWARD_NOSUCH__KEY",
];

/// A marker password: long enough and distinctive, so any echo of it is a leak.
fn marker() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{10}".prop_map(|s| format!("Pw{s}"))
}

/// Values of every shape, with plausible ones (durations, URLs, modes, cron) mixed in.
fn toml_value(pw: String) -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        "\\PC{0,24}".prop_map(toml::Value::String),
        any::<i64>().prop_map(toml::Value::Integer),
        (-1i64..100_000).prop_map(toml::Value::Integer),
        any::<f64>().prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
        "[0-9]{1,7}(ns|us|ms|s|m|h|d|w|y|x|)".prop_map(toml::Value::String),
        "0[0-7]{3}|[0-9]{1,5}|0o[0-7]{3}".prop_map(toml::Value::String),
        "(\\*|[0-9]{1,2})( (\\*|[0-9]{1,2})){0,6}".prop_map(toml::Value::String),
        "(postgres|postgresql|redis|rediss|mysql|http)://([a-z]{0,4}:PW@)?[a-z0-9.]{0,8}(:[0-9]{0,6})?/?[a-z0-9]{0,4}(\\?password=PW)?"
            .prop_map(move |s| toml::Value::String(s.replace("PW", &pw))),
        prop::sample::select(&["debug", "json", "pretty", "production", "gzip", "zstd", "plain", "custom", "UTC", "info,steward=trace", "/nonexistent/file", "/tmp", ""][..])
            .prop_map(|s| toml::Value::String(s.to_string())),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(toml::Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

/// Inserts `value` at the dotted `path`, unless a scalar is in the way.
fn insert(table: &mut toml::Table, path: &str, value: toml::Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap();
    let mut t = table;
    for p in parts {
        let entry = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(sub) => t = sub,
            _ => return,
        }
    }
    t.insert(last.to_string(), value);
}

fn write_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f
}

/// The loader's contract: no panic; an error names the file, and each problem names a key
/// (a dotted key, a section, or an environment variable) and never echoes a password.
fn check_load(
    text: &[u8],
    env: &HashMap<String, String>,
    password: Option<&str>,
) -> Result<(), TestCaseError> {
    let f = write_file(text);
    let path = f.path().display().to_string();
    match steward::config::load(f.path(), env) {
        Ok(cfg) => {
            // Found by this target: a URL with a password in a key that is not a secret
            // (`log.level`, `alertmanager.url`'s basic auth) was printed as given.
            let shown = cfg.to_redacted_toml();
            if let Some(pw) = password {
                prop_assert!(
                    !shown.contains(pw),
                    "check-config output shows {pw}:\n{shown}"
                );
            }
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(msg.contains(&path), "error does not name the file: {msg}");
            if let Some(pw) = password {
                prop_assert!(!msg.contains(pw), "error shows the password {pw}: {msg}");
            }
            if let steward::config::LoadError::Invalid { problems, .. } = &e {
                prop_assert!(!problems.is_empty(), "invalid without problems: {msg}");
                for p in problems {
                    let head = p.key.split(['.', '[', ' ']).next().unwrap_or_default();
                    prop_assert!(
                        !head.is_empty() && p.key != "config",
                        "problem without a key: {p} (in {msg})"
                    );
                    prop_assert!(!p.reason.trim().is_empty(), "problem without a reason: {p}");
                }
            }
        }
    }
    Ok(())
}

fn keyed_config() -> impl Strategy<Value = (toml::Table, Vec<(String, String)>, String)> {
    let keys = known_keys();
    marker()
        .prop_flat_map(move |pw| {
            let entries = prop::collection::vec(
                (prop::sample::select(keys.clone()), toml_value(pw.clone())),
                0..10,
            );
            let namespaces = prop::collection::vec(
                prop::collection::vec(
                    (prop::sample::select(NAMESPACE_KEYS), toml_value(pw.clone())),
                    0..5,
                ),
                0..3,
            );
            let env = prop::collection::vec(
                (
                    prop::sample::select(ENV_VARS),
                    prop_oneof![
                        "\\PC{0,16}",
                        "[0-9.,-]{1,6}",
                        Just(format!("postgres://u:{pw}@127.0.0.1:1/db")),
                        Just(format!("redis://:{pw}@127.0.0.1:1/0")),
                    ],
                ),
                0..4,
            );
            (entries, namespaces, env, Just(pw))
        })
        .prop_map(|(entries, namespaces, env, pw)| {
            let mut t = toml::Table::new();
            for (k, v) in entries {
                insert(&mut t, &k, v);
            }
            if !namespaces.is_empty() {
                let list = namespaces
                    .into_iter()
                    .map(|kv| {
                        let mut n = toml::Table::new();
                        for (k, v) in kv {
                            insert(&mut n, k, v);
                        }
                        toml::Value::Table(n)
                    })
                    .collect();
                insert(&mut t, "cache.namespace", toml::Value::Array(list));
            }
            let env = env.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            (t, env, pw)
        })
}

proptest! {
    #![proptest_config(config())]

    /// TOML built from the known keys with arbitrary values (and some environment overrides).
    #[test]
    fn config_known_keys_arbitrary_values((table, env, pw) in keyed_config()) {
        let text = toml::to_string(&table).unwrap_or_default();
        let env: HashMap<String, String> = env.into_iter().collect();
        check_load(text.as_bytes(), &env, Some(&pw))?;
    }

    /// Arbitrary bytes, and arbitrary text, as the config file.
    #[test]
    fn config_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400), text in "\\PC{0,200}") {
        check_load(&bytes, &HashMap::new(), None)?;
        check_load(text.as_bytes(), &HashMap::new(), None)?;
    }

    /// The shipped example config with byte-level edits.
    #[test]
    fn config_mutated_example(edits in prop::collection::vec(edit(), 1..6)) {
        let mut text = include_str!("../config/steward.toml").to_string();
        for e in &edits {
            text = apply(&text, e);
        }
        check_load(text.as_bytes(), &HashMap::new(), None)?;
    }
}

// --------------------------------------------------------------------------------------------
// Redaction (src/secret.rs)
// --------------------------------------------------------------------------------------------
//
// The property, precisely: let S(P) be a connection string carrying password P in one of the
// forms below (P percent-encoded where the form needs it, or raw when P has no character the
// form reserves), and R the redaction (`redact_conninfo`, i.e. `SecretUrl` Display/Debug/
// Serialize). Then
//   (1) R(S(P)) = R(S(Q)) for any two passwords P, Q: the output does not depend on the
//       password at all;
//   (2) hence, for |P| >= 4, R(S(P)) contains neither P nor its encoded form whenever P is not
//       a substring of R(S(Q)) for another Q ("not a substring of the rest");
//   (3) in free text T = A + " " + S(P) + " " + B (A, B not containing P),
//       `Scrubber::new(SecretUrl::new(S(P)).secrets()).scrub(T)` contains neither P nor its
//       encoded form, and neither does `scrub_urls(T)` when S(P) has no whitespace.

/// Forms a password can take in a connection string.
#[derive(Debug, Clone, Copy)]
enum Form {
    PostgresUserinfo,
    RedisUserinfo,
    RedisUserAndPassword,
    QueryPassword,
    Dsn,
}

const FORMS: &[Form] = &[
    Form::PostgresUserinfo,
    Form::RedisUserinfo,
    Form::RedisUserAndPassword,
    Form::QueryPassword,
    Form::Dsn,
];

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// libpq quoting: single quotes, backslash before `'` and `\`.
fn dsn_quote(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The connection string, and the password as it appears inside it.
fn embed(form: Form, pw: &str, raw: bool, host: &str) -> (String, String) {
    let enc = if raw { pw.to_string() } else { pct(pw) };
    match form {
        Form::PostgresUserinfo => (
            format!("postgresql://app:{enc}@{host}:5432/appdb?sslmode=prefer"),
            enc,
        ),
        Form::RedisUserinfo => (format!("redis://:{enc}@{host}:6379/0"), enc),
        Form::RedisUserAndPassword => (format!("rediss://default:{enc}@{host}:6380/2"), enc),
        Form::QueryPassword => (
            format!("postgres://{host}:5432/appdb?user=app&password={enc}&connect_timeout=5"),
            enc,
        ),
        Form::Dsn => {
            let v = if raw { pw.to_string() } else { dsn_quote(pw) };
            (
                format!("host={host} port=5432 user=app password={v} dbname=appdb"),
                v,
            )
        }
    }
}

/// Passwords with every printable character (and some non-ASCII), at least 4 long.
fn password() -> impl Strategy<Value = String> {
    "[ -~\u{e9}\u{df}\u{4e2d}\u{1f511}]{4,24}"
}

/// Passwords a form may carry raw: unreserved characters only, no whitespace or quotes.
fn raw_password() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._~-]{4,24}"
}

fn redaction_case() -> impl Strategy<Value = (Form, String, String, bool, String)> {
    (
        prop::sample::select(FORMS),
        prop_oneof![
            password().prop_map(|p| (p, false)),
            raw_password().prop_map(|p| (p, true)),
        ],
        password(),
        prop::sample::select(&["db.internal", "127.0.0.1", "localhost", "h"][..]),
    )
        .prop_map(|(f, (p, raw), q, host)| (f, p, q, raw, host.to_string()))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn redaction_does_not_depend_on_the_password(
        (form, pw, other, raw, host) in redaction_case(),
    ) {
        let other = if raw { pct(&other).replace('%', "x") } else { other };
        let (s, enc) = embed(form, &pw, raw, &host);
        let (s2, _) = embed(form, &other, raw, &host);
        let r = redact_conninfo(&s);
        let r2 = redact_conninfo(&s2);
        // (1)
        prop_assert_eq!(&r, &r2, "redaction depends on the password: {} vs {}", s, s2);
        prop_assert!(r.contains(MASK), "nothing masked in {}: {}", s, r);
        // (2)
        if !r2.contains(&pw) {
            prop_assert!(!r.contains(&pw), "{} shows {:?}", r, pw);
        }
        if !r2.contains(&enc) {
            prop_assert!(!r.contains(&enc), "{} shows {:?}", r, enc);
        }
        // The same through SecretUrl's Display, Debug and Serialize.
        let u = SecretUrl::new(s.clone());
        prop_assert_eq!(u.to_string(), r.clone());
        prop_assert_eq!(format!("{u:?}"), format!("{r:?}"));
        prop_assert_eq!(serde_json::to_string(&u).unwrap(), serde_json::to_string(&r).unwrap());
        // The secrets found include the password itself.
        prop_assert!(u.secrets().contains(&pw), "secrets() of {} misses {:?}: {:?}", s, pw, u.secrets());
    }

    #[test]
    fn scrubbed_text_never_shows_the_password(
        (form, pw, _other, raw, host) in redaction_case(),
        before in "[a-zA-Z0-9 :,.()=\"'`]{0,40}",
        after in "[a-zA-Z0-9 :,.()=\"'`]{0,40}",
    ) {
        let (s, enc) = embed(form, &pw, raw, &host);
        prop_assume!(!before.contains(&pw) && !after.contains(&pw));
        prop_assume!(!before.contains(&enc) && !after.contains(&enc));
        let text = format!("{before} {s} {after}");
        // What the rest of the text shows once redacted, without the password in it.
        let rest = format!("{before} {} {after}", redact_conninfo(&s));
        prop_assume!(!rest.contains(&pw) && !rest.contains(&enc));
        let scrubber = Scrubber::new(SecretUrl::new(s.clone()).secrets());
        let out = scrubber.scrub(&text);
        prop_assert!(!out.contains(&pw), "Scrubber shows {:?} in {:?}", pw, out);
        prop_assert!(!out.contains(&enc), "Scrubber shows {:?} in {:?}", enc, out);
        // The bare password (as a driver might echo it) is masked too.
        let echoed = format!("{before} auth failed for {pw} {after}");
        let out = scrubber.scrub(&echoed);
        prop_assert!(!out.contains(&pw), "Scrubber shows the bare {:?} in {:?}", pw, out);
        if !s.contains(char::is_whitespace) {
            let out = scrub_urls(&text);
            prop_assert!(!out.contains(&pw), "scrub_urls shows {:?} in {:?}", pw, out);
            prop_assert!(!out.contains(&enc), "scrub_urls shows {:?} in {:?}", enc, out);
        }
    }

    /// Malformed URLs (a raw password with reserved characters): whatever the parser makes
    /// of them, the password is not shown.
    #[test]
    fn malformed_urls_never_show_the_password(
        scheme in prop::sample::select(&["postgres", "postgresql", "redis", "rediss"][..]),
        user in "[a-z]{0,5}",
        pw in "[A-Za-z0-9]{2,8}[#/?@:%\\[\\] ][A-Za-z0-9#/?@:]{2,12}",
        host in prop::sample::select(&["db.internal", "127.0.0.1", "[::1]", "h"][..]),
    ) {
        let s = format!("{scheme}://{user}:{pw}@{host}:5432/appdb");
        let r = redact_conninfo(&s);
        let rest = format!("{scheme}://{user}:@{host}:5432/appdb {MASK}");
        prop_assume!(!rest.contains(&pw));
        prop_assert!(!r.contains(&pw), "{} redacted to {} shows {:?}", s, r, pw);
        // Free text is split at spaces, so a raw space inside a URL cannot be told from the
        // end of the URL; the Scrubber's literal secrets cover that case.
        if !pw.contains(' ') {
            let t = scrub_urls(&format!("cannot connect to {s}: refused"));
            prop_assert!(!t.contains(&pw), "scrub_urls shows {:?} in {:?}", pw, t);
        }
    }
}

// --------------------------------------------------------------------------------------------
// Regressions: inputs the fuzzing found, kept as plain tests.
// --------------------------------------------------------------------------------------------

fn load_text(text: &str) -> Result<steward::config::Config, steward::config::LoadError> {
    let f = write_file(text.as_bytes());
    steward::config::load(f.path(), &HashMap::new())
}

fn problem_keys(text: &str) -> Vec<String> {
    match load_text(text) {
        Err(steward::config::LoadError::Invalid { problems, .. }) => {
            problems.into_iter().map(|p| p.key).collect()
        }
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

/// `secrets()` of a DSN returned the quoted value with its backslashes, so the password as
/// libpq reads it (and a driver may echo it) was not masked by the Scrubber.
#[test]
fn regression_dsn_quoted_password_is_a_known_secret() {
    let u = SecretUrl::new(r"host=db.internal password='\' aß' dbname=appdb");
    assert!(
        u.secrets().contains(&"' aß".to_string()),
        "{:?}",
        u.secrets()
    );
    let s = Scrubber::new(u.secrets());
    assert!(!s.scrub("auth failed for ' aß").contains("' aß"));
}

/// A type error inside a nested section was reported under the key "config".
#[test]
fn regression_nested_type_errors_name_their_key() {
    let keys = problem_keys("[alerts.redis_memory_high]\ncritical = 1.0\n");
    assert_eq!(keys, vec!["alerts.redis_memory_high.critical"]);
    // A backtick inside the value no longer confuses the key extraction.
    let keys = problem_keys("[alerts.task_restarting]\nenabled = \"a`b\"\n");
    assert_eq!(keys, vec!["alerts.task_restarting.enabled"]);
}

/// A missing field of an array element was reported under "config", and config's own
/// spelling "cache.namespace[0]name" lacked its dot.
#[test]
fn regression_missing_namespace_field_names_its_key() {
    let keys = problem_keys("[[cache.namespace]]\nprefix = \"x:\"\nttl = \"1h\"\n");
    assert_eq!(keys, vec!["cache.namespace[0].name"]);
}

/// A raw password with `#` made the URL parser see a host and a fragment instead, and the
/// redaction printed the password.
#[test]
fn regression_raw_hash_in_password_is_not_shown() {
    for s in [
        "postgres://app:1234#secretpart@db/app",
        "redis://:ab/cd#ef@127.0.0.1:6379/0",
    ] {
        let r = redact_conninfo(s);
        assert!(
            !r.contains("secretpart") && !r.contains("cd#ef"),
            "{s} -> {r}"
        );
    }
    // A well-formed URL keeps everything but the password.
    assert_eq!(
        redact_conninfo("postgres://app:pw@db:5432/app"),
        "postgres://app:***@db:5432/app"
    );
}
