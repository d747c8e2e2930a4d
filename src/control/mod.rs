//! The control socket: protocol types, the daemon's server, and the `steward` client.

mod backup_cmds;
pub mod client;
pub mod dispatch;
pub mod lines;
pub mod protocol;
pub mod render;
mod render_backup;
pub mod server;
