//! Monitoring: the per-service monitor loop and its handle, publishing to the [`Board`] of last
//! results.

pub mod pg_collect;
pub mod pool_error;
pub mod postgres;
pub mod redis;
mod redis_counters;
mod redis_info;
mod redis_record;
pub mod wake;

use crate::mailbox::Mailbox;
use crate::metrics::Metrics;
use crate::model::board::Board;
use crate::model::check::{CheckResult, Service};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// One probe of one service; each service module implements it.
pub trait Probe: Send + 'static {
    /// The service this probe checks.
    fn service(&self) -> Service;
    /// Checks the service once, each step under the configured timeout, recording step metrics.
    fn probe(&mut self) -> impl Future<Output = CheckResult> + Send;
    /// Tests the pool between checks (every [`HEALTH_EVERY`]), so a broken idle connection is
    /// replaced before anyone needs it, however long the check interval; true when it passed.
    fn health_check(&mut self) -> impl Future<Output = bool> + Send;
}

/// How often a monitor tests its pool between checks.
pub const HEALTH_EVERY: Duration = Duration::from_secs(30);

/// Requests a monitor answers between its scheduled checks.
pub enum MonitorCmd {
    /// Probe now and reply with the result (it is also published).
    CheckNow(oneshot::Sender<CheckResult>),
}

/// Why an on-demand check got no answer.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("monitor.{0} is not running (paused or backing off); see `steward tasks`")]
    NotRunning(Service),
}

/// The cloneable way in to one service's monitor; it outlives restarts of the task.
#[derive(Clone)]
pub struct MonitorHandle {
    service: Service,
    mailbox: Mailbox<MonitorCmd>,
}

impl MonitorHandle {
    /// A handle whose commands are served by whichever run of the task is current.
    pub fn new(service: Service) -> Self {
        Self {
            service,
            mailbox: Mailbox::new(16),
        }
    }

    /// Probes now; `wait` bounds how long to wait for the monitor to answer.
    pub async fn check_now(&self, wait: Duration) -> Result<CheckResult, MonitorError> {
        self.mailbox
            .ask(MonitorCmd::CheckNow, Some(wait))
            .await
            .ok_or(MonitorError::NotRunning(self.service))
    }
}

/// When a monitor checks: its interval and timeout, and the wake its pool raises when a
/// connection is lost.
#[derive(Clone)]
pub struct Plan {
    pub interval: Duration,
    /// The check's timeout; a whole check is cut off at this plus [`CHECK_SLACK`].
    pub timeout: Duration,
    pub wake: wake::Wake,
}

/// How far past its timeout a check may run before the monitor gives up on it: the steps
/// share the timeout, this only covers the bookkeeping between them.
pub const CHECK_SLACK: Duration = Duration::from_secs(1);

/// The least time between two checks a lost connection asks for, so that a server closing
/// connections as fast as they open cannot make the monitor spin.
const WAKE_GAP: Duration = Duration::from_secs(1);

/// Runs a monitor until cancelled: probes every `interval`, at once when a pooled connection
/// is lost or a pool test fails, answers on-demand checks, publishes every result, and logs
/// each change of state once.
pub async fn run<P: Probe>(
    mut probe: P,
    plan: Plan,
    board: Board,
    metrics: Arc<Metrics>,
    handle: MonitorHandle,
    cancel: CancellationToken,
) {
    let mut rx = tokio::select! {
        _ = cancel.cancelled() => return,
        rx = handle.mailbox.take() => rx,
    };
    let service = probe.service();
    metrics
        .check_interval
        .with_label_values(&[service.as_str()])
        .set(plan.interval.as_secs_f64());
    let mut tracker = Transitions::new(service, board.last(service));
    let mut next = Instant::now();
    let mut last_probe: Option<Instant> = None;
    let mut health = tokio::time::interval_at((Instant::now() + HEALTH_EVERY).into(), HEALTH_EVERY);
    loop {
        let sleep = tokio::time::sleep_until(next.into());
        let reply = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = health.tick() => {
                // An on-demand check does not wait for a pool test: the test is dropped.
                let ok = tokio::select! {
                    _ = cancel.cancelled() => return,
                    ok = probe.health_check() => ok,
                    Some(MonitorCmd::CheckNow(reply)) = rx.recv() => {
                        next = Instant::now() + plan.interval;
                        last_probe = Some(Instant::now());
                        check(&mut probe, &plan, &mut tracker, &board, &metrics, Some(reply), &cancel).await;
                        continue;
                    }
                };
                let result = if ok { "success" } else { "failure" };
                metrics
                    .pool_health_checks
                    .with_label_values(&[service.as_str(), result])
                    .inc();
                if !ok {
                    tracing::debug!(service = service.as_str(), "pool test failed; checking now");
                    next = Instant::now();
                }
                continue;
            }
            _ = plan.wake.raised() => {
                tracing::debug!(service = service.as_str(), "a pooled connection was lost; checking now");
                let soon = last_probe.map_or_else(Instant::now, |t| t + WAKE_GAP);
                next = next.min(soon.max(Instant::now()));
                continue;
            }
            _ = sleep => {
                next = Instant::now() + plan.interval;
                None
            }
            Some(MonitorCmd::CheckNow(reply)) = rx.recv() => Some(reply),
        };
        last_probe = Some(Instant::now());
        check(
            &mut probe,
            &plan,
            &mut tracker,
            &board,
            &metrics,
            reply,
            &cancel,
        )
        .await;
    }
}

/// One check, cut off at the timeout plus [`CHECK_SLACK`] whatever the probe does; the result
/// is published and sent to `reply`. A check in progress is abandoned on shutdown or restart
/// rather than waited for.
async fn check<P: Probe>(
    probe: &mut P,
    plan: &Plan,
    tracker: &mut Transitions,
    board: &Board,
    metrics: &Metrics,
    reply: Option<oneshot::Sender<CheckResult>>,
    cancel: &CancellationToken,
) {
    let service = probe.service();
    let started = Instant::now();
    let bound = plan.timeout + CHECK_SLACK;
    let r = tokio::select! {
        _ = cancel.cancelled() => return,
        r = tokio::time::timeout(bound, probe.probe()) => r.unwrap_or_else(|_| cut_off(service, plan.timeout, started)),
    };
    tracker.observe(&r);
    publish(board, metrics, r.clone());
    metrics.changed();
    if let Some(reply) = reply {
        let _ = reply.send(r);
    }
}

/// The result of a check that overran its timeout.
fn cut_off(service: Service, timeout: Duration, started: Instant) -> CheckResult {
    CheckResult {
        error: Some(format!(
            "the check did not finish within its timeout of {}",
            humantime::format_duration(timeout)
        )),
        duration_seconds: started.elapsed().as_secs_f64(),
        checked_at: crate::unix_now(),
        ..CheckResult::unchecked(service)
    }
}

fn publish(board: &Board, metrics: &Metrics, r: CheckResult) {
    let svc = r.service.as_str();
    metrics.up.with_label_values(&[svc]).set(i64::from(r.up));
    metrics
        .last_check
        .with_label_values(&[svc])
        .set(r.checked_at);
    if let Some(wr) = &r.write_read {
        metrics
            .write_read_success
            .with_label_values(&[svc])
            .set(i64::from(wr.ok));
    }
    if let Some(p) = r.pool {
        metrics
            .pool_connections
            .with_label_values(&[svc, "idle"])
            .set(i64::from(p.idle));
        metrics
            .pool_connections
            .with_label_values(&[svc, "in_use"])
            .set(i64::from(p.in_use));
        metrics
            .pool_max
            .with_label_values(&[svc])
            .set(i64::from(p.max));
    }
    board.publish(r);
}

/// Remembers the last state so that a change (down, up again, write/read failing) logs once.
struct Transitions {
    service: Service,
    up: Option<bool>,
    write_read_ok: Option<bool>,
}

impl Transitions {
    fn new(service: Service, last: Option<Arc<CheckResult>>) -> Self {
        let up = last.as_ref().map(|r| r.up);
        let write_read_ok = last
            .as_ref()
            .and_then(|r| r.write_read.as_ref())
            .map(|w| w.ok);
        Self {
            service,
            up,
            write_read_ok,
        }
    }

    fn observe(&mut self, r: &CheckResult) {
        let svc = self.service.as_str();
        if self.up != Some(r.up) {
            match (self.up, r.up) {
                (_, false) => tracing::warn!(
                    service = svc,
                    error = r.error.as_deref().unwrap_or("unknown"),
                    "{svc} is down"
                ),
                (None, true) => tracing::info!(
                    service = svc,
                    latency_seconds = r.latency_seconds,
                    "{svc} is up"
                ),
                (Some(_), true) => tracing::info!(
                    service = svc,
                    latency_seconds = r.latency_seconds,
                    "{svc} is up again"
                ),
            }
            self.up = Some(r.up);
        }
        if let Some(wr) = &r.write_read {
            if self.write_read_ok != Some(wr.ok) {
                if wr.ok {
                    if self.write_read_ok.is_some() {
                        tracing::info!(service = svc, "{svc} write/read test passes again");
                    }
                } else {
                    tracing::warn!(
                        service = svc,
                        error = wr.error.as_deref().unwrap_or("unknown"),
                        "{svc} write/read test failed"
                    );
                }
                self.write_read_ok = Some(wr.ok);
            }
        }
    }
}

/// The end of one whole check: every step shares the configured timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    /// A deadline `timeout` from now.
    pub(crate) fn after(timeout: Duration) -> Self {
        Self {
            at: Instant::now() + timeout,
            timeout,
        }
    }
}

/// How long a check waits for a pooled connection: most of its timeout, so that the
/// pool's own reason (refused, authentication failed) arrives before the check gives up.
pub(crate) fn pool_wait(timeout: Duration) -> Duration {
    (timeout * 4 / 5).max(Duration::from_millis(1))
}

/// Times one step, records it in the histogram and, when it failed, in the failure counter.
pub(crate) async fn step<T, E, F>(
    metrics: &Metrics,
    service: Service,
    check: &str,
    deadline: Deadline,
    fut: F,
) -> (Duration, Result<T, String>)
where
    F: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let started = Instant::now();
    let out = match tokio::time::timeout_at(deadline.at.into(), fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "{check} did not finish within the check's timeout of {}",
            humantime::format_duration(deadline.timeout)
        )),
    };
    let took = started.elapsed();
    let svc = service.as_str();
    metrics
        .check_duration
        .with_label_values(&[svc, check])
        .observe(took.as_secs_f64());
    if out.is_err() {
        metrics
            .check_failures
            .with_label_values(&[svc, check])
            .inc();
    }
    (took, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn check_now_without_a_monitor_says_so() {
        let h = MonitorHandle::new(Service::Redis);
        let err = h.check_now(Duration::from_millis(50)).await.unwrap_err();
        assert!(err.to_string().contains("monitor.redis is not running"));
    }
}
