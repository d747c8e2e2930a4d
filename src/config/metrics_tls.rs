//! TLS for the HTTP endpoint: loading `[metrics] tls_cert` / `tls_key` into a rustls acceptor
//! (ring provider, TLS 1.2 and 1.3, HTTP/1.1 by ALPN).

use super::regular_file::{read_regular, ReadError, SECRET_CAP};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key could not be used; names the file, never quotes its content.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path} ({key}): {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        source: ReadError,
    },
    #[error("cannot read the certificate {path}: {source}; check metrics.tls_cert")]
    Cert {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error(
        "{path} holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\"); check metrics.tls_cert"
    )]
    NoCert { path: PathBuf },
    #[error("cannot read the private key {path}: {source}; check metrics.tls_key (PEM, PKCS#8, PKCS#1 or SEC1)")]
    Key {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("the key {key} does not fit the certificate {cert}: {source}; check that metrics.tls_cert and metrics.tls_key belong together")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

impl TlsError {
    /// The config key at fault, for validation problems.
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::Read { key, .. } => key,
            TlsError::Cert { .. } | TlsError::NoCert { .. } => "metrics.tls_cert",
            TlsError::Key { .. } | TlsError::Pair { .. } => "metrics.tls_key",
        }
    }
}

/// Reads the PEM chain and key and builds an acceptor; a key that does not match the
/// certificate is refused here rather than at the first handshake. Both must be regular files
/// of at most 64 KiB, so that a FIFO or a device cannot hang or bloat a reload.
pub fn load(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let cert_pem = read("metrics.tls_cert", cert)?;
    let key_pem = read("metrics.tls_key", key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Cert {
            path: cert.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCert {
            path: cert.to_path_buf(),
        });
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|source| TlsError::Key {
        path: key.to_path_buf(),
        source,
    })?;
    let pair = |source| TlsError::Pair {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(pair)?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(pair)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    read_regular(path, SECRET_CAP).map_err(|source| TlsError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })
}
