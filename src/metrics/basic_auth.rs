//! HTTP basic auth for the metrics endpoint: a verifier of the users
//! ([`crate::config::basic_auth_users`]) that caches successes and bounds how
//! many bcrypt verifications run at once, with at most one waiting per client address, so that
//! one client's flood of wrong passwords cannot keep another's first check waiting.

use crate::config::basic_auth_users::Users;
use base64::Engine;
use hyper::header::HeaderValue;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// bcrypt verifications running at once: each costs tens of milliseconds of one core, so a
/// flood of wrong passwords can keep at most this many cores busy.
const MAX_VERIFYING: usize = 1;
/// How long a request waits for a verification slot before it is refused with 503.
const VERIFY_WAIT: Duration = Duration::from_secs(5);
/// Successful verifications remembered (keyed by a SHA-256 of user, hash and password); only
/// right passwords get in, so this bounds memory, not correctness.
const CACHE_MAX: usize = 256;

/// What the verifier decided about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Missing or wrong credentials: 401 with a challenge.
    Denied,
    /// Too many verifications queued: 503, try again.
    Busy,
}

/// Checks `Authorization: Basic …` headers against the users.
pub struct BasicAuth {
    users: Users,
    /// SHA-256 of (user, hash, password) for credentials that verified; never a password.
    cache: Mutex<HashSet<[u8; 32]>>,
    verifying: Arc<Semaphore>,
    /// Client addresses (as [`super::conn_limit::client_key`] counts them) with a verification
    /// waiting or running: each gets one, so the queue holds at most one per address.
    pending: Arc<Mutex<HashSet<IpAddr>>>,
}

/// A client address's place in the verification queue, given back when its verification ends
/// (it moves into the blocking task, like the permit).
struct Pending {
    key: IpAddr,
    set: Arc<Mutex<HashSet<IpAddr>>>,
}

impl Pending {
    fn take(set: &Arc<Mutex<HashSet<IpAddr>>>, peer: IpAddr) -> Option<Pending> {
        let key = super::conn_limit::client_key(peer);
        let mut held = set.lock().unwrap_or_else(|e| e.into_inner());
        held.insert(key).then(|| Pending {
            key,
            set: set.clone(),
        })
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut held = self.set.lock().unwrap_or_else(|e| e.into_inner());
        held.remove(&self.key);
    }
}

impl BasicAuth {
    /// A verifier for these users with an empty cache.
    pub fn new(users: Users) -> Self {
        Self {
            users,
            cache: Mutex::new(HashSet::new()),
            verifying: Arc::new(Semaphore::new(MAX_VERIFYING)),
            pending: Arc::default(),
        }
    }

    /// The user names (for the start-up log).
    pub fn names(&self) -> Vec<String> {
        self.users.names()
    }

    /// Decides on a request's `Authorization` header, sent from `peer`.
    pub async fn check(&self, header: Option<&HeaderValue>, peer: IpAddr) -> Verdict {
        let Some((user, password)) = header.and_then(decode) else {
            return Verdict::Denied;
        };
        let (hash, known) = match self.users.hash(&user) {
            Some(h) => (h.to_string(), true),
            // Unknown user: still spend one verification, so that timing does not tell
            // which user names exist.
            None => match self.users.any_hash() {
                Some(h) => (h.to_string(), false),
                None => return Verdict::Denied,
            },
        };
        let key = cache_key(&user, &hash, &password);
        if known && self.cache.lock().is_ok_and(|c| c.contains(&key)) {
            return Verdict::Allowed;
        }
        let Some(pending) = Pending::take(&self.pending, peer) else {
            return Verdict::Busy;
        };
        let permit =
            match tokio::time::timeout(VERIFY_WAIT, self.verifying.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                _ => return Verdict::Busy,
            };
        // The permit and the place move into the blocking task: a client that hangs up does
        // not free them while its verification still runs.
        let ok = tokio::task::spawn_blocking(move || {
            let _held = (permit, pending);
            bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if !(ok && known) {
            return Verdict::Denied;
        }
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE_MAX {
                c.clear();
            }
            c.insert(key);
        }
        Verdict::Allowed
    }
}

fn cache_key(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [user, hash, password] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// `Basic base64(user:password)` → (user, password).
fn decode(v: &HeaderValue) -> Option<(String, String)> {
    let v = v.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MetricsConfig;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    fn header(user: &str, pw: &str) -> HeaderValue {
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        HeaderValue::from_str(&format!("Basic {enc}")).unwrap()
    }

    #[tokio::test]
    async fn right_wrong_missing_and_cached() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let m: MetricsConfig =
            toml::from_str(&format!("[basic_auth_users]\nprom = {hash:?}\n")).unwrap();
        let auth = BasicAuth::new(Users::parse(&m, None).unwrap());
        assert_eq!(auth.check(None, A).await, Verdict::Denied);
        assert_eq!(
            auth.check(Some(&header("prom", "nope")), A).await,
            Verdict::Denied
        );
        assert_eq!(
            auth.check(Some(&header("nobody", "s3cret")), A).await,
            Verdict::Denied
        );
        assert_eq!(
            auth.check(Some(&header("prom", "s3cret")), A).await,
            Verdict::Allowed
        );
        assert_eq!(auth.cache.lock().unwrap().len(), 1);
        assert_eq!(
            auth.check(Some(&header("prom", "s3cret")), A).await,
            Verdict::Allowed
        );
        let bad = HeaderValue::from_static("Bearer abc");
        assert_eq!(auth.check(Some(&bad), A).await, Verdict::Denied);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_verifier_refuses_new_passwords_but_not_remembered_ones() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let m: MetricsConfig =
            toml::from_str(&format!("[basic_auth_users]\nprom = {hash:?}\n")).unwrap();
        let auth = BasicAuth::new(Users::parse(&m, None).unwrap());
        assert_eq!(
            auth.check(Some(&header("prom", "s3cret")), A).await,
            Verdict::Allowed
        );
        // Every verification slot taken, as by a flood of wrong passwords.
        let hold = auth.verifying.clone().acquire_owned().await.unwrap();
        assert_eq!(
            auth.check(Some(&header("prom", "s3cret")), A).await,
            Verdict::Allowed
        );
        assert_eq!(
            auth.check(Some(&header("prom", "guess")), A).await,
            Verdict::Busy
        );
        drop(hold);
        assert_eq!(
            auth.check(Some(&header("prom", "guess")), A).await,
            Verdict::Denied
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_address_waits_for_one_verification_at_a_time() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let m: MetricsConfig =
            toml::from_str(&format!("[basic_auth_users]\nprom = {hash:?}\n")).unwrap();
        let auth = BasicAuth::new(Users::parse(&m, None).unwrap());
        // B has a verification waiting or running, as during its flood of wrong passwords.
        let held = Pending::take(&auth.pending, B).unwrap();
        assert_eq!(
            auth.check(Some(&header("prom", "guess")), B).await,
            Verdict::Busy
        );
        // A is not queued behind B's flood, and the place is given back afterwards.
        assert_eq!(
            auth.check(Some(&header("prom", "s3cret")), A).await,
            Verdict::Allowed
        );
        assert!(!auth.pending.lock().unwrap().contains(&A));
        drop(held);
        assert_eq!(
            auth.check(Some(&header("prom", "guess")), B).await,
            Verdict::Denied
        );
    }
}
