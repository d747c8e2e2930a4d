//! Children get only what they need (issue 12, item 5): pg_dump, started by a daemon whose
//! environment holds `DATABASE_URL`, `REDIS_URL` (with the Redis password) and an unrelated
//! secret, sees none of them in `/proc/<pid>/environ` — only PATH, locale and time-zone
//! variables and the `PG*` connection variables steward sets itself.

mod common;

use common::faults::{
    add_big_table, backup_section, children_named, create_good, wait_backup_streaming,
};
use common::*;
use steward::backup::api::Started;

#[test]
fn pg_dump_gets_a_minimal_environment() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let other_secret = format!("tok-{}", random_hex(12));
    let st = Steward::builder(&pg, &redis)
        .with(|s| {
            s.pg_extra = "write_read_test = false\n".into();
            s.backup = backup_section(dir.path(), "");
        })
        .env("DATABASE_URL", &pg.url())
        .env("REDIS_URL", &redis.url())
        .env("APP_SECRET_TOKEN", &other_secret)
        .env("TZ", "UTC")
        .start();
    create_good(&st);
    add_big_table(&pg, 1_000_000);
    let _: Vec<Started> = st.ctl(&["backup", "create"]).data();
    wait_backup_streaming(&st);
    let dumps = children_named(st.pid(), "pg_dump");
    assert_eq!(
        dumps.len(),
        1,
        "expected pg_dump running (make the table bigger)"
    );
    let environ = std::fs::read(format!("/proc/{}/environ", dumps[0])).unwrap();
    let vars: Vec<String> = environ
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    let text = vars.join("\n");
    for secret in [&redis.password, &other_secret] {
        assert!(
            !text.contains(secret.as_str()),
            "a secret reached pg_dump:\n{text}"
        );
    }
    for v in &vars {
        let key = v.split('=').next().unwrap();
        let allowed = ["PATH", "TZ", "LANG", "LANGUAGE"].contains(&key)
            || key.starts_with("LC_")
            || key.starts_with("PG");
        assert!(allowed, "pg_dump got {key}:\n{text}");
    }
    assert!(vars.iter().any(|v| v == "TZ=UTC"), "{text}");
    assert!(vars.iter().any(|v| v.starts_with("PGPASSWORD=")), "{text}");
    assert!(!vars
        .iter()
        .any(|v| v.starts_with("DATABASE_URL=") || v.starts_with("REDIS_URL=")));
}
