//! Logging: tracing-subscriber set up as pretty or JSON lines, with a level that reload can change.

use crate::config::log_config::{LogConfig, LogFormat};
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

/// The level names a filter may use, alone or after `target=`.
const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];
/// steward's top-level modules: its lines are logged under `steward::<module>…`.
const MODULES: &[&str] = &[
    "alerts",
    "audit",
    "backup",
    "cache",
    "config",
    "control",
    "daemon",
    "durable",
    "logging",
    "mailbox",
    "maintenance",
    "metrics",
    "model",
    "monitor",
    "reload",
    "residency",
    "secret",
    "supervisor",
];

/// Whether a directive's target picks some of steward's lines wherever they are logged: all
/// targets, `steward`, or a module of steward's; a span part (`[name]`) narrows it to lines
/// inside that span, which may be none.
fn picks_steward(target: &str) -> bool {
    if target.contains('[') {
        return false;
    }
    let t = target.trim();
    let module = |m: &str| MODULES.contains(&m.split("::").next().unwrap_or(""));
    t.is_empty() || t == "steward" || t.strip_prefix("steward::").is_some_and(module)
}

/// Refuses a `log.level` that would log nothing of steward's: a bare word that is not a level
/// (EnvFilter takes `verbose` for a target name, which matches nothing), a `target=` with no
/// level, and a filter naming only other targets (everything else, steward included, is then
/// off). Accepts level names and directives such as `steward=debug,tokio_postgres=warn`.
pub fn check_level(level: &str) -> Result<(), String> {
    let is_level = |s: &str| LEVELS.contains(&s.trim().to_ascii_lowercase().as_str());
    let directives: Vec<&str> = level
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if directives.is_empty() {
        return Err("is empty; use a level: trace, debug, info, warn, error or off".into());
    }
    let mut covers_steward = false;
    for d in &directives {
        match d.rsplit_once('=') {
            None if is_level(d) => covers_steward = true,
            None => {
                return Err(format!(
                    "{d:?} is not a level (a bare word is read as a target name and would \
                     match nothing); use trace, debug, info, warn, error or off, or a filter \
                     such as \"info,tokio_postgres=warn\""
                ))
            }
            Some((target, lvl)) => {
                if !is_level(lvl) {
                    return Err(format!(
                        "{lvl:?} in {d:?} is not a level; use trace, debug, info, warn, error or off"
                    ));
                }
                covers_steward |= picks_steward(target);
            }
        }
    }
    if let Err(e) = EnvFilter::try_new(directive(level)) {
        return Err(format!(
            "{e}; use error, warn, info, debug, trace or a filter like \"steward=debug\""
        ));
    }
    if !covers_steward {
        return Err(format!(
            "{:?} names only other targets (or a module steward does not have, or lines \
             inside a span), so none of steward's own lines would be logged; add a level for \
             steward, e.g. \"info,{}\"",
            level.trim(),
            level.trim()
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A filter that names steward but matches none of its lines (a mistyped module, or only
    /// inside a span) silences it as surely as "verbose" did.
    #[test]
    fn a_filter_matching_none_of_stewards_lines_is_refused() {
        for level in [
            "steward::monitr=debug",
            "steward::nonexistent=info",
            "[nospan]=info",
            "steward[x]=info",
        ] {
            let e = check_level(level).unwrap_err();
            assert!(e.contains("none of steward's own lines"), "{level}: {e}");
        }
        for level in [
            "info",
            "steward=debug",
            "warn,steward::monitor=debug",
            "steward::control::server=trace",
            "info,[backup]=trace",
            "off",
        ] {
            assert_eq!(check_level(level), Ok(()), "{level}");
        }
    }

    #[test]
    fn the_module_list_follows_lib_rs() {
        let lib = include_str!("lib.rs");
        let declared: Vec<&str> = lib
            .lines()
            .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';'))
            .collect();
        assert_eq!(declared, MODULES);
    }
}
