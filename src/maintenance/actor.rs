//! The maintenance actor: owns the state file, turns the mode on and off, ends it at `until`,
//! and keeps the Redis key in step, retrying whenever a Redis check succeeds.

use super::error::MaintenanceError;
use super::period::{EndedBy, Maintenance, MaintenanceStatus, Origin, Publication};
use super::publish;
use super::store::{self, Stored};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::check::CheckResult;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

type Reply = oneshot::Sender<Result<MaintenanceStatus, MaintenanceError>>;

pub(super) enum Cmd {
    On {
        reason: Option<String>,
        duration: Option<Duration>,
        reply: Reply,
    },
    Off {
        reply: Reply,
    },
    Status {
        reply: oneshot::Sender<MaintenanceStatus>,
    },
    /// A restore replacing a database: on unless already on; the reply is the hold's id.
    Hold {
        reason: String,
        reply: oneshot::Sender<Result<Option<u64>, MaintenanceError>>,
    },
    Release {
        id: u64,
    },
    /// A publish task finished; the retired names it cleaned up.
    Published(Result<publish::Shared, String>, Vec<String>),
}

/// What [`super::start`] hands over.
pub(super) struct Parts {
    pub dir: PathBuf,
    pub stored: Stored,
    /// The loaded state changed (expired, or a reason scrubbed) and must be written back.
    pub dirty_file: bool,
    pub state: watch::Sender<Option<Maintenance>>,
    pub config: watch::Receiver<Arc<Config>>,
    pub metrics: Arc<Metrics>,
    pub redis: watch::Receiver<Option<Arc<CheckResult>>>,
    pub tx: mpsc::Sender<Cmd>,
}

/// The actor's private state.
pub(super) struct Actor {
    p: Parts,
    /// The restore hold currently keeping maintenance on, if any.
    hold: Option<u64>,
    next_hold: u64,
    /// Redis does not (or may not) hold the current state.
    dirty: bool,
    /// The state being published, while a publish runs.
    sending: Option<Option<Maintenance>>,
    /// The state Redis last accepted.
    last_published: Option<Option<Maintenance>>,
    published_at: Option<f64>,
    error: Option<String>,
    redis_up: Option<bool>,
    /// This instance's name (`[instance] name`), which marks its keys.
    name: String,
    /// Names this process had before a reload renamed it, whose own key is still to delete.
    retired: Vec<String>,
    /// Another instance's period holds the shared key (logged once per change).
    shared_by_other: bool,
}

impl Actor {
    pub fn new(p: Parts) -> Self {
        let name = p.config.borrow().instance_name();
        Self {
            p,
            name,
            retired: Vec::new(),
            shared_by_other: false,
            hold: None,
            next_hold: 0,
            // At start Redis may hold a stale key (or none after a Redis restart).
            dirty: true,
            sending: None,
            last_published: None,
            published_at: None,
            error: None,
            redis_up: None,
        }
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<Cmd>, cancel: CancellationToken) {
        if std::mem::take(&mut self.p.dirty_file) {
            self.save_or_warn().await;
        }
        self.apply();
        let mut redis = self.p.redis.clone();
        let mut config = self.p.config.clone();
        let mut redis_url = config.borrow().redis.url.clone();
        loop {
            // Wall-clock time: re-checked at least every minute, so a clock change is noticed.
            let wait = self.p.stored.remaining(crate::unix_now()).map(|s| {
                Duration::try_from_secs_f64(s)
                    .unwrap_or(Duration::MAX)
                    .min(Duration::from_secs(60))
            });
            tokio::select! {
                _ = cancel.cancelled() => return,
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => return,
                },
                _ = sleep_or_never(wait) => self.expire().await,
                Ok(()) = redis.changed() => {
                    let up = redis.borrow_and_update().as_ref().map(|r| r.up);
                    self.redis_checked(up);
                }
                Ok(()) = config.changed() => {
                    let (url, name) = {
                        let c = config.borrow_and_update();
                        (c.redis.url.clone(), c.instance_name())
                    };
                    if name != self.name {
                        tracing::info!(from = %self.name, to = %name, "instance renamed; its maintenance key follows");
                        let old = std::mem::replace(&mut self.name, name);
                        self.retired.push(old);
                        self.dirty = true;
                        self.kick();
                    }
                    if url != redis_url {
                        redis_url = url;
                        self.dirty = true;
                        self.kick();
                    }
                }
            }
        }
    }

    async fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::On {
                reason,
                duration,
                reply,
            } => {
                let _ = reply.send(self.on(reason, duration).await);
            }
            Cmd::Off { reply } => {
                let _ = reply.send(self.off().await);
            }
            Cmd::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Cmd::Hold { reason, reply } => {
                let _ = reply.send(self.hold(reason).await);
            }
            Cmd::Release { id } => self.release(id).await,
            Cmd::Published(result, retired) => self.published(result, retired),
        }
    }

    async fn on(
        &mut self,
        reason: Option<String>,
        duration: Option<Duration>,
    ) -> Result<MaintenanceStatus, MaintenanceError> {
        let now = crate::unix_now();
        let mut next = self.p.stored.clone();
        let since = next.current.as_ref().map_or(now, |m| m.since);
        // What an operator types is stored and shown (state file, Redis key, replies, log)
        // only after the same scrubbing as logs.
        let scrubber = self.p.config.borrow().scrubber();
        next.current = Some(Maintenance {
            reason: reason.map(|r| scrubber.scrub(&r)),
            since,
            until: duration.map(|d| now + d.as_secs_f64()),
            by: Origin::Operator,
        });
        self.commit(next).await?;
        // The operator has taken it over: the end of a running restore no longer ends it.
        self.hold = None;
        let m = self.p.stored.current.as_ref();
        tracing::info!(
            reason = m.and_then(|m| m.reason.as_deref()),
            until = m.and_then(|m| m.until),
            "maintenance mode on"
        );
        Ok(self.status())
    }

    async fn off(&mut self) -> Result<MaintenanceStatus, MaintenanceError> {
        if self.p.stored.current.is_some() {
            let mut next = self.p.stored.clone();
            next.end(crate::unix_now(), EndedBy::Operator);
            self.commit(next).await?;
            self.hold = None;
            tracing::info!("maintenance mode off");
        }
        Ok(self.status())
    }

    async fn hold(&mut self, reason: String) -> Result<Option<u64>, MaintenanceError> {
        if self.p.stored.current.is_some() {
            return Ok(None);
        }
        let mut next = self.p.stored.clone();
        next.current = Some(Maintenance {
            reason: Some(reason.clone()),
            since: crate::unix_now(),
            until: None,
            by: Origin::Restore,
        });
        self.commit(next).await?;
        self.next_hold += 1;
        self.hold = Some(self.next_hold);
        tracing::info!(reason = %reason, "maintenance mode on for a restore");
        Ok(self.hold)
    }

    async fn release(&mut self, id: u64) {
        if self.hold != Some(id) {
            return;
        }
        self.hold = None;
        self.p
            .stored
            .end(crate::unix_now(), EndedBy::RestoreFinished);
        self.save_or_warn().await;
        self.apply();
        tracing::info!("maintenance mode off: the restore has finished");
    }

    async fn expire(&mut self) {
        if let Some(e) = self.p.stored.expire(crate::unix_now()) {
            self.hold = None;
            self.save_or_warn().await;
            self.apply();
            tracing::info!(
                reason = e.period.reason.as_deref(),
                "maintenance mode ended by itself (--for elapsed)"
            );
        }
    }

    /// Writes `next`, then makes it the state; on a write error nothing changes.
    async fn commit(&mut self, next: Stored) -> Result<(), MaintenanceError> {
        let dir = self.p.dir.clone();
        let copy = next.clone();
        tokio::task::spawn_blocking(move || store::save(&dir, &copy))
            .await
            .map_err(|_| MaintenanceError::Gone)??;
        self.p.stored = next;
        self.apply();
        Ok(())
    }

    /// For changes that happen whatever the disk says (expiry, a restore's end).
    async fn save_or_warn(&mut self) {
        let dir = self.p.dir.clone();
        let copy = self.p.stored.clone();
        match tokio::task::spawn_blocking(move || store::save(&dir, &copy)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot save the maintenance state"),
            Err(e) => tracing::warn!(error = %e, "cannot save the maintenance state"),
        }
    }

    /// Tells everyone the current state: subscribers, the gauge, Redis.
    fn apply(&mut self) {
        let current = self.p.stored.current.clone();
        self.p
            .metrics
            .maintenance_mode
            .set(current.is_some() as i64);
        self.p.state.send_if_modified(|s| {
            let changed = *s != current;
            *s = current;
            changed
        });
        self.dirty = true;
        self.kick();
    }

    /// A Redis check finished: publish again if Redis lacks the state or has just come back
    /// (a restarted Redis may have lost the key); while on, re-assert it on every good check.
    fn redis_checked(&mut self, up: Option<bool>) {
        let came_back = up == Some(true) && self.redis_up != Some(true);
        self.redis_up = up;
        if up != Some(true) {
            return;
        }
        if came_back || self.p.stored.current.is_some() {
            self.dirty = true;
        }
        self.kick();
    }

    /// Starts a publish of the current state unless one is running (it restarts when done).
    fn kick(&mut self) {
        if self.sending.is_some() || !self.dirty {
            return;
        }
        self.dirty = false;
        let cfg = self.p.config.borrow().clone();
        let state = self.p.stored.current.clone();
        self.sending = Some(state.clone());
        let tx = self.p.tx.clone();
        let name = self.name.clone();
        let retired = self.retired.clone();
        let periods = self.periods();
        tokio::spawn(async move {
            let out = publish::publish(&cfg, &name, state.as_ref(), &periods, &retired).await;
            let _ = tx.send(Cmd::Published(out, retired)).await;
        });
    }

    /// The starts of this instance's periods, current and ended: a key whose `since` is one
    /// of them is this instance's, whatever name (or none) it carries.
    fn periods(&self) -> Vec<f64> {
        let s = &self.p.stored;
        s.current
            .iter()
            .chain(s.history.iter().map(|e| &e.period))
            .map(|m| m.since)
            .collect()
    }

    fn published(&mut self, result: Result<publish::Shared, String>, retired: Vec<String>) {
        let sent = self.sending.take();
        match result {
            Ok(shared) => {
                self.retired.retain(|n| !retired.contains(n));
                let other = shared == publish::Shared::Other;
                if other != self.shared_by_other {
                    self.shared_by_other = other;
                    if other {
                        tracing::info!(
                            key = publish::REDIS_KEY,
                            own_key = %publish::own_key(&self.name),
                            "another steward's maintenance holds the shared key; it is left alone, this instance's own key follows its state"
                        );
                    }
                }
                self.last_published = sent;
                if self.error.take().is_some() {
                    tracing::info!(
                        key = publish::REDIS_KEY,
                        "maintenance state published in Redis again"
                    );
                }
                self.published_at = Some(crate::unix_now());
                // Changed meanwhile: publish the newer state.
                self.kick();
            }
            Err(e) => {
                if self.error.is_none() {
                    tracing::warn!(key = publish::REDIS_KEY, error = %e, "cannot publish the maintenance state in Redis; retrying when Redis is back");
                }
                self.error = Some(e);
                // Retried on the next good Redis check, not in a loop.
                self.dirty = true;
            }
        }
    }

    fn status(&self) -> MaintenanceStatus {
        let cfg = self.p.config.borrow().clone();
        MaintenanceStatus {
            on: self.p.stored.current.is_some(),
            current: self.p.stored.current.clone(),
            run_backups: cfg.maintenance.run_backups,
            redis: Publication {
                key: publish::REDIS_KEY.into(),
                published: self.error.is_none()
                    && self.last_published.as_ref() == Some(&self.p.stored.current),
                published_at: self.published_at,
                error: self.error.clone(),
            },
            history: self.p.stored.history.iter().rev().cloned().collect(),
            file: store::path(&self.p.dir).display().to_string(),
        }
    }
}

async fn sleep_or_never(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
