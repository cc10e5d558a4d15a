//! Finding Tekton Results: the candidates of [`super::address`], tried in order, the first
//! whose host resolves taken. Names resolve through the system's resolver (bounded in
//! time), or through overrides given like curl's `--resolve` (`HOST=IP`, `HOST=IP:PORT`
//! to connect to another port as well, like curl's `--connect-to`, or `HOST=` for a name
//! that does not resolve), which tests use to point a cluster service name at a local
//! server.

use super::address::{self, Candidate, Which};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Longest one name's lookup may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Addresses of one name kept at most (the client connects to the first that answers).
pub const MAX_ADDRESSES: usize = 16;

/// How a name resolves, for [`Located::found`]: a fixed set, a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// The configured host resolves.
    Configured,
    /// It does not; one of the service names does.
    Discovered,
    /// None does.
    None,
}

impl Found {
    pub const ALL: [Found; 3] = [Found::Configured, Found::Discovered, Found::None];

    pub fn as_str(self) -> &'static str {
        match self {
            Found::Configured => "configured",
            Found::Discovered => "discovered",
            Found::None => "none",
        }
    }
}

/// A name's resolution given in advance, like curl's `--resolve`: `HOST=IP` (the name
/// resolves to IP only), `HOST=IP:PORT` (and the connection goes to PORT), or `HOST=` (it
/// does not resolve).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    pub host: String,
    pub ip: Option<IpAddr>,
    /// The port to connect to instead of the address's.
    pub port: Option<u16>,
}

impl std::str::FromStr for Override {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (host, ip) = s
            .split_once('=')
            .ok_or("expected HOST=IP (or HOST= for a name that does not resolve)")?;
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Err("expected HOST=IP: the host is empty".to_owned());
        }
        let (ip, port) = match ip.trim() {
            "" => (None, None),
            text => match text.parse::<SocketAddr>() {
                Ok(at) => (Some(at.ip()), Some(at.port())),
                Err(_) => {
                    let ip = text
                        .parse()
                        .map_err(|e| format!("not an IP address: {e}"))?;
                    (Some(ip), None)
                }
            },
        };
        Ok(Override { host, ip, port })
    }
}

/// Resolves host names: the overrides first, else the system's resolver.
#[derive(Clone, Debug, Default)]
pub struct Resolver {
    overrides: Vec<Override>,
}

impl Resolver {
    pub fn with_overrides(overrides: Vec<Override>) -> Self {
        Self { overrides }
    }

    fn overridden(&self, host: &str) -> Option<&Override> {
        let host = host.trim_end_matches('.');
        self.overrides
            .iter()
            .find(|o| o.host.eq_ignore_ascii_case(host))
    }

    /// The addresses `host` resolves to (at most [`MAX_ADDRESSES`]); empty when it does
    /// not, or when the lookup takes longer than [`LOOKUP_TIMEOUT`].
    pub async fn lookup(&self, host: &str, port: u16) -> Vec<SocketAddr> {
        if let Some(o) = self.overridden(host) {
            return o
                .ip
                .map(|ip| SocketAddr::new(ip, port))
                .into_iter()
                .collect();
        }
        // `Url` writes an IPv6 host in brackets.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return vec![SocketAddr::new(ip, port)];
        }
        match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((bare, port))).await {
            Ok(Ok(addrs)) => addrs.take(MAX_ADDRESSES).collect(),
            Ok(Err(_)) | Err(_) => Vec::new(),
        }
    }

    /// What the HTTP client must be told of `host`: the overridden addresses, which the
    /// system's resolver would not give (empty when the system resolves it).
    pub fn pinned(&self, host: &str, port: u16) -> Vec<SocketAddr> {
        self.overridden(host)
            .and_then(|o| o.ip)
            .map(|ip| SocketAddr::new(ip, port))
            .into_iter()
            .collect()
    }
}

/// Where Results was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub candidate: Candidate,
    pub found: Found,
    /// Addresses the client must use for the candidate's host (overrides only; an
    /// override's port is the candidate's port already).
    pub pinned: Vec<SocketAddr>,
}

/// The first of `candidates` whose host resolves, in order; `None` when none does.
pub async fn locate(candidates: Vec<Candidate>, resolver: &Resolver) -> Option<Located> {
    for mut candidate in candidates {
        let Some(host) = candidate.url.host_str().map(str::to_owned) else {
            continue;
        };
        let port = candidate.url.port_or_known_default().unwrap_or(443);
        if resolver.lookup(&host, port).await.is_empty() {
            continue;
        }
        let found = match candidate.which {
            Which::Configured => Found::Configured,
            Which::Service(_) => Found::Discovered,
        };
        if let Some(other) = resolver.overridden(&host).and_then(|o| o.port) {
            // Cannot fail: the URL has a host (and so can have a port).
            let _ = candidate.url.set_port(Some(other));
        }
        let pinned = resolver.pinned(&host, port);
        return Some(Located {
            candidate,
            found,
            pinned,
        });
    }
    None
}

/// [`locate`] over [`address::candidates`] of `configured`.
pub async fn locate_results(configured: &reqwest::Url, resolver: &Resolver) -> Option<Located> {
    locate(address::candidates(configured), resolver).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(s: &str) -> Override {
        s.parse().unwrap()
    }

    const OPERATOR: &str =
        "https://tekton-results-api-service.openshift-pipelines.svc.cluster.local:8080";

    #[test]
    fn overrides_are_host_equals_ip_or_nothing() {
        assert_eq!(
            o("Results.NS.svc.=127.0.0.1"),
            Override {
                host: "results.ns.svc".into(),
                ip: Some([127, 0, 0, 1].into()),
                port: None,
            }
        );
        assert_eq!(o("a.b.svc=127.0.0.1:9443").port, Some(9443));
        assert_eq!(o("a.b.svc=[::1]:9443").ip, Some("::1".parse().unwrap()));
        assert_eq!(o("a.b.svc=").ip, None);
        for bad in ["a.b.svc", "=127.0.0.1", "a=not-an-ip"] {
            assert!(bad.parse::<Override>().is_err(), "{bad}");
        }
    }

    /// Where the operator's address leads with `overrides` (each `HOST=[IP[:PORT]]`).
    async fn locate_operators(overrides: &[&str]) -> Option<Located> {
        let resolver = Resolver::with_overrides(overrides.iter().map(|s| o(s)).collect());
        locate_results(&OPERATOR.parse().unwrap(), &resolver).await
    }

    #[tokio::test]
    async fn the_configured_host_wins_when_it_resolves() {
        let at = locate_operators(&[
            "tekton-results-api-service.openshift-pipelines.svc.cluster.local=127.0.0.1",
            "tekton-results-api-service.tekton-pipelines.svc.cluster.local=127.0.0.2",
        ])
        .await
        .expect("found");
        assert_eq!(at.found, Found::Configured);
        assert_eq!(at.candidate.which, Which::Configured);
        assert_eq!(at.pinned, [SocketAddr::from(([127, 0, 0, 1], 8080))]);
    }

    #[tokio::test]
    async fn else_the_first_service_name_that_resolves_in_the_proxys_order() {
        let at = locate_operators(&[
            "tekton-results-api-service.openshift-pipelines.svc.cluster.local=",
            "tekton-results-api-service.tekton-pipelines.svc.cluster.local=",
            "tekton-results-api-service.tekton-results.svc.cluster.local=10.0.0.7",
        ])
        .await
        .expect("found");
        assert_eq!(at.found, Found::Discovered);
        assert_eq!(at.candidate.which.as_str(), "tekton-results");
        assert_eq!(
            at.candidate.url.as_str(),
            "https://tekton-results-api-service.tekton-results.svc.cluster.local:8080/"
        );
        assert_eq!(at.pinned, [SocketAddr::from(([10, 0, 0, 7], 8080))]);

        // An override with a port: the connection goes there, the name stays.
        let at = locate_operators(&[
            "tekton-results-api-service.openshift-pipelines.svc.cluster.local=127.0.0.1:9443",
        ])
        .await
        .expect("found");
        assert_eq!(
            at.candidate.url.as_str(),
            "https://tekton-results-api-service.openshift-pipelines.svc.cluster.local:9443/"
        );
    }

    #[tokio::test]
    async fn none_when_no_name_resolves_and_ip_addresses_always_do() {
        let resolver = Resolver::with_overrides(
            address::NAMESPACES
                .iter()
                .map(|ns| o(&format!("{}=", address::service_name(ns))))
                .collect(),
        );
        assert_eq!(
            locate_results(&OPERATOR.parse().unwrap(), &resolver).await,
            None
        );
        let at = locate_results(&"https://127.0.0.1:1".parse().unwrap(), &resolver)
            .await
            .expect("an IP address");
        assert_eq!(at.found, Found::Configured);
        assert!(at.pinned.is_empty(), "the system resolves it");
    }
}
