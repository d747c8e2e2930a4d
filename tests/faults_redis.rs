//! Fault injection, Redis: the server killed (SIGKILL) in the middle of a cache clear of half a
//! million keys and in the middle of a big warm-up. The command must come back with an error
//! that says what happened (never hang), the daemon must stay up and keep its backups, and
//! once Redis is back a second run of the same command must finish the job.

mod common;

use common::faults::*;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};
use steward::cache::clear::ClearReport;
use steward::cache::warmup::WarmupReply;

/// The longest a command cut off by a dead Redis may take to answer.
const ANSWER: Duration = Duration::from_secs(30);

fn notice() -> Duration {
    INTERVAL * 2 + TIMEOUT + SLACK
}

fn dbsize(redis: &Redis) -> Option<u64> {
    redis
        .command(&["DBSIZE"])
        .ok()?
        .strip_prefix(':')?
        .parse()
        .ok()
}

/// Runs `steward --json ARGS…` on another thread, timing it.
fn in_background(st: &Steward, args: &[&str]) -> std::thread::JoinHandle<(CmdOutput, Duration)> {
    let mut full: Vec<String> = ["--socket", &st.socket().to_string_lossy(), "--json"]
        .map(String::from)
        .to_vec();
    full.extend(args.iter().map(|a| a.to_string()));
    let dir = st.dir().to_path_buf();
    std::thread::spawn(move || {
        let t = Instant::now();
        let args: Vec<&str> = full.iter().map(String::as_str).collect();
        let out = steward_cmd(&args, &dir, &[]);
        (out, t.elapsed())
    })
}

/// A daemon with a cache namespace (and its warm-up query) and a good backup to keep safe.
fn start(pg: &Postgres, redis: &Redis, root: &Path, cache: &str) -> Steward {
    let backup = backup_section(root, "") + cache;
    let st = Steward::builder(pg, redis)
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            // Its probe key would race with the exact DBSIZE counts below.
            s.redis_extra = "write_read_test = false\n".into();
            s.backup = backup;
        })
        .start();
    create_good(&st);
    st
}

/// After the fault: the daemon answers, sees Redis down, and its backups are intact.
fn assert_daemon_fine_while_redis_down(st: &Steward, root: &Path) {
    st.wait_up("redis", false, notice());
    assert_eq!(st.up("postgres"), Some(true));
    assert_nothing_lost(st, root);
}

const CLEAR_NS: &str = r#"
[cache]
pipeline_batch = 100

[[cache.namespace]]
name = "analytics"
prefix = "cache:analytics:"
ttl = "30m"
"#;

#[test]
fn redis_killed_during_a_cache_clear() {
    const N: u64 = 500_000;
    let pg = Postgres::start();
    let mut redis = Redis::start();
    let root_dir = short_tempdir("stw-fault-rc-");
    let root = root_dir.path().join("backups");
    redis.fill("cache:analytics:", N as usize);
    let st = start(&pg, &redis, &root, CLEAR_NS);

    let clear = in_background(&st, &["cache", "clear", "--namespace", "analytics"]);
    // Several batches of 100 deleted (and so counted): the kill lands mid-clear.
    wait_until(
        Duration::from_secs(30),
        "the clear to start deleting",
        || dbsize(&redis).is_some_and(|n| n + 1000 <= N),
    );
    redis.kill();
    let (out, took) = clear.join().unwrap();
    assert!(
        took < ANSWER,
        "the clear took {took:?} to report the outage"
    );
    let err = error_of(&out);
    let cut: ClearReport = serde_json::from_value(out.reply().data).unwrap();
    assert!(cut.deleted > 0 && cut.deleted < N && !cut.done, "{cut:?}");
    assert!(
        err.contains(&format!("stopped after deleting {} keys", cut.deleted))
            && err.contains("Redis")
            && err.contains("run the same command again"),
        "the error should say how far it got and what to do: {err}"
    );
    assert!(!err.contains(&redis.password), "{err}");
    let jobs: Vec<ClearReport> = st.request_data(r#"{"cmd":"cache_clear_jobs"}"#);
    assert!(
        jobs.is_empty(),
        "the cut-off clear is still listed as running: {jobs:?}"
    );
    assert_daemon_fine_while_redis_down(&st, &root);

    // Back (empty: no persistence); the application writes again; the same command finishes.
    redis.restart();
    redis.fill("cache:analytics:", 50_000);
    redis.fill("app:", 10);
    st.wait_up("redis", true, notice());
    let again: ClearReport = st
        .ctl(&["cache", "clear", "--namespace", "analytics"])
        .data();
    assert_eq!((again.deleted, again.done), (50_000, true), "{again:?}");
    assert_eq!(dbsize(&redis), Some(10));
    assert_nothing_lost(&st, &root);
}

/// Rows the warm-up query returns: enough that it is still writing when Redis dies.
const WARM_ROWS: u64 = 300_000;

const WARM_NS: &str = r#"
[cache]
pipeline_batch = 100

[[cache.namespace]]
name = "analytics"
prefix = "cache:analytics:"
ttl = "30m"
codec = "json"
compress = false

[cache.namespace.warmup]
query = "SELECT id::text, doc FROM warm ORDER BY id"
"#;

#[test]
fn redis_killed_during_a_warm_up() {
    let pg = Postgres::start();
    let mut redis = Redis::start();
    let root_dir = short_tempdir("stw-fault-rw-");
    let root = root_dir.path().join("backups");
    pg.psql(
        &format!(
            "CREATE TABLE warm (id int PRIMARY KEY, doc text NOT NULL);
             INSERT INTO warm SELECT g, json_build_object('id', g, 'pad', md5(g::text))::text
             FROM generate_series(1, {WARM_ROWS}) g;"
        ),
        PG_USER,
        PG_DB,
    );
    let st = start(&pg, &redis, &root, WARM_NS);

    let warm = in_background(&st, &["cache", "warm-up", "analytics"]);
    wait_until(
        Duration::from_secs(30),
        "the warm-up to start writing",
        || {
            redis
                .command(&["EXISTS", "cache:analytics:1"])
                .is_ok_and(|r| r == ":1")
        },
    );
    redis.kill();
    let (out, took) = warm.join().unwrap();
    assert!(
        took < ANSWER,
        "the warm-up took {took:?} to report the outage"
    );
    let err = error_of(&out);
    eprintln!("warm-up cut off after {took:?}: {err}");
    assert!(
        err.contains("warm-up of namespace \"analytics\" stopped after")
            && err.contains("running it again completes it"),
        "the error should say how far it got and what to do: {err}"
    );
    assert!(
        !err.contains(&redis.password) && !err.contains(&pg.password),
        "{err}"
    );
    // The warm-up's PostgreSQL side is let go too: no session left inside its transaction.
    wait_until(
        Duration::from_secs(10),
        "no steward session idle in a transaction",
        || {
            pg.psql_as_postgres(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = '{PG_USER}' \
                 AND (state LIKE 'idle in transaction%' OR query ILIKE '%FROM warm%' AND state = 'active')"
            ))
            .trim()
                == "0"
        },
    );
    assert_daemon_fine_while_redis_down(&st, &root);

    redis.restart();
    st.wait_up("redis", true, notice());
    let reply: WarmupReply = st.ctl(&["cache", "warm-up", "analytics"]).data();
    let r = &reply.namespaces[0];
    assert_eq!(
        (r.rows_read, r.keys_written, r.rows_rejected),
        (WARM_ROWS, WARM_ROWS, 0),
        "{r:?}"
    );
    assert_eq!(dbsize(&redis), Some(WARM_ROWS));
    assert_eq!(
        redis.command(&["GET", "cache:analytics:77"]).unwrap(),
        pg.psql("SELECT doc FROM warm WHERE id = 77", PG_USER, PG_DB)
            .trim()
    );
    assert_nothing_lost(&st, &root);
}
