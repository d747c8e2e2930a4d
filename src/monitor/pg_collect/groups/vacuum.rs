//! The `vacuum` group: transaction ID age and wraparound of every database, dead tuples of the
//! monitored database and its ten tables with the most, and when autovacuum last saw those.

use crate::metrics::families::{Family, Kind, Output};
use crate::model::pg_facts::{PgFacts, VacuumFacts};
use crate::monitor::pg_collect::group::{Every, Spec};
use tokio_postgres::Client;

static XID_AGE: Family = Family {
    name: "steward_postgres_xid_age",
    help: "Age of the database's datfrozenxid, in transactions.",
    kind: Kind::Gauge,
    labels: &["database"],
};
static WRAPAROUND: Family = Family {
    name: "steward_postgres_xid_wraparound_ratio",
    help: "age(datfrozenxid) / 2^31: 1 is transaction ID wraparound (the server stops assigning IDs before).",
    kind: Kind::Gauge,
    labels: &["database"],
};
static DEAD: Family = Family {
    name: "steward_postgres_dead_tuples",
    help: "Dead tuples in the user tables of the monitored database (pg_stat_user_tables).",
    kind: Kind::Gauge,
    labels: &["database"],
};
static TABLE_DEAD: Family = Family {
    name: "steward_postgres_table_dead_tuples",
    help: "Dead tuples of the monitored database's tables with the most (at most 10).",
    kind: Kind::Gauge,
    labels: &["database", "table"],
};
static TABLE_AUTOVACUUM_AGE: Family = Family {
    name: "steward_postgres_table_last_autovacuum_age_seconds",
    help: "Seconds since autovacuum last vacuumed the table (same tables as steward_postgres_table_dead_tuples); absent when it never did since the statistics were reset.",
    kind: Kind::Gauge,
    labels: &["database", "table"],
};

/// Per-table statistics: every five minutes is enough for figures that move this slowly.
pub static SPEC: Spec = Spec {
    name: "vacuum",
    every: Every::Period(std::time::Duration::from_secs(300)),
    min_version: 130000,
    below_version: None,
    families: &[
        &XID_AGE,
        &WRAPAROUND,
        &DEAD,
        &TABLE_DEAD,
        &TABLE_AUTOVACUUM_AGE,
    ],
};

/// The transaction ID space wraps around at 2^31 transactions of age.
const WRAP: f64 = 2_147_483_648.0;

/// Tables listed by name.
const TOP_TABLES: i64 = 10;

/// From the shared catalog: every database without connecting to each.
const XID: &str = "SELECT datname::text, age(datfrozenxid)::int8 FROM pg_database ORDER BY 1";

const DEAD_SUM: &str = "
SELECT current_database()::text, coalesce(sum(n_dead_tup), 0)::float8 FROM pg_stat_user_tables";

const TOP: &str = "
SELECT schemaname || '.' || relname, n_dead_tup::float8,
       extract(epoch FROM now() - last_autovacuum)::float8
  FROM pg_stat_user_tables
 WHERE n_dead_tup > 0
 ORDER BY n_dead_tup DESC, 1
 LIMIT $1";

/// Runs the group once.
pub async fn collect(
    client: &Client,
    _version_num: i32,
    out: &mut Output,
    facts: &mut PgFacts,
) -> Result<(), tokio_postgres::Error> {
    let mut oldest = VacuumFacts::default();
    for row in client.query(XID, &[]).await? {
        let (db, age): (String, i64) = (row.get(0), row.get(1));
        let ratio = age as f64 / WRAP;
        out.push(&XID_AGE, &[&db], age as f64);
        out.push(&WRAPAROUND, &[&db], ratio);
        if age > oldest.max_xid_age || oldest.oldest_database.is_empty() {
            oldest = VacuumFacts {
                oldest_database: db,
                max_xid_age: age,
                max_wraparound_ratio: ratio,
            };
        }
    }
    let row = client.query_one(DEAD_SUM, &[]).await?;
    let db: String = row.get(0);
    out.push(&DEAD, &[&db], row.get(1));
    for row in client.query(TOP, &[&TOP_TABLES]).await? {
        let table: String = row.get(0);
        out.push(&TABLE_DEAD, &[&db, &table], row.get(1));
        if let Some(age) = row.get::<_, Option<f64>>(2) {
            out.push(&TABLE_AUTOVACUUM_AGE, &[&db, &table], age.max(0.0));
        }
    }
    facts.vacuum = Some(oldest);
    Ok(())
}
