//! `steward cache warm-up`: a namespace filled from a real PostgreSQL table into a real Redis —
//! keys, TTLs, compression (checked with the `gunzip` CLI too), rejected rows, the reply's
//! counts — and its failures: unknown names, bad queries, PostgreSQL or Redis down, with the
//! daemon carrying on. Also the scheduled warm-up (`warmup.schedule`), and what keeps a
//! warm-up harmless: it never writes to PostgreSQL (one statement, read-only transaction,
//! `cache.warmup_timeout`), never holds a row over `cache.max_value_bytes`, reports exactly the
//! keys Redis took, and never runs twice at once for one namespace.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;
use steward::cache::warmup::WarmupReply;

const THRESHOLD: usize = 512;
const TTL_MS: i64 = 30 * 60 * 1000;
const PREFIX: &str = "cache:analytics:";

/// `[cache]` with the analytics namespace (json, compressed, 30m) warmed from `items`, plus
/// the extra namespaces given.
fn cache_toml(extra: &str) -> String {
    cache_toml_with("", extra)
}

/// [`cache_toml`] with extra `[cache]` keys.
fn cache_toml_with(cache_keys: &str, extra: &str) -> String {
    format!(
        r#"
[cache]
compression_threshold = {THRESHOLD}
pipeline_batch = 100
{cache_keys}

[[cache.namespace]]
name = "analytics"
prefix = "{PREFIX}"
ttl = "30m"
codec = "json"
compress = true

[cache.namespace.warmup]
query = "SELECT id, doc FROM items ORDER BY id"

[[cache.namespace]]
name = "sessions"
prefix = "cache:sessions:"
ttl = "1h"
{extra}"#
    )
}

/// 10,000 JSON documents (every third one longer than the threshold) and one broken row.
fn create_items(pg: &Postgres) {
    pg.psql(
        "CREATE TABLE items (id int PRIMARY KEY, doc text NOT NULL);
         INSERT INTO items
           SELECT i, json_build_object('id', i, 'name', 'item ' || i,
                    'pad', repeat(md5(i::text), CASE WHEN i % 3 = 0 THEN 40 ELSE 1 END))::text
           FROM generate_series(1, 10000) i;
         INSERT INTO items VALUES (10001, '{\"broken\": ');",
        PG_USER,
        PG_DB,
    );
}

/// The documents as PostgreSQL has them, by id.
fn expected_docs(pg: &Postgres) -> HashMap<String, String> {
    pg.psql(
        "SELECT id || '|' || doc FROM items WHERE id <= 10000",
        PG_USER,
        PG_DB,
    )
    .lines()
    .filter_map(|l| l.split_once('|'))
    .map(|(id, doc)| (id.to_string(), doc.to_string()))
    .collect()
}

fn gunzip_cli(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gunzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run gunzip");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "gunzip failed: {out:?}");
    out.stdout
}

fn gunzip_lib(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::copy(&mut flate2::read::GzDecoder::new(data), &mut out).unwrap();
    out
}

/// `steward cache warm-up …`, asked again (for a bounded time) while a scheduled warm-up of
/// the same namespace is running and refuses it.
fn warm_up_when_free(st: &Steward, args: &[&str]) -> CmdOutput {
    let mut out = st.ctl(args);
    st.wait_until(SLACK * 5, "the running warm-up to finish", |st| {
        let busy = out.code == 1 && out.all().contains("is already running");
        if busy {
            out = st.ctl(args);
        }
        !busy
    });
    out
}

fn error_of(out: &CmdOutput) -> String {
    assert_eq!(out.code, 1, "expected an error reply: {out:?}");
    let r = out.reply();
    assert!(!r.ok, "{out:?}");
    let e = r.error.unwrap_or_default();
    assert!(!e.contains('\n'), "one line: {e:?}");
    e
}

#[test]
fn warm_up_fills_a_namespace_from_a_real_table() {
    let pg = Postgres::start();
    let redis = Redis::start();
    create_items(&pg);
    let st = Steward::builder(&pg, &redis)
        .with(|s| s.backup += &cache_toml(""))
        .start();

    let reply: WarmupReply = st.ctl(&["cache", "warm-up", "analytics"]).data();
    assert_eq!(reply.namespaces.len(), 1);
    let r = &reply.namespaces[0];
    assert_eq!(r.namespace, "analytics");
    assert_eq!(
        (r.rows_read, r.keys_written, r.rows_rejected),
        (10_001, 10_000, 1)
    );
    assert_eq!(
        r.compressed, 3333,
        "ids divisible by 3 are above the threshold"
    );
    assert_eq!(r.rejected.len(), 1);
    assert_eq!(r.rejected[0].row, 10_001);
    assert_eq!(r.rejected[0].suffix.as_deref(), Some("10001"));
    assert!(r.rejected[0].reason.contains("not JSON"), "{r:?}");
    assert_eq!(r.ttl_seconds, 1800.0);
    assert!(r.duration_seconds > 0.0);

    // Every key: present, TTL within the namespace's, value plain or compressed by size.
    let docs = expected_docs(&pg);
    assert_eq!(docs.len(), 10_000);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let ids: Vec<&String> = docs.keys().collect();
    let mut get = redis::pipe();
    let mut pttl = redis::pipe();
    for id in &ids {
        get.cmd("GET").arg(format!("{PREFIX}{id}"));
        pttl.cmd("PTTL").arg(format!("{PREFIX}{id}"));
    }
    let values: Vec<Option<Vec<u8>>> = get.query(&mut con).unwrap();
    let ttls: Vec<i64> = pttl.query(&mut con).unwrap();
    let (mut before, mut after, mut compressed) = (0u64, 0u64, Vec::new());
    for ((id, value), ttl) in ids.iter().zip(&values).zip(&ttls) {
        let doc = &docs[*id];
        let value = value
            .as_ref()
            .unwrap_or_else(|| panic!("key {PREFIX}{id} is missing"));
        assert!(*ttl > 0 && *ttl <= TTL_MS, "{PREFIX}{id}: PTTL {ttl}");
        before += doc.len() as u64;
        after += value.len() as u64;
        if doc.len() > THRESHOLD {
            assert_eq!(&value[..2], &[0x1f, 0x8b], "{PREFIX}{id} is gzip");
            assert!(value.len() < doc.len());
            assert_eq!(gunzip_lib(value), doc.as_bytes(), "{PREFIX}{id}");
            compressed.push(value.clone());
        } else {
            assert_eq!(value, doc.as_bytes(), "{PREFIX}{id} is stored plain");
        }
    }
    assert_eq!(compressed.len(), 3333);
    assert_eq!((r.bytes_before, r.bytes_after), (before, after));
    // The gzip CLI reads them too, to the original JSON.
    for (i, value) in compressed.iter().take(20).enumerate() {
        let text = String::from_utf8(gunzip_cli(value)).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(doc["pad"].as_str().unwrap().len() > THRESHOLD, "value {i}");
        assert!(docs.values().any(|d| *d == text));
    }
    // Nothing else under the prefix (the broken row wrote no key).
    let all: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{PREFIX}*"))
        .query(&mut con)
        .unwrap();
    assert_eq!(all.len(), 10_000);

    // Run again, human output: the same figures, the rejected row named.
    let out = st.ctl_human(&["cache", "warm-up", "analytics"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("NAMESPACE"), "{}", out.stdout);
    assert!(out.stdout.contains("10001") && out.stdout.contains("10000"));
    assert!(
        out.stdout
            .contains("row 10001 (key suffix \"10001\"): not JSON"),
        "{}",
        out.stdout
    );
    assert!(!out.all().contains(&pg.password) && !out.all().contains(&redis.password));
    let m = st.metrics();
    let n = metric_value(
        &m,
        "steward_cache_operation_duration_seconds_count",
        &[("op", "warmup")],
    );
    assert_eq!(n, Some(2.0), "two warm-ups timed");
}

#[test]
fn names_and_queries_that_cannot_work_are_clear_errors() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql(
        "CREATE TABLE items (id int, doc text);
         INSERT INTO items VALUES (1, '{}'), (2, '[1]');",
        PG_USER,
        PG_DB,
    );
    let extra = r#"
[[cache.namespace]]
name = "onecol"
prefix = "cache:onecol:"
ttl = "1m"
warmup = { query = "SELECT id FROM items" }

[[cache.namespace]]
name = "missing"
prefix = "cache:missing:"
ttl = "1m"
warmup = { query = "SELECT id, doc FROM no_such_table" }
"#;
    let st = Steward::builder(&pg, &redis)
        .with(|s| s.backup += &cache_toml(extra))
        .start();

    let e = error_of(&st.ctl(&["cache", "warm-up", "nosuch"]));
    assert!(
        e.contains("no cache namespace named \"nosuch\"") && e.contains("analytics, sessions"),
        "{e}"
    );
    let e = error_of(&st.ctl(&["cache", "warm-up", "sessions"]));
    assert!(e.contains("\"sessions\" has no warm-up query"), "{e}");
    // It says which namespaces have one.
    assert!(e.contains("namespaces with one: analytics"), "{e}");
    let e = error_of(&st.ctl(&["cache", "warm-up", "onecol"]));
    assert!(e.contains("returns 1 column(s); it must return two"), "{e}");
    let e = error_of(&st.ctl(&["cache", "warm-up", "missing"]));
    assert!(
        e.contains("warm-up query of namespace \"missing\" failed")
            && e.contains("\"no_such_table\" does not exist"),
        "{e}"
    );
    // All of them: analytics is done, then onecol stops the run and says so.
    let e = error_of(&st.ctl(&["cache", "warm-up"]));
    assert!(
        e.contains("returns 1 column(s)") && e.contains("(already warmed up: analytics)"),
        "{e}"
    );
    assert_eq!(
        redis.command(&["EXISTS", "cache:analytics:2"]).unwrap(),
        ":1"
    );
    assert_eq!(redis.command(&["EXISTS", "cache:onecol:1"]).unwrap(), ":0");
}

#[test]
fn postgres_or_redis_down_is_one_line_and_the_daemon_carries_on() {
    let redis = Redis::start();
    let pg_password = random_password();
    let pg_url = format!(
        "postgres://{PG_USER}:{pg_password}@127.0.0.1:{}/{PG_DB}",
        free_port()
    );
    let st = Steward::builder_urls(Some(pg_url), Some(redis.url()))
        .with(|s| s.backup += &cache_toml(""))
        .start();
    let out = st.ctl(&["cache", "warm-up", "analytics"]);
    let e = error_of(&out);
    assert!(e.starts_with("cannot reach PostgreSQL: "), "{e}");
    assert!(e.contains("steward check postgres"), "{e}");
    assert!(!out.all().contains(&pg_password) && !out.all().contains(&redis.password));
    let human = st.ctl_human(&["cache", "warm-up"]);
    assert_eq!(human.code, 1);
    assert_eq!(human.stderr.lines().count(), 1, "{human:?}");
    assert!(st.ctl(&["status"]).answered(), "the daemon still answers");

    let redis_password = random_password();
    let redis_url = format!("redis://:{redis_password}@127.0.0.1:{}/0", free_port());
    let st2 = Steward::builder_urls(Some(absent_pg_url()), Some(redis_url))
        .with(|s| s.backup += &cache_toml(""))
        .start();
    let out = st2.ctl(&["cache", "warm-up", "analytics"]);
    let e = error_of(&out);
    assert!(e.starts_with("cannot reach Redis"), "{e}");
    assert!(!out.all().contains(&redis_password));
    assert!(st2.ctl(&["status"]).answered(), "the daemon still answers");
    let t = st2.task("cache.warmup");
    assert_eq!(t.state, TaskState::Running, "{t:?}");
}

#[test]
fn a_scheduled_warm_up_runs_at_its_cron_time() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql(
        "CREATE TABLE items (id int, doc text);
         INSERT INTO items VALUES (1, '{\"a\":1}'), (2, '{\"b\":2}');
         CREATE TABLE flags (name text, on_off text);
         INSERT INTO flags VALUES ('beta', 'on');",
        PG_USER,
        PG_DB,
    );
    let extra = r#"
[[cache.namespace]]
name = "flags"
prefix = "cache:flags:"
ttl = "10m"
warmup = { query = "SELECT name, on_off FROM flags", schedule = "* * * * *" }
"#;
    let st = Steward::builder(&pg, &redis)
        .with(|s| s.backup += &cache_toml(extra))
        .start();
    assert_eq!(st.task("cache.warmup").state, TaskState::Running);
    // Every minute, on the minute: within a minute and some slack.
    st.wait_until(
        Duration::from_secs(60) + SLACK * 5,
        "the scheduled warm-up of flags",
        |_| redis.command(&["GET", "cache:flags:beta"]).ok().as_deref() == Some("on"),
    );
    let ttl: i64 = redis
        .command(&["TTL", "cache:flags:beta"])
        .unwrap()
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!(ttl > 0 && ttl <= 600, "TTL {ttl}");
    // Only the scheduled namespace: analytics has no schedule.
    assert_eq!(
        redis.command(&["EXISTS", "cache:analytics:1"]).unwrap(),
        ":0"
    );
    // The log line follows the last SET: poll for it too.
    st.wait_until(SLACK, "the log line of the scheduled warm-up", |st| {
        st.log().contains("cache warm-up done")
    });

    // Without a name: every namespace with a warm-up query, in config order (once the next
    // scheduled warm-up of flags, if it is running now, is done).
    let reply: WarmupReply = warm_up_when_free(&st, &["cache", "warm-up"]).data();
    let names: Vec<&str> = reply.namespaces.iter().map(|r| &*r.namespace).collect();
    assert_eq!(names, ["analytics", "flags"]);
    assert_eq!(reply.namespaces[0].keys_written, 2);
    assert_eq!(
        redis.command(&["GET", "cache:analytics:1"]).unwrap(),
        "{\"a\":1}"
    );
}

// ---------------------------------------------------------------------------------------------
// A warm-up never writes to PostgreSQL
// ---------------------------------------------------------------------------------------------

/// A namespace `evil` (the third, index 2) warmed up with `query`.
fn evil_namespace(query: &str) -> String {
    format!(
        "\n[[cache.namespace]]\nname = \"evil\"\nprefix = \"cache:evil:\"\nttl = \"1m\"\n\
         warmup = {{ query = {} }}\n",
        serde_json::to_string(query).unwrap()
    )
}

/// Runs the warm-up of `query` against tables `t` (3 rows) and `victim` (1 row) owned by the
/// user steward connects as, so that nothing but steward stops it from writing; returns the
/// error after checking that both tables are intact and no key was written.
fn refused(query: &str, setup: &str) -> String {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql(
        &format!(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');
             CREATE TABLE victim (id int);
             INSERT INTO victim VALUES (42);
             {setup}"
        ),
        PG_USER,
        PG_DB,
    );
    let st = Steward::builder(&pg, &redis)
        .with(|s| s.backup += &cache_toml(&evil_namespace(query)))
        .start();
    let out = st.ctl(&["cache", "warm-up", "evil"]);
    let e = error_of(&out);
    assert!(
        e.starts_with(
            "cache.namespace[2] (evil).warmup.query must be one read-only SELECT-like statement"
        ),
        "{e}"
    );
    assert!(!out.all().contains(&pg.password), "{e}");
    let rows = |table: &str| pg.psql(&format!("SELECT count(*) FROM {table}"), PG_USER, PG_DB);
    assert_eq!(rows("t").trim(), "3", "the rows of t are still there ({e})");
    assert_eq!(rows("victim").trim(), "1", "victim is still there ({e})");
    assert_eq!(redis.command(&["KEYS", "cache:evil:*"]).unwrap(), "*0");
    e
}

#[test]
fn drop_table_is_not_run() {
    let e = refused("DROP TABLE victim", "");
    assert!(
        e.contains("it returns no columns, so it was not run"),
        "{e}"
    );
}

#[test]
fn a_second_statement_is_refused_by_postgresql() {
    let e = refused("SELECT 'k', 'v'; DELETE FROM t", "");
    assert!(
        e.contains(
            "PostgreSQL refused it: cannot insert multiple commands into a prepared statement"
        ),
        "{e}"
    );
}

#[test]
fn delete_returning_is_refused_by_the_read_only_transaction() {
    let e = refused("DELETE FROM t RETURNING id, v", "");
    assert!(
        e.contains("the warm-up's read-only transaction refused it: cannot execute")
            && e.contains("in a read-only transaction (25006)"),
        "{e}"
    );
}

#[test]
fn a_data_modifying_with_is_refused() {
    let e = refused(
        "WITH d AS (DELETE FROM t RETURNING id) SELECT id, id FROM d",
        "",
    );
    assert!(
        e.contains("PostgreSQL refused it: WITH clause containing a data-modifying statement"),
        "{e}"
    );
}

#[test]
fn a_function_that_writes_is_refused_by_the_read_only_transaction() {
    let e = refused(
        "SELECT 'k', wipe()",
        "CREATE FUNCTION wipe() RETURNS text LANGUAGE sql AS
           'DELETE FROM t; DROP TABLE victim; SELECT ''gone''';",
    );
    assert!(
        e.contains("cannot execute DELETE in a read-only transaction (25006)"),
        "{e}"
    );
}

#[test]
fn a_query_longer_than_warmup_timeout_is_cancelled() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql(
        "CREATE TABLE items (id int, doc text); INSERT INTO items VALUES (1, '{}');",
        PG_USER,
        PG_DB,
    );
    let slow = r#"
[[cache.namespace]]
name = "slow"
prefix = "cache:slow:"
ttl = "1m"
warmup = { query = "SELECT id, doc FROM items, pg_sleep(120)" }
"#;
    let st = Steward::builder(&pg, &redis)
        .with(|s| s.backup += &cache_toml_with("warmup_timeout = \"1s\"", slow))
        .start();
    let e = error_of(&st.ctl(&["cache", "warm-up", "slow"]));
    assert!(
        e.contains("the warm-up query of namespace \"slow\" was cancelled: canceling statement due to statement timeout")
            && e.contains("cache.warmup_timeout (1s)"),
        "{e}"
    );
    assert_eq!(redis.command(&["EXISTS", "cache:slow:1"]).unwrap(), ":0");
    // Only that query was cut off: another namespace's warm-up runs.
    let reply: WarmupReply = st.ctl(&["cache", "warm-up", "analytics"]).data();
    assert_eq!(reply.namespaces[0].keys_written, 1);
}

// ---------------------------------------------------------------------------------------------
// Oversized rows, exact counts
// ---------------------------------------------------------------------------------------------

/// Peak resident memory of a process, in bytes (`VmHWM` in /proc/PID/status).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kb * 1024
}

#[test]
fn a_row_over_max_value_bytes_is_rejected_without_reaching_steward() {
    const VALUE: u64 = 300 * 1024 * 1024;
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');",
        PG_USER,
        PG_DB,
    );
    let query = format!(
        "SELECT id::text, v FROM t WHERE id = 1
         UNION ALL SELECT 'big', repeat('x', {VALUE})
         UNION ALL SELECT repeat('k', 2 * 1024 * 1024), 'v'
         UNION ALL (SELECT id::text, v FROM t WHERE id > 1 ORDER BY id)"
    );
    let big = format!(
        "\n[[cache.namespace]]\nname = \"big\"\nprefix = \"cache:big:\"\nttl = \"1m\"\n\
         warmup = {{ query = {} }}\n",
        serde_json::to_string(&query).unwrap()
    );
    let st = Steward::builder(&pg, &redis)
        .with(|s| s.backup += &cache_toml_with("max_value_bytes = 1048576", &big))
        .start();
    let reply: WarmupReply = st.ctl(&["cache", "warm-up", "big"]).data();
    let r = &reply.namespaces[0];
    assert_eq!(
        (r.rows_read, r.keys_written, r.rows_rejected),
        (5, 3, 2),
        "{r:?}"
    );
    assert_eq!(r.rejected[0].row, 2);
    assert_eq!(r.rejected[0].suffix.as_deref(), Some("big"));
    assert!(
        r.rejected[0].reason.contains(&format!(
            "the value (column 2) is {VALUE} bytes, more than cache.max_value_bytes (1048576)"
        )),
        "{r:?}"
    );
    assert_eq!(
        (r.rejected[1].row, r.rejected[1].suffix.as_deref()),
        (3, None)
    );
    assert!(
        r.rejected[1]
            .reason
            .contains("the key suffix (column 1) is 2097152 bytes"),
        "{r:?}"
    );
    assert_eq!(
        r.bytes_before, 3,
        "only the three small values were written"
    );
    for (id, v) in [("1", "a"), ("2", "b"), ("3", "c")] {
        assert_eq!(
            redis.command(&["GET", &format!("cache:big:{id}")]).unwrap(),
            v
        );
    }
    assert_eq!(redis.command(&["EXISTS", "cache:big:big"]).unwrap(), ":0");
    // The value never came to steward: its peak memory stays far below the value's size.
    let peak = peak_rss(st.pid());
    assert!(
        peak < 200 * 1024 * 1024,
        "steward's peak RSS was {} MiB for a {} MiB value",
        peak >> 20,
        VALUE >> 20
    );
}

/// A number from `INFO memory` (e.g. `used_memory`).
fn redis_info(redis: &Redis, field: &str) -> u64 {
    let info = redis.command(&["INFO", "memory"]).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in INFO memory"))
}

#[test]
fn the_report_counts_exactly_the_keys_redis_took() {
    let pg = Postgres::start();
    let redis = Redis::start();
    // Redis refuses SETs once its memory is full: it fills in the middle of a pipeline, with
    // more pipelines on their way.
    let limit = redis_info(&redis, "used_memory") + 4 * 1024 * 1024;
    assert_eq!(
        redis
            .command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
            .unwrap(),
        "+OK"
    );
    let limit = limit.to_string();
    assert_eq!(
        redis
            .command(&["CONFIG", "SET", "maxmemory", &limit])
            .unwrap(),
        "+OK"
    );
    let fat = r#"
[[cache.namespace]]
name = "fat"
prefix = "cache:fat:"
ttl = "10m"
warmup = { query = "SELECT i, repeat('x', 20000) FROM generate_series(1, 3000) i" }
"#;
    let st = Steward::builder(&pg, &redis)
        .with(|s| s.backup += &cache_toml(fat))
        .start();
    let e = error_of(&st.ctl(&["cache", "warm-up", "fat"]));
    assert!(e.contains("OOM"), "{e}");
    let written: u64 = e
        .split_once("stopped after ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {e:?}"));
    let keys: u64 = redis
        .command(&["KEYS", "cache:fat:*"])
        .unwrap()
        .trim_start_matches('*')
        .parse()
        .unwrap();
    assert!(keys > 0 && keys < 3000, "{keys} keys");
    assert_eq!(written, keys, "the report says what Redis holds: {e}");
}

// ---------------------------------------------------------------------------------------------
// One warm-up per namespace at a time
// ---------------------------------------------------------------------------------------------

#[test]
fn two_warm_ups_of_one_namespace_never_run_at_once() {
    let pg = Postgres::start();
    let redis = Redis::start();
    create_items(&pg);
    let st = Steward::builder(&pg, &redis)
        .with(|s| s.backup += &cache_toml(""))
        .start();
    std::thread::scope(|scope| {
        // The first warm-up waits for the table, so it is certainly still running below.
        // (Held inside the scope: a failed assertion releases it before the threads are
        // joined.)
        let mut lock = TableLock::hold(&pg, "items");
        let first = scope.spawn(|| st.ctl(&["cache", "warm-up", "analytics"]));
        st.wait_until(SLACK * 5, "the first warm-up to wait for the lock", |_| {
            pg.psql_as_postgres(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
            )
            .trim()
                == "1"
        });
        for args in [
            &["cache", "warm-up", "analytics"][..],
            &["cache", "warm-up"],
        ] {
            // Refused at once; a second warm-up that waited for the table would time out here.
            let (tx, rx) = std::sync::mpsc::channel();
            let st = &st;
            scope.spawn(move || tx.send(st.ctl(args)));
            let out = rx
                .recv_timeout(SLACK * 5)
                .unwrap_or_else(|_| panic!("{args:?} was not refused: it runs alongside"));
            let e = error_of(&out);
            assert!(
                e.contains("a warm-up of namespace \"analytics\" is already running (started by a `steward cache warm-up` request"),
                "{e}"
            );
        }
        // The schedule skips it too: every minute, while the first one still waits.
        let mut s = st.settings.clone();
        s.backup = s
            .backup
            .replace("ORDER BY id\"", "ORDER BY id\"\nschedule = \"* * * * *\"");
        st.write_config(&s.render());
        assert_eq!(st.ctl(&["reload"]).code, 0);
        st.wait_until(
            Duration::from_secs(60) + SLACK * 5,
            "the scheduled warm-up to be skipped",
            |st| {
                st.log_lines_with("scheduled cache warm-up skipped")
                    .iter()
                    .any(|l| l.contains("already running"))
            },
        );
        lock.release();
        let reply: WarmupReply = first.join().unwrap().data();
        assert_eq!(reply.namespaces[0].keys_written, 10_000);
    });
    // Done, it frees the namespace.
    let reply: WarmupReply = warm_up_when_free(&st, &["cache", "warm-up", "analytics"]).data();
    assert_eq!(reply.namespaces[0].keys_written, 10_000);
}
