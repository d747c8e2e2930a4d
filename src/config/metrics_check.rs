//! Validation of `[metrics]` beyond what serde does: the connection bound, the TLS files and
//! the basic-auth users.

use super::metrics::{DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, MAX_CONNECTIONS};
use super::model::Config;
use super::problem::Problem;

/// Checks `[metrics]` beyond what serde does: TLS files in pairs and loadable, users' names and
/// hashes (the hash itself is never quoted).
pub(super) fn check(c: &Config, out: &mut Vec<Problem>) {
    let m = &c.metrics;
    let most = MAX_CONNECTIONS;
    if !(1..=most).contains(&m.max_connections_per_address) {
        out.push(Problem::new(
            "metrics.max_connections_per_address",
            format!(
                "is {}; it must be between 1 and {most} (the endpoint's limit for all clients together); the default is {DEFAULT_MAX_CONNECTIONS_PER_ADDRESS}",
                m.max_connections_per_address
            ),
        ));
    }
    match (&m.tls_cert, &m.tls_key) {
        (Some(cert), Some(key)) => {
            // Read once through the secret-file path for its exposure warning.
            if let Err(p) = super::secret_file::read_secret_file("metrics.tls_key", key) {
                out.push(p);
            } else if let Err(e) = super::metrics_tls::load(cert, key) {
                out.push(Problem::new(e.key(), e.to_string()));
            }
        }
        (Some(_), None) => out.push(Problem::new(
            "metrics.tls_key",
            "is missing: metrics.tls_cert is set, and TLS needs both; set tls_key to the PEM private key or remove tls_cert",
        )),
        (None, Some(_)) => out.push(Problem::new(
            "metrics.tls_cert",
            "is missing: metrics.tls_key is set, and TLS needs both; set tls_cert to the PEM certificate or remove tls_key",
        )),
        (None, None) => {}
    }
    let file = match &m.basic_auth_users_file {
        Some(path) => {
            match super::secret_file::read_secret_file("metrics.basic_auth_users_file", path) {
                Ok(text) => Some(text),
                Err(p) => return out.push(p),
            }
        }
        None => None,
    };
    if let Err(problems) = super::basic_auth_users::Users::parse(m, file.as_deref()) {
        out.extend(problems);
    }
}
