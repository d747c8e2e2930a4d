//! One module per collector group: its families, its queries per server version, and how its
//! rows become series and facts.

pub mod database;
pub mod server;
pub mod sessions;
