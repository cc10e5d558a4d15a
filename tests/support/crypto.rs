//! The TLS crypto provider the daemon's `main` installs, for tests and benchmarks that use
//! the library in process (it installs none): `Sender::new`, `ResultsClient::new` and the
//! webhook fail without one, and `reqwest` clients panic.
//!
//! Included by `tests/support/mod.rs`, by `#[path]` in the tests that do not use the rest
//! of `support`, and in the benchmarks.

/// Installs rustls' ring provider as the process default; a no-op when one is installed.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
