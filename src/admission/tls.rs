//! The webhook's serving certificate, reloaded when its files change.
//!
//! Kubernetes updates a Secret volume by writing the new files into a fresh directory and
//! swapping the `..data` symlink, so the files are polled (their contents compared, which
//! follows any symlink) rather than watched. A new pair that does not parse, or whose key
//! does not match its certificate (a read between the two files' swap), is rejected and
//! the current one kept; the next poll tries again.

use super::metrics::AdmissionMetrics;
use crate::crypto::NoCryptoProvider;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use tracing::{info, warn};

/// The certificate chain file in the certificate directory (a `kubernetes.io/tls` Secret's key).
pub const CERT_FILE: &str = "tls.crt";
/// The private key file beside it (PKCS#8, PKCS#1 or SEC1 PEM).
pub const KEY_FILE: &str = "tls.key";

/// The current certificate, for rustls, and the files it came from.
#[derive(Debug)]
pub struct CertStore {
    dir: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Option<Arc<CertifiedKey>>>,
    /// The contents last tried (applied or rejected), so a bad pair is reported once.
    last_tried: Mutex<Option<(Vec<u8>, Vec<u8>)>>,
    metrics: AdmissionMetrics,
}

/// What a [`CertStore::reload`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reload {
    /// The files are what was last tried.
    Unchanged,
    /// A new certificate is served.
    Applied,
    /// The files could not be used; the previous certificate (if any) stays.
    Rejected(String),
}

impl CertStore {
    /// A store for the files of `dir`, with no certificate yet. Uses the process's TLS
    /// crypto provider ([`crate::crypto`]), the one every other TLS configuration uses;
    /// fails when none is installed.
    pub fn new(dir: &Path, metrics: AdmissionMetrics) -> Result<Self, NoCryptoProvider> {
        Ok(Self {
            dir: dir.to_owned(),
            provider: crate::crypto::provider()?,
            current: RwLock::new(None),
            last_tried: Mutex::new(None),
            metrics,
        })
    }

    pub fn provider(&self) -> Arc<CryptoProvider> {
        Arc::clone(&self.provider)
    }

    pub fn has_certificate(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Reads the files; swaps the certificate when they changed and are good. Logs and
    /// counts what it did (paths and reasons only, nothing of the files' contents).
    pub fn reload(&self) -> Reload {
        let read = |name: &str| std::fs::read(self.dir.join(name));
        let (cert, key) = match (read(CERT_FILE), read(KEY_FILE)) {
            (Ok(c), Ok(k)) => (c, k),
            (Err(e), _) | (_, Err(e)) => {
                // Missing files are tried again at the next poll; report the change only.
                let mut last = self
                    .last_tried
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if last
                    .as_ref()
                    .is_none_or(|(c, k)| !c.is_empty() || !k.is_empty())
                {
                    *last = Some((Vec::new(), Vec::new()));
                    let reason = format!(
                        "cannot read {}/{{{CERT_FILE},{KEY_FILE}}}: {}",
                        self.dir.display(),
                        e.kind()
                    );
                    return self.rejected(reason);
                }
                return Reload::Unchanged;
            }
        };
        {
            let mut last = self
                .last_tried
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.as_ref().is_some_and(|(c, k)| *c == cert && *k == key) {
                return Reload::Unchanged;
            }
            *last = Some((cert.clone(), key.clone()));
        }
        match certified_key(&cert, &key, &self.provider) {
            Ok(ck) => {
                let first = !self.has_certificate();
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(ck));
                self.metrics.certificate_reload("applied");
                if first {
                    info!(
                        "webhook serving certificate loaded from {}",
                        self.dir.display()
                    );
                } else {
                    info!(
                        "webhook serving certificate reloaded from {}",
                        self.dir.display()
                    );
                }
                Reload::Applied
            }
            Err(reason) => self.rejected(format!("{}: {reason}", self.dir.display())),
        }
    }

    fn rejected(&self, reason: String) -> Reload {
        self.metrics.certificate_reload("rejected");
        if self.has_certificate() {
            warn!("webhook certificate not reloaded ({reason}); still serving the previous one");
        } else {
            warn!("no webhook certificate ({reason}); TLS handshakes fail until one is there");
        }
        Reload::Rejected(reason)
    }

    /// A rustls resolver reading the current certificate at each handshake.
    pub fn resolver(self: &Arc<Self>) -> Arc<dyn ResolvesServerCert> {
        Arc::new(Resolver(Arc::clone(self)))
    }
}

/// Why a certificate and key pair cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("{cert} is not PEM: {0}", cert = CERT_FILE)]
    CertificateNotPem(#[source] rustls::pki_types::pem::Error),
    #[error("{cert} holds no certificate", cert = CERT_FILE)]
    NoCertificate,
    #[error("{key} holds no private key: {0}", key = KEY_FILE)]
    NoPrivateKey(#[source] rustls::pki_types::pem::Error),
    #[error("{cert} and {key} do not make a usable pair: {0}", cert = CERT_FILE, key = KEY_FILE)]
    NotAPair(#[source] rustls::Error),
}

/// Parses a PEM chain and key, and checks that they belong together.
pub fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, CertificateError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(CertificateError::CertificateNotPem)?;
    if chain.is_empty() {
        return Err(CertificateError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(CertificateError::NoPrivateKey)?;
    CertifiedKey::from_der(chain, key, provider).map_err(CertificateError::NotAPair)
}

#[derive(Debug)]
struct Resolver(Arc<CertStore>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The server configuration: TLS 1.2 and 1.3 with the store's provider (the process's,
/// ring), HTTP/1.1, the reloading resolver.
pub fn server_config(store: &Arc<CertStore>) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(store.provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(store.resolver());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
