//! Connections for cache operations: one multiplexed connection per operation, opened and
//! answering within `[redis] timeout` (`REDIS_SOCKET_TIMEOUT`), so a dead Redis fails a command
//! fast with one line instead of hanging it.

use super::CacheError;
use crate::config::Config;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

/// Opens a connection with the config's URL (password included, never shown) and timeouts.
pub async fn connect(cfg: &Config) -> Result<MultiplexedConnection, CacheError> {
    let scrubber = cfg.scrubber();
    let client = crate::monitor::redis::client(&cfg.redis, &scrubber)
        .map_err(|e| CacheError::Unreachable(e.to_string()))?;
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
