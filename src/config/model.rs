//! [`Config`], the whole effective configuration: its sections and what is derived from all of
//! them (the secret scrubber, the instance name, the redacted TOML).

use super::alerts::{AlertmanagerConfig, AlertsConfig};
use super::audit::AuditConfig;
use super::backup::BackupConfig;
use super::cache::CacheConfig;
use super::control::ControlConfig;
use super::instance::{default_name, InstanceConfig};
use super::log_config::LogConfig;
use super::metrics::MetricsConfig;
use super::sections::{
    HistoryConfig, MaintenanceConfig, PostgresConfig, RedisConfig, ShutdownConfig, StateConfig,
};
use crate::secret::{Scrubber, SecretUrl};
use serde::{Deserialize, Serialize};

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

    /// For a config read on reload: a default name keeps the port steward listens on (the
    /// `running` config's; a new `metrics.listen` applies only at the next start), so that
    /// changing the port in the file does not rename the instance before it is in use.
    pub fn keep_running_port_in_name(&mut self, running: &Config) {
        if self.instance.defaulted {
            self.instance.name = default_name(&crate::hostname(), running.metrics.listen.port());
        }
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
