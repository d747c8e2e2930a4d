//! The Redis side of a warm-up: the pipelines of SETs built by the row reader go out over one
//! multiplexed connection, up to [`WINDOW`] of them in flight at once, so the round trips
//! overlap instead of adding up — and still in the order they were built, so when the query
//! returns a key suffix twice the later row wins, as it would one SET at a time.
//!
//! The keys written are the SETs Redis confirmed: each SET's reply is read, so a pipeline that
//! Redis refused part of (out of memory, say) counts what it did write, and after a failure
//! the pipelines already sent are still counted before the warm-up stops.
//!
//! Order: each pipeline is polled once as soon as it is taken, which puts it on the
//! connection's request queue (a FIFO channel) before the next one is taken; Redis answers a
//! connection's requests in order. A pipeline that failed on a timeout or a lost connection is
//! sent again (SET with a TTL is safe to repeat) — only then can an older value land after a
//! newer one of the same key.

use super::conn;
use super::warmup_report::{stopped, WarmupError};
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

/// One pipeline's outcome: the SETs Redis confirmed, and why the others failed.
type Outcome = (u64, Option<redis::RedisError>);

type Sent = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// A pipeline of SETs and how many it holds: what the row reader hands over.
pub(super) type Batch = (redis::Pipeline, u64);

/// Sends the pipelines from `rx` to Redis until the reader is done; returns the keys written.
/// An error from the reader or from Redis ends it, saying how many keys were written: every
/// SET Redis confirmed, in the pipelines already on their way too, and no other.
pub(super) async fn write(
    cfg: &Config,
    redis: redis::aio::MultiplexedConnection,
    mut rx: mpsc::Receiver<Result<Batch, WarmupError>>,
    namespace: &str,
) -> Result<u64, WarmupError> {
    let mut tally = Tally::default();
    let mut window: FuturesOrdered<Sent> = FuturesOrdered::new();
    while tally.redis.is_none() {
        let item = tokio::select! {
            item = rx.recv(), if window.len() < WINDOW => item,
            Some(out) = window.next(), if !window.is_empty() => {
                tally.add(out);
                continue;
            }
        };
        match item {
            None => break,
            Some(Err(e)) => {
                tally.reader = Some(e);
                break;
            }
            Some(Ok(batch)) => window.push_back(send(redis.clone(), batch).await),
        }
    }
    // What is on its way is written (or not) whatever happens now: count it.
    while let Some(out) = window.next().await {
        tally.add(out);
    }
    tally.finish(cfg, namespace)
}

/// What the pipelines came to so far.
#[derive(Default)]
struct Tally {
    written: u64,
    /// The first Redis error: no pipeline is sent after it.
    redis: Option<redis::RedisError>,
    /// The reader's error, which ended the rows.
    reader: Option<WarmupError>,
}

impl Tally {
    fn add(&mut self, (ok, err): Outcome) {
        self.written += ok;
        if self.redis.is_none() {
            self.redis = err;
        }
    }

    /// A Redis failure first (it stopped the writing), then the reader's.
    fn finish(self, cfg: &Config, namespace: &str) -> Result<u64, WarmupError> {
        let reason = match (self.redis, self.reader) {
            (Some(e), _) => conn::failed(cfg, "SET", &e).to_string(),
            (None, Some(e)) if self.written == 0 => return Err(e),
            (None, Some(e)) => e.to_string(),
            (None, None) => return Ok(self.written),
        };
        Err(stopped(namespace, self.written, reason))
    }
}

/// The confirmed SETs of a pipeline's replies and its first failed one.
fn outcome(replies: redis::RedisResult<Vec<redis::RedisResult<redis::Value>>>) -> Outcome {
    match replies {
        Err(e) => (0, Some(e)),
        Ok(replies) => {
            let ok = replies.iter().filter(|r| r.is_ok()).count() as u64;
            (ok, replies.into_iter().find_map(Result::err))
        }
    }
}

/// Starts sending one pipeline: polls it once, so it is queued on the connection now, and
/// returns the rest of it (its reply) as a future.
async fn send(redis: redis::aio::MultiplexedConnection, (mut pipe, _): Batch) -> Sent {
    // One reply per SET, failed ones included, so that a pipeline Redis refused part of
    // counts the SETs it did carry out.
    pipe.ignore_errors();
    let request = async move {
        let pipe = &pipe;
        let replies = conn::retry_idempotent(|| {
            let mut c = redis.clone();
            async move { pipe.query_async(&mut c).await }
        })
        .await;
        outcome(replies)
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

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{ErrorKind, RedisError, ServerErrorKind, Value};

    fn oom() -> RedisError {
        RedisError::from((ErrorKind::Server(ServerErrorKind::ResponseError), "OOM"))
    }

    #[test]
    fn a_partly_refused_pipeline_counts_what_redis_confirmed() {
        let replies = vec![
            Ok(Value::Okay),
            Ok(Value::Okay),
            Err(oom()),
            Ok(Value::Okay),
        ];
        let (ok, err) = outcome(Ok(replies));
        assert_eq!(ok, 3);
        assert!(err.unwrap().to_string().contains("OOM"));
        let (ok, err) = outcome(Err(oom()));
        assert_eq!((ok, err.is_some()), (0, true));
    }

    #[test]
    fn the_report_names_redis_first_then_the_reader() {
        let cfg = Config::default();
        let reader = || WarmupError::NothingToWarm;
        let t = Tally {
            written: 0,
            redis: None,
            reader: Some(reader()),
        };
        assert!(matches!(
            t.finish(&cfg, "n"),
            Err(WarmupError::NothingToWarm)
        ));
        let t = Tally {
            written: 5,
            redis: Some(oom()),
            reader: Some(reader()),
        };
        match t.finish(&cfg, "n") {
            Err(WarmupError::Stopped {
                written, reason, ..
            }) => assert!(written == 5 && reason.contains("OOM"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(Tally::default().finish(&cfg, "n").unwrap(), 0);
    }
}
