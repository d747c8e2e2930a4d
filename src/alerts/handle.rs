//! The cloneable way to ask the alert engine, and the commands it carries.

use super::reply::AlertsReply;
use crate::mailbox::Mailbox;
use tokio::sync::oneshot;

/// Why the alert engine did not answer.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("the alert engine has stopped (steward is shutting down)")]
    Gone,
}

pub(crate) enum Cmd {
    List(oneshot::Sender<AlertsReply>),
}

/// The cloneable way to ask the alert engine; it outlives restarts of the `alerts` task.
#[derive(Clone)]
pub struct AlertHandle {
    pub(super) mailbox: Mailbox<Cmd>,
}

impl AlertHandle {
    /// Every alert instance with its state.
    pub async fn list(&self) -> Result<AlertsReply, AlertError> {
        self.mailbox
            .ask(Cmd::List, None)
            .await
            .ok_or(AlertError::Gone)
    }
}
