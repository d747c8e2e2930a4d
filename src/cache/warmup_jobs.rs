//! The warm-ups running now, by namespace, so that two warm-ups of one namespace never run at
//! once: a second one would read the same rows and write the same keys a second time, doubling
//! the load on both servers for nothing. The control server and the `cache.warmup` task share
//! one [`WarmupJobs`]; a request for a busy namespace is refused naming the running warm-up,
//! a scheduled one is skipped.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Who started a warm-up: said in the refusal of a second one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `steward cache warm-up` (a control request).
    Request,
    /// The namespace's `warmup.schedule`.
    Schedule,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Request => "a `steward cache warm-up` request",
            Origin::Schedule => "its schedule",
        })
    }
}

/// A warm-up in progress.
#[derive(Debug, Clone, Copy)]
struct Running {
    origin: Origin,
    since: Instant,
}

/// The namespaces being warmed up now; cheap to clone, shared by all who start warm-ups.
#[derive(Debug, Clone, Default)]
pub struct WarmupJobs(Arc<Mutex<HashMap<String, Running>>>);

/// The running warm-up that made a claim fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    pub origin: Origin,
    /// How long it has been running.
    pub running_for: Duration,
}

impl WarmupJobs {
    /// Marks `namespace` as being warmed up until the returned claim is dropped; fails, saying
    /// who runs it, when it already is.
    pub fn claim(&self, namespace: &str, origin: Origin) -> Result<Claim, Busy> {
        let mut running = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = running.get(namespace) {
            return Err(Busy {
                origin: r.origin,
                running_for: r.since.elapsed(),
            });
        }
        let since = Instant::now();
        running.insert(namespace.to_string(), Running { origin, since });
        Ok(Claim {
            jobs: self.clone(),
            namespace: namespace.to_string(),
        })
    }
}

/// A namespace's warm-up slot, released when dropped (also when the warm-up fails, panics or
/// is cancelled).
#[derive(Debug)]
pub struct Claim {
    jobs: WarmupJobs,
    namespace: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut running = self.jobs.0.lock().unwrap_or_else(|e| e.into_inner());
        running.remove(&self.namespace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_is_claimed_once_until_released() {
        let jobs = WarmupJobs::default();
        let first = jobs.claim("analytics", Origin::Schedule).unwrap();
        let busy = jobs.claim("analytics", Origin::Request).unwrap_err();
        assert_eq!(busy.origin, Origin::Schedule);
        let other = jobs.claim("sessions", Origin::Request);
        assert!(other.is_ok(), "other namespaces are independent");
        drop(first);
        assert!(jobs.clone().claim("analytics", Origin::Request).is_ok());
    }
}
