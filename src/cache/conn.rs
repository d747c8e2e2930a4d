//! Connections for cache operations: one multiplexed connection per operation, with TCP
//! keepalive, opened and answering within `[redis] timeout` (`REDIS_SOCKET_TIMEOUT`), so a dead
//! Redis fails a command fast with one line instead of hanging it; and retries with backoff
//! for commands that are safe to repeat.

use super::CacheError;
use crate::config::Config;
use redis::aio::MultiplexedConnection;
use redis::io::tcp::{socket2::TcpKeepalive, TcpSettings};
use redis::{AsyncConnectionConfig, IntoConnectionInfo};
use std::future::Future;
use std::time::Duration;

/// Keepalive probes start after this much idle time, so a peer that vanished (a failover, a
/// dropped NAT entry) is noticed on a long-lived connection.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// Opens a connection with the config's URL (password included, never shown) and timeouts.
pub async fn connect(cfg: &Config) -> Result<MultiplexedConnection, CacheError> {
    let scrubber = cfg.scrubber();
    let bad_url = |e: redis::RedisError| CacheError::Unreachable(scrubber.scrub(&e.to_string()));
    let info = cfg
        .redis
        .url
        .expose()
        .into_connection_info()
        .map_err(bad_url)?;
    let tcp = TcpSettings::default().set_keepalive(
        TcpKeepalive::new()
            .with_time(KEEPALIVE)
            .with_interval(KEEPALIVE / 3),
    );
    let client = redis::Client::open(info.set_tcp_settings(tcp)).map_err(bad_url)?;
    let timeout = cfg.redis.timeout;
    let conn_cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    client
        .get_multiplexed_async_connection_with_config(&conn_cfg)
        .await
        .map_err(|e| CacheError::Unreachable(scrubber.scrub(&e.to_string())))
}

/// A Redis error from `command` as a [`CacheError`], secrets removed.
pub fn failed(cfg: &Config, command: &'static str, e: &redis::RedisError) -> CacheError {
    CacheError::Command {
        command,
        message: cfg.scrubber().scrub(&e.to_string()),
    }
}

/// Whether an error is worth another try: a timeout or a dropped connection, not an answer.
pub fn is_transient(e: &redis::RedisError) -> bool {
    e.is_timeout() || e.is_connection_dropped() || e.is_io_error()
}

/// Runs an idempotent command (SCAN, TTL, GET, INFO, MEMORY USAGE…), trying again after 100,
/// 200 and 400 ms when it timed out or lost its connection; other errors return at once.
pub async fn retry_idempotent<T, F, Fut>(mut attempt: F) -> redis::RedisResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    let mut delay = Duration::from_millis(100);
    for _ in 0..3 {
        match attempt().await {
            Err(e) if is_transient(&e) => {
                tracing::debug!(error = %e, retry_in_ms = delay.as_millis() as u64, "Redis command failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    attempt().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{ErrorKind, RedisError};

    fn io_error() -> RedisError {
        RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow"))
    }

    #[tokio::test]
    async fn transient_errors_are_retried_then_given_up() {
        let mut calls = 0;
        let out: redis::RedisResult<u8> = retry_idempotent(|| {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(io_error())
                } else {
                    Ok(7)
                }
            }
        })
        .await;
        assert_eq!((out.unwrap(), calls), (7, 3));
        let mut calls = 0;
        let out: redis::RedisResult<u8> = retry_idempotent(|| {
            calls += 1;
            async { Err(io_error()) }
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls, 4, "one try and three retries");
    }

    #[tokio::test]
    async fn an_answer_from_redis_is_not_retried() {
        let mut calls = 0;
        let out: redis::RedisResult<u8> = retry_idempotent(|| {
            calls += 1;
            async {
                Err(RedisError::from((
                    ErrorKind::Server(redis::ServerErrorKind::ResponseError),
                    "WRONGTYPE",
                )))
            }
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn a_dead_redis_fails_fast_with_one_line() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cfg = Config::default();
        cfg.redis.url =
            crate::secret::SecretUrl::new(format!("redis://:hunter2@127.0.0.1:{port}/0"));
        let e = connect(&cfg).await.unwrap_err().to_string();
        assert!(e.starts_with("cannot reach Redis"), "{e}");
        assert!(!e.contains("hunter2") && !e.contains('\n'), "{e}");
    }
}
