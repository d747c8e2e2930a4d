//! Keeps the newest connection error of a bb8 pool, which bb8 otherwise only reports as a
//! timeout, so "password authentication failed" is not shown as "no connection".

use std::fmt;
use std::sync::{Arc, Mutex};

/// An error sink remembering the newest error, described by `describe`.
pub struct LastError<E> {
    slot: Arc<Mutex<Option<String>>>,
    describe: fn(&E) -> String,
}

impl<E> Clone for LastError<E> {
    fn clone(&self) -> Self {
        Self {
            slot: self.slot.clone(),
            describe: self.describe,
        }
    }
}

impl<E> fmt::Debug for LastError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LastError")
    }
}

impl<E> LastError<E> {
    /// A sink that describes errors with `describe`.
    pub fn new(describe: fn(&E) -> String) -> Self {
        Self {
            slot: Arc::new(Mutex::new(None)),
            describe,
        }
    }

    /// Forgets the stored error, once a connection was had: older failures no longer explain
    /// anything.
    pub fn clear(&self) {
        if let Ok(mut s) = self.slot.lock() {
            *s = None;
        }
    }

    /// The newest error since the last connection was had, if any. It is kept (not taken):
    /// on a loaded machine an attempt may fail only after the check that started it timed
    /// out, and the next checks must still be able to say why.
    pub fn latest(&self) -> Option<String> {
        self.slot.lock().ok().and_then(|s| s.clone())
    }
}

impl<E: Send + 'static> bb8::ErrorSink<E> for LastError<E> {
    fn sink(&self, error: E) {
        if let Ok(mut s) = self.slot.lock() {
            *s = Some((self.describe)(&error));
        }
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<E>> {
        Box::new(self.clone())
    }
}

/// The message for a pool timeout: the real cause when the pool saw one.
pub fn no_connection(last: Option<String>, timeout: std::time::Duration) -> String {
    match last {
        Some(e) => e,
        None => format!(
            "no connection within {}",
            humantime::format_duration(timeout)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bb8::ErrorSink;

    #[test]
    fn keeps_newest_until_cleared() {
        let s: LastError<String> = LastError::new(|e| format!("E: {e}"));
        s.sink("one".into());
        s.boxed_clone().sink("two".into());
        assert_eq!(s.latest().as_deref(), Some("E: two"));
        // Kept for the next check until a connection is had.
        assert_eq!(s.latest().as_deref(), Some("E: two"));
        s.sink("three".into());
        s.clear();
        assert_eq!(s.latest(), None);
        assert!(no_connection(None, std::time::Duration::from_secs(1))
            .contains("no connection within 1s"));
    }
}
