//! The PostgreSQL collector groups against a real server: each group's families appear with
//! its health (`steward_postgres_collector_up{group}`, its duration), on steward's schedule.

mod common;

use common::*;
use std::time::Duration;

const COLLECT: Duration = Duration::from_secs(60);

#[test]
fn the_server_group_reports_start_time_and_settings_with_its_health() {
    let (pg, redis) = (Postgres::start(), Redis::start());
    let st = Steward::start(&pg, &redis);
    st.wait_until(COLLECT, "the server group to run", |st| {
        st.metric("steward_postgres_collector_up", &[("group", "server")]) == Some(1.0)
    });
    let start = st
        .metric("steward_postgres_start_time_seconds", &[])
        .expect("start time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(start > now - 3600.0 && start <= now, "{start} vs {now}");
    let shared = pg.psql_as_postgres("SELECT pg_size_bytes(current_setting('shared_buffers'))");
    assert_eq!(
        st.metric("steward_postgres_setting_shared_buffers_bytes", &[]),
        Some(shared.trim().parse::<f64>().unwrap())
    );
    assert_eq!(
        st.metric("steward_postgres_setting_autovacuum_freeze_max_age", &[]),
        Some(200_000_000.0)
    );
    assert!(st
        .metric(
            "steward_postgres_collector_duration_seconds",
            &[("group", "server")]
        )
        .is_some_and(|d| d >= 0.0));
}
