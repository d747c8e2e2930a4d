//! What the daemon's parts tell each other and the control protocol carries: the monitored
//! services and their check results (and the [`board::Board`] that stores the newest ones and
//! their [`history`]), and the supervised tasks. It sits below the tasks that
//! produce and read these (monitor, alerts, cache, maintenance, supervisor) and below the
//! control socket, which re-exports it on the wire.

pub mod board;
pub mod cache_pass;
pub mod check;
pub mod history;
pub mod pg_facts;
pub mod task;
