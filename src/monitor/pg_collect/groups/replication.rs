//! The `replication` group: on a primary, each replica's lag (`pg_stat_replication`); on a
//! standby, how far replay trails what it received; on both, the replication slots and the WAL
//! each holds back. Replica and slot labels are bounded: at most [`MAX_SERIES`] per family.

use crate::metrics::families::{Family, Kind, Output};
use crate::model::pg_facts::{PgFacts, ReplicationFacts};
use crate::monitor::pg_collect::group::{Every, Spec};
use std::collections::BTreeMap;
use tokio_postgres::Client;

static LAG_SECONDS: Family = Family {
    name: "steward_postgres_replication_lag_seconds",
    help: "On a primary, each replica's write/flush/replay lag (pg_stat_replication; 0 when it has caught up and is idle).",
    kind: Kind::Gauge,
    labels: &["replica", "kind"],
};
static LAG_BYTES: Family = Family {
    name: "steward_postgres_replication_lag_bytes",
    help: "On a primary, WAL each replica has not replayed yet: pg_current_wal_lsn() - replay_lsn.",
    kind: Kind::Gauge,
    labels: &["replica"],
};
static REPLICAS: Family = Family {
    name: "steward_postgres_replicas",
    help: "Replicas streaming from this server (pg_stat_replication, base backups left out).",
    kind: Kind::Gauge,
    labels: &[],
};
static SLOT_ACTIVE: Family = Family {
    name: "steward_postgres_replication_slot_active",
    help: "1 while a consumer is connected to the replication slot, else 0.",
    kind: Kind::Gauge,
    labels: &["slot"],
};
static SLOT_RETAINED: Family = Family {
    name: "steward_postgres_replication_slot_retained_bytes",
    help: "WAL the replication slot keeps on disk: current WAL position - restart_lsn.",
    kind: Kind::Gauge,
    labels: &["slot"],
};
static REPLAY_DELAY: Family = Family {
    name: "steward_postgres_standby_replay_delay_seconds",
    help: "On a standby, now() - pg_last_xact_replay_timestamp(); 0 when it has replayed all it received.",
    kind: Kind::Gauge,
    labels: &[],
};
static STANDBY_LAG: Family = Family {
    name: "steward_postgres_standby_lag_bytes",
    help: "On a standby, WAL received but not replayed yet.",
    kind: Kind::Gauge,
    labels: &[],
};

/// Cheap views over shared memory: every check.
pub static SPEC: Spec = Spec {
    name: "replication",
    every: Every::Check,
    min_version: 130000,
    below_version: None,
    families: &[
        &LAG_SECONDS,
        &LAG_BYTES,
        &REPLICAS,
        &SLOT_ACTIVE,
        &SLOT_RETAINED,
        &REPLAY_DELAY,
        &STANDBY_LAG,
    ],
};

/// Most series a family has per label (replicas, slots); the rest are folded into `other`.
pub const MAX_SERIES: usize = 32;
/// The label value the replicas and slots beyond [`MAX_SERIES`] are folded into.
pub const OTHER: &str = "other";

/// A NULL lag with a known `replay_lsn` means caught up and idle (PostgreSQL stops reporting
/// lag then): 0. Without `replay_lsn` (just connected, or a role that may not see it) the lag
/// is unknown and the row gives no lag series.
const REPLICAS_QUERY: &str = "
SELECT coalesce(application_name, ''),
       replay_lsn IS NOT NULL,
       coalesce(extract(epoch FROM write_lag), 0)::float8,
       coalesce(extract(epoch FROM flush_lag), 0)::float8,
       coalesce(extract(epoch FROM replay_lag), 0)::float8,
       greatest(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::float8
  FROM pg_stat_replication
 WHERE state IS DISTINCT FROM 'backup'";

const STANDBY_QUERY: &str = "
SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8,
       greatest(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)::float8";

/// Slots measured against the primary's WAL position.
const SLOTS_PRIMARY: &str = "
SELECT slot_name::text, active,
       greatest(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::float8
  FROM pg_replication_slots";

/// A standby has no current WAL position (pg_current_wal_lsn() fails in recovery): slots
/// there are measured against what it received (or replayed, when not streaming).
const SLOTS_STANDBY: &str = "
SELECT slot_name::text, active,
       greatest(pg_wal_lsn_diff(coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()),
                                restart_lsn), 0)::float8
  FROM pg_replication_slots";

/// The slot query for a primary or a standby.
pub fn slots_query(in_recovery: bool) -> &'static str {
    if in_recovery {
        SLOTS_STANDBY
    } else {
        SLOTS_PRIMARY
    }
}

/// One replica's figures, as folded by name.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Lag {
    write: f64,
    flush: f64,
    replay: f64,
    bytes: f64,
}

impl Lag {
    fn worst(self, o: Lag) -> Lag {
        Lag {
            write: self.write.max(o.write),
            flush: self.flush.max(o.flush),
            replay: self.replay.max(o.replay),
            bytes: self.bytes.max(o.bytes),
        }
    }
}

/// One slot's figures, as folded by name: active only if every folded slot is, the most WAL
/// any of them retains.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Slot {
    active: bool,
    retained: Option<f64>,
}

impl Slot {
    fn worst(self, o: Slot) -> Slot {
        let retained = match (self.retained, o.retained) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Slot {
            active: self.active && o.active,
            retained,
        }
    }
}

/// Folds entries with one name together, keeps the first `MAX_SERIES - 1` names in
/// alphabetical order (stable across rounds, unlike an order by lag) and folds the rest into
/// [`OTHER`]. Folding takes the worst of each figure, never a sum: two replicas 1 s behind are
/// not 2 s behind, and the worst lag is never hidden.
fn bound<T: Copy>(items: Vec<(String, T)>, worst: fn(T, T) -> T) -> Vec<(String, T)> {
    let mut by_name: BTreeMap<String, T> = BTreeMap::new();
    for (name, v) in items {
        by_name
            .entry(name)
            .and_modify(|old| *old = worst(*old, v))
            .or_insert(v);
    }
    if by_name.len() <= MAX_SERIES {
        return by_name.into_iter().collect();
    }
    let mut kept: Vec<(String, T)> = Vec::with_capacity(MAX_SERIES);
    let mut other: Option<T> = None;
    for (i, (name, v)) in by_name.into_iter().enumerate() {
        if i < MAX_SERIES - 1 {
            kept.push((name, v));
        } else {
            other = Some(other.map_or(v, |o| worst(o, v)));
        }
    }
    if let Some(o) = other {
        kept.push((OTHER.to_string(), o));
    }
    kept
}

/// Runs the group once.
pub async fn collect(
    client: &Client,
    _version_num: i32,
    out: &mut Output,
    facts: &mut PgFacts,
) -> Result<(), tokio_postgres::Error> {
    let in_recovery: bool = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await?
        .get(0);
    let mut f = ReplicationFacts {
        in_recovery,
        ..ReplicationFacts::default()
    };
    if in_recovery {
        let row = client.query_one(STANDBY_QUERY, &[]).await?;
        f.standby_replay_delay_seconds = row.get::<_, Option<f64>>(0).map(|d| d.max(0.0));
        f.standby_lag_bytes = row.get(1);
        if let Some(d) = f.standby_replay_delay_seconds {
            out.single(&REPLAY_DELAY, d);
        }
        if let Some(b) = f.standby_lag_bytes {
            out.single(&STANDBY_LAG, b);
        }
        out.single(&REPLICAS, 0.0);
    } else {
        primary(client, out, &mut f).await?;
    }
    slots(client, in_recovery, out, &mut f).await?;
    facts.replication = Some(f);
    Ok(())
}

async fn primary(
    client: &Client,
    out: &mut Output,
    f: &mut ReplicationFacts,
) -> Result<(), tokio_postgres::Error> {
    let rows = client.query(REPLICAS_QUERY, &[]).await?;
    f.replicas = rows.len() as u32;
    out.single(&REPLICAS, f64::from(f.replicas));
    let lags: Vec<(String, Lag)> = rows
        .iter()
        .filter(|r| r.get::<_, bool>(1))
        .map(|r| {
            let lag = Lag {
                write: r.get(2),
                flush: r.get(3),
                replay: r.get(4),
                bytes: r.get::<_, Option<f64>>(5).unwrap_or(0.0),
            };
            (r.get(0), lag)
        })
        .collect();
    for (name, lag) in bound(lags, Lag::worst) {
        for (kind, v) in [
            ("write", lag.write),
            ("flush", lag.flush),
            ("replay", lag.replay),
        ] {
            out.push(&LAG_SECONDS, &[&name, kind], v);
        }
        out.push(&LAG_BYTES, &[&name], lag.bytes);
        if f.max_lag_seconds
            .as_ref()
            .is_none_or(|(_, s)| lag.replay > *s)
        {
            f.max_lag_seconds = Some((name.clone(), lag.replay));
        }
        if f.max_lag_bytes.as_ref().is_none_or(|(_, b)| lag.bytes > *b) {
            f.max_lag_bytes = Some((name, lag.bytes));
        }
    }
    Ok(())
}

async fn slots(
    client: &Client,
    in_recovery: bool,
    out: &mut Output,
    f: &mut ReplicationFacts,
) -> Result<(), tokio_postgres::Error> {
    let rows = client.query(slots_query(in_recovery), &[]).await?;
    let all: Vec<(String, Slot)> = rows
        .iter()
        .map(|r| {
            let slot = Slot {
                active: r.get(1),
                retained: r.get(2),
            };
            (r.get(0), slot)
        })
        .collect();
    for (name, slot) in bound(all, Slot::worst) {
        out.push(&SLOT_ACTIVE, &[&name], if slot.active { 1.0 } else { 0.0 });
        if let Some(bytes) = slot.retained {
            out.push(&SLOT_RETAINED, &[&name], bytes);
            if !slot.active {
                f.inactive_slots.push((name, bytes));
            }
        }
    }
    f.inactive_slots.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag(replay: f64, bytes: f64) -> Lag {
        Lag {
            write: replay / 2.0,
            flush: replay / 2.0,
            replay,
            bytes,
        }
    }

    #[test]
    fn a_few_replicas_keep_their_names_and_one_name_shows_its_worst() {
        let out = bound(
            vec![
                ("b".into(), lag(1.0, 10.0)),
                ("a".into(), lag(3.0, 5.0)),
                ("b".into(), lag(2.0, 7.0)),
            ],
            Lag::worst,
        );
        assert_eq!(
            out,
            vec![("a".into(), lag(3.0, 5.0)), ("b".into(), lag(2.0, 10.0))]
        );
    }

    #[test]
    fn beyond_the_bound_the_rest_is_folded_into_other_with_its_worst_figures() {
        let many: Vec<(String, Lag)> = (0..40)
            .map(|i| (format!("r{i:02}"), lag(f64::from(i), f64::from(100 - i))))
            .collect();
        let out = bound(many, Lag::worst);
        assert_eq!(out.len(), MAX_SERIES);
        assert_eq!(out[0].0, "r00");
        assert_eq!(out[MAX_SERIES - 2].0, "r30");
        let (name, other) = &out[MAX_SERIES - 1];
        assert_eq!(name, OTHER);
        // r31..r39: the largest replay lag is r39's, the largest byte lag r31's.
        assert_eq!(other.replay, 39.0);
        assert_eq!(other.bytes, 69.0);
        let exactly: Vec<(String, Lag)> = (0..MAX_SERIES)
            .map(|i| (format!("r{i:02}"), lag(1.0, 1.0)))
            .collect();
        assert!(bound(exactly, Lag::worst).iter().all(|(n, _)| n != OTHER));
    }

    #[test]
    fn folded_slots_are_active_only_if_all_are_and_keep_the_most_wal() {
        let s = |active, retained| Slot { active, retained };
        assert_eq!(
            s(true, Some(5.0)).worst(s(false, Some(9.0))),
            s(false, Some(9.0))
        );
        assert_eq!(s(true, None).worst(s(true, Some(3.0))), s(true, Some(3.0)));
    }

    #[test]
    fn a_standby_measures_slots_without_pg_current_wal_lsn() {
        assert!(slots_query(false).contains("pg_current_wal_lsn()"));
        assert!(!slots_query(true).contains("pg_current_wal_lsn()"));
        assert!(slots_query(true).contains("pg_last_wal_receive_lsn()"));
    }
}
