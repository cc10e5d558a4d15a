//! The process's TLS crypto provider.
//!
//! `main` installs rustls' `ring` provider as the process default once, before anything
//! else runs; the library installs none. Whatever builds a TLS configuration (the Segment
//! and Tekton Results HTTP clients, the webhook's server configuration) takes that default
//! through [`provider`], and fails with [`NoCryptoProvider`] when none is installed, rather
//! than panicking inside `reqwest`.

use rustls::crypto::CryptoProvider;
use std::sync::Arc;

/// No TLS crypto provider is installed for the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "no TLS crypto provider is installed (the program installs rustls' ring provider at start)"
)]
pub struct NoCryptoProvider;

/// The process's default crypto provider, as installed by `main`.
pub fn provider() -> Result<Arc<CryptoProvider>, NoCryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .ok_or(NoCryptoProvider)
}

/// For unit tests, which have no `main`: installs the provider `main` installs (a no-op
/// when one is installed already).
#[cfg(test)]
pub(crate) fn install_for_tests() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
