//! The control socket: protocol types, the daemon's server, and the `steward` client.

pub mod access;
mod backup_cmds;
mod cache_cmds;
pub mod client;
mod connection;
pub mod dispatch;
mod fd_limit;
pub mod lines;
mod maintenance_cmds;
pub mod protocol;
pub mod render;
mod render_alerts;
mod render_backup;
mod render_cache;
mod render_cache_stats;
mod render_fmt;
mod render_maintenance;
pub mod server;
pub mod slots;
