//! `[control]`: where the control socket lives, who may connect, and its validation.

use super::{Config, Problem};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[control]`: the Unix socket the `steward` client talks to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    pub socket: PathBuf,
    /// File mode of the socket, as an octal string such as "0600".
    pub mode: String,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from("var/steward.sock"),
            mode: "0600".into(),
        }
    }
}

impl ControlConfig {
    /// The mode as a number; validation guarantees it parses.
    pub fn mode_bits(&self) -> u32 {
        u32::from_str_radix(self.mode.trim_start_matches("0o"), 8).unwrap_or(0o600)
    }
}

pub(super) fn check(c: &Config, out: &mut Vec<Problem>) {
    let sock = c.control.socket.as_os_str();
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
    let mode = c.control.mode.trim_start_matches("0o");
    match u32::from_str_radix(mode, 8) {
        Ok(m) if m > 0o777 => out.push(Problem::new("control.mode", "must be at most \"0777\"")),
        Ok(m) if m & 0o600 != 0o600 => out.push(Problem::new(
            "control.mode",
            format!("\"{}\" leaves steward's own user unable to use the socket; use \"0600\" or \"0660\"", c.control.mode),
        )),
        Ok(m) if m & 0o002 != 0 => out.push(Problem::new(
            "control.mode",
            format!("\"{}\" lets every local user steer steward; use \"0600\" or \"0660\"", c.control.mode),
        )),
        Ok(_) => {}
        Err(_) => out.push(Problem::new(
            "control.mode",
            format!("{:?} is not an octal mode such as \"0600\"", c.control.mode),
        )),
    }
}
