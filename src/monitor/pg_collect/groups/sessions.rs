//! The `sessions` group: client sessions by database and state, the oldest open transactions,
//! sessions blocked on locks and how long they have waited, and the lock table by mode.
//!
//! Only client backends count (no background workers, no walsenders), never steward's own
//! collector session. Without `pg_monitor` (`pg_read_all_stats`) PostgreSQL hides the state,
//! times and wait event of other roles' sessions: those are left out of the session counts and
//! ages, though `pg_blocking_pids` and `pg_locks` (public) still count them as blocked/locking.

use crate::metrics::families::{Family, Kind, Output};
use crate::model::pg_facts::{PgFacts, SessionFacts};
use crate::monitor::pg_collect::group::{Every, Spec};
use std::collections::BTreeMap;
use tokio_postgres::Client;

static SESSIONS: Family = Family {
    name: "steward_postgres_sessions",
    help: "Client sessions by database and state (fastpath function call counts as active, \
           disabled as idle); at most 64 databases by name, the rest summed as database=\"other\".",
    kind: Kind::Gauge,
    labels: &["database", "state"],
};
static XACT_MAX_AGE: Family = Family {
    name: "steward_postgres_transaction_max_age_seconds",
    help:
        "Age of the oldest open transaction (from xact_start) among active or idle-in-transaction \
           sessions; 0 when there is none.",
    kind: Kind::Gauge,
    labels: &["state"],
};
static BLOCKED: Family = Family {
    name: "steward_postgres_blocked_sessions",
    help: "Client sessions waiting for a lock another session holds (pg_blocking_pids).",
    kind: Kind::Gauge,
    labels: &[],
};
static LOCK_WAIT_MAX: Family = Family {
    name: "steward_postgres_lock_wait_max_seconds",
    help: "How long the longest current lock wait has lasted; 0 when no session waits.",
    kind: Kind::Gauge,
    labels: &[],
};
static LOCKS: Family = Family {
    name: "steward_postgres_locks",
    help: "Entries of pg_locks by lock mode (the eight table lock modes, the rest as \"other\") \
           and whether they are granted.",
    kind: Kind::Gauge,
    labels: &["mode", "granted"],
};

/// Cheap reads of shared memory: every check.
pub static SPEC: Spec = Spec {
    name: "sessions",
    every: Every::Check,
    min_version: 130000,
    below_version: None,
    families: &[&SESSIONS, &XACT_MAX_AGE, &BLOCKED, &LOCK_WAIT_MAX, &LOCKS],
};

/// Databases shown by name; the rest are summed as `other`.
pub const MAX_DATABASES: usize = 64;

/// The four states shown, with the `pg_stat_activity.state` values each one stands for.
const STATES: [(&str, &[&str]); 4] = [
    ("active", &["active", "fastpath function call"]),
    ("idle", &["idle", "disabled"]),
    ("idle_in_transaction", &["idle in transaction"]),
    (
        "idle_in_transaction_aborted",
        &["idle in transaction (aborted)"],
    ),
];

/// The table lock modes, in order of strength; any other mode (SIReadLock, …) is `other`.
pub const LOCK_MODES: [&str; 8] = [
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
];

/// Client backends other than this session, in `pg_stat_activity` aliased `a`.
const CLIENTS: &str = "a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()";

fn sessions_query() -> String {
    format!(
        "SELECT a.datname::text, a.state, count(*)::int8 FROM pg_stat_activity a
         WHERE {CLIENTS} AND a.datname IS NOT NULL AND a.state IS NOT NULL
         GROUP BY 1, 2"
    )
}

/// Transaction ages and lock waits in one row. A lock wait starts at `pg_locks.waitstart`
/// where the server has it (14 and later); before that, and in the instant before the server
/// fills it, at `state_change`: for a waiting (active) session the start of its current
/// statement, so the wait is counted from when the statement began, at most that much longer.
pub fn waits_query(version_num: i32) -> String {
    let wait_from = if version_num >= 140000 {
        "coalesce(w.waitstart, a.state_change)"
    } else {
        "a.state_change"
    };
    let waits = if version_num >= 140000 {
        "LEFT JOIN (SELECT pid, min(waitstart) AS waitstart FROM pg_locks
                    WHERE NOT granted GROUP BY pid) w ON w.pid = a.pid"
    } else {
        ""
    };
    format!(
        "SELECT
           coalesce(extract(epoch FROM max(now() - xact_start)
             FILTER (WHERE state IN ('active', 'fastpath function call'))), 0)::float8,
           coalesce(extract(epoch FROM max(now() - xact_start)
             FILTER (WHERE state IN ('idle in transaction', 'idle in transaction (aborted)'))), 0)::float8,
           count(*) FILTER (WHERE blocked)::int8,
           coalesce(extract(epoch FROM max(now() - wait_from)
             FILTER (WHERE blocked OR wait_event_type = 'Lock')), 0)::float8
         FROM (SELECT a.state, a.xact_start, a.wait_event_type,
                      cardinality(pg_blocking_pids(a.pid)) > 0 AS blocked,
                      {wait_from} AS wait_from
               FROM pg_stat_activity a {waits}
               WHERE {CLIENTS}) s"
    )
}

const LOCKS_QUERY: &str = "SELECT mode, granted, count(*)::int8 FROM pg_locks
    WHERE pid IS DISTINCT FROM pg_backend_pid() GROUP BY 1, 2";

/// Runs the group once.
pub async fn collect(
    client: &Client,
    version_num: i32,
    out: &mut Output,
    facts: &mut PgFacts,
) -> Result<(), tokio_postgres::Error> {
    let rows = client.query(&sessions_query(), &[]).await?;
    let counts = rows.iter().map(|r| {
        (
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, i64>(2),
        )
    });
    for ((db, state), n) in session_series(counts) {
        out.push(&SESSIONS, &[&db, state], n as f64);
    }

    let w = client.query_one(&waits_query(version_num), &[]).await?;
    let f = SessionFacts {
        active_xact_max_age_seconds: w.get::<_, f64>(0).max(0.0),
        idle_in_xact_max_age_seconds: w.get::<_, f64>(1).max(0.0),
        blocked_sessions: w.get::<_, i64>(2),
        lock_wait_max_seconds: w.get::<_, f64>(3).max(0.0),
    };
    out.push(&XACT_MAX_AGE, &["active"], f.active_xact_max_age_seconds);
    out.push(
        &XACT_MAX_AGE,
        &["idle_in_transaction"],
        f.idle_in_xact_max_age_seconds,
    );
    out.single(&BLOCKED, f.blocked_sessions as f64);
    out.single(&LOCK_WAIT_MAX, f.lock_wait_max_seconds);
    facts.sessions = Some(f);

    let rows = client.query(LOCKS_QUERY, &[]).await?;
    let locks = rows.iter().map(|r| {
        (
            r.get::<_, String>(0),
            r.get::<_, bool>(1),
            r.get::<_, i64>(2),
        )
    });
    for ((mode, granted), n) in lock_series(locks) {
        out.push(
            &LOCKS,
            &[mode, if granted { "true" } else { "false" }],
            n as f64,
        );
    }
    Ok(())
}

/// Folds `(database, state, count)` rows into series: every state for each database seen (0
/// where it has none, so a series does not vanish while the database has sessions), the first
/// [`MAX_DATABASES`] databases by name under their own name, the rest summed as `other`.
pub fn session_series(
    rows: impl Iterator<Item = (String, String, i64)>,
) -> BTreeMap<(String, &'static str), i64> {
    let mut by_db: BTreeMap<String, [i64; 4]> = BTreeMap::new();
    for (db, state, n) in rows {
        let Some(i) = STATES
            .iter()
            .position(|(_, raw)| raw.contains(&state.as_str()))
        else {
            continue;
        };
        by_db.entry(db).or_default()[i] += n;
    }
    let mut out = BTreeMap::new();
    for (i, (db, counts)) in by_db.into_iter().enumerate() {
        let name = if i < MAX_DATABASES {
            db
        } else {
            "other".into()
        };
        for (s, n) in STATES.iter().zip(counts) {
            *out.entry((name.clone(), s.0)).or_insert(0) += n;
        }
    }
    out
}

/// Folds `(mode, granted, count)` rows into the fixed set: each known mode granted and not
/// (0 when absent), any other mode as `other`.
pub fn lock_series(
    rows: impl Iterator<Item = (String, bool, i64)>,
) -> BTreeMap<(&'static str, bool), i64> {
    let mut out: BTreeMap<(&'static str, bool), i64> = LOCK_MODES
        .iter()
        .chain(["other"].iter())
        .flat_map(|m| [((*m, true), 0), ((*m, false), 0)])
        .collect();
    for (mode, granted, n) in rows {
        let m = LOCK_MODES
            .iter()
            .find(|k| **k == mode)
            .copied()
            .unwrap_or("other");
        *out.entry((m, granted)).or_insert(0) += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_fold_into_four_and_each_database_shows_all_of_them() {
        let rows = [
            ("app", "active", 2),
            ("app", "fastpath function call", 1),
            ("app", "disabled", 4),
            ("app", "idle in transaction (aborted)", 1),
            ("web", "idle in transaction", 3),
        ]
        .map(|(d, s, n)| (d.to_string(), s.to_string(), n));
        let s = session_series(rows.into_iter());
        assert_eq!(s[&("app".into(), "active")], 3);
        assert_eq!(s[&("app".into(), "idle")], 4);
        assert_eq!(s[&("app".into(), "idle_in_transaction")], 0);
        assert_eq!(s[&("app".into(), "idle_in_transaction_aborted")], 1);
        assert_eq!(s[&("web".into(), "idle_in_transaction")], 3);
        assert_eq!(s[&("web".into(), "active")], 0);
        assert_eq!(s.len(), 8);
    }

    #[test]
    fn databases_beyond_the_cap_are_summed_as_other() {
        let rows = (0..MAX_DATABASES + 3).map(|i| (format!("db{i:03}"), "idle".to_string(), 1));
        let s = session_series(rows);
        assert_eq!(s[&("other".into(), "idle")], 3);
        assert_eq!(s[&("db000".into(), "idle")], 1);
        assert!(!s.contains_key(&(format!("db{:03}", MAX_DATABASES), "idle")));
        assert_eq!(s.len(), (MAX_DATABASES + 1) * 4);
    }

    #[test]
    fn lock_modes_are_a_fixed_set() {
        let rows = [
            ("AccessShareLock", true, 5),
            ("SIReadLock", true, 2),
            ("ExclusiveLock", false, 1),
        ]
        .map(|(m, g, n)| (m.to_string(), g, n));
        let l = lock_series(rows.into_iter());
        assert_eq!(l.len(), 18);
        assert_eq!(l[&("AccessShareLock", true)], 5);
        assert_eq!(l[&("other", true)], 2);
        assert_eq!(l[&("ExclusiveLock", false)], 1);
        assert_eq!(l[&("AccessExclusiveLock", false)], 0);
    }

    #[test]
    fn lock_waits_start_at_waitstart_from_14_on() {
        for v in [140000, 150004, 170002] {
            let q = waits_query(v);
            assert!(
                q.contains("waitstart") && q.contains("coalesce(w.waitstart"),
                "{v}"
            );
        }
        let q = waits_query(130015);
        assert!(
            !q.contains("waitstart"),
            "PostgreSQL 13 has no pg_locks.waitstart: {q}"
        );
        assert!(q.contains("a.state_change AS wait_from"));
    }
}
