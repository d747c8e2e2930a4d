//! Maintenance mode end to end, through the daemon and its client, against a real throwaway
//! PostgreSQL and Redis: `steward maintenance on|off|status`, the `steward_maintenance_mode`
//! gauge, the state surviving a restart, `--for` ending it by itself, the `steward:maintenance`
//! key in Redis (also re-published after Redis comes back), scheduled backups skipped or run,
//! and a forced restore holding maintenance on while it runs.

mod common;

use common::*;
use std::time::Duration;
use steward::backup::catalog::BackupMeta;
use steward::backup::BackupKind;
use steward::maintenance::{EndedBy, MaintenanceStatus, Origin};

/// Bound for one backup or restore of the small test databases.
const JOB: Duration = Duration::from_secs(60);
/// Bound for a change to reach the Redis key (a publish, or a retry after the next check).
const PUBLISH: Duration = Duration::from_secs(10);

fn status(st: &Steward) -> MaintenanceStatus {
    st.ctl(&["maintenance", "status"]).data()
}

fn mode(st: &Steward) -> Option<f64> {
    st.metric("steward_maintenance_mode", &[])
}

/// The `steward:maintenance` key as JSON, `None` while absent.
fn key(redis: &Redis) -> Option<serde_json::Value> {
    let raw = redis.command(&["GET", "steward:maintenance"]).ok()?;
    if raw.is_empty() {
        return None;
    }
    Some(serde_json::from_str(&raw).unwrap_or_else(|e| panic!("key is not JSON ({e}): {raw}")))
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// `[backup]` with a daily schedule (catch-up runs at once: there is no backup yet) and `tail`.
fn daily_schedule(st: &Steward, tail: &str) -> String {
    let mut s = st.settings.clone();
    s.backup = format!(
        "[backup]\ndir = {}\n\n[backup.schedule]\ndaily = \"0 2 * * *\"\nweekly = \"\"\n\n{tail}",
        toml_str(&st.dir().join("backups").to_string_lossy())
    );
    s.render()
}

fn backups(st: &Steward) -> Vec<BackupMeta> {
    st.ctl(&["backup", "list"]).data()
}

fn skipped(st: &Steward) -> f64 {
    st.metric(
        "steward_backup_skipped_total",
        &[("database", PG_DB), ("kind", "daily")],
    )
    .unwrap_or(0.0)
}

/// on / status / off through the client, with the gauge, the human output and the Redis key
/// following each step; bad arguments are refused with what to do.
#[test]
fn on_off_status_metric_and_redis_key() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);

    let s = status(&st);
    assert!(!s.on && s.current.is_none(), "{s:?}");
    assert_eq!(mode(&st), Some(0.0));
    st.wait_until(PUBLISH, "the off state to be published", |st| {
        status(st).redis.published
    });
    assert_eq!(key(&redis), None);

    let s: MaintenanceStatus = st
        .ctl(&["maintenance", "on", "--reason", "pg 16 upgrade"])
        .data();
    let m = s.current.clone().expect("on");
    assert!(s.on);
    assert_eq!(m.reason.as_deref(), Some("pg 16 upgrade"));
    assert_eq!(m.by, Origin::Operator);
    assert_eq!(m.until, None);
    assert_eq!(mode(&st), Some(1.0));

    st.wait_until(PUBLISH, "the steward:maintenance key to appear", |_| {
        key(&redis).is_some()
    });
    let k = key(&redis).unwrap();
    assert_eq!(k["reason"], "pg 16 upgrade", "{k}");
    assert_eq!(k["since"].as_f64(), Some(m.since), "{k}");
    assert!(k["until"].is_null(), "{k}");
    assert_eq!(
        redis.command(&["PTTL", "steward:maintenance"]).unwrap(),
        ":-1",
        "without --for the key does not expire"
    );
    assert!(status(&st).redis.published);

    let human = st.ctl_human(&["maintenance", "status"]);
    assert_eq!(human.code, 0, "{human:?}");
    assert!(
        human.stdout.contains("maintenance mode is ON") && human.stdout.contains("pg 16 upgrade"),
        "{}",
        human.stdout
    );

    let out = st.ctl(&["maintenance", "on", "--for", "0s"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.reply().error.unwrap().contains("--for"), "{out:?}");

    let s: MaintenanceStatus = st.ctl(&["maintenance", "off"]).data();
    assert!(!s.on, "{s:?}");
    assert_eq!(mode(&st), Some(0.0));
    st.wait_until(PUBLISH, "the key to be deleted", |_| key(&redis).is_none());
    let e = &s.history[0];
    assert_eq!(e.ended_by, EndedBy::Operator);
    assert_eq!(e.period.reason.as_deref(), Some("pg 16 upgrade"));
    let human = st.ctl_human(&["maintenance", "off"]);
    assert!(
        human.stdout.contains("maintenance mode is off"),
        "{human:?}"
    );
}

/// The mode is in the state dir: after SIGKILL and a new start it is still on with the same
/// reason and start; a `--for` period survives a restart too and then ends by itself, taking the
/// Redis key with it.
#[test]
fn survives_restart_and_ends_by_itself() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let mut st = Steward::start(&pg, &redis);

    let before = st
        .ctl(&["maintenance", "on", "--reason", "disk swap"])
        .data::<MaintenanceStatus>()
        .current
        .unwrap();
    st.start_again(); // SIGKILL, then a new daemon on the same config
    let after = status(&st).current.expect("still on after a restart");
    assert_eq!(after, before);
    assert_eq!(mode(&st), Some(1.0));

    let s: MaintenanceStatus = st
        .ctl(&["maintenance", "on", "--reason", "short", "--for", "8s"])
        .data();
    let m = s.current.unwrap();
    assert_eq!(m.since, before.since, "changing the period keeps its start");
    let until = m.until.expect("--for sets until");
    st.wait_until(PUBLISH, "the key to carry until", |_| {
        key(&redis).is_some_and(|k| k["until"].as_f64() == Some(until))
    });
    let pttl: i64 = redis.command(&["PTTL", "steward:maintenance"]).unwrap()[1..]
        .parse()
        .unwrap();
    assert!(
        pttl > 0 && pttl <= 8000,
        "the key expires with the period: {pttl}"
    );

    st.start_again();
    // Read back from the file: still on until the same time, or (on a slow machine, if the
    // restart took longer than the period) already ended by the new daemon at exactly `until`.
    let s = status(&st);
    let survived = match &s.current {
        Some(m) => m.until == Some(until),
        None => s.history[0].ended_at == until && s.history[0].ended_by == EndedBy::Expired,
    };
    assert!(survived, "a --for period survives a restart: {s:?}");
    st.wait_until(
        Duration::from_secs(8) + SLACK,
        "maintenance to end by itself",
        |st| mode(st) == Some(0.0),
    );
    let s = status(&st);
    assert!(!s.on, "{s:?}");
    assert_eq!(s.history[0].ended_by, EndedBy::Expired, "{s:?}");
    assert_eq!(s.history[0].ended_at, until);
    st.wait_until(PUBLISH, "the key to go", |_| key(&redis).is_none());
    st.start_again();
    assert!(
        !status(&st).on,
        "an ended period stays ended after a restart"
    );
}

/// Maintenance turned on while Redis is down: the status says the key is not published, and as
/// soon as Redis is back the key appears; a Redis restart (losing its data) while on gets the
/// key back too.
#[test]
fn redis_key_is_published_again_when_redis_comes_back() {
    let pg = Postgres::start();
    let mut redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    st.wait_up("redis", true, INTERVAL * 3 + SLACK);

    redis.kill();
    st.wait_up("redis", false, INTERVAL * 3 + SLACK);
    st.ctl(&["maintenance", "on", "--reason", "while redis was down"])
        .data::<MaintenanceStatus>();
    st.wait_until(PUBLISH, "the failed publish to be reported", |st| {
        let s = status(st);
        !s.redis.published && s.redis.error.is_some()
    });

    redis.restart();
    st.wait_until(
        PUBLISH,
        "the key to be published after Redis came back",
        |_| key(&redis).is_some_and(|k| k["reason"] == "while redis was down"),
    );
    st.wait_until(PUBLISH, "the status to show it published", |st| {
        let s = status(st);
        s.redis.published && s.redis.error.is_none()
    });

    // Redis restarts (between two checks, possibly) and comes back empty: the key is set again.
    redis.kill();
    redis.restart();
    st.wait_until(PUBLISH, "the key to be back after a Redis restart", |_| {
        key(&redis).is_some()
    });
}

/// With maintenance on, the catch-up backup a daily schedule starts is skipped: counted, logged,
/// no backup taken; when maintenance ends it runs.
#[test]
fn scheduled_backups_are_skipped_during_maintenance() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    st.ctl(&["maintenance", "on", "--reason", "migration"])
        .data::<MaintenanceStatus>();

    // The schedule arrives by reload: the scheduler restarts and its catch-up is due at once.
    st.write_config(&daily_schedule(&st, ""));
    assert_eq!(st.ctl(&["reload"]).code, 0);
    st.wait_until(JOB, "the catch-up backup to be skipped", |st| {
        skipped(st) == 1.0
    });
    assert!(
        !st.log_lines_with("scheduled backup skipped").is_empty(),
        "no log line for the skip"
    );
    assert!(backups(&st).is_empty(), "{:?}", backups(&st));
    // Still nothing a moment later (the skip is not a delay).
    assert!(!poll(Duration::from_secs(2), || !backups(&st).is_empty()));

    st.ctl(&["maintenance", "off"]).data::<MaintenanceStatus>();
    st.wait_until(
        JOB,
        "the held-back daily backup to run after maintenance",
        |st| {
            backups(st)
                .iter()
                .any(|m| m.kind == BackupKind::Daily && m.is_good())
        },
    );
    assert_eq!(skipped(&st), 1.0);
}

/// `[maintenance] run_backups = true`: the same catch-up backup runs during maintenance.
#[test]
fn run_backups_true_backs_up_during_maintenance() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    st.ctl(&["maintenance", "on"]).data::<MaintenanceStatus>();
    st.write_config(&daily_schedule(&st, "[maintenance]\nrun_backups = true\n"));
    assert_eq!(st.ctl(&["reload"]).code, 0);
    assert!(status(&st).run_backups);
    st.wait_until(JOB, "the daily backup to run during maintenance", |st| {
        backups(st)
            .iter()
            .any(|m| m.kind == BackupKind::Daily && m.is_good())
    });
    assert!(status(&st).on);
    assert_eq!(skipped(&st), 0.0);
}

/// `backup restore --force` over the existing database: maintenance is on (by the restore, with
/// its reason, also in Redis) while it runs and off again afterwards, recorded in the history;
/// when an operator had it on already, it stays on after the restore.
#[test]
fn forced_restore_holds_maintenance_on_while_it_runs() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.psql_as_postgres(&format!("ALTER ROLE {PG_USER} CREATEDB"));
    pg.psql(
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('x');",
        PG_USER,
        PG_DB,
    );
    let st = Steward::builder(&pg, &redis)
        .with(|s| s.pg_extra = "write_read_test = false\n".into())
        .start();
    let metas: Vec<BackupMeta> = st.ctl(&["backup", "create", "--wait"]).data();
    let id = metas[0].id.clone();
    let reason = format!("restore of {id} into {PG_DB}");

    let mut lock = TableLock::hold(&pg, "t");
    std::thread::scope(|scope| {
        let restore =
            scope.spawn(|| st.ctl(&["backup", "restore", &id, "--target-db", PG_DB, "--force"]));
        st.wait_until(JOB, "maintenance on while the restore runs", |st| {
            status(st)
                .current
                .is_some_and(|m| m.by == Origin::Restore && m.reason.as_deref() == Some(&reason))
        });
        assert_eq!(mode(&st), Some(1.0));
        st.wait_until(PUBLISH, "the key to name the restore", |_| {
            key(&redis).is_some_and(|k| k["reason"] == reason.as_str())
        });
        lock.release();
        let out = restore.join().unwrap();
        assert_eq!(out.code, 0, "restore failed: {out:?}");
    });
    st.wait_until(PUBLISH, "maintenance off after the restore", |st| {
        !status(st).on && mode(st) == Some(0.0)
    });
    st.wait_until(PUBLISH, "the key to go", |_| key(&redis).is_none());
    let s = status(&st);
    assert_eq!(s.history[0].ended_by, EndedBy::RestoreFinished, "{s:?}");
    assert_eq!(s.history[0].period.reason.as_deref(), Some(reason.as_str()));

    // Already on: the restore leaves it as the operator set it.
    st.ctl(&["maintenance", "on", "--reason", "ops"])
        .data::<MaintenanceStatus>();
    let out = st.ctl(&["backup", "restore", &id, "--target-db", PG_DB, "--force"]);
    assert_eq!(out.code, 0, "{out:?}");
    let m = status(&st).current.expect("still on after the restore");
    assert_eq!((m.by, m.reason.as_deref()), (Origin::Operator, Some("ops")));
}

/// `--for` is bounded to 30 days: a longer one, or a number too large to be a duration at all
/// (1.8e19 s was once taken and sent to Redis as a TTL), is refused with the option and the
/// bound named, and maintenance stays off; 30 days exactly is taken.
#[test]
fn for_is_bounded_to_thirty_days() {
    let st = Steward::builder_without_services().start();
    for arg in ["31d", "100000000d"] {
        let out = st.ctl(&["maintenance", "on", "--for", arg]);
        assert_eq!(out.code, 1, "{arg}: {out:?}");
        let e = out.reply().error.unwrap_or_default();
        assert!(
            e.contains("--for") && e.contains("at most 30 days"),
            "{arg}: {e}"
        );
    }
    for secs in ["2592001", "1.8e19", "1e300"] {
        let line = format!(r#"{{"cmd":"maintenance_on","for_seconds":{secs}}}"#);
        let r = st.raw_request(&line).unwrap();
        let e = r.error.unwrap_or_default();
        assert!(
            !r.ok && e.contains("for_seconds") && e.contains("30 days"),
            "{secs}: {e}"
        );
    }
    assert!(!status(&st).on, "nothing was turned on");
    assert_eq!(st.ctl(&["maintenance", "on", "--for", "30d"]).code, 0);
    let s = status(&st);
    let until = s.current.and_then(|m| m.until).unwrap();
    assert!(until - steward::unix_now() <= 30.0 * 86_400.0 + 1.0);
    assert_eq!(st.ctl(&["maintenance", "off"]).code, 0);
}
