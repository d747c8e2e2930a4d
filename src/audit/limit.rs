//! Bounds what refused requests can add to the audit log: their arguments are cut to
//! [`MAX_ARGUMENT_BYTES`], and each peer uid gets at most [`PER_WINDOW`] lines per [`WINDOW`];
//! the rest are counted (`steward_audit_denied_suppressed_total`) and summed up in one line
//! when that uid's next window opens. A user in the socket's group can then no longer fill
//! the disk through the audit log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most bytes of a refused request's arguments written (as JSON text).
pub const MAX_ARGUMENT_BYTES: usize = 1024;
/// Refused-request lines written per uid per window.
pub const PER_WINDOW: u32 = 20;
/// The rate-limit window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// What to do with one refused request's line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it; `suppressed_before` lines of the previous window were left out (write a
    /// summary line for them first when it is above zero).
    Write { suppressed_before: u64 },
    /// Leave it out (counted).
    Suppress,
}

struct Window {
    start: Instant,
    written: u32,
    suppressed: u64,
}

/// Per-uid windows of refused-request lines.
#[derive(Default)]
pub struct DenyLimiter {
    by_uid: Mutex<HashMap<u32, Window>>,
}

impl DenyLimiter {
    /// Decides about one refused request of `uid` at `now`.
    pub fn admit(&self, uid: u32, now: Instant) -> Verdict {
        let mut map = self.by_uid.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 4096 {
            map.retain(|_, w| now.duration_since(w.start) < WINDOW);
        }
        let w = map.entry(uid).or_insert(Window {
            start: now,
            written: 0,
            suppressed: 0,
        });
        let mut suppressed_before = 0;
        if now.duration_since(w.start) >= WINDOW {
            suppressed_before = w.suppressed;
            *w = Window {
                start: now,
                written: 0,
                suppressed: 0,
            };
        }
        if w.written < PER_WINDOW {
            w.written += 1;
            Verdict::Write { suppressed_before }
        } else {
            w.suppressed += 1;
            Verdict::Suppress
        }
    }
}

/// A refused request's arguments, cut to [`MAX_ARGUMENT_BYTES`] of JSON text when longer.
pub fn cap_arguments(v: serde_json::Value) -> serde_json::Value {
    let text = v.to_string();
    if text.len() <= MAX_ARGUMENT_BYTES {
        return v;
    }
    let mut end = MAX_ARGUMENT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    serde_json::json!({ "truncated": &text[..end], "bytes": text.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_per_uid_and_summed_up_in_the_next_window() {
        let l = DenyLimiter::default();
        let t0 = Instant::now();
        for _ in 0..PER_WINDOW {
            assert_eq!(
                l.admit(7, t0),
                Verdict::Write {
                    suppressed_before: 0
                }
            );
        }
        for _ in 0..100 {
            assert_eq!(l.admit(7, t0), Verdict::Suppress);
        }
        // Another uid is not held back by the first one's flood.
        assert_eq!(
            l.admit(8, t0),
            Verdict::Write {
                suppressed_before: 0
            }
        );
        assert_eq!(
            l.admit(7, t0 + WINDOW),
            Verdict::Write {
                suppressed_before: 100
            }
        );
    }

    #[test]
    fn long_arguments_are_cut_to_a_kibibyte() {
        let small = serde_json::json!({ "reason": "short" });
        assert_eq!(cap_arguments(small.clone()), small);
        let big = serde_json::json!({ "reason": "é".repeat(5000) });
        let cut = cap_arguments(big);
        assert!(cut.to_string().len() < MAX_ARGUMENT_BYTES + 100, "{cut}");
        assert_eq!(cut["bytes"], 10_000 + "{\"reason\":\"\"}".len());
    }
}
