//! `[instance]`: this steward's name, which tells its marks apart from another steward's on
//! the same servers (heartbeat row, Redis probe and maintenance keys).

use super::problem::Problem;
use serde::{Deserialize, Serialize};

/// Longest name accepted, in characters: it goes into Redis keys and a table's primary key.
pub const MAX_NAME: usize = 128;

/// `[instance]`: who this steward is on shared servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct InstanceConfig {
    /// Empty: the host name and the metrics port (`web1:9732`), filled in at load so that
    /// `check-config` shows the name in use. Two stewards on one host differ by their port.
    pub name: String,
    /// The name was left empty and filled in with the default (not a key).
    #[serde(skip)]
    pub defaulted: bool,
}

impl InstanceConfig {
    /// The name in use: the configured one, or the default for `host` and `metrics_port`.
    pub fn resolved(&self, host: &str, metrics_port: u16) -> String {
        let name = self.name.trim();
        if name.is_empty() {
            default_name(host, metrics_port)
        } else {
            name.to_string()
        }
    }
}

/// `<host>:<port>`, with any character a name may not hold replaced by `-` (an empty host
/// name becomes `localhost`), so the default always passes validation.
pub fn default_name(host: &str, metrics_port: u16) -> String {
    let host: String = host
        .trim()
        .chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .take(MAX_NAME - 6)
        .collect();
    let host = if host.is_empty() { "localhost" } else { &host };
    format!("{host}:{metrics_port}")
}

/// Letters, digits and `. _ - :`: plain in a Redis key, a SQL text value, a log line and a
/// shell argument, without quoting.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')
}

/// Why `name` cannot be an instance name, if it cannot.
pub fn name_problem(name: &str) -> Option<String> {
    let n = name.chars().count();
    if n > MAX_NAME {
        return Some(format!(
            "is {n} characters long; keep it to {MAX_NAME} (letters, digits, '.', '_', '-', ':')"
        ));
    }
    if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        return Some(format!(
            "holds {bad:?}, which an instance name may not; use letters, digits, '.', '_', '-' and ':' only (e.g. \"web1-blue\"), or leave it empty for the host name and metrics port"
        ));
    }
    None
}

/// Fills in the default name (see [`InstanceConfig::name`]) once the metrics port is known.
pub(super) fn resolve(i: &mut InstanceConfig, metrics_port: u16) {
    i.defaulted = i.name.trim().is_empty();
    i.name = i.resolved(&crate::hostname(), metrics_port);
}

/// Checks `[instance] name` (the loader has filled in the default, which always passes).
pub(super) fn check(c: &InstanceConfig, out: &mut Vec<Problem>) {
    if let Some(reason) = name_problem(&c.name) {
        out.push(Problem::new("instance.name", reason));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn default_is_host_and_port_and_always_valid() {
        let i = InstanceConfig::default();
        assert_eq!(i.resolved("web1", 9732), "web1:9732");
        assert_eq!(i.resolved("", 9100), "localhost:9100");
        let odd = default_name("héllo wörld/x", 1);
        assert_eq!(odd, "h-llo-w-rld-x:1");
        assert_eq!(name_problem(&odd), None);
        let long = default_name(&"a".repeat(400), 65535);
        assert_eq!(name_problem(&long), None, "{long}");
        let named = InstanceConfig {
            name: " blue ".into(),
            defaulted: false,
        };
        assert_eq!(named.resolved("web1", 9732), "blue");
    }

    #[test]
    fn names_are_bounded_and_plain() {
        assert_eq!(name_problem("web1:9732"), None);
        assert_eq!(name_problem("a.b_c-D:1"), None);
        for bad in ["a b", "x'y", "k*", "a\nb", "ü", "a\"b", "a{b}"] {
            let p = name_problem(bad).expect(bad);
            assert!(p.contains("letters, digits"), "{p}");
        }
        let p = name_problem(&"x".repeat(MAX_NAME + 1)).unwrap();
        assert!(p.contains("129 characters") && p.contains("128"), "{p}");
        assert_eq!(name_problem(&"x".repeat(MAX_NAME)), None);
    }

    #[test]
    fn a_default_name_keeps_the_running_port_on_reload() {
        let mut running = Config::default();
        running.metrics.listen = "127.0.0.1:9100".parse().unwrap();
        resolve(&mut running.instance, running.metrics.listen.port());
        assert!(running.instance.defaulted);
        // The file read again, with a new port and still no name.
        let mut new = running.clone();
        new.instance = InstanceConfig::default();
        new.metrics.listen = "127.0.0.1:9200".parse().unwrap();
        resolve(&mut new.instance, new.metrics.listen.port());
        assert!(new.instance.name.ends_with(":9200"));
        new.keep_running_port_in_name(&running);
        assert_eq!(new.instance, running.instance);
        // An explicit name is the file's, whatever the port.
        new.instance = InstanceConfig {
            name: "blue".into(),
            ..Default::default()
        };
        resolve(&mut new.instance, new.metrics.listen.port());
        new.keep_running_port_in_name(&running);
        assert_eq!(new.instance.name, "blue");
    }

    #[test]
    fn check_names_the_key() {
        let mut c = Config::default();
        c.instance.name = "two words".into();
        let mut out = Vec::new();
        check(&c.instance, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key, "instance.name");
    }
}
