//! Metric families whose values a server owns (PostgreSQL collector groups): declared once
//! (name, help, type, labels), filled whole by each run of their group, rendered on scrape.

use prometheus::core::{Collector, Desc};
use prometheus::proto;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Whether a family's samples are the server's own cumulative counters or point-in-time values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    /// A server counter (`pg_stat_database.xact_commit`, …) exported as it is: a statistics
    /// reset on the server looks like a counter reset, which `rate()` already handles.
    Counter,
}

/// One metric family a group writes: the contract of its name and labels.
#[derive(Debug)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// Label names, in the order a [`Sample`]'s values follow.
    pub labels: &'static [&'static str],
}

/// One series of a family: label values in the family's label order, and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<String>,
    pub value: f64,
}

/// What one run of a group produced, by family.
#[derive(Debug, Default, Clone)]
pub struct Output {
    families: BTreeMap<&'static str, (&'static Family, Vec<Sample>)>,
}

impl Output {
    /// Adds one series; label values follow `family.labels`.
    pub fn push(&mut self, family: &'static Family, labels: &[&str], value: f64) {
        debug_assert_eq!(labels.len(), family.labels.len(), "{}", family.name);
        self.families
            .entry(family.name)
            .or_insert_with(|| (family, Vec::new()))
            .1
            .push(Sample {
                labels: labels.iter().map(|s| s.to_string()).collect(),
                value,
            });
    }

    /// Adds a series without labels.
    pub fn single(&mut self, family: &'static Family, value: f64) {
        self.push(family, &[], value);
    }

    /// The samples of one family (tests and facts read them back).
    pub fn samples(&self, name: &str) -> &[Sample] {
        self.families.get(name).map_or(&[], |(_, s)| s.as_slice())
    }

    /// The value of a family's series with exactly these label values.
    pub fn value(&self, name: &str, labels: &[&str]) -> Option<f64> {
        self.samples(name)
            .iter()
            .find(|s| {
                s.labels
                    .iter()
                    .map(String::as_str)
                    .eq(labels.iter().copied())
            })
            .map(|s| s.value)
    }
}

/// The latest output of every group, shared between the collector task (writer) and the
/// registry (reader, on scrape). A group's entry is replaced whole, so a scrape never mixes
/// two runs of one group; a group that failed has no entry.
#[derive(Clone)]
pub struct Store {
    families: Arc<[&'static Family]>,
    descs: Arc<Vec<Desc>>,
    by_group: Arc<RwLock<BTreeMap<&'static str, Output>>>,
}

impl Store {
    /// A store able to render exactly these families (the registry checks their names once).
    pub fn new(families: Vec<&'static Family>) -> Result<Self, prometheus::Error> {
        let descs = families
            .iter()
            .map(|f| {
                Desc::new(
                    f.name.to_string(),
                    f.help.to_string(),
                    f.labels.iter().map(|l| l.to_string()).collect(),
                    Default::default(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            families: families.into(),
            descs: Arc::new(descs),
            by_group: Arc::default(),
        })
    }

    /// Makes `out` what `group` shows, replacing its previous run.
    pub fn replace(&self, group: &'static str, out: Output) {
        if let Ok(mut g) = self.by_group.write() {
            g.insert(group, out);
        }
    }

    /// Shows nothing for `group` (it failed, or does not apply to this server).
    pub fn clear(&self, group: &'static str) {
        if let Ok(mut g) = self.by_group.write() {
            g.remove(group);
        }
    }
}

impl Collector for Store {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let Ok(groups) = self.by_group.read() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(self.families.len());
        for fam in self.families.iter() {
            let mut mf = proto::MetricFamily::default();
            mf.set_name(fam.name.to_string());
            mf.set_help(fam.help.to_string());
            mf.set_field_type(match fam.kind {
                Kind::Gauge => proto::MetricType::GAUGE,
                Kind::Counter => proto::MetricType::COUNTER,
            });
            for run in groups.values() {
                for s in run.samples(fam.name) {
                    mf.mut_metric().push(metric(fam, s));
                }
            }
            out.push(mf);
        }
        out
    }
}

fn metric(fam: &Family, s: &Sample) -> proto::Metric {
    let mut pairs: Vec<proto::LabelPair> = fam
        .labels
        .iter()
        .zip(&s.labels)
        .map(|(name, value)| {
            let mut p = proto::LabelPair::default();
            p.set_name(name.to_string());
            p.set_value(value.clone());
            p
        })
        .collect();
    pairs.sort_by(|a, b| a.name().cmp(b.name()));
    let mut m = proto::Metric::from_label(pairs);
    match fam.kind {
        Kind::Gauge => {
            let mut g = proto::Gauge::default();
            g.set_value(s.value);
            m.set_gauge(g);
        }
        Kind::Counter => {
            let mut c = proto::Counter::default();
            c.set_value(s.value);
            m.set_counter(c);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    static SESSIONS: Family = Family {
        name: "steward_test_sessions",
        help: "Sessions.",
        kind: Kind::Gauge,
        labels: &["state", "database"],
    };
    static COMMITS: Family = Family {
        name: "steward_test_commits_total",
        help: "Commits.",
        kind: Kind::Counter,
        labels: &[],
    };

    fn render(store: &Store) -> String {
        let r = prometheus::Registry::new();
        r.register(Box::new(store.clone())).unwrap();
        let mut buf = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &r.gather(), &mut buf)
            .unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn a_groups_run_replaces_its_previous_one_and_a_cleared_group_shows_nothing() {
        let store = Store::new(vec![&SESSIONS, &COMMITS]).unwrap();
        let mut a = Output::default();
        a.push(&SESSIONS, &["active", "app"], 3.0);
        a.push(&SESSIONS, &["idle", "gone"], 1.0);
        store.replace("sessions", a);
        let mut b = Output::default();
        b.single(&COMMITS, 42.0);
        store.replace("database", b);
        let text = render(&store);
        assert!(text.contains("steward_test_sessions{database=\"app\",state=\"active\"} 3"));
        assert!(text.contains("# TYPE steward_test_commits_total counter"));
        assert!(text.contains("steward_test_commits_total 42"));

        let mut a2 = Output::default();
        a2.push(&SESSIONS, &["active", "app"], 5.0);
        store.replace("sessions", a2);
        let text = render(&store);
        assert!(text.contains("state=\"active\"} 5"), "{text}");
        assert!(
            !text.contains("gone"),
            "a series gone from the server is gone: {text}"
        );

        store.clear("database");
        assert!(!render(&store).contains("steward_test_commits_total"));
    }

    #[test]
    fn output_reads_back_by_labels() {
        let mut o = Output::default();
        o.push(&SESSIONS, &["active", "app"], 2.0);
        assert_eq!(
            o.value("steward_test_sessions", &["active", "app"]),
            Some(2.0)
        );
        assert_eq!(o.value("steward_test_sessions", &["idle", "app"]), None);
    }
}
