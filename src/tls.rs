//! TLS on the listeners (`[DEFAULT] cert_file` / `key_file`, upstream Glance's option
//! names): rustls with the ring provider, HTTP/1.1 only. The certificate and key are read
//! again on SIGHUP (a renewed certificate takes effect for new connections without a
//! restart); a pair that does not load is reported and the one in use stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cert_file {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("key_file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("cert_file and key_file do not match: {0}")]
    Mismatch(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The listeners' TLS: one certificate for every listener, swapped in place on reload.
pub struct Tls {
    acceptor: TlsAcceptor,
    certificate: Arc<Reloadable>,
}

impl Tls {
    /// Loads `cert_file` (PEM, the chain from the server's certificate up) and `key_file`
    /// (PEM, PKCS#8, PKCS#1 or SEC1).
    pub fn new(cert_file: &Path, key_file: &Path) -> Result<Arc<Tls>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certificate = Arc::new(Reloadable {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: RwLock::new(load(cert_file, key_file, &provider)?),
            provider: provider.clone(),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(certificate.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate,
        }))
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reads the files again; on success new connections get the new certificate.
    pub fn reload(&self) -> Result<(), TlsError> {
        let c = &self.certificate;
        let fresh = load(&c.cert_file, &c.key_file, &c.provider)?;
        *c.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert_file", &self.certificate.cert_file)
            .finish_non_exhaustive()
    }
}

/// The certificate every handshake is offered, whatever name the client asked for.
#[derive(Debug)]
struct Reloadable {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn load(
    cert_file: &Path,
    key_file: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_err = |reason: String| TlsError::Certificate {
        path: cert_file.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no PEM certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::Key {
        path: key_file.to_path_buf(),
        reason: e.to_string(),
    })?;
    // Checks that the key is the certificate's (a renewed certificate copied without its
    // key is refused, and the pair in use stays).
    CertifiedKey::from_der(chain, key, provider)
        .map(Arc::new)
        .map_err(|e| TlsError::Mismatch(e.to_string()))
}

#[cfg(test)]
mod tests;
