//! The task registry: every long-running piece is a named task the supervisor starts,
//! restarts with backoff when it fails or panics, pauses, resumes and stops on shutdown.

mod backoff;
mod runner;
mod task;

pub use backoff::Backoff;
pub use task::{factory, TaskError, TaskFactory, TaskFuture, TaskResult};

use crate::metrics::Metrics;
use crate::model::task::{TaskAction, TaskInfo, TaskState};
use runner::{Runner, SlotCmd};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why the supervisor could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("no task named {name:?}; known tasks: {}", known.join(", "))]
    UnknownTask { name: String, known: Vec<String> },
    #[error("a task named {0:?} is already registered")]
    Duplicate(String),
    #[error("the supervisor has stopped (steward is shutting down)")]
    Gone,
    #[error("task {0:?} did not answer in time")]
    NoAnswer(String),
}

enum Cmd {
    Spawn {
        name: String,
        factory: TaskFactory,
        reply: oneshot::Sender<Result<(), SupervisorError>>,
    },
    List {
        reply: oneshot::Sender<Vec<TaskInfo>>,
    },
    Act {
        name: String,
        action: TaskAction,
        reply: oneshot::Sender<Result<TaskInfo, SupervisorError>>,
    },
    Shutdown {
        timeout: Duration,
        reply: oneshot::Sender<Vec<String>>,
    },
}

struct Slot {
    status: watch::Receiver<TaskInfo>,
    ctl: mpsc::Sender<SlotCmd>,
}

/// The supervisor's private state; its `run` loop owns the registry.
struct Supervisor {
    order: Vec<String>,
    slots: HashMap<String, Slot>,
    root: CancellationToken,
    tracker: TaskTracker,
    metrics: Arc<Metrics>,
    backoff: Backoff,
    grace: Duration,
}

/// The cloneable way to reach the supervisor.
#[derive(Clone)]
pub struct SupervisorHandle {
    tx: mpsc::Sender<Cmd>,
}

/// Starts the supervisor; cancelling `root` stops every task (shutdown does it with a bound).
/// `grace` is how long a stopping task may take before it is aborted.
pub fn start(
    root: CancellationToken,
    metrics: Arc<Metrics>,
    backoff: Backoff,
    grace: Duration,
) -> SupervisorHandle {
    let (tx, rx) = mpsc::channel(64);
    let sup = Supervisor {
        order: Vec::new(),
        slots: HashMap::new(),
        root,
        tracker: TaskTracker::new(),
        metrics,
        backoff,
        grace,
    };
    tokio::spawn(sup.run(rx));
    SupervisorHandle { tx }
}

impl Supervisor {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Cmd::Spawn {
                    name,
                    factory,
                    reply,
                } => {
                    let _ = reply.send(self.spawn(name, factory));
                }
                Cmd::List { reply } => {
                    let _ = reply.send(self.list());
                }
                Cmd::Act {
                    name,
                    action,
                    reply,
                } => self.act(name, action, reply),
                Cmd::Shutdown { timeout, reply } => {
                    let _ = reply.send(self.shutdown(timeout).await);
                    return;
                }
            }
        }
    }

    fn spawn(&mut self, name: String, factory: TaskFactory) -> Result<(), SupervisorError> {
        if self.slots.contains_key(&name) {
            return Err(SupervisorError::Duplicate(name));
        }
        let (ctl_tx, ctl_rx) = mpsc::channel(8);
        let (status_tx, status_rx) = watch::channel(runner::initial_info(&name));
        let r = Runner {
            name: name.clone(),
            factory,
            status: status_tx,
            ctl: ctl_rx,
            root: self.root.clone(),
            metrics: self.metrics.clone(),
            backoff: self.backoff,
            grace: self.grace,
        };
        // Export the task's series from the start, not from its first restart.
        self.metrics.task_restarts.with_label_values(&[&name]);
        self.metrics.task_up.with_label_values(&[&name]).set(0);
        self.tracker.spawn(r.run());
        self.order.push(name.clone());
        self.slots.insert(
            name,
            Slot {
                status: status_rx,
                ctl: ctl_tx,
            },
        );
        Ok(())
    }

    fn list(&self) -> Vec<TaskInfo> {
        self.order
            .iter()
            .filter_map(|n| self.slots.get(n))
            .map(|s| s.status.borrow().clone())
            .collect()
    }

    fn act(
        &self,
        name: String,
        action: TaskAction,
        reply: oneshot::Sender<Result<TaskInfo, SupervisorError>>,
    ) {
        let Some(slot) = self.slots.get(&name) else {
            let _ = reply.send(Err(SupervisorError::UnknownTask {
                name,
                known: self.order.clone(),
            }));
            return;
        };
        let ctl = slot.ctl.clone();
        let wait = self.grace.saturating_add(Duration::from_secs(5));
        // The runner answers once the action took effect; don't hold up the registry meanwhile.
        tokio::spawn(async move {
            let (tx, rx) = oneshot::channel();
            let answer = async {
                ctl.send(SlotCmd { action, reply: tx })
                    .await
                    .map_err(|_| SupervisorError::Gone)?;
                rx.await.map_err(|_| SupervisorError::Gone)
            };
            let out = tokio::time::timeout(wait, answer)
                .await
                .unwrap_or(Err(SupervisorError::NoAnswer(name)));
            let _ = reply.send(out);
        });
    }

    async fn shutdown(&mut self, timeout: Duration) -> Vec<String> {
        self.root.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(timeout, self.tracker.wait()).await;
        self.list()
            .into_iter()
            .filter(|t| t.state != TaskState::Stopped)
            .map(|t| t.name)
            .collect()
    }
}

impl SupervisorHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Cmd,
    ) -> Result<T, SupervisorError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| SupervisorError::Gone)?;
        rx.await.map_err(|_| SupervisorError::Gone)
    }

    /// Registers a task and starts its first run.
    pub async fn spawn(&self, name: &str, factory: TaskFactory) -> Result<(), SupervisorError> {
        let name = name.to_string();
        self.ask(|reply| Cmd::Spawn {
            name,
            factory,
            reply,
        })
        .await?
    }

    /// Every task's state, in registration order.
    pub async fn list(&self) -> Result<Vec<TaskInfo>, SupervisorError> {
        self.ask(|reply| Cmd::List { reply }).await
    }

    /// Restarts, pauses or resumes one task; answers with its state afterwards.
    pub async fn act(&self, name: &str, action: TaskAction) -> Result<TaskInfo, SupervisorError> {
        let name = name.to_string();
        self.ask(|reply| Cmd::Act {
            name,
            action,
            reply,
        })
        .await?
    }

    /// Stops every task, waiting at most `timeout`; returns the names of those that did not stop.
    pub async fn shutdown(&self, timeout: Duration) -> Result<Vec<String>, SupervisorError> {
        self.ask(|reply| Cmd::Shutdown { timeout, reply }).await
    }

    /// Healthy when the supervisor answers and no task has failed repeatedly without recovering.
    pub async fn healthy(&self, within: Duration) -> bool {
        match tokio::time::timeout(within, self.list()).await {
            Ok(Ok(tasks)) => !tasks
                .iter()
                .any(|t| t.state == TaskState::BackingOff && t.restarts >= 5),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
