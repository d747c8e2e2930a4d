//! Every admin command a test sends through the harness must leave its line in the audit log:
//! `Steward::ctl`, `ctl_human` and `raw_request` check it after each admin command the daemon
//! answered, so the whole suite doubles as the proof that nothing admin goes unaudited.

use std::path::Path;
use steward::control::protocol::{parse_request, Access, Reply};

/// The protocol name of the admin command a client command line sends, if it sends one.
pub fn admin_command_of_args(args: &[&str]) -> Option<&'static str> {
    let mut words = args.iter().copied().filter(|a| !a.starts_with('-'));
    let name = match (words.next()?, words.next().unwrap_or("")) {
        ("task", _) => "task",
        ("reload", _) => "reload",
        ("maintenance", "on") => "maintenance_on",
        ("maintenance", "off") => "maintenance_off",
        ("backup", "create") => "backup_create",
        ("backup", "verify") => "backup_verify",
        ("backup", "restore") => "backup_restore",
        ("backup", "prune") => "backup_prune",
        ("backup", "delete") => "backup_delete",
        ("backup", "fetch") => "backup_fetch",
        ("cache", "clear") => "cache_clear",
        ("cache", "warm-up") => "cache_warm_up",
        _ => return None,
    };
    Some(name)
}

/// The admin command a raw request line carries, if it is a valid admin request.
pub fn admin_command_of_line(line: &str) -> Option<&'static str> {
    parse_request(line)
        .ok()
        .filter(|r| r.access() == Access::Admin)
        .map(|r| r.name())
}

/// The audit log's lines, parsed (none when it does not exist); a line that is not JSON fails.
pub fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Audit lines for `command` in the log at `path` (0 when it does not exist).
pub fn lines_for(path: &Path, command: &str) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("command").and_then(|c| c.as_str()) == Some(command))
        .count()
}

/// Asserts that an answered admin command added its audit line, unless the reply says the
/// audit log itself could not be written (the fail-closed case tests/audit.rs covers).
pub fn assert_audited(path: &Path, command: &str, before: usize, reply: Option<&Reply>) {
    let Some(reply) = reply else { return };
    if reply.error.as_deref().is_some_and(|e| e.contains("audit")) {
        return;
    }
    let after = lines_for(path, command);
    assert!(
        after > before,
        "admin command {command} was answered ({reply:?}) but left no line in the audit log {}",
        path.display()
    );
}
