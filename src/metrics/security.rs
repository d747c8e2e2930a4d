//! What guards the HTTP endpoint right now (TLS acceptor, basic-auth verifier, the per-address
//! connection cap), rebuilt from the files at start and on every reload, and handed to new
//! connections through a `watch`.

use super::basic_auth::BasicAuth;
use crate::config::basic_auth_users::Users;
use crate::config::MetricsConfig;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Why the TLS files or the users could not be (re)loaded; the previous ones stay in use.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error(transparent)]
    Tls(#[from] crate::config::metrics_tls::TlsError),
    #[error("basic-auth users:{}", problems.iter().map(|p| format!("\n  - {p}")).collect::<String>())]
    Users {
        problems: Vec<crate::config::Problem>,
    },
}

/// The guards a connection is served with; a connection keeps the ones it started with.
pub struct Security {
    pub tls: Option<TlsAcceptor>,
    pub auth: Option<BasicAuth>,
    /// `[metrics] max_connections_per_address`, so that a reload changes it live.
    pub max_per_address: usize,
}

impl Security {
    /// Reads the certificate, key and users the config names.
    pub fn build(m: &MetricsConfig) -> Result<Security, SecurityError> {
        let tls = match (&m.tls_cert, &m.tls_key) {
            (Some(cert), Some(key)) => Some(crate::config::metrics_tls::load(cert, key)?),
            _ => None,
        };
        let auth = if m.auth_enabled() {
            let users =
                Users::from_config(m).map_err(|problems| SecurityError::Users { problems })?;
            Some(BasicAuth::new(users))
        } else {
            None
        };
        Ok(Security {
            tls,
            auth,
            max_per_address: m.max_connections_per_address,
        })
    }
}

/// Swaps in new guards; reload calls it on every reload, even when the config text did not
/// change, so that a renewed certificate at the same path is picked up.
#[derive(Clone)]
pub struct SecurityHandle {
    tx: Arc<watch::Sender<Arc<Security>>>,
}

impl SecurityHandle {
    /// Builds the first guards; an error here fails the start.
    pub fn start(m: &MetricsConfig) -> Result<SecurityHandle, SecurityError> {
        let sec = Security::build(m)?;
        log(&sec, m, true);
        let (tx, _) = watch::channel(Arc::new(sec));
        Ok(SecurityHandle { tx: Arc::new(tx) })
    }

    /// What new connections use.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Security>> {
        self.tx.subscribe()
    }

    /// Puts guards built by [`Security::build`] (on reload, off the async threads) in use for
    /// new connections.
    pub fn install(&self, sec: Security, m: &MetricsConfig) {
        log(&sec, m, false);
        self.tx.send_replace(Arc::new(sec));
    }
}

/// Says at start which guards the HTTP endpoint has; on each reload only at debug level (a
/// reload says itself what changed).
fn log(sec: &Security, m: &MetricsConfig, at_start: bool) {
    let users = sec
        .auth
        .as_ref()
        .map(BasicAuth::names)
        .unwrap_or_default()
        .join(",");
    if at_start {
        tracing::info!(listen = %m.listen, tls = sec.tls.is_some(), basic_auth_users = %users, "HTTP endpoint guards loaded");
    } else {
        tracing::debug!(listen = %m.listen, tls = sec.tls.is_some(), basic_auth_users = %users, "HTTP endpoint guards reloaded");
    }
}
