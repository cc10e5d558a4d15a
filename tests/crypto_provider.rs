//! Without the TLS crypto provider that the daemon's `main` installs, the library's TLS
//! users fail with a clear error rather than a panic; with it, they work. In a test binary
//! of its own: the provider is process-wide, and no other test here installs it first.

#[path = "support/crypto.rs"]
mod crypto;

use konflux_telemetry::admission::{AdmissionMetrics, Handler, Webhook};
use konflux_telemetry::crypto::NoCryptoProvider;
use konflux_telemetry::events::ClusterIdentity;
use konflux_telemetry::segment::{ConfigError, Sender, SenderConfig, SenderMetrics, WriteKey};
use konflux_telemetry::sweep::{ResultsClient, ResultsConfig, SweepError};
use std::sync::Arc;
use std::time::Duration;

const MESSAGE: &str =
    "no TLS crypto provider is installed (the program installs rustls' ring provider at start)";

fn sender() -> Result<Sender, ConfigError> {
    let cfg = SenderConfig::new("https://api.segment.io/v1", WriteKey::new("a-key"));
    Sender::new(cfg, SenderMetrics::default())
}

fn results() -> Result<ResultsClient, SweepError> {
    ResultsClient::new(&ResultsConfig::new("https://results.example:8080"))
}

async fn webhook() -> konflux_telemetry::Result<Webhook> {
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let identity = Arc::new(ClusterIdentity::default());
    let handler = Handler::new(
        tx,
        move || Arc::clone(&identity),
        AdmissionMetrics::default(),
    );
    let dir = std::env::temp_dir().join("konflux-telemetry-crypto-provider-no-certs");
    Webhook::bind_with(
        "127.0.0.1:0".parse().expect("address"),
        &dir,
        handler,
        Duration::from_secs(60),
    )
    .await
}

#[tokio::test]
async fn tls_users_need_the_provider_main_installs() {
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    assert_eq!(
        konflux_telemetry::crypto::provider().err(),
        Some(NoCryptoProvider)
    );

    let err = sender().expect_err("no provider");
    assert!(
        matches!(err, ConfigError::CryptoProvider(NoCryptoProvider)),
        "{err:?}"
    );
    assert_eq!(err.to_string(), MESSAGE);

    let err = results().expect_err("no provider");
    assert!(matches!(err, SweepError::CryptoProvider(_)), "{err:?}");
    assert_eq!(err.to_string(), format!("Results API client: {MESSAGE}"));

    let err = webhook().await.err().expect("no provider");
    assert!(
        matches!(err, konflux_telemetry::Error::CryptoProvider(_)),
        "{err:?}"
    );
    assert_eq!(err.to_string(), MESSAGE);

    crypto::install_provider();
    assert!(konflux_telemetry::crypto::provider().is_ok());
    assert!(sender().is_ok());
    assert!(results().is_ok());
    // No certificate in the directory: bound all the same, handshakes fail until one comes.
    assert!(webhook().await.is_ok());
}
