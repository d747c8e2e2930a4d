//! The small sections of the configuration: `[postgres]`, `[redis]`, `[state]`, `[shutdown]`,
//! `[history]` and `[maintenance]`, with their defaults.

use crate::secret::SecretUrl;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// `[maintenance]`: what maintenance mode (`steward maintenance on`) holds back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// Run scheduled backups during maintenance too; by default they are skipped (and counted),
    /// since maintenance work such as a migration or a restore makes a dump meaningless or slow.
    pub run_backups: bool,
}

/// `[history]`: how much of each service's check history is kept in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    pub max_entries: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(24 * 3600),
            max_entries: 10_000,
        }
    }
}

/// `[postgres]`: the monitored database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    pub url: SecretUrl,
    /// A file holding the URL, so the secret need not sit in the config file.
    pub url_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub pool_max: u32,
    pub write_read_test: bool,
    pub heartbeat_table: String,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("postgres://postgres@localhost:5432/postgres"),
            url_file: None,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            pool_max: 4,
            write_read_test: true,
            heartbeat_table: "steward_heartbeat".into(),
        }
    }
}

/// `[redis]`: the monitored cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    pub url: SecretUrl,
    /// A file holding the AUTH password, used when the URL carries none.
    pub password_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub pool_max: u32,
    pub write_read_test: bool,
    /// `"default"` or `"production"`; production raises the default `pool_max` to 100.
    pub profile: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("redis://127.0.0.1:6379/0"),
            password_file: None,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            pool_max: 50,
            write_read_test: true,
            profile: "default".into(),
        }
    }
}

/// `[state]`: where steward keeps what must survive a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("var/state"),
        }
    }
}

/// `[shutdown]`: how long a graceful stop may take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
        }
    }
}
