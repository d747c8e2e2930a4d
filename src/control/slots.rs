//! Who holds the control socket's connections: a cap per uid for peers that are not admins,
//! a share of the slots kept for admins, and the refusal (with its reason) when a peer is over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections the socket serves at once (fewer when the file limit is low).
pub const MAX_CONNECTIONS: usize = 1024;
/// Of those, how many only admins may take.
pub const ADMIN_RESERVE: usize = 64;
/// How often a uid's refused connections are logged (the rest are counted into that line).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a connection was refused; the message says who, the limit, and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many connections from uid {uid}: it already holds {limit}, the limit for users who are not admins ([control] max_connections_per_uid = {limit}); close idle connections, or raise control.max_connections_per_uid and reload")]
    PerUid { uid: u32, limit: usize },
    #[error("the control socket is busy: all {limit} connections open to users who are not admins are taken (the rest are kept for admins); try again shortly")]
    Shared { limit: usize },
    #[error("the control socket is full: all {limit} connections are taken; try again shortly")]
    Full { limit: usize },
}

#[derive(Default)]
struct Counts {
    by_uid: HashMap<u32, usize>,
    others: usize,
    all: usize,
}

/// The open connections, counted per uid; shared by the accept loop and each connection.
#[derive(Clone)]
pub struct Slots {
    counts: Arc<Mutex<Counts>>,
    capacity: usize,
}

/// One taken slot; dropping it (the connection ends) frees it.
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    uid: Option<u32>,
}

impl Slots {
    /// Slots for `capacity` connections, [`ADMIN_RESERVE`] of them for admins only (at most
    /// half, for a small capacity).
    pub fn new(capacity: usize) -> Slots {
        Slots {
            counts: Arc::default(),
            capacity: capacity.max(2),
        }
    }

    fn shared(&self) -> usize {
        self.capacity - ADMIN_RESERVE.min(self.capacity / 2)
    }

    /// Takes a slot for a peer with `uid`: an admin may take any free one, anyone else one of
    /// the shared slots and at most `per_uid` at once.
    pub fn take(&self, uid: u32, admin: bool, per_uid: usize) -> Result<Slot, Refusal> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.all >= self.capacity {
            return Err(Refusal::Full {
                limit: self.capacity,
            });
        }
        if admin {
            c.all += 1;
            return Ok(Slot {
                counts: self.counts.clone(),
                uid: None,
            });
        }
        let held = c.by_uid.get(&uid).copied().unwrap_or(0);
        if held >= per_uid {
            return Err(Refusal::PerUid {
                uid,
                limit: per_uid,
            });
        }
        if c.others >= self.shared() {
            return Err(Refusal::Shared {
                limit: self.shared(),
            });
        }
        *c.by_uid.entry(uid).or_default() += 1;
        c.others += 1;
        c.all += 1;
        Ok(Slot {
            counts: self.counts.clone(),
            uid: Some(uid),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.all -= 1;
        if let Some(uid) = self.uid {
            c.others -= 1;
            if let Some(n) = c.by_uid.get_mut(&uid) {
                *n -= 1;
                if *n == 0 {
                    c.by_uid.remove(&uid);
                }
            }
        }
    }
}

/// Keeps refused connections from flooding the log: one line per uid per [`LOG_EVERY`],
/// carrying how many were refused since the last one.
#[derive(Default)]
pub struct RefusalLog {
    by_uid: Mutex<HashMap<u32, (Instant, u64)>>,
}

impl RefusalLog {
    /// Counts one refusal of `uid`; `Some(n)` when a line is due now, for `n` refusals.
    pub fn note(&self, uid: u32, now: Instant) -> Option<u64> {
        let mut map = self.by_uid.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 4096 {
            map.retain(|_, (at, _)| now.duration_since(*at) < LOG_EVERY);
        }
        match map.get_mut(&uid) {
            Some((at, n)) if now.duration_since(*at) < LOG_EVERY => {
                *n += 1;
                None
            }
            Some((at, n)) => {
                let due = *n + 1;
                (*at, *n) = (now, 0);
                Some(due)
            }
            None => {
                map.insert(uid, (now, 0));
                Some(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_is_capped_and_its_slots_come_back() {
        let s = Slots::new(100);
        let held: Vec<Slot> = (0..3).map(|_| s.take(1000, false, 3).unwrap()).collect();
        let e = s.take(1000, false, 3).err().unwrap();
        assert_eq!(
            e,
            Refusal::PerUid {
                uid: 1000,
                limit: 3
            }
        );
        let msg = e.to_string();
        assert!(msg.contains("uid 1000") && msg.contains("max_connections_per_uid = 3"));
        assert!(s.take(1001, false, 3).is_ok(), "other uids are not held up");
        drop(held);
        assert!(
            s.take(1000, false, 3).is_ok(),
            "freed when the connections end"
        );
    }

    #[test]
    fn admins_find_a_slot_when_others_have_taken_theirs() {
        let s = Slots::new(200);
        let shared = 200 - ADMIN_RESERVE;
        let mut held: Vec<Slot> = (0..shared as u32)
            .map(|uid| s.take(uid + 10, false, 1).unwrap())
            .collect();
        assert_eq!(
            s.take(9999, false, 32).err(),
            Some(Refusal::Shared { limit: shared })
        );
        for _ in 0..ADMIN_RESERVE {
            held.push(s.take(0, true, 1).unwrap());
        }
        assert_eq!(s.take(0, true, 1).err(), Some(Refusal::Full { limit: 200 }));
        held.pop();
        assert!(s.take(0, true, 1).is_ok(), "admins are not capped per uid");
    }

    #[test]
    fn refusals_are_logged_once_per_window_with_their_count() {
        let log = RefusalLog::default();
        let t = Instant::now();
        assert_eq!(log.note(7, t), Some(1));
        for _ in 0..99 {
            assert_eq!(log.note(7, t + Duration::from_secs(1)), None);
        }
        assert_eq!(log.note(8, t), Some(1), "per uid");
        assert_eq!(log.note(7, t + LOG_EVERY), Some(100));
    }
}
