//! steward: a supervisor daemon for the PostgreSQL and Redis behind a web application.
//!
//! The binary (`src/main.rs`) only parses the command line; everything else lives here.

pub mod alerts;
pub mod audit;
pub mod backup;
pub mod cache;
pub mod config;
pub mod control;
pub mod daemon;
pub mod durable;
pub mod logging;
pub mod mailbox;
pub mod maintenance;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod reload;
pub mod residency;
pub mod secret;
pub mod supervisor;

/// steward's version, as shown by `--version`, `info` and `steward_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Now, as Unix seconds with a fraction, the form every timestamp in replies and metrics takes.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A point in time as Unix seconds with a fraction (milliseconds kept), like [`unix_now`].
pub fn unix_seconds(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// This machine's name, for the heartbeat row, the probe key and Alertmanager's `instance`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}
