//! Logging: tracing-subscriber set up as pretty or JSON lines, with a level that reload can change.

use crate::config::{LogConfig, LogFormat};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Lets a reload change the level without restarting.
#[derive(Clone)]
pub struct LevelHandle(reload::Handle<EnvFilter, Registry>);

impl LevelHandle {
    /// Applies a new level; the config was validated, so this only fails if logging is gone.
    pub fn set(&self, level: &str) {
        if let Ok(f) = EnvFilter::try_new(directive(level)) {
            let _ = self.0.reload(f);
        }
    }
}

/// Turns a plain level ("debug") into a filter that applies it to steward and keeps the
/// libraries at warn; a full directive ("steward=debug,hyper=info") is used as given.
pub fn directive(level: &str) -> String {
    let l = level.trim();
    match l.to_ascii_lowercase().as_str() {
        "trace" | "debug" | "info" => format!("warn,steward={l}"),
        _ => l.to_string(),
    }
}

/// Installs the global subscriber, writing to stderr (journald picks it up under systemd).
pub fn init(cfg: &LogConfig) -> LevelHandle {
    let filter =
        EnvFilter::try_new(directive(&cfg.level)).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    match cfg.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
    LevelHandle(handle)
}
