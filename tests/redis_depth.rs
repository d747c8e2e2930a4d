//! Redis monitoring in depth, each signal shown against a real state made in the test: a
//! BGSAVE that fails and then succeeds, an append-only file write that fails on a full disk
//! and then succeeds, connections refused by `maxclients`, a client blocked in
//! BLPOP, per-command statistics, an empty configured database, a replica (role, link, lag,
//! link down when the master dies), the Redis alerts firing and resolving, and the hit ratio of a known application mix with and
//! without the statistics scan running (steward's own lookups left out).

mod common;

use common::redis_extra::RawConn;
use common::tmpfs::Tmpfs;
use common::*;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

fn promtool_clean(body: &str) {
    let (ok, text) = promtool_check_metrics(body);
    assert!(
        ok && text.trim().is_empty(),
        "promtool check metrics reported:\n{text}"
    );
}

fn cmd(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

fn wait_metric(
    st: &Steward,
    name: &str,
    labels: &[(&str, &str)],
    what: &str,
    ok: impl Fn(f64) -> bool,
) {
    st.wait_until(WAIT, what, |st| st.metric(name, labels).is_some_and(&ok));
}

/// Waits until steward's alert `alert` has made the transition `to` (`firing`, `resolved`).
fn wait_transition(st: &Steward, alert: &str, to: &str) {
    let labels = [("alert", alert), ("to", to)];
    let what = format!("{alert} {to}");
    wait_metric(st, "steward_alert_transitions_total", &labels, &what, |v| {
        v >= 1.0
    });
}

/// Persistence, clients, commands, empty databases and the server's start time, on one server.
#[test]
fn persistence_clients_commands_and_databases() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    st.wait_checks("redis", 2);

    // The configured database (db0 in the harness URL) is empty: reported as 0, not left out.
    assert_eq!(
        st.metric("steward_redis_db_keys", &[("db", "db0")]),
        Some(0.0)
    );
    let mut admin = RawConn::open(&redis).unwrap();
    admin.request(&["SELECT", "3"]).unwrap();
    admin.request(&["SET", "k", "v"]).unwrap();
    wait_metric(
        &st,
        "steward_redis_db_keys",
        &[("db", "db3")],
        "db3 to have a key",
        |v| v == 1.0,
    );
    admin.request(&["FLUSHDB"]).unwrap();
    wait_metric(
        &st,
        "steward_redis_db_keys",
        &[("db", "db3")],
        "emptied db3 to report 0",
        |v| v == 0.0,
    );
    admin.request(&["SELECT", "0"]).unwrap();

    // A BGSAVE that cannot rename its file into place (a directory named dump.rdb: refused even
    // to root) fails; once the way is clear, the next one succeeds.
    assert_eq!(
        st.metric("steward_redis_rdb_last_bgsave_success", &[]),
        Some(1.0)
    );
    admin.request(&["SET", "unsaved", "1"]).unwrap();
    let blocker = redis.data_dir().join("dump.rdb");
    std::fs::create_dir_all(blocker.join("x")).unwrap();
    admin.request(&["BGSAVE"]).unwrap();
    wait_metric(
        &st,
        "steward_redis_rdb_last_bgsave_success",
        &[],
        "the failed BGSAVE",
        |v| v == 0.0,
    );
    wait_transition(&st, "RedisPersistenceFailing", "firing");
    assert!(
        st.metric("steward_redis_rdb_changes_since_last_save", &[])
            .unwrap()
            >= 1.0
    );
    std::fs::remove_dir_all(&blocker).unwrap();
    let before = st
        .metric("steward_redis_last_save_timestamp_seconds", &[])
        .unwrap();
    // A BGSAVE may be refused while the failed child is still being reaped: try until accepted.
    wait_until(WAIT, "a BGSAVE to be accepted", || {
        admin.request(&["BGSAVE"]).is_ok()
    });
    wait_metric(
        &st,
        "steward_redis_rdb_last_bgsave_success",
        &[],
        "the good BGSAVE",
        |v| v == 1.0,
    );
    wait_transition(&st, "RedisPersistenceFailing", "resolved");
    wait_metric(
        &st,
        "steward_redis_last_save_timestamp_seconds",
        &[],
        "a newer save time",
        |v| v >= before,
    );
    assert_eq!(st.metric("steward_redis_aof_enabled", &[]), Some(0.0));
    assert_eq!(
        st.metric("steward_redis_aof_last_write_success", &[]),
        Some(1.0)
    );

    // A client blocked in BLPOP, then released.
    let mut blocked = RawConn::open(&redis).unwrap();
    blocked.send(&[cmd(&["BLPOP", "queue", "0"])]).unwrap();
    wait_metric(
        &st,
        "steward_redis_blocked_clients",
        &[],
        "a blocked client",
        |v| v == 1.0,
    );
    admin.request(&["LPUSH", "queue", "job"]).unwrap();
    assert_eq!(blocked.reply().unwrap(), "queue\njob");
    wait_metric(
        &st,
        "steward_redis_blocked_clients",
        &[],
        "no blocked client",
        |v| v == 0.0,
    );

    // Per-command statistics: calls, time, failures (WRONGTYPE), slow log, latency percentiles.
    admin
        .request(&["CONFIG", "SET", "slowlog-log-slower-than", "0"])
        .unwrap();
    for i in 0..5 {
        admin.request(&["LPUSH", "list", &i.to_string()]).unwrap();
    }
    assert!(admin.request(&["LPUSH", "k0", "x"]).is_ok());
    admin.request(&["SET", "str", "x"]).unwrap();
    assert!(admin.request(&["LPUSH", "str", "x"]).is_err());
    let lpush = [("command", "lpush")];
    wait_metric(
        &st,
        "steward_redis_commands_total",
        &lpush,
        "LPUSH calls",
        |v| v >= 7.0,
    );
    wait_metric(
        &st,
        "steward_redis_commands_failed_total",
        &lpush,
        "a failed LPUSH",
        |v| v >= 1.0,
    );
    assert!(
        st.metric("steward_redis_commands_duration_seconds_total", &lpush)
            .unwrap()
            > 0.0
    );
    wait_metric(
        &st,
        "steward_redis_slowlog_length",
        &[],
        "a slow log",
        |v| v >= 1.0,
    );
    let p99 = [("command", "lpush"), ("percentile", "99")];
    wait_metric(
        &st,
        "steward_redis_command_latency_seconds",
        &p99,
        "LPUSH latency",
        |v| v > 0.0,
    );

    // Connections beyond maxclients are refused and counted.
    let clients: u64 = redis
        .info_field("connected_clients")
        .unwrap()
        .parse()
        .unwrap();
    admin
        .request(&[
            "CONFIG",
            "SET",
            "maxclients",
            &clients.saturating_sub(1).to_string(),
        ])
        .unwrap();
    let refused = (0..3).filter(|_| RawConn::open(&redis).is_err()).count();
    admin
        .request(&["CONFIG", "SET", "maxclients", "10000"])
        .unwrap();
    assert_eq!(refused, 3, "connections beyond maxclients were accepted");
    wait_metric(
        &st,
        "steward_redis_rejected_connections_total",
        &[],
        "3 rejected connections",
        |v| v >= 3.0,
    );
    wait_transition(&st, "RedisRejectedConnections", "firing");
    wait_transition(&st, "RedisRejectedConnections", "resolved");

    // Memory, network and server figures; the start time does not move between checks.
    let start = st.metric("steward_redis_start_time_seconds", &[]).unwrap();
    let uptime: f64 = redis
        .info_field("uptime_in_seconds")
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - uptime - start).abs() < 5.0,
        "start {start}, now {now}, uptime {uptime}"
    );
    st.wait_checks("redis", 2);
    assert_eq!(
        st.metric("steward_redis_start_time_seconds", &[]),
        Some(start)
    );
    assert!(st.metric("steward_redis_memory_rss_bytes", &[]).unwrap() > 0.0);
    assert!(st.metric("steward_redis_memory_peak_bytes", &[]).unwrap() > 0.0);
    assert!(
        st.metric("steward_redis_memory_fragmentation_ratio", &[])
            .unwrap()
            > 0.0
    );
    assert!(
        st.metric("steward_redis_net_input_bytes_total", &[])
            .unwrap()
            > 0.0
    );
    assert!(
        st.metric("steward_redis_net_output_bytes_total", &[])
            .unwrap()
            > 0.0
    );
    assert_eq!(
        st.metric("steward_redis_role", &[("role", "master")]),
        Some(1.0)
    );
    assert_eq!(
        st.metric("steward_redis_role", &[("role", "replica")]),
        Some(0.0)
    );
    assert_eq!(
        st.metric("steward_redis_master_link_up", &[]),
        None,
        "a master has no link"
    );
    promtool_clean(&st.metrics());
}

/// Writes zeros to `path` until the filesystem is full.
fn fill_up(path: &std::path::Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
}

/// AOF on, in a small tmpfs someone else fills up: Redis cannot write the append-only file
/// (`aof_last_write_status:err`, ENOSPC), `steward_redis_aof_last_write_success` goes 0 and
/// RedisPersistenceFailing fires, naming the AOF; once there is room Redis's own retry succeeds
/// and the alert resolves. A full disk stops root too (a read-only mode would not); mounting
/// the tmpfs needs root, which CI has (tests/run.sh), so the test is skipped otherwise.
#[test]
fn an_aof_write_that_fails_on_a_full_disk_fires_persistence_failing_until_there_is_room() {
    let Some(disk) = Tmpfs::mount("1m") else {
        return;
    };
    let redis = Redis::start_aof_in(disk.path());
    let pg = Postgres::start();
    let st = Steward::start(&pg, &redis);
    wait_metric(&st, "steward_redis_aof_enabled", &[], "AOF on", |v| {
        v == 1.0
    });
    assert_eq!(
        st.metric("steward_redis_aof_last_write_success", &[]),
        Some(1.0)
    );
    assert!(
        disk.path().join("appendonlydir").is_dir(),
        "the AOF is not on the small disk"
    );

    let ballast = disk.path().join("ballast");
    fill_up(&ballast);
    // More than the page the AOF's last one may still have free; refused (MISCONF) when one of
    // steward's own probe writes failed first.
    let mut admin = RawConn::open(&redis).unwrap();
    let _ = admin.request(&["SET", "big", &"x".repeat(64 * 1024)]);
    wait_until(WAIT, "Redis to report a failed AOF write", || {
        redis.info_field("aof_last_write_status").as_deref() == Some("err")
    });
    wait_metric(
        &st,
        "steward_redis_aof_last_write_success",
        &[],
        "the failed AOF write",
        |v| v == 0.0,
    );
    wait_transition(&st, "RedisPersistenceFailing", "firing");
    let reply: steward::alerts::AlertsReply = st.ctl(&["alerts"]).data();
    let alert = reply
        .alerts
        .iter()
        .find(|a| a.alert == "RedisPersistenceFailing")
        .expect("RedisPersistenceFailing is listed");
    assert!(
        alert.description.contains("append-only file"),
        "the AOF is named: {alert:?}"
    );
    assert_eq!(
        st.metric("steward_redis_rdb_last_bgsave_success", &[]),
        Some(1.0),
        "the RDB side is fine: the AOF alone fired it"
    );

    std::fs::remove_file(&ballast).unwrap();
    wait_metric(
        &st,
        "steward_redis_aof_last_write_success",
        &[],
        "an AOF write that succeeds again",
        |v| v == 1.0,
    );
    wait_transition(&st, "RedisPersistenceFailing", "resolved");
}

/// A master with a replica: roles, connected replicas and lag (made by stopping the replica
/// while the master takes writes); the replica's link goes down when the master dies.
#[test]
fn replica_role_lag_and_link() {
    let pg = Postgres::start();
    let mut master = Redis::start();
    let replica = Redis::start_replica_of(&master);
    let on_master = Steward::start(&pg, &master);
    let on_replica = Steward::builder(&pg, &replica)
        .with(|s| s.pg_extra = "write_read_test = false\n".into())
        .with(|s| s.redis_extra = "write_read_test = false\n".into())
        .with(|s| s.backup += "\n[alerts.redis_replica_link_down]\nfor = \"0s\"\n")
        .start();
    wait_metric(
        &on_master,
        "steward_redis_connected_replicas",
        &[],
        "one replica",
        |v| v == 1.0,
    );
    assert_eq!(
        on_master.metric("steward_redis_role", &[("role", "master")]),
        Some(1.0)
    );
    let name = format!("127.0.0.1:{}", replica.port);
    let lag = [("replica", name.as_str())];
    wait_metric(
        &on_master,
        "steward_redis_replica_lag_bytes",
        &lag,
        "the replica's lag",
        |_| true,
    );
    wait_metric(
        &on_replica,
        "steward_redis_role",
        &[("role", "replica")],
        "replica role",
        |v| v == 1.0,
    );
    assert_eq!(
        on_replica.metric("steward_redis_role", &[("role", "master")]),
        Some(0.0)
    );
    wait_metric(
        &on_replica,
        "steward_redis_master_link_up",
        &[],
        "the link up",
        |v| v == 1.0,
    );

    // A stopped replica acknowledges nothing: the master's writes put it behind.
    send_signal(replica.pid(), libc::SIGSTOP);
    let mut admin = RawConn::open(&master).unwrap();
    let value = "x".repeat(1000);
    for i in 0..100 {
        admin
            .request(&["SET", &format!("lag:{i}"), &value])
            .unwrap();
    }
    wait_metric(
        &on_master,
        "steward_redis_replica_lag_bytes",
        &lag,
        "lag over 100 kB",
        |v| v >= 100_000.0,
    );
    send_signal(replica.pid(), libc::SIGCONT);
    wait_metric(
        &on_master,
        "steward_redis_replica_lag_bytes",
        &lag,
        "the replica to catch up",
        |v| v < 100_000.0,
    );

    master.kill();
    wait_metric(
        &on_replica,
        "steward_redis_master_link_up",
        &[],
        "the link down",
        |v| v == 0.0,
    );
    wait_transition(&on_replica, "RedisReplicaLinkDown", "firing");
    promtool_clean(&on_replica.metrics());
}

/// Rounds of 65 GETs of existing keys and 35 of missing ones, each in one MULTI/EXEC (so a
/// check sees whole rounds), until `stop`; returns the rounds sent.
fn app_traffic(redis: &Redis, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let mut conn = RawConn::open(redis).unwrap();
    std::thread::spawn(move || {
        let mut round = vec![cmd(&["MULTI"])];
        round.extend((0..65).map(|i| cmd(&["GET", &format!("app:hit:{i}")])));
        round.extend((0..35).map(|i| cmd(&["GET", &format!("app:miss:{i}")])));
        round.push(cmd(&["EXEC"]));
        let mut rounds = 0;
        while !stop.load(Ordering::Relaxed) {
            conn.send(&round).unwrap();
            for _ in 0..round.len() {
                conn.reply().unwrap();
            }
            rounds += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
        rounds
    })
}

/// Per check, the hit ratio steward reports and how many lookups it made itself in that interval.
fn ratios(st: &Steward, checks: usize) -> Vec<(f64, f64)> {
    let own = |st: &Steward| {
        st.metric("steward_redis_own_lookups_total", &[("result", "hit")])
            .unwrap_or(0.0)
    };
    let mut out = Vec::new();
    let mut prev_own = own(st);
    for _ in 0..checks {
        st.wait_checks("redis", 1);
        let ratio = st.metric("steward_redis_cache_hit_ratio", &[]).unwrap();
        let now = own(st);
        out.push((ratio, now - prev_own));
        prev_own = now;
    }
    out
}

/// The application's hit ratio is what steward reports, whether the statistics scan (20 000
/// `PTTL`s a pass, each a keyspace hit to Redis) is running or paused.
#[test]
fn hit_ratio_is_the_applications_with_and_without_a_scan() {
    let pg = Postgres::start();
    let redis = Redis::start();
    redis.fill("app:hit:", 65);
    redis.fill("cache:big:", 20_000);
    let st = Steward::builder(&pg, &redis)
        .with(|s| {
            s.backup += "\n[cache]\npipeline_batch = 200\nscan_budget = \"500ms\"\n\n\
                         [[cache.namespace]]\nname = \"big\"\nprefix = \"cache:big:\"\nttl = \"1h\"\n";
        })
        .start();
    st.wait_checks("redis", 2);
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = app_traffic(&redis, stop.clone());
    let (h0, m0) = (
        st.metric("steward_redis_keyspace_hits_total", &[]).unwrap(),
        st.metric("steward_redis_keyspace_misses_total", &[])
            .unwrap(),
    );
    st.wait_checks("redis", 1);
    let scanning = ratios(&st, 6);
    let (h1, m1) = (
        st.metric("steward_redis_keyspace_hits_total", &[]).unwrap(),
        st.metric("steward_redis_keyspace_misses_total", &[])
            .unwrap(),
    );
    assert!(st.ctl(&["task", "pause", "cache.stats"]).reply().ok);
    st.wait_checks("redis", 2);
    let paused = ratios(&st, 4);
    stop.store(true, Ordering::Relaxed);
    let rounds = traffic.join().unwrap();
    eprintln!("{rounds} rounds; scanning {scanning:?}; paused {paused:?}");
    let counted = (h1 - h0) / (h1 - h0 + m1 - m0);
    assert!((counted - 0.65).abs() <= 0.01, "counters say {counted}");
    assert!(
        scanning.iter().filter(|(_, own)| *own > 1000.0).count() >= 3,
        "the scan did not run during the measurement: {scanning:?}"
    );
    for (ratio, _) in scanning.iter().chain(&paused) {
        assert!(
            (ratio - 0.65).abs() <= 0.01,
            "hit ratio {ratio}: {scanning:?} {paused:?}"
        );
    }
    // Paused: only the write/read test's GET (one per check) is steward's.
    assert!(paused.iter().all(|(_, own)| *own <= 2.0), "{paused:?}");
}
