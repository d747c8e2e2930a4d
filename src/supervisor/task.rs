//! What a supervised task is: a factory making fresh runs, each run's future and result, and
//! its failure as text.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What a task's run returns; `Err` (or a panic) makes the supervisor restart it.
pub type TaskResult = Result<(), TaskError>;
/// One run of a task.
pub type TaskFuture = Pin<Box<dyn Future<Output = TaskResult> + Send>>;
/// Makes a fresh run of a task; the token is cancelled to stop that run.
pub type TaskFactory = Arc<dyn Fn(CancellationToken) -> TaskFuture + Send + Sync>;

/// A task's failure, as text already free of secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TaskError(pub String);

impl TaskError {
    /// Wraps any error's message.
    pub fn from_display(e: impl std::fmt::Display) -> Self {
        TaskError(e.to_string())
    }
}

/// Wraps an async closure as a task factory.
pub fn factory<F, Fut>(f: F) -> TaskFactory
where
    F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = TaskResult> + Send + 'static,
{
    Arc::new(move |token| Box::pin(f(token)))
}
