//! The configuration: typed sections, defaults, loading (file + environment) and validation.
//! This file only declares the modules and re-exports what the rest of the crate uses, so that
//! no module here imports from its parent.

mod alerts;
mod audit;
mod backup;
mod backup_remote;
pub mod basic_auth_users;
mod cache;
mod control;
mod instance;
mod load;
pub(crate) mod log_config;
mod metrics;
mod metrics_check;
pub mod metrics_tls;
mod model;
mod paths;
mod pg_tool;
mod problem;
pub mod regular_file;
mod secret_file;
mod secret_urls;
mod sections;
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
pub use log_config::{LogConfig, LogFormat};
pub use metrics::{
    BcryptHash, MetricsConfig, DEFAULT_METRICS_PORT, MAX_CONNECTIONS as MAX_METRICS_CONNECTIONS,
};
pub use model::Config;
pub use paths::{anchored, base_dir};
pub use problem::Problem;
pub(crate) use secret_file::read_secret_quietly;
pub use sections::{
    HistoryConfig, MaintenanceConfig, PostgresConfig, RedisConfig, ShutdownConfig, StateConfig,
};
