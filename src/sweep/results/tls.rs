//! Which certificates the Results client trusts: the policy of `docs/security.md`, decided
//! once when the client is built from the address, the flags and what is mounted.
//!
//! On OpenShift the Results certificate is signed by the service CA, which the Pod has
//! mounted (ConfigMap `openshift-service-ca.crt`, or the `service-ca.crt` OpenShift adds
//! to the service-account volume); elsewhere (kind, vanilla Kubernetes) it is self-signed.
//! Konflux's UI proxy verifies against the service CA when it is mounted and skips
//! verification otherwise; the old bridge used `curl -k`. The daemon does the same for the
//! cluster's own service names only: a host outside the cluster is always verified, so
//! the token is never sent unverified beyond the cluster's service names.

use super::address::is_cluster_service_name;
use super::error::SetupError;
use std::path::{Path, PathBuf};

/// Where the OpenShift service CA is looked for when no CA file is given: the ConfigMap
/// `openshift-service-ca.crt` as `deploy/` mounts it, and the file OpenShift adds to the
/// service-account token volume.
pub const SERVICE_CA_FILES: [&str; 2] = [
    "/etc/konflux-telemetry/service-ca/service-ca.crt",
    "/var/run/secrets/kubernetes.io/serviceaccount/service-ca.crt",
];

/// What the client trusts. A metric label (`as_str`), so a fixed set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsPolicy {
    /// `http://`: no TLS (and then no token).
    PlainHttp,
    /// `--tekton-results-ca-file`: verified against it (and the system roots).
    CaFile(PathBuf),
    /// The OpenShift service CA found mounted: verified against it (and the system roots).
    ServiceCa(PathBuf),
    /// A cluster service name and no CA: not verified, as Konflux's UI proxy does.
    InClusterUnverified,
    /// A host outside the cluster and no CA: verified against the system roots, never
    /// skipped.
    SystemRoots,
    /// `--tekton-results-insecure-skip-tls-verify`: not verified (with a token, only for
    /// cluster service names).
    Insecure,
}

impl TlsPolicy {
    /// Every label of [`TlsPolicy::as_str`].
    pub const LABELS: [&'static str; 6] = [
        "plain_http",
        "ca_file",
        "service_ca",
        "in_cluster_unverified",
        "system_roots",
        "insecure",
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            TlsPolicy::PlainHttp => "plain_http",
            TlsPolicy::CaFile(_) => "ca_file",
            TlsPolicy::ServiceCa(_) => "service_ca",
            TlsPolicy::InClusterUnverified => "in_cluster_unverified",
            TlsPolicy::SystemRoots => "system_roots",
            TlsPolicy::Insecure => "insecure",
        }
    }

    /// Whether the server's certificate is verified.
    pub fn verifies(&self) -> bool {
        matches!(
            self,
            TlsPolicy::CaFile(_) | TlsPolicy::ServiceCa(_) | TlsPolicy::SystemRoots
        )
    }

    /// One sentence for the log line at start (no address, no path).
    pub fn describe(&self) -> &'static str {
        match self {
            TlsPolicy::PlainHttp => "plain http, no TLS (and no token)",
            TlsPolicy::CaFile(_) => "certificate verified against the configured CA file",
            TlsPolicy::ServiceCa(_) => {
                "certificate verified against the OpenShift service CA mounted in the Pod"
            }
            TlsPolicy::InClusterUnverified => {
                "certificate not verified: a cluster service name and no CA mounted (as Konflux's UI proxy does off OpenShift); set TEKTON_RESULTS_CA_FILE to verify"
            }
            TlsPolicy::SystemRoots => {
                "certificate verified against the system roots (a host outside the cluster: never skipped)"
            }
            TlsPolicy::Insecure => {
                "certificate not verified (--tekton-results-insecure-skip-tls-verify): not for production"
            }
        }
    }
}

/// The policy for `base`, in order: plain http; the insecure flag; the CA file given; the
/// first of `service_ca_files` that holds a certificate; a cluster service name (not
/// verified); else the system roots. A token is refused where it would go unverified to
/// a host outside the cluster's service names.
pub fn decide(
    base: &reqwest::Url,
    ca_file: Option<&Path>,
    insecure: bool,
    service_ca_files: &[PathBuf],
    has_token: bool,
) -> Result<TlsPolicy, SetupError> {
    let in_cluster = base.host_str().is_some_and(is_cluster_service_name);
    Ok(if base.scheme() == "http" {
        TlsPolicy::PlainHttp
    } else if insecure {
        if has_token && !in_cluster {
            return Err(SetupError::UnverifiedTokenOutsideCluster);
        }
        TlsPolicy::Insecure
    } else if let Some(ca) = ca_file {
        TlsPolicy::CaFile(ca.to_path_buf())
    } else if let Some(ca) = service_ca_files.iter().find(|p| certificates(p).is_ok()) {
        TlsPolicy::ServiceCa(ca.clone())
    } else if in_cluster {
        TlsPolicy::InClusterUnverified
    } else {
        TlsPolicy::SystemRoots
    })
}

/// The certificates of a PEM bundle; at least one.
pub fn certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, SetupError> {
    let pem = std::fs::read(path).map_err(SetupError::ReadCa)?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(SetupError::NotPem)?;
    if certs.is_empty() {
        return Err(SetupError::NoCertificate);
    }
    Ok(certs)
}

/// `builder` trusting what `policy` says.
pub fn apply(
    builder: reqwest::ClientBuilder,
    policy: &TlsPolicy,
) -> Result<reqwest::ClientBuilder, SetupError> {
    Ok(match policy {
        TlsPolicy::CaFile(ca) | TlsPolicy::ServiceCa(ca) => {
            builder.tls_certs_merge(certificates(ca)?)
        }
        TlsPolicy::InClusterUnverified | TlsPolicy::Insecure => {
            builder.tls_danger_accept_invalid_certs(true)
        }
        TlsPolicy::PlainHttp | TlsPolicy::SystemRoots => builder,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        s.parse().unwrap()
    }

    const SERVICE: &str =
        "https://tekton-results-api-service.tekton-pipelines.svc.cluster.local:8080";

    #[test]
    fn each_branch_of_the_policy() {
        let ca = crate::sweep::results::fake::test_ca();
        let missing = PathBuf::from("/nonexistent/service-ca.crt");
        let not_pem = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        let decide = |addr: &str, ca_file: Option<&Path>, insecure, service: &[PathBuf]| {
            decide(&url(addr), ca_file, insecure, service, true)
        };
        // A CA file wins over a mounted service CA and over the host's kind.
        assert_eq!(
            decide(SERVICE, Some(&ca), false, std::slice::from_ref(&ca)).unwrap(),
            TlsPolicy::CaFile(ca.clone())
        );
        // The first service CA file that holds a certificate.
        let service = [missing.clone(), not_pem.clone(), ca.clone()];
        for addr in [SERVICE, "https://results.example.com"] {
            assert_eq!(
                decide(addr, None, false, &service).unwrap(),
                TlsPolicy::ServiceCa(ca.clone())
            );
        }
        // No CA: a cluster service name is not verified, anything else is.
        let none = [missing, not_pem];
        assert_eq!(
            decide(SERVICE, None, false, &none).unwrap(),
            TlsPolicy::InClusterUnverified
        );
        for addr in [
            "https://localhost:8443",
            "https://127.0.0.1:8443",
            "https://results.example.com",
            "https://tekton-results-api-service.tekton-pipelines.svc.cluster.local.example.com",
        ] {
            let policy = decide(addr, None, false, &none).unwrap();
            assert_eq!(policy, TlsPolicy::SystemRoots, "{addr}");
            assert!(policy.verifies());
        }
        assert_eq!(
            decide("http://results:80", None, false, &none).unwrap(),
            TlsPolicy::PlainHttp
        );
        // The insecure flag: with a token, for cluster service names only.
        assert_eq!(
            decide(SERVICE, None, true, &none).unwrap(),
            TlsPolicy::Insecure
        );
        let err = decide("https://127.0.0.1:8443", None, true, &none).unwrap_err();
        assert!(
            matches!(err, SetupError::UnverifiedTokenOutsideCluster),
            "{err}"
        );
        assert_eq!(
            super::decide(&url("https://127.0.0.1:8443"), None, true, &none, false).unwrap(),
            TlsPolicy::Insecure
        );
        let labels: Vec<_> = [
            TlsPolicy::PlainHttp,
            TlsPolicy::CaFile(ca.clone()),
            TlsPolicy::ServiceCa(ca),
            TlsPolicy::InClusterUnverified,
            TlsPolicy::SystemRoots,
            TlsPolicy::Insecure,
        ]
        .iter()
        .map(TlsPolicy::as_str)
        .collect();
        assert_eq!(labels, TlsPolicy::LABELS);
    }
}
