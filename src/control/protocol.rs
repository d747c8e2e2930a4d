//! The control protocol: one JSON request per line, one JSON reply per line, and the typed
//! payloads both sides (daemon and `steward` client, and scripts using `--json`) agree on.

use serde::{Deserialize, Serialize};

mod commands;
mod payloads;
mod request;
pub use crate::model::check::*;
pub use crate::model::task::*;
pub use commands::{Access, COMMANDS};
pub use payloads::*;
pub use request::Request;

/// Longest request line the daemon reads; longer ones get an error reply.
pub const MAX_LINE: usize = 64 * 1024;

/// The name the control socket's own task is registered under, which `steward task … control`
/// names: the daemon treats it apart (it cannot be paused, its restart closes the socket).
pub const CONTROL_TASK: &str = "control";

/// A reply line: `{"ok":true,"data":…}` or `{"ok":false,"error":"…"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Reply {
    /// A success carrying a payload.
    pub fn data<T: Serialize>(data: &T) -> Reply {
        match serde_json::to_value(data) {
            Ok(v) => Reply {
                ok: true,
                error: None,
                data: v,
            },
            Err(e) => Reply::error(format!("cannot encode reply: {e}")),
        }
    }

    /// A failure with a message for the user.
    pub fn error(msg: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(msg.into()),
            data: serde_json::Value::Null,
        }
    }
}

/// Parses one request line, turning every way it can be wrong into a message for the user.
pub fn parse_request(line: &str) -> Result<Request, String> {
    let v: serde_json::Value = serde_json::from_str(line)
        .map_err(|e| format!("malformed request: not JSON ({e}); send one JSON object per line, e.g. {{\"cmd\":\"status\"}}"))?;
    let Some(cmd) = v.get("cmd") else {
        return Err("malformed request: missing \"cmd\" field".into());
    };
    let Some(cmd) = cmd.as_str().map(str::to_string) else {
        return Err("malformed request: \"cmd\" must be a string".into());
    };
    if !COMMANDS.contains(&cmd.as_str()) {
        return Err(format!(
            "unknown command {cmd:?}; known commands: {}",
            COMMANDS.join(", ")
        ));
    }
    serde_json::from_value(v).map_err(|e| format!("bad arguments for {cmd:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::Status,
            Request::Health {
                service: Some(Service::Redis),
            },
            Request::Check { service: None },
            Request::Task {
                action: TaskAction::Pause,
                name: "monitor.redis".into(),
            },
            Request::CacheWarmUp { namespace: None },
            Request::CacheWarmUp {
                namespace: Some("analytics".into()),
            },
        ] {
            let line = serde_json::to_string(&r).unwrap();
            assert_eq!(parse_request(&line).unwrap(), r);
        }
        assert_eq!(
            parse_request(r#"{"cmd":"health"}"#).unwrap(),
            Request::Health { service: None }
        );
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        assert!(parse_request("not json").unwrap_err().contains("not JSON"));
        assert!(parse_request("{}").unwrap_err().contains("missing \"cmd\""));
        assert!(parse_request(r#"{"cmd":1}"#)
            .unwrap_err()
            .contains("must be a string"));
        assert!(parse_request(r#"{"cmd":"explode"}"#)
            .unwrap_err()
            .contains("unknown command \"explode\""));
        assert!(parse_request(r#"{"cmd":"health","service":"mysql"}"#)
            .unwrap_err()
            .contains("bad arguments"));
        assert!(parse_request(r#"{"cmd":"task","action":"kill","name":"x"}"#).is_err());
    }
}
