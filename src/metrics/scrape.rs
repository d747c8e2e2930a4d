//! The `/metrics` body: encoded once per change of the stored state and shared by every scrape
//! until the next change (or until it is [`MAX_AGE`] old), so that a scrape costs about the same
//! whatever the number of series.

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Longest a body is served when no writer said that the state changed. It bounds the staleness
/// of what changes without telling: the `process_*` figures (CPU seconds, RSS, open files), the
/// ages computed at scrape time, and writers that do not call [`ScrapeCache::changed`]. A second
/// is far below any scrape interval Prometheus uses (15 s to 1 min) and below the resolution of
/// the figures themselves (checks run every few seconds at most), and it still makes the body
/// encoded at most once a second under any load.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// The last encoded body and the state generation it was encoded from.
#[derive(Default)]
pub struct ScrapeCache {
    generation: AtomicU64,
    body: Mutex<Option<Cached>>,
}

struct Cached {
    generation: u64,
    /// When the encoding that made it started (its state is at least this fresh).
    started: Instant,
    body: Bytes,
}

impl ScrapeCache {
    /// Says that stored state changed, so that the next scrape encodes it afresh. Writers call it
    /// after their writes (a monitor after publishing a check, the control server before a
    /// reply): whoever sees the change elsewhere first then sees it in `/metrics` too.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The cached body when nothing changed since it was encoded and it is younger than
    /// [`MAX_AGE`]; else `encode`'s, which is then kept for the following scrapes. The lock is
    /// held only to look or to store, never while encoding (two scrapes may then encode at once;
    /// the newer body is kept).
    pub fn get_or_encode(&self, encode: impl FnOnce() -> Vec<u8>) -> Bytes {
        // Acquire pairs with `changed`'s Release: an encoding that starts after reading a
        // generation sees every write made before that generation was bumped.
        let generation = self.generation.load(Ordering::Acquire);
        let started = Instant::now();
        if let Some(c) = self.lock().as_ref() {
            if c.generation == generation && started.duration_since(c.started) < MAX_AGE {
                return c.body.clone();
            }
        }
        let body = Bytes::from(encode());
        let mut slot = self.lock();
        if slot.as_ref().is_none_or(|c| c.started <= started) {
            *slot = Some(Cached {
                generation,
                started,
                body: body.clone(),
            });
        }
        body
    }

    fn lock(&self) -> MutexGuard<'_, Option<Cached>> {
        // The slot is always whole (replaced in one assignment): a panic elsewhere cannot tear it.
        self.body.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn body(cache: &ScrapeCache, n: &Cell<u32>) -> Bytes {
        cache.get_or_encode(|| {
            n.set(n.get() + 1);
            format!("v{}", n.get()).into_bytes()
        })
    }

    #[test]
    fn encodes_once_until_the_state_changes() {
        let (cache, n) = (ScrapeCache::default(), Cell::new(0));
        assert_eq!(body(&cache, &n), "v1");
        assert_eq!(body(&cache, &n), "v1");
        assert_eq!(n.get(), 1);
        cache.changed();
        assert_eq!(body(&cache, &n), "v2");
        assert_eq!(body(&cache, &n), "v2");
        assert_eq!(n.get(), 2);
    }

    #[test]
    fn a_change_during_an_encoding_is_not_lost() {
        let cache = ScrapeCache::default();
        // The write (and its `changed`) lands while the first scrape encodes the old state.
        let first = cache.get_or_encode(|| {
            cache.changed();
            b"old".to_vec()
        });
        assert_eq!(first, "old");
        assert_eq!(cache.get_or_encode(|| b"new".to_vec()), "new");
    }

    #[test]
    fn an_unchanged_body_is_re_encoded_once_max_age_old() {
        let cache = ScrapeCache::default();
        cache.get_or_encode(|| b"old".to_vec());
        // Age the cached body instead of sleeping.
        if let Some(c) = cache.lock().as_mut() {
            c.started = Instant::now()
                .checked_sub(MAX_AGE)
                .expect("monotonic clock past MAX_AGE");
        }
        assert_eq!(cache.get_or_encode(|| b"new".to_vec()), "new");
        assert_eq!(cache.get_or_encode(|| b"newer".to_vec()), "new");
    }
}
