//! Where Tekton Results may be: the rules, without any lookup.
//!
//! The Konflux operator writes `TEKTON_RESULTS_API_ADDR` as the service of namespace
//! `tekton-pipelines` (or `openshift-pipelines` on OpenShift), but Results is installed in
//! other namespaces too (`tekton-results` in a production install, where the old bridge's
//! DNS lookups failed without a word). Konflux's UI proxy
//! (`operator/upstream-kustomizations/ui/core/proxy/generate-proxy-config.sh`) probes the
//! service names of the three namespaces in that order: when the configured host does not
//! resolve, the daemon tries the same names, with the configured scheme and port.

/// The Tekton Results API service, in each of [`NAMESPACES`].
pub const SERVICE: &str = "tekton-results-api-service";

/// The namespaces Tekton Results is installed in, in the order Konflux's UI proxy probes
/// them: upstream Tekton, OpenShift Pipelines, a stand-alone Results install.
pub const NAMESPACES: [&str; 3] = ["tekton-pipelines", "openshift-pipelines", "tekton-results"];

/// The service name of Results in `namespace`.
pub fn service_name(namespace: &str) -> String {
    format!("{SERVICE}.{namespace}.svc.cluster.local")
}

/// One place Results may be: the configured address, or the service name of one of
/// [`NAMESPACES`] (its index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub url: reqwest::Url,
    pub which: Which,
}

/// Which candidate: a fixed label, safe in logs and metrics (never the address itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Configured,
    /// The service name of [`NAMESPACES`]`[i]`.
    Service(usize),
}

impl Which {
    /// `configured`, or the namespace of the service name (a constant of this module).
    pub fn as_str(self) -> &'static str {
        match self {
            Which::Configured => "configured",
            Which::Service(i) => NAMESPACES.get(i).copied().unwrap_or("service"),
        }
    }
}

/// The configured address first, then the service names of [`NAMESPACES`] with its scheme,
/// port and path; a service name equal to the configured host is not repeated.
pub fn candidates(configured: &reqwest::Url) -> Vec<Candidate> {
    let mut all = vec![Candidate {
        url: configured.clone(),
        which: Which::Configured,
    }];
    for (i, namespace) in NAMESPACES.iter().enumerate() {
        let name = service_name(namespace);
        if configured.host_str() == Some(name.as_str()) {
            continue;
        }
        let mut url = configured.clone();
        if url.set_host(Some(&name)).is_ok() {
            all.push(Candidate {
                url,
                which: Which::Service(i),
            });
        }
    }
    all
}

/// Whether `host` is a name of a Service of the cluster: `NAME.NAMESPACE.svc` or
/// `NAME.NAMESPACE.svc.cluster.local` (the default cluster domain; `NAME.NAMESPACE` alone
/// also depends on the search path, and is not taken). IP addresses are not: a ClusterIP
/// cannot be told from any other address.
pub fn is_cluster_service_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let Some(rest) = host
        .strip_suffix(".svc.cluster.local")
        .or_else(|| host.strip_suffix(".svc"))
    else {
        return false;
    };
    let labels: Vec<&str> = rest.split('.').collect();
    labels.len() == 2 && labels.iter().all(|l| is_dns_label(l))
}

/// An RFC 1123 label, as Kubernetes names Services and namespaces.
fn is_dns_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        s.parse().unwrap()
    }

    #[test]
    fn the_configured_address_comes_first_then_the_three_service_names_in_order() {
        let configured =
            url("https://tekton-results-api-service.openshift-pipelines.svc.cluster.local:8080");
        let all = candidates(&configured);
        let shown: Vec<_> = all
            .iter()
            .map(|c| (c.which.as_str(), c.url.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "configured",
                    "https://tekton-results-api-service.openshift-pipelines.svc.cluster.local:8080/"
                ),
                (
                    "tekton-pipelines",
                    "https://tekton-results-api-service.tekton-pipelines.svc.cluster.local:8080/"
                ),
                (
                    "tekton-results",
                    "https://tekton-results-api-service.tekton-results.svc.cluster.local:8080/"
                ),
            ]
        );
        // Another host and port: all three, with its scheme, port and path.
        let all = candidates(&url("http://results.example:9000/prefix"));
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].which, Which::Configured);
        assert_eq!(
            all[3].url.as_str(),
            "http://tekton-results-api-service.tekton-results.svc.cluster.local:9000/prefix"
        );
        assert_eq!(all[3].which, Which::Service(2));
    }

    #[test]
    fn only_service_names_are_cluster_service_names() {
        for host in [
            "tekton-results-api-service.tekton-pipelines.svc.cluster.local",
            "tekton-results-api-service.tekton-results.svc",
            "a.b.svc.cluster.local.",
            "Results.NS.svc",
        ] {
            assert!(is_cluster_service_name(host), "{host}");
        }
        for host in [
            "localhost",
            "127.0.0.1",
            "10.96.0.10",
            "results.example.com",
            "svc.cluster.local",
            "x.svc.cluster.local",
            "a.b.c.svc.cluster.local",
            "evil.example.com/.a.b.svc",
            "a.b.svc.cluster.local.example.com",
            "a.b.svc.example",
            "-a.b.svc",
            "a_b.c.svc",
            "",
        ] {
            assert!(!is_cluster_service_name(host), "{host}");
        }
    }
}
