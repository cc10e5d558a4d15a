//! The admission webhook's serving certificates, and clients of its HTTPS port.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `webhook-certs/make-certs.sh OUT 127.0.0.1`: returns the caBundle.
pub fn make_certs(out: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("webhook-certs/make-certs.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(out)
        .arg("IP:127.0.0.1")
        .stdin(Stdio::null())
        .output()
        .expect("run make-certs.sh");
    assert!(
        output.status.success(),
        "make-certs.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(out.join("caBundle")).expect("caBundle")
}

pub fn https_client(ca_dir: &Path) -> reqwest::Client {
    super::crypto::install_provider();
    let pem = std::fs::read(ca_dir.join("ca.crt")).expect("ca.crt");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("CA")])
        .timeout(Duration::from_secs(5))
        // A new connection (and handshake) for every request: the certificate is checked
        // each time.
        .pool_max_idle_per_host(0)
        .no_proxy()
        .build()
        .expect("client")
}
