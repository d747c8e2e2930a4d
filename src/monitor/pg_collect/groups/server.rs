//! The `server` group: when the server started and the settings other signals are read against.

use crate::metrics::families::{Family, Kind, Output};
use crate::model::pg_facts::{PgFacts, ServerFacts};
use crate::monitor::pg_collect::group::{Every, Spec};
use tokio_postgres::Client;

static START_TIME: Family = Family {
    name: "steward_postgres_start_time_seconds",
    help: "Unix time the server started (pg_postmaster_start_time()).",
    kind: Kind::Gauge,
    labels: &[],
};
static SETTING_SHARED_BUFFERS: Family = Family {
    name: "steward_postgres_setting_shared_buffers_bytes",
    help: "The server's shared_buffers setting, in bytes.",
    kind: Kind::Gauge,
    labels: &[],
};
static SETTING_WORK_MEM: Family = Family {
    name: "steward_postgres_setting_work_mem_bytes",
    help: "The server's work_mem setting, in bytes.",
    kind: Kind::Gauge,
    labels: &[],
};
static SETTING_FREEZE_MAX_AGE: Family = Family {
    name: "steward_postgres_setting_autovacuum_freeze_max_age",
    help: "The server's autovacuum_freeze_max_age setting, in transactions.",
    kind: Kind::Gauge,
    labels: &[],
};

/// Settings change only on a reload or restart of the server: every few minutes is plenty.
pub static SPEC: Spec = Spec {
    name: "server",
    every: Every::Period(std::time::Duration::from_secs(300)),
    min_version: 130000,
    below_version: None,
    families: &[
        &START_TIME,
        &SETTING_SHARED_BUFFERS,
        &SETTING_WORK_MEM,
        &SETTING_FREEZE_MAX_AGE,
    ],
};

/// `current_setting` shows sizes with their unit (`128MB`), which `pg_size_bytes` reads.
const QUERY: &str = "
SELECT extract(epoch FROM pg_postmaster_start_time())::float8,
       current_setting('max_connections')::int8,
       pg_size_bytes(current_setting('shared_buffers')),
       pg_size_bytes(current_setting('work_mem')),
       current_setting('autovacuum_freeze_max_age')::int8";

/// Runs the group once.
pub async fn collect(
    client: &Client,
    _version_num: i32,
    out: &mut Output,
    facts: &mut PgFacts,
) -> Result<(), tokio_postgres::Error> {
    let row = client.query_one(QUERY, &[]).await?;
    let start: f64 = row.get(0);
    let max_connections: i64 = row.get(1);
    let shared_buffers: i64 = row.get(2);
    let work_mem: i64 = row.get(3);
    let freeze_max_age: i64 = row.get(4);
    out.single(&START_TIME, start);
    // max_connections is steward_postgres_max_connections, from every check.
    out.single(&SETTING_SHARED_BUFFERS, shared_buffers as f64);
    out.single(&SETTING_WORK_MEM, work_mem as f64);
    out.single(&SETTING_FREEZE_MAX_AGE, freeze_max_age as f64);
    facts.server = Some(ServerFacts {
        start_time_seconds: start,
        max_connections,
        autovacuum_freeze_max_age: freeze_max_age,
    });
    Ok(())
}
