//! The control socket: protocol types, the daemon's server, and the `steward` client.

pub mod client;
pub mod dispatch;
pub mod lines;
pub mod protocol;
pub mod render;
pub mod server;
