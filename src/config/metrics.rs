//! `[metrics]`: the HTTP endpoint Prometheus scrapes (address, TLS files, basic-auth users);
//! its validation is in `metrics_check`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The metrics port when none is configured; documented in docs/configuration.md.
pub const DEFAULT_METRICS_PORT: u16 = 9732;

/// `[metrics]`: the HTTP endpoint Prometheus scrapes.
///
/// `basic_auth_users` has the shape of the Prometheus exporter-toolkit web config (user =
/// bcrypt hash); `basic_auth_users_file` is its `*_file` variant, an htpasswd-style file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
    /// PEM certificate chain; with `tls_key`, the endpoint speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// `user = "$2y$…"`: who may read `/metrics` and `/health`. An `Option` so that the
    /// default has no table, and any user name is accepted by the unknown-key check.
    #[serde(deserialize_with = "users_table")]
    pub basic_auth_users: Option<BTreeMap<String, BcryptHash>>,
    /// A file of `user:$2y$…` lines (htpasswd -B), read at start and on every reload.
    pub basic_auth_users_file: Option<PathBuf>,
    /// Connections one client address (an IPv6 client: its /64) may hold open at once, so that
    /// one slow or flooding client cannot take the slots other scrapers need.
    pub max_connections_per_address: usize,
}

/// Connections served at once, from all clients together; Prometheus needs one or two, this
/// only bounds abuse. A connection beyond it, or beyond its address's share
/// (`[metrics] max_connections_per_address`), is accepted and closed at once, so that it holds
/// no descriptor and waits in no backlog ahead of other clients.
pub const MAX_CONNECTIONS: usize = 256;
/// The default of `max_connections_per_address`: far more than Prometheus and Grafana need.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 32;

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_METRICS_PORT)),
            tls_cert: None,
            tls_key: None,
            basic_auth_users: None,
            basic_auth_users_file: None,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        }
    }
}

impl MetricsConfig {
    /// True when basic auth is configured (inline or by file).
    pub fn auth_enabled(&self) -> bool {
        self.basic_auth_users
            .as_ref()
            .is_some_and(|u| !u.is_empty())
            || self.basic_auth_users_file.is_some()
    }
}

/// A bcrypt hash from the config: shown everywhere as `***`, handed out only by `expose()`.
///
/// A hash is not the password, but it allows an offline guessing attack, so it is treated as a
/// secret like the others.
#[derive(Clone, PartialEq, Eq)]
pub struct BcryptHash(String);

impl BcryptHash {
    /// Wraps a hash string (validated separately, so that the error can name the user).
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The hash itself, for the verifier.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BcryptHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::secret::MASK)
    }
}

impl Serialize for BcryptHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(crate::secret::MASK)
    }
}

impl<'de> Deserialize<'de> for BcryptHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(BcryptHash)
    }
}

/// Reads `[metrics.basic_auth_users]`; a value of the wrong type is refused without quoting
/// it (serde's own message would print a hash given in the wrong place).
fn users_table<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, BcryptHash>>, D::Error> {
    use serde::de::{Error, MapAccess, Unexpected, Visitor};
    struct Table;
    impl<'de> Visitor<'de> for Table {
        type Value = BTreeMap<String, BcryptHash>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a table of user = \"bcrypt hash\" ([metrics.basic_auth_users])")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            let mut m = BTreeMap::new();
            while let Some((user, hash)) = a.next_entry::<String, BcryptHash>()? {
                m.insert(user, hash);
            }
            Ok(m)
        }
        fn visit_str<E: Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(E::invalid_type(Unexpected::Other("a string"), &self))
        }
        fn visit_string<E: Error>(self, _: String) -> Result<Self::Value, E> {
            Err(E::invalid_type(Unexpected::Other("a string"), &self))
        }
        fn visit_borrowed_str<E: Error>(self, _: &'de str) -> Result<Self::Value, E> {
            Err(E::invalid_type(Unexpected::Other("a string"), &self))
        }
    }
    d.deserialize_map(Table).map(Some)
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Problem};
    use super::*;

    #[test]
    fn hashes_never_show() {
        let mut c = Config::default();
        let h = "$2b$04$abcdefghijklmnopqrstuu5Tmbn2gjOJq9t7cLg7WKsV2LXlS/hmy";
        c.metrics.basic_auth_users = Some(BTreeMap::from([("prom".into(), BcryptHash::new(h))]));
        let toml = c.to_redacted_toml();
        assert!(toml.contains("prom = \"***\""), "{toml}");
        assert!(!toml.contains("$2b$"), "{toml}");
        assert!(!format!("{c:?}").contains("$2b$"));
    }

    #[test]
    fn a_misplaced_hash_is_not_quoted() {
        let h = "$2b$04$abcdefghijklmnopqrstuu5Tmbn2gjOJq9t7cLg7WKsV2LXlS/hmy";
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), format!("[metrics]\nbasic_auth_users = {h:?}\n")).unwrap();
        let e = super::super::load(f.path(), &Default::default())
            .unwrap_err()
            .to_string();
        assert!(!e.contains("$2b$") && e.contains("table of user"), "{e}");
    }

    #[test]
    fn connections_per_address_are_bounded() {
        let mut c = Config::default();
        let key = |p: &[Problem]| {
            p.iter()
                .any(|p| p.key == "metrics.max_connections_per_address")
        };
        assert!(!key(&super::super::validate::validate(&c)));
        for bad in [0, MAX_CONNECTIONS + 1] {
            c.metrics.max_connections_per_address = bad;
            let p = super::super::validate::validate(&c);
            assert!(key(&p), "{p:?}");
            assert!(
                p.iter().any(|p| p.reason.contains("between 1 and 256")),
                "{p:?}"
            );
        }
    }

    #[test]
    fn tls_files_come_in_pairs() {
        let mut c = Config::default();
        c.metrics.tls_cert = Some("/x/cert.pem".into());
        let p = super::super::validate::validate(&c);
        assert_eq!(p[0].key, "metrics.tls_key", "{p:?}");
        c.metrics.tls_cert = None;
        c.metrics.tls_key = Some("/x/key.pem".into());
        let p = super::super::validate::validate(&c);
        assert_eq!(p[0].key, "metrics.tls_cert", "{p:?}");
    }

    #[test]
    fn bad_hash_names_the_user_not_the_hash() {
        let mut c = Config::default();
        c.metrics.basic_auth_users = Some(BTreeMap::from([(
            "prom".into(),
            BcryptHash::new("plaintext-oops"),
        )]));
        let p = super::super::validate::validate(&c);
        assert_eq!(p[0].key, "metrics.basic_auth_users.prom", "{p:?}");
        assert!(!p[0].reason.contains("plaintext-oops"), "{p:?}");
    }
}
