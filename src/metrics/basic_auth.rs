//! HTTP basic auth for the metrics endpoint: the users (`[metrics] basic_auth_users` and
//! `basic_auth_users_file`, bcrypt hashes) and a verifier that caches successes and bounds how
//! many bcrypt verifications run at once, with at most one waiting per client address, so that
//! one client's flood of wrong passwords cannot keep another's first check waiting.

use crate::config::{MetricsConfig, Problem};
use base64::Engine;
use hyper::header::HeaderValue;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// bcrypt verifications running at once: each costs tens of milliseconds of one core, so a
/// flood of wrong passwords can keep at most this many cores busy.
const MAX_VERIFYING: usize = 1;
/// How long a request waits for a verification slot before it is refused with 503.
const VERIFY_WAIT: Duration = Duration::from_secs(5);
/// Highest bcrypt cost accepted: each step doubles a verification's time, about a second of
/// one core at 14 (`htpasswd -B` uses 5 unless told otherwise).
const MAX_COST: u32 = 14;
/// Successful verifications remembered (keyed by a SHA-256 of user, hash and password); only
/// right passwords get in, so this bounds memory, not correctness.
const CACHE_MAX: usize = 256;

/// The users allowed in, user name → bcrypt hash.
#[derive(Clone, Default)]
pub struct Users(HashMap<String, String>);

impl Users {
    /// Reads the inline table and the users file (without the exposure warning, which the
    /// config validation gives once per load).
    pub fn from_config(m: &MetricsConfig) -> Result<Users, Vec<Problem>> {
        let key = "metrics.basic_auth_users_file";
        let text = m
            .basic_auth_users_file
            .as_deref()
            .map(|path| crate::config::read_secret_quietly(key, path))
            .transpose()
            .map_err(|p| vec![p])?;
        Users::parse(m, text.as_deref())
    }

    /// Builds the users from the inline table and the text of the users file; every problem
    /// names the user (and line), never the hash.
    pub fn parse(m: &MetricsConfig, file: Option<&str>) -> Result<Users, Vec<Problem>> {
        let mut users = HashMap::new();
        let mut problems = Vec::new();
        for (user, hash) in m.basic_auth_users.iter().flatten() {
            let key = format!("metrics.basic_auth_users.{user}");
            match check_entry(user, hash.expose()) {
                Ok(()) => {
                    users.insert(user.clone(), hash.expose().to_string());
                }
                Err(reason) => problems.push(Problem::new(key, reason)),
            }
        }
        for (n, line) in file.unwrap_or_default().lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = "metrics.basic_auth_users_file";
            let Some((user, hash)) = line.split_once(':') else {
                problems.push(Problem::new(
                    key,
                    format!(
                        "line {}: expected user:bcrypt-hash (as `htpasswd -nB user` prints)",
                        n + 1
                    ),
                ));
                continue;
            };
            if users.contains_key(user) {
                problems.push(Problem::new(
                    key,
                    format!("line {}: user {user:?} is defined twice (in the file or also in metrics.basic_auth_users); keep one", n + 1),
                ));
                continue;
            }
            match check_entry(user, hash) {
                Ok(()) => {
                    users.insert(user.to_string(), hash.to_string());
                }
                Err(reason) => {
                    problems.push(Problem::new(key, format!("line {}: {reason}", n + 1)))
                }
            }
        }
        if m.basic_auth_users_file.is_some() && users.is_empty() && problems.is_empty() {
            problems.push(Problem::new(
                "metrics.basic_auth_users_file",
                "names no user; add user:bcrypt-hash lines, or remove the key to turn basic auth off",
            ));
        }
        if problems.is_empty() {
            Ok(Users(users))
        } else {
            Err(problems)
        }
    }

    /// The user names, sorted (for logs; never the hashes).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.keys().cloned().collect();
        v.sort();
        v
    }
}

fn check_entry(user: &str, hash: &str) -> Result<(), String> {
    if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
        return Err(format!(
            "{user:?} cannot be a basic-auth user name (no colon, no control characters, not empty)"
        ));
    }
    let parts = hash.parse::<bcrypt::HashParts>().map_err(|_| {
        format!(
            "the hash of user {user:?} is not a bcrypt hash ($2y$/$2b$/$2a$, 60 characters); \
             generate one with `htpasswd -nbB {user} PASSWORD` or any bcrypt tool"
        )
    })?;
    let cost = parts.get_cost();
    if cost > MAX_COST {
        return Err(format!(
            "the hash of user {user:?} has bcrypt cost {cost}, too slow to verify (the limit is \
             {MAX_COST}; every wrong password would hold the verifier for minutes or more); \
             generate one with `htpasswd -nbB -C 10 {user} PASSWORD`"
        ));
    }
    Ok(())
}

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
        let (hash, known) = match self.users.0.get(&user) {
            Some(h) => (h.clone(), true),
            // Unknown user: still spend one verification, so that timing does not tell
            // which user names exist.
            None => match self.users.0.values().next() {
                Some(h) => (h.clone(), false),
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

    #[test]
    fn file_lines_are_parsed_and_problems_named() {
        let hash = bcrypt::hash("x", 4).unwrap();
        let m = MetricsConfig {
            basic_auth_users_file: Some("/x".into()),
            ..Default::default()
        };
        let ok = Users::parse(&m, Some(&format!("# comment\n\nalice:{hash}\n"))).unwrap();
        assert_eq!(ok.names(), vec!["alice"]);
        let p = Users::parse(
            &m,
            Some(&format!(
                "alice:{hash}\nbob:notahash\nnocolon\nalice:{hash}\n"
            )),
        )
        .err()
        .unwrap();
        let text: String = p.iter().map(|p| format!("{p}\n")).collect();
        assert!(
            text.contains("line 2") && text.contains("\"bob\""),
            "{text}"
        );
        assert!(text.contains("line 3") && text.contains("line 4"), "{text}");
        assert!(
            !text.contains("notahash") && !text.contains(&hash),
            "{text}"
        );
        assert!(Users::parse(&m, Some("# nobody\n")).is_err());
    }

    /// A hash whose cost makes one verification take minutes or hours would hold the only
    /// verification slot that long (any wrong password, even for an unknown user, runs one),
    /// and every scrape that is not remembered would get 503 meanwhile.
    #[test]
    fn a_hash_too_costly_to_verify_is_refused() {
        let cheap = bcrypt::hash("s3cret", 4).unwrap();
        let costly = cheap.replacen("$04$", "$31$", 1);
        let m = MetricsConfig::default();
        let Err(e) = Users::parse(&m, Some(&format!("prom:{costly}\n"))) else {
            panic!("a cost-31 hash was accepted");
        };
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].reason.contains("cost 31") && e[0].reason.contains("prom"),
            "{}",
            e[0].reason
        );
        assert!(!e[0].reason.contains(&costly[7..]), "the hash is not shown");
        let ok = cheap.replacen("$04$", &format!("${MAX_COST}$"), 1);
        assert!(Users::parse(&m, Some(&format!("prom:{ok}\n"))).is_ok());
    }
}
