//! What a collector group that could not run leaves for steward's alerts: the facts of its last
//! good run, through [`FAILED_RUNS_KEPT`] failed runs in a row; the next failed run drops them.
//!
//! One failed round (a query that timed out, a lost connection) must not resolve an alert that
//! is firing: a long transaction does not end because the query that sees it was slow. A group
//! that keeps failing must not have its old figures judged for ever either. The rule counts runs,
//! not seconds, so that slow failing rounds (each waiting out `[postgres] timeout`) cannot drop
//! the facts at the first failure. Its metric series are another matter: they go at the first
//! failure (`steward_postgres_collector_up{group}` 0 tells Prometheus); only the facts the alert
//! engine judges are kept.

use super::group::Group;
use crate::model::pg_facts::PgFacts;
use std::collections::HashMap;

/// Failed runs in a row through which a group's last good facts are kept; the next one drops
/// them. With 2, a group run at every check (30 s by default) keeps them until about three
/// checks after its last good run (90 s); the `server` and `vacuum` groups (every 5 min) about
/// 15 min.
pub const FAILED_RUNS_KEPT: u32 = 2;

/// For each group with a good run in this task's life, how many runs failed in a row since.
#[derive(Debug, Default)]
pub struct Streaks(HashMap<Group, u32>);

impl Streaks {
    /// A run of `g` succeeded.
    pub fn succeeded(&mut self, g: Group) {
        self.0.insert(g, 0);
    }

    /// `g` does not apply to the server: nothing of it is kept.
    pub fn forget(&mut self, g: Group) {
        self.0.remove(&g);
    }

    /// A run of `g` failed: `facts` gets back what the group had in `prev` (the snapshot before
    /// this round, so a run that failed half-way leaves nothing of its own) while fewer than
    /// [`FAILED_RUNS_KEPT`] runs failed before it since the last good one, else loses the
    /// group's part (as it does when the group never succeeded). Returns whether it was kept.
    pub fn failed(&mut self, g: Group, prev: &PgFacts, facts: &mut PgFacts) -> bool {
        match self.0.get_mut(&g) {
            Some(n) if *n < FAILED_RUNS_KEPT => {
                *n += 1;
                g.carry(prev, facts);
                true
            }
            _ => {
                self.0.remove(&g);
                g.forget(facts);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pg_facts::{ReplicationFacts, SessionFacts};

    fn with_sessions(age: f64) -> PgFacts {
        PgFacts {
            sessions: Some(SessionFacts {
                active_xact_max_age_seconds: age,
                ..SessionFacts::default()
            }),
            replication: Some(ReplicationFacts {
                replicas: 1,
                ..ReplicationFacts::default()
            }),
            ..PgFacts::default()
        }
    }

    #[test]
    fn a_failing_group_keeps_its_last_facts_through_two_failed_runs_and_drops_them_at_the_third() {
        let mut runs = Streaks::default();
        runs.succeeded(Group::Sessions);
        let prev = with_sessions(4000.0);

        // One failed run, and a second: a firing LongTransaction still sees 4000 s.
        for run in 1..=FAILED_RUNS_KEPT {
            let mut facts = prev.clone();
            assert!(runs.failed(Group::Sessions, &prev, &mut facts), "run {run}");
            assert_eq!(facts, prev, "run {run}");
        }

        // The third: dropped, the other groups' facts untouched; and it stays dropped.
        for _ in 0..2 {
            let mut facts = prev.clone();
            assert!(!runs.failed(Group::Sessions, &prev, &mut facts));
            assert_eq!(facts.sessions, None);
            assert_eq!(facts.replication, prev.replication);
        }
    }

    #[test]
    fn a_good_run_starts_the_count_again() {
        let mut runs = Streaks::default();
        runs.succeeded(Group::Replication);
        let prev = with_sessions(1.0);
        for _ in 0..3 {
            for _ in 0..FAILED_RUNS_KEPT {
                assert!(runs.failed(Group::Replication, &prev, &mut prev.clone()));
            }
            runs.succeeded(Group::Replication);
        }
    }

    #[test]
    fn a_run_that_failed_half_way_leaves_the_previous_facts_not_its_own() {
        let mut runs = Streaks::default();
        runs.succeeded(Group::Sessions);
        let prev = with_sessions(4000.0);
        let mut facts = prev.clone();
        facts.sessions = Some(SessionFacts::default()); // written before a later query failed
        assert!(runs.failed(Group::Sessions, &prev, &mut facts));
        assert_eq!(facts.sessions, prev.sessions);
    }

    #[test]
    fn without_a_good_run_or_once_forgotten_nothing_is_kept() {
        let mut runs = Streaks::default();
        let prev = with_sessions(4000.0);
        let mut facts = prev.clone();
        assert!(!runs.failed(Group::Replication, &prev, &mut facts));
        assert_eq!(facts.replication, None);

        runs.succeeded(Group::Replication);
        runs.forget(Group::Replication);
        let mut facts = prev.clone();
        assert!(!runs.failed(Group::Replication, &prev, &mut facts));
        assert_eq!(facts.replication, None);
    }
}
