//! The request side of a supervised actor whose handle outlives restarts of its task: a
//! bounded channel whose receiver each run of the task takes in turn, and asking with a reply
//! on a oneshot, optionally bounded in time.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex, OwnedMutexGuard};

/// A cloneable mailbox: senders ask, the current run of the task serves.
pub struct Mailbox<C> {
    tx: mpsc::Sender<C>,
    rx: Arc<Mutex<mpsc::Receiver<C>>>,
}

impl<C> Clone for Mailbox<C> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            rx: self.rx.clone(),
        }
    }
}

impl<C> Mailbox<C> {
    /// A mailbox holding at most `capacity` waiting requests.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        Self {
            tx,
            rx: Arc::new(Mutex::new(rx)),
        }
    }

    /// The receiver, for one run of the task; a restarted run waits until the previous one
    /// has let go of it.
    pub async fn take(&self) -> OwnedMutexGuard<mpsc::Receiver<C>> {
        self.rx.clone().lock_owned().await
    }

    /// Sends the request `make` builds and waits for its reply; `None` when no run of the task
    /// took it (stopped, paused, backing off) or, with `wait`, when the send or the reply each
    /// took longer than that.
    pub async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> C,
        wait: Option<Duration>,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let send = self.tx.send(make(tx));
        match wait {
            Some(wait) => {
                tokio::time::timeout(wait, send).await.ok()?.ok()?;
                tokio::time::timeout(wait, rx).await.ok()?.ok()
            }
            None => {
                send.await.ok()?;
                rx.await.ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn asks_the_current_run_and_gives_up_without_one() {
        let m: Mailbox<oneshot::Sender<u8>> = Mailbox::new(1);
        let wait = Some(Duration::from_millis(50));
        // Nobody serves: the first request fills the channel, the reply never comes.
        assert_eq!(m.ask(|tx| tx, wait).await, None);
        let served = m.clone();
        tokio::spawn(async move {
            let mut rx = served.take().await;
            while let Some(reply) = rx.recv().await {
                let _ = reply.send(7);
            }
        });
        // The stale request is answered first (its receiver is gone), then ours.
        assert_eq!(m.ask(|tx| tx, wait).await, Some(7));
        assert_eq!(m.ask(|tx| tx, None).await, Some(7));
    }
}
