//! The client's setup and its token: the address, TLS, the HTTP client and its bounds
//! (timeouts, no redirects, no proxy), and the bearer token, from a file re-read as it
//! rotates. One request at a time goes through [`ResultsClient::send`].

use super::error::{SetupError, SweepError};
use super::paging::{self, DEFAULT_DEADLINE, MAX_PAGE_BYTES, MAX_PAGES};
use super::tls::{self, SERVICE_CA_FILES, TlsPolicy};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Where the service-account token is mounted in a pod.
pub const DEFAULT_SA_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Records per page unless configured. The server takes 5 to 10000 (default 50).
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The smallest page size the server accepts.
pub const MIN_PAGE_SIZE: u32 = 5;
/// The largest page size the daemon asks for: what the Pod's memory allows. A page costs
/// about 64 KiB of memory a record at its peak (body, parsed strings, decoded objects:
/// measured 21 MiB at 100 records a page, 78 MiB at 1000, `docs/performance.md`), so 250
/// keeps the sweep near 30 MiB inside the 128 Mi limit of `deploy/`. A larger
/// `TEKTON_LIMIT` (the operator writes 1000) is clamped to this, with one log line.
pub const MAX_PAGE_SIZE: u32 = 250;
/// The largest page size the server accepts.
pub const SERVER_MAX_PAGE_SIZE: u32 = 10_000;

/// The page size used for `requested` records a page: clamped to
/// [`MIN_PAGE_SIZE`]`..=`[`MAX_PAGE_SIZE`]. The second value says whether it was clamped.
pub fn clamp_page_size(requested: u32) -> (u32, bool) {
    let size = requested.clamp(MIN_PAGE_SIZE, MAX_PAGE_SIZE);
    (size, size != requested)
}

/// The Results API's base URL from `TEKTON_RESULTS_API_ADDR`: `https://host:port`,
/// `http://host:port`, or `host:port` without a scheme, which means `https://` (what the
/// Konflux operator writes, and how the old bridge reads it).
pub fn parse_addr(addr: &str) -> Result<reqwest::Url, SweepError> {
    let addr = addr.trim();
    let with_scheme = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("https://{addr}")
    };
    let base = reqwest::Url::parse(&with_scheme).map_err(SetupError::NotAUrl)?;
    if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none_or(str::is_empty) {
        return Err(SetupError::NotHttp.into());
    }
    Ok(base)
}

/// The bearer token sent to the Results API.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// No `Authorization` header.
    None,
    /// A fixed token (`TEKTON_RESULTS_TOKEN`).
    Fixed(String),
    /// A token file (`SA_TOKEN_PATH`), re-read whenever its modification time or size
    /// changes (projected service-account tokens are rotated), and after a 401.
    /// While the file is missing or unreadable, requests go without a token.
    File(PathBuf),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::None => f.write_str("None"),
            TokenSource::Fixed(_) => f.write_str("Fixed(<redacted>)"),
            TokenSource::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// How to reach the Results API.
#[derive(Clone, Debug)]
pub struct ResultsConfig {
    /// `https://host:port`, `host:port` (meaning `https://`) or `http://host:port` (only
    /// without a token), `TEKTON_RESULTS_API_ADDR`.
    pub addr: String,
    pub token: TokenSource,
    /// PEM bundle of extra trusted CAs (on top of the system roots).
    pub ca_file: Option<PathBuf>,
    /// Where the OpenShift service CA is looked for without a CA file (the first that
    /// holds a certificate is trusted): [`SERVICE_CA_FILES`].
    pub service_ca_files: Vec<PathBuf>,
    /// Accept any server certificate. Off by default; for tests and emergencies only;
    /// with a token, for cluster service names only.
    pub insecure_skip_tls_verify: bool,
    /// Addresses to connect to for the address's host instead of asking the system's
    /// resolver (what discovery was told by an override, like curl's `--resolve`).
    pub resolve_to: Vec<SocketAddr>,
    /// Timeout of one HTTP request (one page).
    pub timeout: Duration,
    /// Records per page (`TEKTON_LIMIT`), clamped to [`clamp_page_size`].
    pub page_size: u32,
    /// The namespace to list, or `-` for all of them.
    pub parent: String,
    /// Pages one listing reads at most.
    pub max_pages: usize,
    /// Longest one listing may take, all pages together.
    pub deadline: Duration,
    /// A page body larger than this is refused.
    pub max_page_bytes: usize,
}

impl ResultsConfig {
    /// Defaults: the service-account token file, the TLS policy of [`tls::decide`] (no CA
    /// file, the service CA where mounted), 30 s per page,
    /// [`DEFAULT_PAGE_SIZE`] records per page, all namespaces.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            token: TokenSource::File(PathBuf::from(DEFAULT_SA_TOKEN_PATH)),
            ca_file: None,
            service_ca_files: SERVICE_CA_FILES.iter().map(PathBuf::from).collect(),
            insecure_skip_tls_verify: false,
            resolve_to: Vec::new(),
            timeout: Duration::from_secs(30),
            page_size: DEFAULT_PAGE_SIZE,
            parent: "-".to_owned(),
            max_pages: MAX_PAGES,
            deadline: DEFAULT_DEADLINE,
            max_page_bytes: MAX_PAGE_BYTES,
        }
    }
}

struct CachedToken {
    modified: Option<SystemTime>,
    len: u64,
    token: Option<String>,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("modified", &self.modified)
            .field("len", &self.len)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A client of the Results REST API. Cheap to share (`&self` everywhere).
#[derive(Debug)]
pub struct ResultsClient {
    http: reqwest::Client,
    pub(super) records_url: reqwest::Url,
    /// `host:port` of the address, for logs.
    endpoint: String,
    pub(super) token: TokenSource,
    cached_token: Mutex<Option<CachedToken>>,
    tls: TlsPolicy,
    pub(super) page_size: u32,
    /// The CEL filter on `data_type` ([`paging::data_type_filter`]).
    pub(super) filter: String,
    pub(super) max_pages: usize,
    pub(super) deadline: Duration,
    pub(super) max_page_bytes: usize,
}

impl ResultsClient {
    /// Refuses a bad address, an unreadable CA file, a token over plain http (the bearer
    /// token is only ever sent over https), and a token that would go unverified to a host
    /// outside the cluster's service names ([`tls::decide`]). Clamps the page size to
    /// [`clamp_page_size`], saying so in one log line.
    pub fn new(config: &ResultsConfig) -> Result<Self, SweepError> {
        let base = parse_addr(&config.addr)?;
        if base.scheme() == "http" && config.token != TokenSource::None {
            return Err(SetupError::TokenOverPlainHttp.into());
        }
        let (page_size, clamped) = clamp_page_size(config.page_size);
        if clamped {
            tracing::info!(
                requested = config.page_size,
                page_size,
                "Results page size (TEKTON_LIMIT) clamped to {MIN_PAGE_SIZE}..={MAX_PAGE_SIZE} records, what the Pod's memory allows"
            );
        }
        let endpoint = format!(
            "{}:{}",
            base.host_str().unwrap_or_default(),
            base.port_or_known_default().unwrap_or_default()
        );
        let parent = if config.parent.trim().is_empty() {
            "-"
        } else {
            config.parent.trim()
        };
        let mut records_url = base.clone();
        {
            let mut segs = records_url
                .path_segments_mut()
                .map_err(|()| SetupError::NotABase)?;
            segs.pop_if_empty().extend([
                "apis",
                "results.tekton.dev",
                "v1alpha2",
                "parents",
                parent,
                "results",
                "-",
                "records",
            ]);
        }

        // The process's TLS crypto provider, installed by `main`: reqwest panics without.
        crate::crypto::provider()?;
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        let tls = tls::decide(
            &base,
            config.ca_file.as_deref(),
            config.insecure_skip_tls_verify,
            &config.service_ca_files,
            config.token != TokenSource::None,
        )?;
        builder = tls::apply(builder, &tls)?;
        if let Some(host) = base.host_str().filter(|_| !config.resolve_to.is_empty()) {
            builder = builder.resolve_to_addrs(host, &config.resolve_to);
        }
        let http = builder
            .build()
            .map_err(|e| SetupError::Client(e.without_url()))?;

        Ok(Self {
            http,
            records_url,
            endpoint,
            token: config.token.clone(),
            cached_token: Mutex::new(None),
            tls,
            page_size,
            filter: paging::data_type_filter(),
            max_pages: config.max_pages.max(1),
            deadline: config.deadline,
            max_page_bytes: config.max_page_bytes,
        })
    }

    /// Records asked for a page (after clamping).
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// What the client trusts of the server's certificate.
    pub fn tls_policy(&self) -> &TlsPolicy {
        &self.tls
    }

    /// `host:port` of the API, for logs.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn token(&self, force_reload: bool) -> Option<String> {
        match &self.token {
            TokenSource::None => None,
            TokenSource::Fixed(t) => Some(t.clone()),
            TokenSource::File(path) => {
                let mut cache = self.cached_token.lock().unwrap_or_else(|e| e.into_inner());
                let meta = std::fs::metadata(path).ok();
                let modified = meta.as_ref().and_then(|m| m.modified().ok());
                let len = meta.as_ref().map_or(0, |m| m.len());
                let fresh = matches!(&*cache, Some(c) if !force_reload && c.modified == modified && c.len == len && meta.is_some());
                if !fresh {
                    *cache = Some(CachedToken {
                        modified,
                        len,
                        token: read_token(path),
                    });
                }
                cache.as_ref().and_then(|c| c.token.clone())
            }
        }
    }

    /// GET `url` with the bearer token (read again from its file when `reload_token`).
    pub(super) async fn send(
        &self,
        url: &reqwest::Url,
        reload_token: bool,
    ) -> Result<reqwest::Response, SweepError> {
        let mut request = self
            .http
            .get(url.clone())
            .header("Accept", "application/json");
        if let Some(token) = self.token(reload_token) {
            request = request.bearer_auth(token);
        }
        request.send().await.map_err(SweepError::unreachable)
    }
}

fn read_token(path: &Path) -> Option<String> {
    let raw = std::fs::read_to_string(path).ok()?;
    let t = raw.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::results::ErrorKind;
    use crate::sweep::results::fake::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn the_token_file_is_sent_and_re_read_after_a_401() {
        let dir = std::env::temp_dir().join(format!("kt-sweep-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "one\n").unwrap();
        let handler: Handler = Arc::new(|req: &Seen| match req.authorization.as_deref() {
            Some("Bearer two") => (200, "{}".to_owned()),
            _ => (401, r#"{"code":16}"#.to_owned()),
        });
        // Over TLS: a token is only ever sent over https.
        let (port, seen) = fake_tls(handler).await;
        let mut c = config(&format!("https://localhost:{port}"));
        c.ca_file = Some(test_ca());
        c.token = TokenSource::File(path.clone());
        let client = new_client(&c).unwrap();

        let (_, err) = drain(&mut client.records_since(since("2026-01-01T00:00:00Z"))).await;
        assert!(matches!(err, Some(SweepError::HttpStatus(401))), "{err:?}");
        // Rotated (possibly within the same mtime tick: the 401 forces a re-read).
        std::fs::write(&path, "two\n").unwrap();
        let (_, err) = drain(&mut client.records_since(since("2026-01-01T00:00:00Z"))).await;
        assert!(err.is_none(), "{err:?}");
        let auth = each_request(&seen, |s| s.authorization.clone());
        assert_eq!(
            auth.first().cloned().flatten().as_deref(),
            Some("Bearer one")
        );
        assert_eq!(
            auth.last().cloned().flatten().as_deref(),
            Some("Bearer two")
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_fixed_token_is_not_in_debug_output() {
        let mut c = ResultsConfig::new("https://results.example:8080");
        c.token = TokenSource::Fixed("s3cr3t".into());
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let client = new_client(&c).unwrap();
        assert!(!format!("{client:?}").contains("s3cr3t"));
        assert_eq!(client.endpoint(), "results.example:8080");
    }

    #[test]
    fn bad_addresses_are_refused() {
        for addr in ["", "ftp://x", "not a url", "https://", ":8080"] {
            assert!(new_client(&ResultsConfig::new(addr)).is_err(), "{addr}");
        }
        // What the URL parser said is kept as the source, and the address is not shown.
        let e = parse_addr("host:notaport").expect_err("a port that is not a number");
        assert!(
            matches!(e, SweepError::Setup(SetupError::NotAUrl(_))),
            "{e:?}"
        );
        assert!(
            std::error::Error::source(&e)
                .and_then(|s| s.source())
                .is_some()
        );
        assert!(!e.to_string().contains("host"), "{e}");
    }

    #[test]
    fn an_address_without_a_scheme_means_https() {
        for (addr, url, endpoint) in [
            (
                "tekton-results-api-service.tekton-pipelines.svc.cluster.local:8080",
                "https://tekton-results-api-service.tekton-pipelines.svc.cluster.local:8080/",
                "tekton-results-api-service.tekton-pipelines.svc.cluster.local:8080",
            ),
            (
                " localhost:8443 ",
                "https://localhost:8443/",
                "localhost:8443",
            ),
            (
                "127.0.0.1:8080",
                "https://127.0.0.1:8080/",
                "127.0.0.1:8080",
            ),
            (
                "results.example",
                "https://results.example/",
                "results.example:443",
            ),
            ("http://results:80", "http://results/", "results:80"),
        ] {
            assert_eq!(parse_addr(addr).unwrap().as_str(), url, "{addr}");
            let mut c = ResultsConfig::new(addr);
            c.token = TokenSource::None;
            let client = new_client(&c).unwrap();
            assert_eq!(client.endpoint(), endpoint);
            assert!(client.records_url.as_str().starts_with(url));
        }
    }

    #[test]
    fn a_token_is_never_sent_over_plain_http() {
        for token in [
            TokenSource::Fixed("t".into()),
            TokenSource::File(PathBuf::from(DEFAULT_SA_TOKEN_PATH)),
        ] {
            let mut c = ResultsConfig::new("http://results.example:8080");
            c.token = token;
            let err = new_client(&c).unwrap_err().to_string();
            assert!(err.contains("only sent over https"), "{err}");
            // The same token over https, or over a scheme-less address, is fine.
            c.addr = "results.example:8080".into();
            assert!(new_client(&c).is_ok());
        }
        let mut c = ResultsConfig::new("http://results.example:8080");
        c.token = TokenSource::None;
        assert!(new_client(&c).is_ok());
    }

    #[test]
    fn page_sizes_are_clamped_to_what_the_pod_allows() {
        assert_eq!(clamp_page_size(1000), (MAX_PAGE_SIZE, true));
        assert_eq!(clamp_page_size(100), (100, false));
        assert_eq!(clamp_page_size(1), (MIN_PAGE_SIZE, true));
        let mut c = ResultsConfig::new("https://results.example:8080");
        c.page_size = 1000;
        assert_eq!(new_client(&c).unwrap().page_size(), MAX_PAGE_SIZE);
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let (target, target_seen) = fake(Arc::new(|_: &Seen| (200, "{}".to_owned()))).await;
        let location = format!("{target}/elsewhere");
        let (addr, _) = fake(Arc::new(move |_: &Seen| (302, location.clone()))).await;
        let client = new_client(&config(&addr)).unwrap();
        let (_, err) = drain(&mut client.records_since(since("2026-01-01T00:00:00Z"))).await;
        assert!(matches!(err, Some(SweepError::HttpStatus(302))), "{err:?}");
        assert!(target_seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn transport_errors_carry_no_url() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let mut c = config(&format!("http://127.0.0.1:{port}"));
        c.parent = "secret-namespace".into();
        let client = new_client(&c).unwrap();
        let (_, err) = drain(&mut client.records_since(since("2026-01-01T00:00:00Z"))).await;
        let err = err.expect("an error");
        assert_eq!(err.kind(), ErrorKind::Unreachable);
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains("secret-namespace"), "{shown}");
            assert!(!shown.contains("/apis/"), "{shown}");
        }
    }

    /// A sweep's first page from `addr` (its host pinned to the TLS fake on `port`), with
    /// a fixed token and `service_ca` as the mounted service CA files.
    async fn first_page(
        addr: &str,
        port: u16,
        service_ca: Vec<PathBuf>,
    ) -> (Option<SweepError>, TlsPolicy) {
        let mut c = config(addr);
        c.token = TokenSource::Fixed("t0ken".into());
        c.service_ca_files = service_ca;
        c.resolve_to = vec![SocketAddr::from(([127, 0, 0, 1], port))];
        let client = new_client(&c).unwrap();
        let (_, err) = drain(&mut client.records_since(since("2026-01-01T00:00:00Z"))).await;
        (err, client.tls_policy().clone())
    }

    #[tokio::test]
    async fn the_token_goes_unverified_only_to_cluster_service_names() {
        let ok: Handler = Arc::new(|_: &Seen| (200, "{}".to_owned()));
        // A cluster service name, no CA: not verified, the token sent.
        let (port, seen) = fake_tls(ok.clone()).await;
        let service =
            format!("https://tekton-results-api-service.tekton-results.svc.cluster.local:{port}");
        let (err, policy) = first_page(&service, port, Vec::new()).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(policy, TlsPolicy::InClusterUnverified);
        let auth = each_request(&seen, |s| s.authorization.clone());
        assert_eq!(auth, [Some("Bearer t0ken".to_owned())]);

        // A host outside the cluster, no CA: verified against the system roots, which do
        // not hold the test CA: the handshake fails, no request, no token.
        let (port, seen) = fake_tls(ok.clone()).await;
        let outside = format!("https://localhost:{port}");
        let (err, policy) = first_page(&outside, port, Vec::new()).await;
        assert_eq!(policy, TlsPolicy::SystemRoots);
        let err = err.expect("refused");
        assert_eq!(err.kind(), ErrorKind::Unreachable, "{err}");
        assert!(seen.lock().unwrap().is_empty(), "the server saw a request");

        // The service CA mounted: verified with it, for any host.
        let (err, policy) = first_page(&outside, port, vec![test_ca()]).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(policy, TlsPolicy::ServiceCa(test_ca()));
        // ... and a service name its certificate does not carry is refused, not skipped.
        let (port, seen) = fake_tls(ok).await;
        let other = format!(
            "https://tekton-results-api-service.openshift-pipelines.svc.cluster.local:{port}"
        );
        let (err, _) = first_page(&other, port, vec![test_ca()]).await;
        assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::Unreachable));
        assert!(seen.lock().unwrap().is_empty(), "the server saw a request");
    }
}
