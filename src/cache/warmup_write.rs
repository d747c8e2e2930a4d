//! The Redis side of a warm-up: the pipelines of SETs built by the row reader go out over one
//! multiplexed connection, up to [`WINDOW`] of them in flight at once, so the round trips
//! overlap instead of adding up — and still in the order they were built, so when the query
//! returns a key suffix twice the later row wins, as it would one SET at a time.
//!
//! Order: each pipeline is polled once as soon as it is taken, which puts it on the
//! connection's request queue (a FIFO channel) before the next one is taken; Redis answers a
//! connection's requests in order. A pipeline that failed on a timeout or a lost connection is
//! sent again (SET with a TTL is safe to repeat) — only then can an older value land after a
//! newer one of the same key.

use super::conn;
use super::warmup::{stopped, WarmupError};
use super::warmup_read::Batch;
use crate::config::Config;
use futures_util::future::{maybe_done, MaybeDone};
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use tokio::sync::mpsc;

/// Pipelines awaiting their replies at once: enough to hide the round trip, few enough that a
/// failure leaves little to redo.
const WINDOW: usize = 4;

type Sent = Pin<Box<dyn Future<Output = (redis::RedisResult<()>, u64)> + Send>>;

/// Sends the pipelines from `rx` to Redis until the reader is done; returns the keys written.
/// An error from the reader or from Redis ends it, saying how many keys were written.
pub(super) async fn write(
    cfg: &Config,
    redis: redis::aio::MultiplexedConnection,
    mut rx: mpsc::Receiver<Result<Batch, WarmupError>>,
    namespace: &str,
) -> Result<u64, WarmupError> {
    let mut written = 0u64;
    let mut window: FuturesOrdered<Sent> = FuturesOrdered::new();
    let done = |out: (redis::RedisResult<()>, u64), written: &mut u64| match out {
        (Ok(()), n) => {
            *written += n;
            Ok(())
        }
        (Err(e), _) => Err(stopped(
            namespace,
            *written,
            conn::failed(cfg, "SET", &e).to_string(),
        )),
    };
    loop {
        let item = if window.len() < WINDOW {
            tokio::select! {
                item = rx.recv() => item,
                Some(out) = window.next(), if !window.is_empty() => {
                    done(out, &mut written)?;
                    continue;
                }
            }
        } else {
            let out = window.next().await.expect("the window is full");
            done(out, &mut written)?;
            continue;
        };
        match item {
            None => break,
            Some(Err(e)) => {
                // Count what was already on its way before reporting.
                while let Some(out) = window.next().await {
                    done(out, &mut written)?;
                }
                return Err(match written {
                    0 => e,
                    n => stopped(namespace, n, e.to_string()),
                });
            }
            Some(Ok(batch)) => window.push_back(send(redis.clone(), batch).await),
        }
    }
    while let Some(out) = window.next().await {
        done(out, &mut written)?;
    }
    Ok(written)
}

/// Starts sending one pipeline: polls it once, so it is queued on the connection now, and
/// returns the rest of it (its reply) as a future.
async fn send(redis: redis::aio::MultiplexedConnection, (pipe, n): Batch) -> Sent {
    let request = async move {
        let pipe = &pipe;
        let out = conn::retry_idempotent(|| {
            let mut c = redis.clone();
            async move { pipe.query_async::<()>(&mut c).await }
        })
        .await;
        (out, n)
    };
    // MaybeDone keeps the output if this first poll already finishes it (e.g. a closed
    // connection fails at once), and may be polled again afterwards.
    let mut started: Pin<Box<MaybeDone<_>>> = Box::pin(maybe_done(request));
    std::future::poll_fn(|cx| {
        let _ = started.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await;
    Box::pin(async move {
        started.as_mut().await;
        started
            .as_mut()
            .take_output()
            .expect("the output is taken once")
    })
}
