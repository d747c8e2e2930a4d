//! The PostgreSQL collector task (`collector.postgres`): runs each collector group on its own
//! schedule over one connection of its own, so a slow or failing group never delays a check
//! nor hides another group; results go to the metric families and, for alerts, [`PgFacts`].
//! A group that fails loses its series at once but keeps its facts through two failed runs in
//! a row ([`keep`]), so one failed round does not resolve a firing alert.

pub mod group;
pub mod groups;
pub mod keep;

use crate::config::{Config, PostgresConfig};
use crate::metrics::families::{Output, Store};
use crate::metrics::Metrics;
use crate::model::pg_facts::PgFacts;
use crate::secret::Scrubber;
use group::Group;
use keep::Streaks;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

/// The families every group fills, to register once in the metrics registry.
pub fn store() -> Result<Store, prometheus::Error> {
    Store::new(group::all_families())
}

/// The newest collected facts, for steward's own alerts; `None` before the first round.
pub type FactsRx = watch::Receiver<Option<Arc<PgFacts>>>;

/// The task's state: its connection, when each group last ran, how many of its runs failed in a
/// row, which were already reported.
pub struct Collector {
    cfg: watch::Receiver<Arc<Config>>,
    metrics: Arc<Metrics>,
    store: Store,
    facts: Arc<watch::Sender<Option<Arc<PgFacts>>>>,
    conn: Option<(Client, i32)>,
    last_run: HashMap<Group, Instant>,
    /// Failed runs in a row per group: how long its facts outlive a failure.
    streaks: Streaks,
    /// Groups whose privilege problem was logged: one line, not one per round.
    warned: HashSet<Group>,
}

impl Collector {
    /// A collector publishing into `store` and `facts`.
    pub fn new(
        cfg: watch::Receiver<Arc<Config>>,
        metrics: Arc<Metrics>,
        store: Store,
        facts: Arc<watch::Sender<Option<Arc<PgFacts>>>>,
    ) -> Self {
        Self {
            cfg,
            metrics,
            store,
            facts,
            conn: None,
            last_run: HashMap::new(),
            streaks: Streaks::default(),
            warned: HashSet::new(),
        }
    }

    /// Runs rounds every `[postgres] interval` until cancelled.
    pub async fn run(mut self, cancel: CancellationToken) {
        loop {
            let cfg = self.cfg.borrow().clone();
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.round(&cfg) => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(cfg.postgres.interval) => {}
            }
        }
    }

    /// Runs every group that is due, one after the other, each under `[postgres] timeout`.
    async fn round(&mut self, cfg: &Config) {
        let pg = &cfg.postgres;
        if self.conn.as_ref().is_none_or(|(c, _)| c.is_closed()) {
            self.conn = None;
            match tokio::time::timeout(pg.timeout, connect(pg, &cfg.scrubber())).await {
                Ok(Ok(c)) => self.conn = Some(c),
                Ok(Err(e)) => return self.down(&e),
                Err(_) => return self.down("no connection within postgres.timeout"),
            }
        }
        // Taken for the round (the groups borrow it while `self` records their results).
        let Some((client, version)) = self.conn.take() else {
            return;
        };
        // The previous round's facts: a group that fails puts its part of them back.
        let prev = self.facts.borrow().as_deref().cloned().unwrap_or_default();
        let mut facts = prev.clone();
        facts.version_num = version;
        for &g in Group::ALL {
            let spec = g.spec();
            if !spec.applies(version) {
                g.forget(&mut facts);
                self.streaks.forget(g);
                self.store.clear(spec.name);
                continue;
            }
            let due = self.last_run.get(&g).is_none_or(|t| {
                t.elapsed() + Duration::from_millis(50) >= spec.period(pg.interval)
            });
            if !due {
                continue;
            }
            self.last_run.insert(g, Instant::now());
            let mut out = Output::default();
            let started = Instant::now();
            let res = tokio::time::timeout(
                pg.timeout,
                g.collect(&client, version, &mut out, &mut facts),
            )
            .await;
            let took = started.elapsed().as_secs_f64();
            let name = spec.name;
            self.metrics
                .pg
                .collector_duration
                .with_label_values(&[name])
                .set(took);
            let failure = match res {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(super::postgres::describe(&e)),
                Err(_) => Some(format!(
                    "did not finish within postgres.timeout ({})",
                    humantime::format_duration(pg.timeout)
                )),
            };
            match failure {
                None => {
                    self.store.replace(name, out);
                    self.streaks.succeeded(g);
                    self.warned.remove(&g);
                    self.set_up(name, true);
                }
                Some(why) => {
                    self.streaks.failed(g, &prev, &mut facts);
                    self.store.clear(name);
                    self.set_up(name, false);
                    self.metrics
                        .pg
                        .collector_errors
                        .with_label_values(&[name])
                        .inc();
                    self.report(g, &cfg.scrubber().scrub(&why));
                }
            }
        }
        self.conn = Some((client, version));
        facts.collected_at = crate::unix_now();
        self.facts.send_replace(Some(Arc::new(facts)));
    }

    fn set_up(&self, group: &str, up: bool) {
        self.metrics
            .pg
            .collector_up
            .with_label_values(&[group])
            .set(i64::from(up));
    }

    /// No connection: every group is down until the next round connects. The round counts as
    /// a failed run of every group (due or not), so their facts go after a few rounds without
    /// a connection however long their periods.
    fn down(&mut self, why: &str) {
        let prev = self.facts.borrow().as_deref().cloned().unwrap_or_default();
        let mut facts = prev.clone();
        for &g in Group::ALL {
            let name = g.spec().name;
            self.store.clear(name);
            self.set_up(name, false);
            self.streaks.failed(g, &prev, &mut facts);
        }
        facts.collected_at = crate::unix_now();
        self.facts.send_replace(Some(Arc::new(facts)));
        tracing::debug!(error = %why, "postgres collector groups skipped: no connection");
    }

    /// One log line per group and kind of trouble, at warn for a missing privilege.
    fn report(&mut self, g: Group, why: &str) {
        if self.warned.insert(g) {
            let hint = if why.contains("42501") {
                "; grant the role pg_monitor (GRANT pg_monitor TO <role>)"
            } else {
                ""
            };
            tracing::warn!(group = g.spec().name, error = %why, "postgres collector group failed{hint}; the other groups go on");
        }
    }
}

/// The collector's own session: named, and bounded by the configured timeout on the server too.
async fn connect(pg: &PostgresConfig, scrubber: &Scrubber) -> Result<(Client, i32), String> {
    let mut c = tokio_postgres::Config::from_str(pg.url.expose())
        .map_err(|e| scrubber.scrub(&e.to_string()))?;
    let ms = pg.timeout.as_millis().max(1);
    c.application_name("steward collector")
        .connect_timeout(pg.timeout)
        .options(format!("-c statement_timeout={ms} -c lock_timeout={ms}"));
    let (client, connection) = c
        .connect(NoTls)
        .await
        .map_err(|e| scrubber.scrub(&super::postgres::describe(&e)))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .map_err(|e| scrubber.scrub(&super::postgres::describe(&e)))?;
    Ok((client, row.get(0)))
}
