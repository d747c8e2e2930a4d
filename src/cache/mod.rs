//! Redis cache management: the namespace policies of `[cache]` applied to the application's
//! keys — statistics, clearing by pattern, warm-up from PostgreSQL, TTL audit — always in small
//! steps (SCAN, pipelines, UNLINK), so Redis is never blocked.

pub mod clear;
pub mod codec;
pub mod conn;
pub mod eviction;
pub mod report;
pub mod stats;
pub mod tally;
pub mod warmup;
mod warmup_jobs;
mod warmup_read;
mod warmup_report;
mod warmup_sql;
pub mod warmup_task;
mod warmup_write;

/// Why a cache operation could not be carried out; every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot reach Redis: {0} (is it running? `steward check redis` tells more)")]
    Unreachable(String),
    #[error("Redis failed on {command}: {message}")]
    Command {
        command: &'static str,
        message: String,
    },
    #[error("no cache namespace named {name:?}; configured: {known} (see [[cache.namespace]])")]
    UnknownNamespace { name: String, known: String },
    #[error("{0}")]
    Refused(String),
}

impl CacheError {
    /// The names of the configured namespaces, for [`CacheError::UnknownNamespace`].
    pub fn unknown_namespace(name: &str, cfg: &crate::config::CacheConfig) -> Self {
        let known: Vec<&str> = cfg.namespaces.iter().map(|n| n.name.as_str()).collect();
        CacheError::UnknownNamespace {
            name: name.into(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        }
    }
}
