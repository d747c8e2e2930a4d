//! The collector groups: each one topic (sessions, replication, …), with how often it runs and
//! the server versions it applies to, in one table.

use super::groups;
use crate::metrics::families::{Family, Output};
use crate::model::pg_facts::PgFacts;
use std::time::Duration;
use tokio_postgres::Client;

/// How often a group runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    /// At every check (`[postgres] interval`): cheap queries over shared views.
    Check,
    /// At most this often (never more often than every check): per-table or heavier queries.
    Period(Duration),
}

/// A group's fixed description.
#[derive(Debug)]
pub struct Spec {
    /// The `group` label of its collector metrics; stable, lowercase.
    pub name: &'static str,
    pub every: Every,
    /// Lowest `server_version_num` it applies to (PostgreSQL 13 = 130000).
    pub min_version: i32,
    /// Lowest `server_version_num` it no longer applies to, if any.
    pub below_version: Option<i32>,
    /// Every family it may fill.
    pub families: &'static [&'static Family],
}

impl Spec {
    /// Whether the group has queries for this server version.
    pub fn applies(&self, version_num: i32) -> bool {
        version_num >= self.min_version && self.below_version.is_none_or(|v| version_num < v)
    }

    /// Seconds between two runs, given the check interval.
    pub fn period(&self, check: Duration) -> Duration {
        match self.every {
            Every::Check => check,
            Every::Period(p) => p.max(check),
        }
    }
}

/// One collector group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    Server,
    Sessions,
    Database,
    Replication,
    Checkpoints,
    Vacuum,
}

impl Group {
    /// Every group, in the order a round runs them (cheap ones first).
    pub const ALL: &'static [Group] = &[
        Group::Server,
        Group::Sessions,
        Group::Database,
        Group::Replication,
        Group::Checkpoints,
        Group::Vacuum,
    ];

    /// The group's fixed description.
    pub fn spec(self) -> &'static Spec {
        match self {
            Group::Server => &groups::server::SPEC,
            Group::Sessions => &groups::sessions::SPEC,
            Group::Database => &groups::database::SPEC,
            Group::Replication => &groups::replication::SPEC,
            Group::Checkpoints => &groups::checkpoints::SPEC,
            Group::Vacuum => &groups::vacuum::SPEC,
        }
    }

    /// Drops what the group had found from `facts` (it does not apply, or failed more than
    /// `keep::FAILED_RUNS_KEPT` runs in a row), so no rule judges a stale value.
    pub fn forget(self, facts: &mut PgFacts) {
        match self {
            Group::Server => facts.server = None,
            Group::Sessions => facts.sessions = None,
            Group::Database => facts.database = None,
            Group::Replication => facts.replication = None,
            Group::Checkpoints => facts.archiver = None,
            Group::Vacuum => facts.vacuum = None,
        }
    }

    /// Puts the group's part of `from` into `to` (a failed run keeps the previous facts).
    pub fn carry(self, from: &PgFacts, to: &mut PgFacts) {
        match self {
            Group::Server => to.server.clone_from(&from.server),
            Group::Sessions => to.sessions.clone_from(&from.sessions),
            Group::Database => to.database.clone_from(&from.database),
            Group::Replication => to.replication.clone_from(&from.replication),
            Group::Checkpoints => to.archiver.clone_from(&from.archiver),
            Group::Vacuum => to.vacuum.clone_from(&from.vacuum),
        }
    }

    /// Runs the group's queries on `client`, adding its series to `out` and what the alerts
    /// judge to `facts`.
    pub async fn collect(
        self,
        client: &Client,
        version_num: i32,
        out: &mut Output,
        facts: &mut PgFacts,
    ) -> Result<(), tokio_postgres::Error> {
        match self {
            Group::Server => groups::server::collect(client, version_num, out, facts).await,
            Group::Sessions => groups::sessions::collect(client, version_num, out, facts).await,
            Group::Database => groups::database::collect(client, version_num, out, facts).await,
            Group::Replication => {
                groups::replication::collect(client, version_num, out, facts).await
            }
            Group::Checkpoints => {
                groups::checkpoints::collect(client, version_num, out, facts).await
            }
            Group::Vacuum => groups::vacuum::collect(client, version_num, out, facts).await,
        }
    }
}

/// Every family of every group, for the registry.
pub fn all_families() -> Vec<&'static Family> {
    Group::ALL
        .iter()
        .flat_map(|g| g.spec().families.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_are_unique_and_families_belong_to_one_group() {
        let mut names: Vec<_> = Group::ALL.iter().map(|g| g.spec().name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Group::ALL.len());
        let mut fams: Vec<_> = all_families().iter().map(|f| f.name).collect();
        let n = fams.len();
        fams.sort();
        fams.dedup();
        assert_eq!(fams.len(), n, "a family is declared by two groups");
    }

    #[test]
    fn each_group_carries_back_exactly_what_it_forgets() {
        use crate::model::pg_facts::*;
        let full = PgFacts {
            collected_at: 1.0,
            version_num: 170000,
            server: Some(ServerFacts::default()),
            sessions: Some(SessionFacts::default()),
            database: Some(DatabaseFacts::default()),
            replication: Some(ReplicationFacts::default()),
            vacuum: Some(VacuumFacts::default()),
            archiver: Some(ArchiverFacts::default()),
        };
        let mut none = full.clone();
        for &g in Group::ALL {
            let mut f = full.clone();
            g.forget(&mut f);
            assert_ne!(f, full, "{g:?} forgot nothing");
            g.carry(&full, &mut f);
            assert_eq!(f, full, "{g:?} carried back something else");
            g.forget(&mut none);
        }
        assert_eq!(
            none,
            PgFacts {
                collected_at: 1.0,
                version_num: 170000,
                ..PgFacts::default()
            },
            "some group's facts are forgotten by no group"
        );
    }

    #[test]
    fn version_gates_and_periods() {
        let s = Spec {
            name: "x",
            every: Every::Period(Duration::from_secs(300)),
            min_version: 130000,
            below_version: Some(170000),
            families: &[],
        };
        assert!(!s.applies(120000));
        assert!(s.applies(130000) && s.applies(160004));
        assert!(!s.applies(170000));
        assert_eq!(s.period(Duration::from_secs(30)), Duration::from_secs(300));
        assert_eq!(s.period(Duration::from_secs(600)), Duration::from_secs(600));
    }
}
