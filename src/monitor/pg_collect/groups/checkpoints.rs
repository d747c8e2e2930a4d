//! The `checkpoints` group: checkpoints and who writes dirty buffers (`pg_stat_bgwriter` up to
//! 16, `pg_stat_checkpointer` and `pg_stat_io` from 17), and the WAL archiver.

use crate::metrics::families::{Family, Kind, Output};
use crate::model::pg_facts::{ArchiverFacts, PgFacts};
use crate::monitor::pg_collect::group::{Every, Spec};
use tokio_postgres::Client;

static TIMED: Family = Family {
    name: "steward_postgres_checkpoints_timed_total",
    help: "Checkpoints started because checkpoint_timeout elapsed.",
    kind: Kind::Counter,
    labels: &[],
};
static REQUESTED: Family = Family {
    name: "steward_postgres_checkpoints_requested_total",
    help: "Checkpoints requested (max_wal_size reached, CHECKPOINT, shutdown, base backup).",
    kind: Kind::Counter,
    labels: &[],
};
static BUFFERS: Family = Family {
    name: "steward_postgres_buffers_written_total",
    help: "Shared buffers written, by who wrote them (checkpointer, bgwriter, backend).",
    kind: Kind::Counter,
    labels: &["by"],
};
static WRITE_TIME: Family = Family {
    name: "steward_postgres_checkpoint_write_seconds_total",
    help: "Time checkpoints spent writing files to disk.",
    kind: Kind::Counter,
    labels: &[],
};
static SYNC_TIME: Family = Family {
    name: "steward_postgres_checkpoint_sync_seconds_total",
    help: "Time checkpoints spent syncing files to disk.",
    kind: Kind::Counter,
    labels: &[],
};
static ARCHIVED: Family = Family {
    name: "steward_postgres_archived_total",
    help: "WAL files archived by archive_command / archive_library (pg_stat_archiver).",
    kind: Kind::Counter,
    labels: &[],
};
static ARCHIVE_FAILED: Family = Family {
    name: "steward_postgres_archive_failed_total",
    help: "Failed attempts to archive a WAL file (pg_stat_archiver).",
    kind: Kind::Counter,
    labels: &[],
};
static ARCHIVE_FAILURE_AGE: Family = Family {
    name: "steward_postgres_archive_last_failure_age_seconds",
    help: "Seconds since the last failed archive attempt; absent when none failed since the statistics were reset.",
    kind: Kind::Gauge,
    labels: &[],
};

/// Counters over shared views: cheap, every check.
pub static SPEC: Spec = Spec {
    name: "checkpoints",
    every: Every::Check,
    min_version: 130000,
    below_version: None,
    families: &[
        &TIMED,
        &REQUESTED,
        &BUFFERS,
        &WRITE_TIME,
        &SYNC_TIME,
        &ARCHIVED,
        &ARCHIVE_FAILED,
        &ARCHIVE_FAILURE_AGE,
    ],
};

/// Up to 16 every figure is in `pg_stat_bgwriter`; times are in milliseconds.
const BGWRITER_13: &str = "
SELECT checkpoints_timed::float8, checkpoints_req::float8,
       buffers_checkpoint::float8, buffers_clean::float8, buffers_backend::float8,
       checkpoint_write_time / 1000.0, checkpoint_sync_time / 1000.0
  FROM pg_stat_bgwriter";

/// 17 moved the checkpoint figures to `pg_stat_checkpointer` and dropped `buffers_backend`:
/// its equivalent is the shared-buffer writes `pg_stat_io` counts for every process but the
/// checkpointer and the background writer.
const CHECKPOINTER_17: &str = "
SELECT c.num_timed::float8, c.num_requested::float8,
       c.buffers_written::float8, b.buffers_clean::float8,
       (SELECT sum(writes) FROM pg_stat_io
         WHERE object = 'relation'
           AND backend_type NOT IN ('checkpointer', 'background writer'))::float8,
       c.write_time / 1000.0, c.sync_time / 1000.0
  FROM pg_stat_checkpointer c, pg_stat_bgwriter b";

const ARCHIVER: &str = "
SELECT archived_count, failed_count,
       extract(epoch FROM last_archived_time)::float8,
       extract(epoch FROM last_failed_time)::float8,
       extract(epoch FROM now() - last_failed_time)::float8
  FROM pg_stat_archiver";

/// The checkpoint query for a server version.
pub fn checkpoint_query(version_num: i32) -> &'static str {
    if version_num >= 170000 {
        CHECKPOINTER_17
    } else {
        BGWRITER_13
    }
}

/// Runs the group once.
pub async fn collect(
    client: &Client,
    version_num: i32,
    out: &mut Output,
    facts: &mut PgFacts,
) -> Result<(), tokio_postgres::Error> {
    let row = client.query_one(checkpoint_query(version_num), &[]).await?;
    let f = |i: usize| row.get::<_, Option<f64>>(i);
    out.single(&TIMED, f(0).unwrap_or(0.0));
    out.single(&REQUESTED, f(1).unwrap_or(0.0));
    for (by, i) in [("checkpointer", 2), ("bgwriter", 3), ("backend", 4)] {
        out.push(&BUFFERS, &[by], f(i).unwrap_or(0.0));
    }
    out.single(&WRITE_TIME, f(5).unwrap_or(0.0));
    out.single(&SYNC_TIME, f(6).unwrap_or(0.0));

    let row = client.query_one(ARCHIVER, &[]).await?;
    let a = ArchiverFacts {
        archived_count: row.get(0),
        failed_count: row.get(1),
        last_archived_time: row.get(2),
        last_failed_time: row.get(3),
    };
    out.single(&ARCHIVED, a.archived_count as f64);
    out.single(&ARCHIVE_FAILED, a.failed_count as f64);
    if let Some(age) = row.get::<_, Option<f64>>(4) {
        out.single(&ARCHIVE_FAILURE_AGE, age.max(0.0));
    }
    facts.archiver = Some(a);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seventeen_reads_the_checkpointer_view_and_older_servers_the_bgwriter() {
        for v in [130000, 140011, 150020, 160004] {
            assert!(checkpoint_query(v).contains("FROM pg_stat_bgwriter"), "{v}");
            assert!(!checkpoint_query(v).contains("pg_stat_checkpointer"), "{v}");
        }
        for v in [170000, 170002, 180000] {
            let q = checkpoint_query(v);
            assert!(
                q.contains("pg_stat_checkpointer") && q.contains("pg_stat_io"),
                "{v}"
            );
            assert!(!q.contains("buffers_backend"), "{v}");
        }
    }
}
