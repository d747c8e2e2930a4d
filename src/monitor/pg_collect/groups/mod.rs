//! One module per collector group: its families, its queries per server version, and how its
//! rows become series and facts.

pub mod checkpoints;
pub mod database;
pub mod replication;
pub mod server;
pub mod sessions;
pub mod vacuum;
