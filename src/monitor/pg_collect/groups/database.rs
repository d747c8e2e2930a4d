//! The `database` group: each database's activity counters from `pg_stat_database` and its
//! size. Template databases and those that refuse connections are left out.

use crate::metrics::families::{Family, Kind, Output};
use crate::model::pg_facts::{DatabaseFacts, PgFacts};
use crate::monitor::pg_collect::group::{Every, Spec};
use tokio_postgres::Client;

macro_rules! counters {
    ($($stat:ident: $name:literal, $help:literal;)*) => {
        $(#[allow(non_upper_case_globals)]
        static $stat: Family = Family {
            name: $name,
            help: $help,
            kind: Kind::Counter,
            labels: &["database"],
        };)*
        /// Each counter: its `pg_stat_database` column and its family, in query order.
        static COUNTERS: &[(&str, &Family)] = &[$((stringify!($stat), &$stat),)*];
    };
}

counters! {
    xact_commit: "steward_postgres_xact_commit_total", "Transactions committed in the database (pg_stat_database.xact_commit).";
    xact_rollback: "steward_postgres_xact_rollback_total", "Transactions rolled back in the database.";
    deadlocks: "steward_postgres_deadlocks_total", "Deadlocks detected in the database.";
    temp_files: "steward_postgres_temp_files_total", "Temporary files created by queries in the database.";
    temp_bytes: "steward_postgres_temp_bytes_total", "Bytes written to temporary files by queries in the database.";
    blks_hit: "steward_postgres_blks_hit_total", "Disk blocks found in shared buffers.";
    blks_read: "steward_postgres_blks_read_total", "Disk blocks read (not found in shared buffers).";
    conflicts: "steward_postgres_conflicts_total", "Queries cancelled by recovery conflicts (standbys only).";
    tup_returned: "steward_postgres_tup_returned_total", "Rows returned by sequential and index scans.";
    tup_fetched: "steward_postgres_tup_fetched_total", "Rows fetched by index scans.";
    tup_inserted: "steward_postgres_tup_inserted_total", "Rows inserted.";
    tup_updated: "steward_postgres_tup_updated_total", "Rows updated.";
    tup_deleted: "steward_postgres_tup_deleted_total", "Rows deleted.";
}

static SIZE: Family = Family {
    name: "steward_postgres_database_size_bytes",
    help: "Size of the database on disk (pg_database_size); absent for a database the role may \
           not CONNECT to without pg_monitor.",
    kind: Kind::Gauge,
    labels: &["database"],
};

static FAMILIES: [&Family; 14] = [
    &xact_commit,
    &xact_rollback,
    &deadlocks,
    &temp_files,
    &temp_bytes,
    &blks_hit,
    &blks_read,
    &conflicts,
    &tup_returned,
    &tup_fetched,
    &tup_inserted,
    &tup_updated,
    &tup_deleted,
    &SIZE,
];

/// Counters move with every transaction, but rate() needs only a few points a minute; the
/// size query stats each database's files, so not more often than this.
pub static SPEC: Spec = Spec {
    name: "database",
    every: Every::Period(std::time::Duration::from_secs(15)),
    min_version: 130000,
    below_version: None,
    families: &FAMILIES,
};

/// Databases shown, by name. Counters cannot be summed into an `other` series (a database
/// moving in or out of it would look like a counter reset), so the rest are skipped.
pub const MAX_DATABASES: i64 = 256;

/// Every column named here exists in `pg_stat_database` from 13 through 17. The size is read
/// only where it cannot fail: with CONNECT on the database or as a member of
/// `pg_read_all_stats`; a database dropped meanwhile gives NULL.
fn query() -> String {
    let cols: Vec<String> = COUNTERS
        .iter()
        .map(|(c, _)| format!("s.{c}::float8"))
        .collect();
    format!(
        "SELECT d.datname::text,
                CASE WHEN has_database_privilege(d.oid, 'CONNECT')
                       OR pg_has_role('pg_read_all_stats', 'MEMBER')
                     THEN pg_database_size(d.oid) END,
                count(*) OVER ()::int8,
                {}
         FROM pg_database d JOIN pg_stat_database s ON s.datid = d.oid
         WHERE d.datallowconn AND NOT d.datistemplate
         ORDER BY d.datname LIMIT {MAX_DATABASES}",
        cols.join(", ")
    )
}

/// Runs the group once.
pub async fn collect(
    client: &Client,
    _version_num: i32,
    out: &mut Output,
    facts: &mut PgFacts,
) -> Result<(), tokio_postgres::Error> {
    let rows = client.query(&query(), &[]).await?;
    let mut f = DatabaseFacts::default();
    for row in &rows {
        let db: String = row.get(0);
        if let Some(size) = row.get::<_, Option<i64>>(1) {
            out.push(&SIZE, &[&db], size as f64);
        }
        f.databases_total = row.get::<_, i64>(2) as usize;
        for (i, (col, fam)) in COUNTERS.iter().enumerate() {
            let v: f64 = row.get(3 + i);
            out.push(fam, &[&db], v);
            if *col == "deadlocks" {
                f.deadlocks.insert(db.clone(), v);
            }
        }
    }
    let skipped = f.databases_total.saturating_sub(rows.len());
    let before = facts.database.as_ref().map_or(0, |d| d.databases_total);
    if skipped > 0 && before <= MAX_DATABASES as usize {
        tracing::warn!(
            databases = f.databases_total,
            shown = rows.len(),
            "more databases than the database group shows: the first {MAX_DATABASES} by name are \
             exported, the rest skipped"
        );
    }
    facts.database = Some(f);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_reads_each_counter_and_names_follow_the_columns() {
        let q = query();
        for (col, fam) in COUNTERS {
            assert!(q.contains(&format!("s.{col}::float8")), "{col}");
            assert_eq!(fam.name, format!("steward_postgres_{col}_total"));
        }
        assert_eq!(COUNTERS.len() + 1, SPEC.families.len());
        assert!(q.contains("NOT d.datistemplate") && q.contains("LIMIT 256"));
    }
}
