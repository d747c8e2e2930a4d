//! Keeps the newest connection error of a bb8 pool, which bb8 otherwise only reports as a
//! timeout, so "password authentication failed" is not shown as "no connection"; and checks a
//! connection out without waiting for the pool's timeout when the server has refused one.

use bb8::{ManageConnection, Pool, PooledConnection, RunError};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What the sink has seen: a count of errors, the newest one's text, and whether it was a
/// definite refusal (nothing listens, or the server turned steward away).
#[derive(Debug, Clone, Default)]
struct Seen {
    count: u64,
    message: Option<String>,
    refused: bool,
}

/// An error sink remembering the newest error, described by `describe`.
pub struct LastError<E> {
    slot: Arc<watch::Sender<Seen>>,
    describe: fn(&E) -> String,
    refused: fn(&E) -> bool,
}

impl<E> Clone for LastError<E> {
    fn clone(&self) -> Self {
        Self {
            slot: self.slot.clone(),
            describe: self.describe,
            refused: self.refused,
        }
    }
}

impl<E> fmt::Debug for LastError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LastError")
    }
}

impl<E> LastError<E> {
    /// A sink that describes errors with `describe` and never counts one as a refusal.
    pub fn new(describe: fn(&E) -> String) -> Self {
        Self::with_refusal(describe, |_| false)
    }

    /// A sink that describes errors with `describe`; an error `refused` says is a definite
    /// refusal ends a [`checkout`] waiting for a connection at once.
    pub fn with_refusal(describe: fn(&E) -> String, refused: fn(&E) -> bool) -> Self {
        Self {
            slot: Arc::new(watch::Sender::new(Seen::default())),
            describe,
            refused,
        }
    }

    /// Forgets the stored error, once a connection was had: older failures no longer explain
    /// anything.
    pub fn clear(&self) {
        self.slot.send_modify(|s| {
            s.message = None;
            s.refused = false;
        });
    }

    /// The newest error since the last connection was had, if any. It is kept (not taken):
    /// on a loaded machine an attempt may fail only after the check that started it timed
    /// out, and the next checks must still be able to say why.
    pub fn latest(&self) -> Option<String> {
        self.slot.borrow().message.clone()
    }

    /// Waits for a refusal newer than the `count` seen when the wait began; its text.
    async fn refusal_after(&self, count: u64) -> String {
        let mut rx = self.slot.subscribe();
        let found = rx
            .wait_for(|s| s.count > count && s.refused)
            .await
            .map(|s| s.message.clone().unwrap_or_default());
        match found {
            Ok(message) => message,
            // The sender lives as long as `self`: never reached.
            Err(_) => std::future::pending().await,
        }
    }
}

impl<E: Send + 'static> bb8::ErrorSink<E> for LastError<E> {
    fn sink(&self, error: E) {
        let message = (self.describe)(&error);
        let refused = (self.refused)(&error);
        self.slot.send_modify(|s| {
            s.count += 1;
            s.message = Some(message);
            s.refused = refused;
        });
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<E>> {
        Box::new(self.clone())
    }
}

/// The message for a pool timeout: the real cause when the pool saw one.
pub fn no_connection(last: Option<String>, timeout: std::time::Duration) -> String {
    match last {
        Some(e) => e,
        None => format!(
            "no connection within {}",
            humantime::format_duration(timeout)
        ),
    }
}

/// A connection from `pool`, whose error sink is `last`: an idle one, or a new one. When a
/// connection attempt made meanwhile is refused, this returns that refusal at once instead of
/// waiting out the pool's `connection_timeout` (bb8 only hands the error to the sink). A
/// connection had clears `last`; `timeout` is named when the pool gave up without a reason.
///
/// An idle connection the server has already closed is passed over (the pool drops it when it
/// comes back), so a check after a lost connection reports the server, not the stale socket.
pub async fn checkout<M>(
    pool: &Pool<M>,
    last: &LastError<M::Error>,
    timeout: Duration,
) -> Result<PooledConnection<'static, M>, String>
where
    M: ManageConnection,
    M::Connection: Closed,
{
    let seen = last.slot.borrow().count;
    let get = async {
        loop {
            match pool.get_owned().await {
                Ok(conn) if conn.closed() => continue,
                other => return other,
            }
        }
    };
    let got = tokio::select! {
        // A connection the pool already holds wins over a refusal noticed at the same time.
        biased;
        got = get => got,
        refusal = last.refusal_after(seen) => return Err(refusal),
    };
    match got {
        Ok(conn) => {
            last.clear();
            Ok(conn)
        }
        Err(RunError::User(e)) => Err((last.describe)(&e)),
        Err(RunError::TimedOut) => Err(no_connection(last.latest(), timeout)),
    }
}

/// A pooled connection that can tell, without a round trip, that its server has closed it.
pub trait Closed {
    fn closed(&self) -> bool;
}

impl Closed for tokio_postgres::Client {
    fn closed(&self) -> bool {
        self.is_closed()
    }
}

impl Closed for redis::aio::MultiplexedConnection {
    /// Not known without a round trip; the Redis pool PINGs on checkout instead.
    fn closed(&self) -> bool {
        false
    }
}

/// Whether a redis error is a refused connection or a refused login.
pub fn redis_refused(e: &redis::RedisError) -> bool {
    e.is_connection_refusal() || e.kind() == redis::ErrorKind::AuthenticationFailed
}

/// Whether a PostgreSQL connection error is definite: nothing listens at the address, or the
/// server answered with an error (authentication failed, no such database, too many clients).
pub fn postgres_refused(e: &tokio_postgres::Error) -> bool {
    if e.as_db_error().is_some() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            );
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use bb8::ErrorSink;

    #[test]
    fn keeps_newest_until_cleared() {
        let s: LastError<String> = LastError::new(|e| format!("E: {e}"));
        s.sink("one".into());
        s.boxed_clone().sink("two".into());
        assert_eq!(s.latest().as_deref(), Some("E: two"));
        // Kept for the next check until a connection is had.
        assert_eq!(s.latest().as_deref(), Some("E: two"));
        s.sink("three".into());
        s.clear();
        assert_eq!(s.latest(), None);
        assert!(no_connection(None, std::time::Duration::from_secs(1))
            .contains("no connection within 1s"));
    }

    #[tokio::test]
    async fn only_a_refusal_after_the_wait_began_ends_it() {
        let s: LastError<String> =
            LastError::with_refusal(|e| e.clone(), |e| e.starts_with("refused"));
        s.sink("refused: old".into());
        let seen = s.slot.borrow().count;
        let wait = s.refusal_after(seen);
        tokio::pin!(wait);
        let short = Duration::from_millis(50);
        assert!(tokio::time::timeout(short, &mut wait).await.is_err());
        s.sink("broken pipe".into());
        assert!(tokio::time::timeout(short, &mut wait).await.is_err());
        s.sink("refused: now".into());
        assert_eq!(
            tokio::time::timeout(short, &mut wait).await.unwrap(),
            "refused: now"
        );
    }

    #[tokio::test]
    async fn a_refused_connect_is_reported_at_once() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).unwrap();
        let manager = super::super::wake::RedisManager::new(
            client,
            Duration::from_secs(30),
            Default::default(),
        );
        let last = LastError::with_refusal(|e: &redis::RedisError| e.to_string(), redis_refused);
        let pool = Pool::builder()
            .connection_timeout(Duration::from_secs(30))
            .retry_connection(false)
            .error_sink(Box::new(last.clone()))
            .build_unchecked(manager);
        let got = tokio::time::timeout(
            Duration::from_secs(10),
            checkout(&pool, &last, Duration::from_secs(30)),
        )
        .await
        .expect("well before the pool's 30 s");
        let Err(e) = got else {
            panic!("a connection to a closed port")
        };
        assert!(e.to_lowercase().contains("refused"), "{e}");
    }
}
