//! `steward cache clear` end to end, through the daemon and its client, against a real throwaway
//! Redis: a namespace of 100,000 keys cleared while every other key survives, `--dry-run`
//! counting the same keys and deleting none, `*` and patterns outside the namespaces refused
//! without `--force`, and a clear cut off by a Redis outage (SIGSTOP) reporting how far it got,
//! then finished by a second run once Redis answers again (SIGCONT), or by Redis killed.

mod common;

use common::*;
use std::time::Duration;
use steward::cache::clear::ClearReport;

const NAMESPACES: &str = r#"
[cache]
pipeline_batch = 100

[[cache.namespace]]
name = "analytics"
prefix = "cache:analytics:"
ttl = "30m"

[[cache.namespace]]
name = "sessions"
prefix = "cache:sessions:"
ttl = "1h"
"#;

fn start(pg: &Postgres, redis: &Redis) -> Steward {
    // The monitor's write/read test SETs and DELs a probe key of its own every check: the key
    // counts (DBSIZE, a dry run of `*`) would race with it.
    Steward::builder(pg, redis)
        .with(|s| {
            s.backup += NAMESPACES;
            s.redis_extra = "write_read_test = false\n".into();
        })
        .start()
}

/// Exact number of keys matching `pattern` (KEYS inside a script: fine for a test's check).
fn count(redis: &Redis, pattern: &str) -> u64 {
    let r = redis
        .command(&["EVAL", "return #redis.call('KEYS', ARGV[1])", "0", pattern])
        .unwrap();
    r.strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("EVAL reply {r:?}"))
}

fn dbsize(redis: &Redis) -> Option<u64> {
    redis
        .command(&["DBSIZE"])
        .ok()?
        .strip_prefix(':')?
        .parse()
        .ok()
}

/// The other keys every test keeps an eye on: another namespace, keys outside any namespace,
/// and a key that only looks like the cleared namespace.
fn fill_others(redis: &Redis) {
    redis.fill("cache:sessions:", 1000);
    redis.fill("app:", 1000);
    redis.fill("cache:analyticsX", 10);
}

fn assert_others_intact(redis: &Redis) {
    assert_eq!(count(redis, "cache:sessions:*"), 1000);
    assert_eq!(count(redis, "app:*"), 1000);
    assert_eq!(count(redis, "cache:analyticsX*"), 10);
}

#[test]
fn clears_one_namespace_and_spares_the_others() {
    let pg = Postgres::start();
    let redis = Redis::start();
    redis.fill("cache:analytics:", 100_000);
    fill_others(&redis);
    let st = start(&pg, &redis);

    let dry: ClearReport = st
        .ctl(&["cache", "clear", "--namespace", "analytics", "--dry-run"])
        .data();
    assert_eq!((dry.scanned, dry.deleted), (100_000, 0), "{dry:?}");
    assert!(dry.dry_run && dry.done);
    assert_eq!(
        count(&redis, "cache:analytics:*"),
        100_000,
        "a dry run deletes nothing"
    );
    let human = st.ctl_human(&["cache", "clear", "--namespace", "analytics", "--dry-run"]);
    assert_eq!(human.code, 0, "{human:?}");
    assert!(
        human
            .stdout
            .starts_with("dry run: 100000 keys match cache:analytics:* (namespace analytics)"),
        "{human:?}"
    );
    // Outside every namespace a dry run needs no --force (it deletes nothing); the real
    // clear still does.
    let outside: ClearReport = st
        .ctl(&["cache", "clear", "--pattern", "app:*", "--dry-run"])
        .data();
    assert_eq!((outside.scanned, outside.deleted), (1000, 0), "{outside:?}");
    assert_eq!(st.ctl(&["cache", "clear", "--pattern", "app:*"]).code, 1);
    assert_others_intact(&redis);

    let done: ClearReport = st
        .ctl(&["cache", "clear", "--namespace", "analytics"])
        .data();
    assert_eq!(done.deleted, 100_000, "{done:?}");
    assert_eq!(
        done.deleted, dry.scanned,
        "the dry run counted what the clear deleted"
    );
    assert!(
        done.scanned >= 100_000 && done.done && !done.dry_run,
        "{done:?}"
    );
    assert_eq!(done.namespace.as_deref(), Some("analytics"));
    assert_eq!(count(&redis, "cache:analytics:*"), 0);
    assert_others_intact(&redis);
    assert_eq!(dbsize(&redis), Some(2010));

    // A pattern inside a namespace needs no --force; the human output gives the final count.
    let out = st.ctl_human(&["cache", "clear", "--pattern", "cache:sessions:1?"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.starts_with(
            "cleared cache:sessions:1? (namespace sessions): 10 keys deleted, 10 found, in "
        ),
        "{out:?}"
    );
    assert_eq!(count(&redis, "cache:sessions:*"), 990);
    // Each of the five clears that ran (three dry runs) was timed; the refused one was not.
    assert_eq!(
        st.metric(
            "steward_cache_operation_duration_seconds_count",
            &[("op", "clear")]
        ),
        Some(5.0)
    );
}

#[test]
fn everything_or_outside_the_namespaces_needs_force() {
    let pg = Postgres::start();
    let redis = Redis::start();
    redis.fill("cache:analytics:", 500);
    fill_others(&redis);
    let st = start(&pg, &redis);
    let total = dbsize(&redis);

    for pattern in ["*", "", "app:*", "cache:*"] {
        let out = st.ctl(&["cache", "clear", "--pattern", pattern]);
        assert_eq!(out.code, 1, "{pattern:?}: {out:?}");
        let e = out.reply().error.unwrap();
        assert!(
            e.contains("add --force if that is what you mean"),
            "{pattern:?}: {e}"
        );
        let human = st.ctl_human(&["cache", "clear", "--pattern", pattern]);
        assert_eq!(human.code, 1);
        assert_eq!(human.stderr.lines().count(), 1, "one line: {human:?}");
    }
    assert!(st
        .ctl(&["cache", "clear", "--pattern", "*"])
        .reply()
        .error
        .unwrap()
        .contains("every key"));
    assert!(st
        .ctl(&["cache", "clear", "--pattern", "app:*"])
        .reply()
        .error
        .unwrap()
        .contains("not inside any cache namespace (prefixes: cache:analytics:, cache:sessions:)"));
    assert_eq!(dbsize(&redis), total, "nothing deleted by a refused clear");

    let out = st.ctl(&["cache", "clear", "--namespace", "nosuch"]);
    assert!(
        out.reply()
            .error
            .unwrap()
            .contains("configured: analytics, sessions"),
        "{out:?}"
    );

    // --force: a dry run of everything counts every key; a forced pattern deletes its keys.
    let all: ClearReport = st
        .ctl(&["cache", "clear", "--pattern", "*", "--force", "--dry-run"])
        .data();
    assert_eq!(Some(all.scanned), total);
    let app: ClearReport = st
        .ctl(&["cache", "clear", "--pattern", "app:*", "--force"])
        .data();
    assert_eq!((app.deleted, app.namespace), (1000, None));
    assert_eq!(count(&redis, "app:*"), 0);
    assert_eq!(count(&redis, "cache:sessions:*"), 1000);
    assert_eq!(count(&redis, "cache:analytics:*"), 500);
}

/// `steward --json cache clear --namespace analytics` on another thread.
fn clear_in_background(st: &Steward) -> std::thread::JoinHandle<CmdOutput> {
    let args = ["--socket", &st.socket().to_string_lossy(), "--json"].map(String::from);
    let dir = st.dir().to_path_buf();
    std::thread::spawn(move || {
        let mut full: Vec<&str> = args.iter().map(String::as_str).collect();
        full.extend(["cache", "clear", "--namespace", "analytics"]);
        steward_cmd(&full, &dir, &[])
    })
}

#[test]
fn a_clear_cut_off_by_redis_says_how_far_it_got_and_a_second_run_finishes() {
    const N: u64 = 400_000;
    let pg = Postgres::start();
    let redis = Redis::start();
    redis.fill("cache:analytics:", N as usize);
    fill_others(&redis);
    let before = dbsize(&redis).unwrap();
    let st = start(&pg, &redis);

    let clear = clear_in_background(&st);
    // Stop Redis (an outage that keeps its data) as soon as the clear has deleted something.
    wait_until(
        Duration::from_secs(30),
        "the clear to start deleting",
        || dbsize(&redis).is_some_and(|n| n < before),
    );
    send_signal(redis.pid(), libc::SIGSTOP);
    let out = clear.join().unwrap();
    // While Redis is stopped, another clear fails with one line.
    let down = st.ctl_human(&["cache", "clear", "--namespace", "sessions"]);
    send_signal(redis.pid(), libc::SIGCONT);

    assert_eq!(out.code, 1, "{out:?}");
    let reply = out.reply();
    let first: ClearReport = serde_json::from_value(reply.data.clone()).unwrap();
    let error = reply.error.unwrap();
    assert!(
        first.deleted > 0 && first.deleted < N && !first.done,
        "{first:?}"
    );
    assert!(
        error.contains(&format!("stopped after deleting {} keys", first.deleted))
            && error.contains("run the same command again once Redis answers to finish the job"),
        "{error}"
    );
    assert_eq!(down.code, 1, "{down:?}");
    assert_eq!(down.stderr.lines().count(), 1, "{down:?}");
    assert!(down.stderr.contains("Redis"), "{down:?}");

    wait_until(
        Duration::from_secs(10),
        "redis to answer after SIGCONT",
        || dbsize(&redis).is_some(),
    );
    let second: ClearReport = st
        .ctl(&["cache", "clear", "--namespace", "analytics"])
        .data();
    assert!(second.done, "{second:?}");
    assert_eq!(
        count(&redis, "cache:analytics:*"),
        0,
        "the second run finished the job"
    );
    assert_others_intact(&redis);
    // Both runs together deleted every key, except those of the one UNLINK batch that was on
    // its way when Redis stopped: Redis carried it out after SIGCONT, uncounted by either run.
    let counted = first.deleted + second.deleted;
    assert!(counted <= N && counted + 5_000 >= N, "{first:?} {second:?}");
}

#[test]
fn redis_killed_in_the_middle_of_a_clear_gives_the_count_so_far() {
    const N: u64 = 400_000;
    let pg = Postgres::start();
    let mut redis = Redis::start();
    redis.fill("cache:analytics:", N as usize);
    let st = start(&pg, &redis);

    let clear = clear_in_background(&st);
    wait_until(
        Duration::from_secs(30),
        "the clear to start deleting",
        || dbsize(&redis).is_some_and(|n| n < N),
    );
    redis.kill();
    let out = clear.join().unwrap();
    assert_eq!(out.code, 1, "{out:?}");
    let reply = out.reply();
    let cut: ClearReport = serde_json::from_value(reply.data.clone()).unwrap();
    let error = reply.error.unwrap();
    assert!(cut.deleted > 0 && cut.deleted < N && !cut.done, "{cut:?}");
    assert!(
        error.contains(&format!("stopped after deleting {} keys", cut.deleted))
            && error.contains("run the same command again")
            && !error.contains('\n')
            && !error.contains(&redis.password),
        "{error}"
    );

    // It comes back empty (no persistence): the application writes again, a clear finishes.
    redis.restart();
    redis.fill("cache:analytics:", 1000);
    redis.fill("cache:sessions:", 10);
    let again: ClearReport = st
        .ctl(&["cache", "clear", "--namespace", "analytics"])
        .data();
    assert_eq!((again.deleted, again.done), (1000, true));
    assert_eq!(dbsize(&redis), Some(10));
}
