//! `[control]`: where the control socket lives, who may connect and steer, and its validation.

use super::problem::Problem;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Most connections a uid that is not an admin may hold at once, when not configured.
pub const DEFAULT_MAX_CONNECTIONS_PER_UID: usize = 32;
/// Highest `max_connections_per_uid` accepted (the socket serves 1024 connections at most).
pub const MAX_CONNECTIONS_PER_UID: usize = 1024;
/// Longest `first_request_timeout` and `idle_timeout` accepted.
pub const MAX_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);

/// `[control]`: the Unix socket the `steward` client talks to, and who may use it.
///
/// The file mode and group decide who can open the socket at all; the uid/gid lists decide,
/// from the connecting process' kernel-reported credentials, what it may do: read (status,
/// lists, statistics) or administer (everything that changes state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    pub socket: PathBuf,
    /// File mode of the socket, as an octal string such as "0660".
    pub mode: String,
    /// Group the socket is given (a name or a number); the daemon's own group when unset.
    pub group: Option<String>,
    /// Users allowed read-only commands; root and the daemon's own user when unset.
    pub allow_uids: Option<Vec<u32>>,
    /// Groups (primary or supplementary) allowed read-only commands.
    pub allow_gids: Vec<u32>,
    /// Users allowed every command; root and the daemon's own user when unset.
    pub admin_uids: Option<Vec<u32>>,
    /// Groups (primary or supplementary) allowed every command.
    pub admin_gids: Vec<u32>,
    /// Connections one uid that is not an admin may hold at once; more are refused, so that
    /// one local user cannot take every slot (admins are not counted against it).
    pub max_connections_per_uid: usize,
    /// How long a new connection has to send its first request; empty lines do not count.
    #[serde(with = "humantime_serde")]
    pub first_request_timeout: Duration,
    /// How long a connection may wait between a reply and its next request.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from("var/steward.sock"),
            mode: "0660".into(),
            group: None,
            allow_uids: None,
            allow_gids: Vec::new(),
            admin_uids: None,
            admin_gids: Vec::new(),
            max_connections_per_uid: DEFAULT_MAX_CONNECTIONS_PER_UID,
            first_request_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

impl ControlConfig {
    /// The mode as a number; validation guarantees it parses.
    pub fn mode_bits(&self) -> u32 {
        u32::from_str_radix(self.mode.trim_start_matches("0o"), 8).unwrap_or(0o660)
    }

    /// The socket's group id, when one is configured; validation guarantees it resolves.
    pub fn group_id(&self) -> Option<u32> {
        self.group.as_deref().and_then(group_id)
    }
}

/// A group name or number as a gid; `None` when no such group exists.
pub fn group_id(group: &str) -> Option<u32> {
    let group = group.trim();
    if let Ok(n) = group.parse::<u32>() {
        return Some(n);
    }
    let name = std::ffi::CString::new(group).ok()?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: every pointer refers to live memory of the size passed; getgrnam_r writes
        // only into `grp` and `buf`, and `found` points at `grp` or is null.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        return (rc == 0 && !found.is_null()).then_some(grp.gr_gid);
    }
}

pub(super) fn check(c: &ControlConfig, out: &mut Vec<Problem>) {
    check_connections(c, out);
    let sock = c.socket.as_os_str();
    if sock.is_empty() {
        out.push(Problem::new(
            "control.socket",
            "is empty; give a path such as \"var/steward.sock\"",
        ));
    } else if sock.len() > 100 {
        out.push(Problem::new(
            "control.socket",
            "is longer than 100 bytes, too long for a Unix socket path; choose a shorter one",
        ));
    }
    let mode = c.mode.trim_start_matches("0o");
    match u32::from_str_radix(mode, 8) {
        Ok(m) if m > 0o777 => out.push(Problem::new("control.mode", "must be at most \"0777\"")),
        Ok(m) if m & 0o600 != 0o600 => out.push(Problem::new(
            "control.mode",
            format!("\"{}\" leaves steward's own user unable to use the socket; use \"0600\" or \"0660\"", c.mode),
        )),
        Ok(m) if m & 0o002 != 0 => out.push(Problem::new(
            "control.mode",
            format!("\"{}\" lets every local user steer steward; use \"0600\" or \"0660\"", c.mode),
        )),
        Ok(_) => {}
        Err(_) => out.push(Problem::new(
            "control.mode",
            format!("{:?} is not an octal mode such as \"0660\"", c.mode),
        )),
    }
    if let Some(g) = &c.group {
        if g.trim().is_empty() {
            out.push(Problem::new(
                "control.group",
                "is empty; give a group name or number, or leave the key out",
            ));
        } else if group_id(g).is_none() {
            out.push(Problem::new(
                "control.group",
                format!("{g:?} is not a group on this host (see /etc/group); create it or name an existing one"),
            ));
        }
    }
}

/// The connection cap and deadlines: each within its bounds.
fn check_connections(c: &ControlConfig, out: &mut Vec<Problem>) {
    if !(1..=MAX_CONNECTIONS_PER_UID).contains(&c.max_connections_per_uid) {
        out.push(Problem::new(
            "control.max_connections_per_uid",
            format!(
                "is {}; give a number from 1 to {MAX_CONNECTIONS_PER_UID} (default {DEFAULT_MAX_CONNECTIONS_PER_UID})",
                c.max_connections_per_uid
            ),
        ));
    }
    for (key, d, default) in [
        (
            "control.first_request_timeout",
            c.first_request_timeout,
            "5s",
        ),
        ("control.idle_timeout", c.idle_timeout, "30s"),
    ] {
        if d < Duration::from_millis(100) || d > MAX_CONNECTION_TIMEOUT {
            out.push(Problem::new(
                key,
                format!(
                    "is {}; give a duration from 100ms to 1h (default {default})",
                    humantime::format_duration(d)
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(f: impl FnOnce(&mut ControlConfig)) -> Vec<String> {
        let mut c = ControlConfig::default();
        f(&mut c);
        let mut out = Vec::new();
        check(&c, &mut out);
        out.into_iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn defaults_are_valid_and_group_readable() {
        assert!(problems(|_| {}).is_empty());
        assert_eq!(ControlConfig::default().mode_bits(), 0o660);
    }

    #[test]
    fn groups_by_name_or_number() {
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("4242"), Some(4242));
        assert_eq!(group_id("no-such-group-here"), None);
        let p = problems(|c| c.group = Some("no-such-group-here".into()));
        assert!(p.len() == 1 && p[0].contains("control.group"), "{p:?}");
        assert!(problems(|c| c.group = Some("root".into())).is_empty());
    }

    #[test]
    fn connection_cap_and_deadlines_are_bounded() {
        let p = problems(|c| c.max_connections_per_uid = 0);
        assert!(
            p.len() == 1 && p[0].contains("control.max_connections_per_uid"),
            "{p:?}"
        );
        let p = problems(|c| c.max_connections_per_uid = 5000);
        assert!(p.len() == 1 && p[0].contains("1 to 1024"), "{p:?}");
        let p = problems(|c| c.first_request_timeout = Duration::ZERO);
        assert!(
            p.len() == 1 && p[0].contains("control.first_request_timeout"),
            "{p:?}"
        );
        let p = problems(|c| c.idle_timeout = Duration::from_secs(86_400));
        assert!(
            p.len() == 1 && p[0].contains("control.idle_timeout"),
            "{p:?}"
        );
    }

    #[test]
    fn unsafe_modes_are_refused() {
        for m in ["0666", "0400", "abc"] {
            let p = problems(|c| c.mode = m.into());
            assert!(p.len() == 1 && p[0].contains("control.mode"), "{m}: {p:?}");
        }
    }
}
