//! Several stewards on one host and one pair of servers (issue 16): each has its own name
//! (`[instance] name`, by default host name and metrics port), its own heartbeat row and probe
//! key, and sets or deletes only its own maintenance keys; an explicit name (file or
//! environment) is used, shown by `check-config`, validated, and followed on reload.

mod common;

use common::*;
use std::time::Duration;
use steward::maintenance::MaintenanceStatus;

const WAIT: Duration = Duration::from_secs(60);

/// The name a steward on this host with metrics on `port` has by default.
fn default_name(st: &Steward) -> String {
    steward::config::InstanceConfig::default().resolved(&steward::hostname(), st.metrics_port())
}

/// The heartbeat rows' `instance` values, sorted (none before the table is made).
fn heartbeat_rows(pg: &Postgres) -> Vec<String> {
    pg.try_psql(
        "SELECT instance FROM steward_heartbeat ORDER BY instance",
        PG_USER,
        PG_DB,
    )
    .unwrap_or_default()
    .lines()
    .map(str::to_string)
    .collect()
}

/// A Redis key's value as JSON, `None` while absent.
fn key(redis: &Redis, name: &str) -> Option<serde_json::Value> {
    let raw = redis.command(&["GET", name]).ok()?;
    if raw.is_empty() {
        return None;
    }
    Some(serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{name} is not JSON ({e}): {raw}")))
}

fn shared(redis: &Redis) -> Option<serde_json::Value> {
    key(redis, "steward:maintenance")
}

fn own(redis: &Redis, name: &str) -> Option<serde_json::Value> {
    key(redis, &format!("steward:maintenance:{name}"))
}

fn status(st: &Steward) -> MaintenanceStatus {
    st.ctl(&["maintenance", "status"]).data()
}

/// Waits until the instance's current state is what Redis holds.
fn wait_published(st: &Steward) {
    st.wait_until(WAIT, "the maintenance state to be published", |st| {
        status(st).redis.published
    });
}

/// `[instance] name = NAME` added to a steward's config.
fn named(name: &str) -> impl FnOnce(&mut Settings) + '_ {
    move |s| s.backup += &format!("\n[instance]\nname = \"{name}\"\n")
}

/// Two stewards with default names (they differ by metrics port) check the same servers side
/// by side: both write/read tests pass every time, each has its own heartbeat row.
#[test]
fn two_stewards_on_one_host_do_not_collide() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let a = Steward::start(&pg, &redis);
    let b = Steward::start(&pg, &redis);
    let (na, nb) = (default_name(&a), default_name(&b));
    assert_ne!(na, nb);
    for st in [&a, &b] {
        st.wait_checks("postgres", 5);
        st.wait_checks("redis", 5);
    }
    for st in [&a, &b] {
        for svc in ["postgres", "redis"] {
            assert_eq!(
                st.metric("steward_write_read_test_success", &[("service", svc)]),
                Some(1.0),
                "{svc}\n{}",
                tail(&st.log(), 30)
            );
        }
        // What reading back the other's token looked like (a slow first check on a busy
        // machine may time out: that is not a collision).
        for collision in ["read back", "GET returned"] {
            let lines = st.log_lines_with(collision);
            assert!(lines.is_empty(), "{lines:?}");
        }
    }
    let mut want = vec![format!("steward@{na}"), format!("steward@{nb}")];
    want.sort();
    assert_eq!(heartbeat_rows(&pg), want);
}

/// One steward's maintenance is never ended by another: not by one starting with maintenance
/// off, not by one turning its own on and off.
#[test]
fn one_stewards_maintenance_survives_another_turning_its_own_off() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let a = Steward::start(&pg, &redis);
    let na = default_name(&a);
    a.ctl(&["maintenance", "on", "--reason", "a's upgrade"]);
    a.wait_until(WAIT, "a's shared key", |_| shared(&redis).is_some());
    let k = shared(&redis).unwrap();
    assert_eq!(k["instance"], na.as_str(), "{k}");
    assert_eq!(k["reason"], "a's upgrade", "{k}");
    assert_eq!(own(&redis, &na), Some(k.clone()));

    // B starts with maintenance off and publishes that: A's key stays.
    let b = Steward::start(&pg, &redis);
    let nb = default_name(&b);
    wait_published(&b);
    assert_eq!(shared(&redis), Some(k.clone()), "b's start removed a's key");

    // B on: its own key is set, the shared one stays A's; B off: its own goes, A's stays.
    b.ctl(&["maintenance", "on", "--reason", "b's work"]);
    b.wait_until(WAIT, "b's own key", |_| own(&redis, &nb).is_some());
    assert_eq!(own(&redis, &nb).unwrap()["instance"], nb.as_str());
    wait_published(&b);
    assert_eq!(shared(&redis), Some(k.clone()), "b's on overwrote a's key");
    b.ctl(&["maintenance", "off"]);
    b.wait_until(WAIT, "b's own key to go", |_| own(&redis, &nb).is_none());
    wait_published(&b);
    assert_eq!(shared(&redis), Some(k.clone()), "b's off removed a's key");
    // A restarts the publication at every good Redis check: still there after some.
    a.wait_checks("redis", 2);
    b.wait_checks("redis", 2);
    assert_eq!(shared(&redis), Some(k), "a's key is kept");

    // A off: the shared key goes; B on now takes it.
    a.ctl(&["maintenance", "off"]);
    a.wait_until(WAIT, "a's keys to go", |_| {
        shared(&redis).is_none() && own(&redis, &na).is_none()
    });
    b.ctl(&["maintenance", "on", "--reason", "b again"]);
    b.wait_until(WAIT, "b's shared key", |_| {
        shared(&redis).is_some_and(|k| k["instance"] == nb.as_str())
    });
}

/// A key an older steward wrote (no `instance` mark) is left alone, unless its period is one
/// of this instance's own (the same steward, upgraded in place): that one it ends.
#[test]
fn unmarked_keys_from_older_stewards() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let foreign =
        r#"{"reason":"other host's upgrade","since":1700000000.25,"until":null,"by":"operator"}"#;
    assert_eq!(
        redis
            .command(&["SET", "steward:maintenance", foreign])
            .unwrap(),
        "+OK"
    );
    let st = Steward::start(&pg, &redis);
    wait_published(&st);
    st.ctl(&["maintenance", "on"]);
    wait_published(&st);
    st.ctl(&["maintenance", "off"]);
    wait_published(&st);
    assert_eq!(
        redis.command(&["GET", "steward:maintenance"]).unwrap(),
        foreign,
        "a foreign unmarked key was touched"
    );
    drop(st);

    // The same steward before its upgrade: its state file holds the period the unmarked key
    // shows.
    let since = 1_700_000_100.5;
    let mine = format!(r#"{{"reason":"mine","since":{since},"until":null,"by":"operator"}}"#);
    redis
        .command(&["SET", "steward:maintenance", &mine])
        .unwrap();
    let builder = Steward::builder(&pg, &redis);
    let state = builder.settings.state_dir.clone();
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("maintenance.json"),
        format!(r#"{{"current":{mine},"history":[]}}"#),
    )
    .unwrap();
    let st = builder.start();
    let name = default_name(&st);
    st.wait_until(WAIT, "the key marked with this instance", |_| {
        shared(&redis).is_some_and(|k| k["instance"] == name.as_str() && k["since"] == since)
    });
    st.ctl(&["maintenance", "off"]);
    st.wait_until(WAIT, "its key to go", |_| shared(&redis).is_none());
}

/// An explicit name, from the file or the environment, is the heartbeat row's; `check-config`
/// shows it; a bad one is refused naming the key.
#[test]
fn explicit_name_from_file_or_environment() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder(&pg, &redis)
        .env("STEWARD_INSTANCE__NAME", "blue-1")
        .start();
    st.wait_until(WAIT, "the row steward@blue-1", |_| {
        heartbeat_rows(&pg).contains(&"steward@blue-1".to_string())
    });
    assert_eq!(heartbeat_rows(&pg), vec!["steward@blue-1".to_string()]);

    let config = st.config_path.to_string_lossy().into_owned();
    let env = [("STEWARD_INSTANCE__NAME".to_string(), "green:2".to_string())];
    let out = steward_cmd(&["check-config", "--config", &config], st.dir(), &env);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("[instance]\nname = \"green:2\""),
        "{}",
        out.stdout
    );
    let default = steward_cmd(&["check-config", "--config", &config], st.dir(), &[]);
    let want = format!("[instance]\nname = \"{}\"", default_name(&st));
    assert!(default.stdout.contains(&want), "{}", default.stdout);

    for bad in ["two words", "x'; DROP TABLE t; --", &"n".repeat(129)] {
        let env = [("STEWARD_INSTANCE__NAME".to_string(), bad.to_string())];
        let out = steward_cmd(&["check-config", "--config", &config], st.dir(), &env);
        assert_ne!(out.code, 0, "{bad:?} accepted: {out:?}");
        assert!(out.stderr.contains("`instance.name`"), "{}", out.stderr);
    }
}

/// A reload with a new name: the monitors write the new row (the old one stays: a row steward
/// cannot prove it still owns is not deleted), and the maintenance keys move to the new name.
#[test]
fn reload_renames() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::builder(&pg, &redis).with(named("blue")).start();
    st.wait_until(WAIT, "the row steward@blue", |_| {
        heartbeat_rows(&pg).contains(&"steward@blue".to_string())
    });
    st.ctl(&["maintenance", "on", "--reason", "renaming"]);
    st.wait_until(WAIT, "blue's keys", |_| {
        own(&redis, "blue").is_some() && shared(&redis).is_some()
    });

    let mut s = st.settings.clone();
    s.backup = s.backup.replace("name = \"blue\"", "name = \"green\"");
    st.write_config(&s.render());
    let out = st.ctl(&["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("instance"), "{}", out.stdout);
    st.wait_until(WAIT, "the row steward@green", |_| {
        heartbeat_rows(&pg).contains(&"steward@green".to_string())
    });
    assert!(
        heartbeat_rows(&pg).contains(&"steward@blue".to_string()),
        "the old row is left"
    );
    st.wait_until(WAIT, "the keys under the new name", |_| {
        own(&redis, "blue").is_none()
            && own(&redis, "green").is_some()
            && shared(&redis).is_some_and(|k| k["instance"] == "green")
    });
    st.ctl(&["maintenance", "off"]);
    st.wait_until(WAIT, "green's keys to go", |_| {
        own(&redis, "green").is_none() && shared(&redis).is_none()
    });
}
