//! The configuration: typed sections, defaults, loading (file + environment) and validation.

mod alerts;
mod audit;
mod backup;
mod backup_remote;
pub mod basic_auth_users;
mod cache;
mod control;
mod instance;
mod load;
mod metrics;
mod metrics_check;
pub mod metrics_tls;
mod paths;
mod pg_tool;
mod problem;
pub mod regular_file;
mod secret_file;
mod validate;

pub use alerts::{AlertmanagerConfig, AlertsConfig, Rule, Severity};
pub use audit::AuditConfig;
pub use backup::{
    is_backup_database_name, is_database_dir_name, parse_identities, BackupConfig, Compression,
    DumpFormat, EncryptionConfig, ScheduleConfig, ALL_DATABASES,
};
pub use backup_remote::{parse_bucket_url, BucketUrl, RemoteConfig, SecretValue};
pub use cache::{CacheConfig, Codec, NamespaceConfig, WarmupConfig, EVICTION_POLICIES};
pub use control::{group_id, ControlConfig};
pub use instance::{InstanceConfig, MAX_NAME as MAX_INSTANCE_NAME};
pub use load::{load, resolve_path, LoadError};
pub use metrics::{
    BcryptHash, MetricsConfig, DEFAULT_METRICS_PORT, MAX_CONNECTIONS as MAX_METRICS_CONNECTIONS,
};
pub use paths::{anchored, base_dir};
pub use problem::Problem;
pub(crate) use secret_file::read_secret_quietly;

use crate::secret::{Scrubber, SecretUrl};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The whole effective configuration, shared as `Arc<Config>` through a `watch` channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub postgres: PostgresConfig,
    pub redis: RedisConfig,
    pub metrics: MetricsConfig,
    pub control: ControlConfig,
    pub state: StateConfig,
    pub shutdown: ShutdownConfig,
    pub log: LogConfig,
    pub backup: BackupConfig,
    pub history: HistoryConfig,
    pub maintenance: MaintenanceConfig,
    pub alerts: AlertsConfig,
    pub alertmanager: AlertmanagerConfig,
    pub cache: CacheConfig,
    /// `[audit]`: the log of admin commands and of what steward deletes or changes by itself.
    pub audit: AuditConfig,
    /// `[instance]`: this steward's name on shared servers.
    pub instance: InstanceConfig,
}

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

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// `[log]`: format and level (a level name or a tracing filter directive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            level: "info".into(),
        }
    }
}

impl Config {
    /// A scrubber that masks every secret this config holds, for error text and logs.
    pub fn scrubber(&self) -> Scrubber {
        let mut s = self.postgres.url.secrets();
        s.extend(self.redis.url.secrets());
        if let Some(u) = &self.backup.restore_test.url {
            s.extend(u.secrets());
        }
        s.extend(self.backup.remote.secrets());
        Scrubber::new(s)
    }

    /// This steward's name (`[instance] name`, else host name and metrics port): what marks
    /// its heartbeat row and Redis keys as its own.
    pub fn instance_name(&self) -> String {
        self.instance
            .resolved(&crate::hostname(), self.metrics.listen.port())
    }

    /// The server restore tests (drills and `verify --restore-test`) run on:
    /// `backup.restore_test.url`, else `postgres.url`.
    pub fn restore_test_url(&self) -> &SecretUrl {
        self.backup
            .restore_test
            .url
            .as_ref()
            .filter(|u| !u.expose().trim().is_empty())
            .unwrap_or(&self.postgres.url)
    }

    /// The effective config as TOML, secrets redacted: what `check-config` prints.
    pub fn to_redacted_toml(&self) -> String {
        let scrubber = self.scrubber();
        let rendered = toml::Value::try_from(self).and_then(|mut v| {
            scrub_strings(&mut v, &scrubber);
            toml::to_string_pretty(&v)
        });
        rendered.unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// Masks a URL password, a `password=` pair and every known secret (the secret access key
/// and session token among them) in every string value, also where no secret belongs
/// (`log.level`, say), so a secret put in the wrong key is not shown either.
fn scrub_strings(v: &mut toml::Value, scrubber: &Scrubber) {
    match v {
        toml::Value::String(s) => *s = scrubber.scrub(s),
        toml::Value::Array(a) => a.iter_mut().for_each(|v| scrub_strings(v, scrubber)),
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| scrub_strings(v, scrubber)),
        _ => {}
    }
}
