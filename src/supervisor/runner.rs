//! One task's runner: starts runs, watches them, restarts with backoff, obeys pause/resume.

use super::backoff::Backoff;
use super::task::{TaskFactory, TaskResult};
use crate::metrics::Metrics;
use crate::model::task::{TaskAction, TaskInfo, TaskState};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;

/// An action for one task, answered with its state once the action took effect.
pub(super) struct SlotCmd {
    pub action: TaskAction,
    pub reply: oneshot::Sender<TaskInfo>,
}

pub(super) fn initial_info(name: &str) -> TaskInfo {
    TaskInfo {
        name: name.to_string(),
        state: TaskState::Stopped,
        started_at: None,
        since: crate::unix_now(),
        restarts: 0,
        last_error: None,
    }
}

pub(super) struct Runner {
    pub name: String,
    pub factory: TaskFactory,
    pub status: watch::Sender<TaskInfo>,
    pub ctl: mpsc::Receiver<SlotCmd>,
    pub root: CancellationToken,
    pub metrics: Arc<Metrics>,
    pub backoff: Backoff,
    pub grace: Duration,
}

/// How one run ended.
enum Ended {
    Finished(Result<TaskResult, JoinError>),
    Restart(oneshot::Sender<TaskInfo>),
    Pause(oneshot::Sender<TaskInfo>),
    Shutdown,
}

impl Runner {
    pub(super) async fn run(mut self) {
        let mut paused = false;
        let mut failures: u32 = 0;
        let mut waiting: Vec<oneshot::Sender<TaskInfo>> = Vec::new();
        loop {
            if self.root.is_cancelled() {
                return self.set_stopped();
            }
            if paused {
                self.set(TaskState::Paused, None);
                self.answer(&mut waiting);
                match self.wait_while_paused().await {
                    Some(reply) => {
                        paused = false;
                        failures = 0;
                        waiting.push(reply);
                    }
                    None => return self.set_stopped(),
                }
                continue;
            }
            let token = self.root.child_token();
            let mut handle = tokio::spawn((self.factory)(token.clone()));
            let started = Instant::now();
            self.set(TaskState::Running, Some(crate::unix_now()));
            self.metrics.task_up.with_label_values(&[&self.name]).set(1);
            self.answer(&mut waiting);
            let ended = self.watch_run(&mut handle).await;
            if !matches!(ended, Ended::Finished(_)) {
                self.stop_run(handle, &token).await;
            }
            self.metrics.task_up.with_label_values(&[&self.name]).set(0);
            let error = match ended {
                Ended::Shutdown => return self.set_stopped(),
                Ended::Restart(reply) => {
                    tracing::info!(task = %self.name, "task restarted on request");
                    waiting.push(reply);
                    continue;
                }
                Ended::Pause(reply) => {
                    tracing::info!(task = %self.name, "task paused");
                    paused = true;
                    waiting.push(reply);
                    continue;
                }
                Ended::Finished(_) if self.root.is_cancelled() => return self.set_stopped(),
                Ended::Finished(Ok(Ok(()))) => "exited unexpectedly".to_string(),
                Ended::Finished(Ok(Err(e))) => e.0,
                Ended::Finished(Err(e)) => panic_text(e),
            };
            if started.elapsed() >= self.backoff.stable_after {
                failures = 0;
            }
            failures += 1;
            let delay = self.backoff.delay(failures);
            self.metrics
                .task_restarts
                .with_label_values(&[&self.name])
                .inc();
            self.status.send_modify(|s| {
                s.restarts += 1;
                s.last_error = Some(error.clone());
            });
            tracing::warn!(
                task = %self.name,
                error = %error,
                restarts = self.status.borrow().restarts,
                retry_in_seconds = delay.as_secs_f64(),
                "task failed; restarting after backoff"
            );
            self.set(TaskState::BackingOff, None);
            match self.back_off(delay).await {
                BackoffEnd::Elapsed => {}
                BackoffEnd::Now(reply) => waiting.push(reply),
                BackoffEnd::Pause(reply) => {
                    paused = true;
                    waiting.push(reply);
                }
                BackoffEnd::Shutdown => return self.set_stopped(),
            }
        }
    }

    async fn watch_run(&mut self, handle: &mut JoinHandle<TaskResult>) -> Ended {
        loop {
            tokio::select! {
                res = &mut *handle => return Ended::Finished(res),
                _ = self.root.cancelled() => return Ended::Shutdown,
                cmd = self.ctl.recv() => match cmd {
                    None => return Ended::Shutdown,
                    Some(SlotCmd { action: TaskAction::Restart, reply }) => return Ended::Restart(reply),
                    Some(SlotCmd { action: TaskAction::Pause, reply }) => return Ended::Pause(reply),
                    Some(SlotCmd { action: TaskAction::Resume, reply }) => {
                        let _ = reply.send(self.status.borrow().clone());
                    }
                },
            }
        }
    }

    /// Cancels a run and waits for it, aborting it after the grace period.
    async fn stop_run(&self, mut handle: JoinHandle<TaskResult>, token: &CancellationToken) {
        token.cancel();
        if tokio::time::timeout(self.grace, &mut handle).await.is_err() {
            tracing::warn!(task = %self.name, grace_seconds = self.grace.as_secs_f64(), "task did not stop in time; aborted");
            handle.abort();
        }
    }

    /// Waits for resume or restart; `None` means shutdown.
    async fn wait_while_paused(&mut self) -> Option<oneshot::Sender<TaskInfo>> {
        loop {
            tokio::select! {
                _ = self.root.cancelled() => return None,
                cmd = self.ctl.recv() => match cmd {
                    None => return None,
                    Some(SlotCmd { action: TaskAction::Pause, reply }) => {
                        let _ = reply.send(self.status.borrow().clone());
                    }
                    Some(SlotCmd { reply, .. }) => {
                        tracing::info!(task = %self.name, "task resumed");
                        return Some(reply);
                    }
                },
            }
        }
    }

    async fn back_off(&mut self, delay: Duration) -> BackoffEnd {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return BackoffEnd::Elapsed,
                _ = self.root.cancelled() => return BackoffEnd::Shutdown,
                cmd = self.ctl.recv() => match cmd {
                    None => return BackoffEnd::Shutdown,
                    Some(SlotCmd { action: TaskAction::Pause, reply }) => return BackoffEnd::Pause(reply),
                    Some(SlotCmd { action: TaskAction::Restart, reply }) => return BackoffEnd::Now(reply),
                    Some(SlotCmd { action: TaskAction::Resume, reply }) => {
                        let _ = reply.send(self.status.borrow().clone());
                    }
                },
            }
        }
    }

    fn set(&self, state: TaskState, started_at: Option<f64>) {
        self.status.send_modify(|s| {
            s.state = state;
            s.since = crate::unix_now();
            s.started_at = started_at;
        });
    }

    fn set_stopped(&self) {
        self.metrics.task_up.with_label_values(&[&self.name]).set(0);
        self.set(TaskState::Stopped, None);
    }

    fn answer(&self, waiting: &mut Vec<oneshot::Sender<TaskInfo>>) {
        let info = self.status.borrow().clone();
        for r in waiting.drain(..) {
            let _ = r.send(info.clone());
        }
    }
}

enum BackoffEnd {
    Elapsed,
    Now(oneshot::Sender<TaskInfo>),
    Pause(oneshot::Sender<TaskInfo>),
    Shutdown,
}

fn panic_text(e: JoinError) -> String {
    if !e.is_panic() {
        return "cancelled".into();
    }
    let p = e.into_panic();
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("panicked: {msg}")
}
