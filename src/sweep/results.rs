//! A client for the Tekton Results REST API (the grpc-gateway of the Results API server),
//! just enough to list the PipelineRun records changed within a lookback window.
//!
//! `GET {addr}/apis/results.tekton.dev/v1alpha2/parents/{parent}/results/-/records`
//! with `filter` = a CEL expression on `data_type`, `order_by=update_time desc` and
//! `page_size`, following `next_page_token` until it is empty.
//!
//! The Records CEL environment of the server (tektoncd/results v0.20
//! `pkg/api/server/cel/env.go` `NewRecordsEnv`) has no `update_time` variable, so the
//! lookback cannot be a server-side filter. Instead records come newest first and the
//! listing stops at the first record last updated before the window: the sweep never
//! reads more than the window (plus one page) however long the history is.
//!
//! Pages are fetched and decoded one at a time ([`RecordPages`]): memory is bounded by the
//! page size, never by the number of records.

use crate::events::{self, Decoded, Object};
use base64::Engine as _;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The `data.type` the Tekton Results watcher gives PipelineRun records (`tekton.dev/v1`),
/// and the one of records written by older watchers (`tekton.dev/v1beta1`).
pub const PIPELINERUN_TYPES: [&str; 2] = [
    "tekton.dev/v1.PipelineRun",
    "tekton.dev/v1beta1.PipelineRun",
];

/// Where the service-account token is mounted in a pod.
pub const DEFAULT_SA_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Records per page unless configured. The server takes 5 to 10000 (default 50).
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The smallest page size the server accepts.
pub const MIN_PAGE_SIZE: u32 = 5;
/// The largest page size the server accepts.
pub const MAX_PAGE_SIZE: u32 = 10_000;

/// A page body larger than this is refused (`malformed_page`), so a misbehaving server
/// cannot make the daemon allocate without bound.
pub const MAX_PAGE_BYTES: usize = 64 << 20;

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
    /// `https://host:port` (or `http://`), `TEKTON_RESULTS_API_ADDR`.
    pub addr: String,
    pub token: TokenSource,
    /// PEM bundle of extra trusted CAs (on top of the system roots).
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. Off by default; for tests and emergencies only.
    pub insecure_skip_tls_verify: bool,
    /// Timeout of one HTTP request (one page).
    pub timeout: Duration,
    /// Records per page, 5 to 10000 (clamped).
    pub page_size: u32,
    /// The namespace to list, or `-` for all of them.
    pub parent: String,
}

impl ResultsConfig {
    /// Defaults: the service-account token file, system roots only, 30 s per page,
    /// [`DEFAULT_PAGE_SIZE`] records per page, all namespaces.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            token: TokenSource::File(PathBuf::from(DEFAULT_SA_TOKEN_PATH)),
            ca_file: None,
            insecure_skip_tls_verify: false,
            timeout: Duration::from_secs(30),
            page_size: DEFAULT_PAGE_SIZE,
            parent: "-".to_owned(),
        }
    }

    /// From the environment: `TEKTON_RESULTS_API_ADDR` (required), `TEKTON_RESULTS_TOKEN`
    /// (a fixed token) or else `SA_TOKEN_PATH` (default [`DEFAULT_SA_TOKEN_PATH`]),
    /// `TEKTON_RESULTS_CA_FILE`, `TEKTON_RESULTS_INSECURE_SKIP_TLS_VERIFY` (`true`/`false`),
    /// `TEKTON_RESULTS_TIMEOUT_SECONDS`, `TEKTON_RESULTS_PAGE_SIZE`.
    pub fn from_env() -> crate::Result<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let bad = |key: &str, reason: &str| crate::Error::Config {
            key: key.to_owned(),
            reason: reason.to_owned(),
        };
        let addr = var("TEKTON_RESULTS_API_ADDR")
            .ok_or_else(|| bad("TEKTON_RESULTS_API_ADDR", "not set"))?;
        let mut c = Self::new(addr.trim());
        if let Some(t) = var("TEKTON_RESULTS_TOKEN") {
            c.token = TokenSource::Fixed(t.trim().to_owned());
        } else if let Some(p) = var("SA_TOKEN_PATH") {
            c.token = TokenSource::File(PathBuf::from(p));
        }
        c.ca_file = var("TEKTON_RESULTS_CA_FILE").map(PathBuf::from);
        if let Some(v) = var("TEKTON_RESULTS_INSECURE_SKIP_TLS_VERIFY") {
            c.insecure_skip_tls_verify = match v.trim() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(bad(
                        "TEKTON_RESULTS_INSECURE_SKIP_TLS_VERIFY",
                        "expected true or false",
                    ));
                }
            };
        }
        if let Some(v) = var("TEKTON_RESULTS_TIMEOUT_SECONDS") {
            let s: u64 = v.trim().parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                bad(
                    "TEKTON_RESULTS_TIMEOUT_SECONDS",
                    "expected a positive number of seconds",
                )
            })?;
            c.timeout = Duration::from_secs(s);
        }
        if let Some(v) = var("TEKTON_RESULTS_PAGE_SIZE") {
            c.page_size = v
                .trim()
                .parse()
                .ok()
                .filter(|n| (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| bad("TEKTON_RESULTS_PAGE_SIZE", "expected 5 to 10000"))?;
        }
        Ok(c)
    }
}

/// What went wrong with a sweep. A metric label, so a fixed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No answer: connection refused, DNS, TLS, timeout, connection reset.
    Unreachable,
    /// An answer other than 2xx.
    HttpStatus,
    /// A 2xx answer that is not a page of records.
    MalformedPage,
    /// One record whose value is not a PipelineRun the event model can read.
    UndecodableRecord,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 4] = [
        ErrorKind::Unreachable,
        ErrorKind::HttpStatus,
        ErrorKind::MalformedPage,
        ErrorKind::UndecodableRecord,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::MalformedPage => "malformed_page",
            ErrorKind::UndecodableRecord => "undecodable_record",
        }
    }
}

/// A failed page request. Carries no URL, name or token: safe to log.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("Results API unreachable: {0}")]
    Unreachable(String),
    #[error("Results API answered HTTP {0}")]
    HttpStatus(u16),
    #[error("Results API page malformed: {0}")]
    MalformedPage(String),
    /// The client could not be built (bad address, unreadable CA file).
    #[error("Results API client: {0}")]
    Setup(String),
}

impl SweepError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SweepError::Unreachable(_) | SweepError::Setup(_) => ErrorKind::Unreachable,
            SweepError::HttpStatus(_) => ErrorKind::HttpStatus,
            SweepError::MalformedPage(_) => ErrorKind::MalformedPage,
        }
    }
}

/// One record of a page, decoded.
// Mostly `Object`s, each moved on into an `Observation`: boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum RecordOutcome {
    /// An object the event model reads.
    Object(Object),
    /// Decoded, but nothing the event model has events for.
    NoEvents,
    /// Its value is not base64, not JSON, or not a PipelineRun the model can read. The
    /// reason names a field, never a value.
    Undecodable(String),
}

/// One page: its records (only those within the window) and whether the listing goes on.
#[derive(Debug)]
pub struct Page {
    pub records: Vec<RecordOutcome>,
    /// Records the server returned on this page, including any past the window.
    pub read: usize,
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
    records_url: reqwest::Url,
    /// `host:port` of the address, for logs.
    endpoint: String,
    token: TokenSource,
    cached_token: Mutex<Option<CachedToken>>,
    page_size: u32,
    filter: String,
}

impl ResultsClient {
    pub fn new(config: &ResultsConfig) -> Result<Self, SweepError> {
        let base = reqwest::Url::parse(config.addr.trim())
            .map_err(|e| SweepError::Setup(format!("TEKTON_RESULTS_API_ADDR is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(SweepError::Setup(
                "TEKTON_RESULTS_API_ADDR must be http(s)://host[:port]".into(),
            ));
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
            let mut segs = records_url.path_segments_mut().map_err(|_| {
                SweepError::Setup("TEKTON_RESULTS_API_ADDR cannot be a base URL".into())
            })?;
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

        // The process-wide rustls provider (ring); harmless when already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ))
            .no_proxy();
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| SweepError::Setup(format!("cannot read the CA file: {}", e.kind())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|_| SweepError::Setup("the CA file is not a PEM bundle".into()))?;
            if certs.is_empty() {
                return Err(SweepError::Setup("the CA file holds no certificate".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        if config.insecure_skip_tls_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| SweepError::Setup(format!("cannot build the HTTP client: {e}")))?;

        let filter = PIPELINERUN_TYPES
            .iter()
            .map(|t| format!("data_type == \"{t}\""))
            .collect::<Vec<_>>()
            .join(" || ");
        Ok(Self {
            http,
            records_url,
            endpoint,
            token: config.token.clone(),
            cached_token: Mutex::new(None),
            page_size: config.page_size.clamp(MIN_PAGE_SIZE, MAX_PAGE_SIZE),
            filter,
        })
    }

    /// `host:port` of the API, for logs.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The CEL filter sent with every listing.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The PipelineRun records last updated at or after `since`, newest first, page by page.
    pub fn records_since(&self, since: jiff::Timestamp) -> RecordPages<'_> {
        RecordPages {
            client: self,
            since,
            next_token: None,
            done: false,
            pages: 0,
        }
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

    async fn get_page(&self, page_token: Option<&str>) -> Result<RawPage, SweepError> {
        let mut url = self.records_url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("filter", &self.filter)
                .append_pair("order_by", "update_time desc")
                .append_pair("page_size", &self.page_size.to_string());
            if let Some(t) = page_token {
                q.append_pair("page_token", t);
            }
        }
        let mut response = self.send(&url, false).await?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED
            && matches!(self.token, TokenSource::File(_))
        {
            // The token may have been rotated since it was last read.
            response = self.send(&url, true).await?;
        }
        let status = response.status();
        if !status.is_success() {
            return Err(SweepError::HttpStatus(status.as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| SweepError::Unreachable(describe(&e)))?
        {
            if body.len() + chunk.len() > MAX_PAGE_BYTES {
                return Err(SweepError::MalformedPage(format!(
                    "page larger than {MAX_PAGE_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice::<RawPage>(&body).map_err(|e| {
            SweepError::MalformedPage(format!("not a records page: {}", redact_json_error(&e)))
        })
    }

    async fn send(
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
        request
            .send()
            .await
            .map_err(|e| SweepError::Unreachable(describe(&e)))
    }
}

/// A listing in progress: call [`RecordPages::next_page`] until it returns `None`.
pub struct RecordPages<'a> {
    client: &'a ResultsClient,
    since: jiff::Timestamp,
    next_token: Option<String>,
    done: bool,
    pages: usize,
}

impl RecordPages<'_> {
    /// The next page, `None` when the listing is over (no more pages, or the window's
    /// start was reached). After an error the listing is over too.
    pub async fn next_page(&mut self) -> Option<Result<Page, SweepError>> {
        if self.done {
            return None;
        }
        let raw = match self.client.get_page(self.next_token.as_deref()).await {
            Ok(raw) => raw,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        self.pages += 1;
        let read = raw.records.len();
        let mut records = Vec::with_capacity(read);
        for record in raw.records {
            if let Some(updated) = record.update_time.as_deref()
                && let Ok(at) = updated.parse::<jiff::Timestamp>()
                && at < self.since
            {
                // Newest first: everything after this is older still.
                self.done = true;
                break;
            }
            records.push(decode_record(record.data));
        }
        match raw.next_page_token.filter(|t| !t.is_empty()) {
            Some(t) if !self.done => {
                if self.next_token.as_deref() == Some(t.as_str()) {
                    self.done = true;
                    return Some(Err(SweepError::MalformedPage(
                        "the server returned the same page token twice".into(),
                    )));
                }
                self.next_token = Some(t);
            }
            _ => self.done = true,
        }
        Some(Ok(Page { records, read }))
    }

    /// Pages fetched so far.
    pub fn pages(&self) -> usize {
        self.pages
    }
}

fn decode_record(data: Option<RawAny>) -> RecordOutcome {
    let Some(data) = data else {
        return RecordOutcome::Undecodable("record has no data".into());
    };
    let Some(value) = data.value else {
        return RecordOutcome::Undecodable("record has no data.value".into());
    };
    // protojson writes bytes as standard base64; it reads URL-safe too.
    let bytes = match base64::engine::general_purpose::STANDARD.decode(value.as_bytes()) {
        Ok(b) => b,
        Err(_) => match base64::engine::general_purpose::URL_SAFE.decode(value.as_bytes()) {
            Ok(b) => b,
            Err(_) => return RecordOutcome::Undecodable("data.value is not base64".into()),
        },
    };
    match events::decode_one(&bytes) {
        Decoded::Object(o) => RecordOutcome::Object(o),
        Decoded::NoEvents => RecordOutcome::NoEvents,
        Decoded::Skipped(e) => RecordOutcome::Undecodable(e.to_string()),
    }
}

fn read_token(path: &Path) -> Option<String> {
    let raw = std::fs::read_to_string(path).ok()?;
    let t = raw.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// A transport error without its URL (which carries the namespace and the page token).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else if e.is_request() {
        "request"
    } else {
        "transport"
    };
    let mut msg = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// serde_json's message quotes pieces of the input only in `invalid value`/`unknown
/// variant` messages; keep the category and position.
fn redact_json_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected structure",
        serde_json::error::Category::Eof => "truncated",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

#[derive(Debug, Deserialize)]
struct RawPage {
    #[serde(default)]
    records: Vec<RawRecord>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawRecord {
    #[serde(default)]
    data: Option<RawAny>,
    #[serde(default)]
    update_time: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawAny {
    #[serde(default)]
    value: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One request as the fake server saw it.
    #[derive(Clone, Debug)]
    struct Seen {
        path: String,
        query: BTreeMap<String, String>,
        authorization: Option<String>,
    }

    use std::collections::BTreeMap;

    type Handler = Arc<dyn Fn(&Seen) -> (u16, String) + Send + Sync>;

    /// A tiny HTTP/1.1 server on loopback: one request per connection.
    async fn fake(handler: Handler) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let url = reqwest::Url::parse(&format!("http://x{target}")).unwrap();
                    let authorization = head.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("authorization")
                            .then(|| v.trim().to_owned())
                    });
                    let req = Seen {
                        path: url.path().to_owned(),
                        query: url
                            .query_pairs()
                            .map(|(k, v)| (k.into_owned(), v.into_owned()))
                            .collect(),
                        authorization,
                    };
                    log.lock().unwrap().push(req.clone());
                    let (status, body) = handler(&req);
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        (addr, seen)
    }

    fn run_json(uid: &str) -> String {
        format!(
            r#"{{"apiVersion":"tekton.dev/v1","kind":"PipelineRun","metadata":{{"name":"n","namespace":"ns","uid":"{uid}","creationTimestamp":"2026-01-01T00:00:00Z","labels":{{"tekton.dev/pipeline":"p"}}}},"status":{{"startTime":"2026-01-01T00:00:01Z"}}}}"#
        )
    }

    fn record(uid: &str, updated: &str) -> serde_json::Value {
        let value = base64::engine::general_purpose::STANDARD.encode(run_json(uid));
        serde_json::json!({
            "name": format!("ns/results/{uid}/records/{uid}"),
            "uid": uid,
            "data": {"type": "tekton.dev/v1.PipelineRun", "value": value},
            "update_time": updated,
        })
    }

    fn config(addr: &str) -> ResultsConfig {
        let mut c = ResultsConfig::new(addr);
        c.token = TokenSource::None;
        c.timeout = Duration::from_secs(5);
        c
    }

    fn since(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    async fn drain(pages: &mut RecordPages<'_>) -> (Vec<String>, Option<SweepError>) {
        let mut uids = Vec::new();
        while let Some(page) = pages.next_page().await {
            match page {
                Ok(p) => {
                    for r in p.records {
                        match r {
                            RecordOutcome::Object(Object::PipelineRun(run)) => {
                                uids.push(run.meta.uid)
                            }
                            other => uids.push(format!("{other:?}")),
                        }
                    }
                }
                Err(e) => return (uids, Some(e)),
            }
        }
        (uids, None)
    }

    #[tokio::test]
    async fn follows_page_tokens_and_stops_at_the_window_start() {
        let handler: Handler = Arc::new(|req: &Seen| {
            let page = match req.query.get("page_token").map(String::as_str) {
                None => serde_json::json!({
                    "records": [record("a", "2026-01-01T12:00:00.5Z"), record("b", "2026-01-01T11:00:00Z")],
                    "next_page_token": "t1"
                }),
                Some("t1") => serde_json::json!({
                    "records": [record("c", "2026-01-01T10:00:00Z"), record("d", "2026-01-01T08:59:59Z")],
                    "next_page_token": "t2"
                }),
                Some(_) => serde_json::json!({"records": [record("e", "2026-01-01T08:00:00Z")]}),
            };
            (200, page.to_string())
        });
        let (addr, seen) = fake(handler).await;
        let client = ResultsClient::new(&config(&addr)).unwrap();
        let mut pages = client.records_since(since("2026-01-01T09:00:00Z"));
        let (uids, err) = drain(&mut pages).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(uids, ["a", "b", "c"]);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "no page after the window start: {seen:?}");
        assert_eq!(
            seen[0].path,
            "/apis/results.tekton.dev/v1alpha2/parents/-/results/-/records"
        );
        assert_eq!(seen[0].query["order_by"], "update_time desc");
        assert_eq!(seen[0].query["page_size"], "100");
        assert_eq!(
            seen[0].query["filter"],
            r#"data_type == "tekton.dev/v1.PipelineRun" || data_type == "tekton.dev/v1beta1.PipelineRun""#
        );
        assert_eq!(seen[1].query["page_token"], "t1");
        assert_eq!(seen[0].authorization, None);
    }

    #[tokio::test]
    async fn an_empty_listing_is_one_empty_page() {
        let (addr, _) = fake(Arc::new(|_: &Seen| (200, "{}".to_owned()))).await;
        let mut c = config(&addr);
        c.parent = "team-a".into();
        let client = ResultsClient::new(&c).unwrap();
        let mut pages = client.records_since(since("2026-01-01T00:00:00Z"));
        let (uids, err) = drain(&mut pages).await;
        assert!(uids.is_empty() && err.is_none());
        assert_eq!(pages.pages(), 1);
    }

    #[tokio::test]
    async fn a_repeated_page_token_ends_the_listing_as_malformed() {
        let handler: Handler = Arc::new(|_: &Seen| {
            let page = serde_json::json!({"records": [record("a", "2026-01-01T12:00:00Z")], "next_page_token": "same"});
            (200, page.to_string())
        });
        let (addr, seen) = fake(handler).await;
        let client = ResultsClient::new(&config(&addr)).unwrap();
        let mut pages = client.records_since(since("2026-01-01T00:00:00Z"));
        let (uids, err) = drain(&mut pages).await;
        // The page that repeats its token is not trusted.
        assert_eq!(uids, ["a"]);
        assert!(matches!(err, Some(SweepError::MalformedPage(_))), "{err:?}");
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn error_answers_and_malformed_pages_are_errors_of_their_kind() {
        for (status, body, kind) in [
            (500, "{}", ErrorKind::HttpStatus),
            (403, r#"{"code":7}"#, ErrorKind::HttpStatus),
            (200, "<html>", ErrorKind::MalformedPage),
            (
                200,
                r#"{"records": {"not": "a list"}}"#,
                ErrorKind::MalformedPage,
            ),
        ] {
            let (addr, _) = fake(Arc::new(move |_: &Seen| (status, body.to_owned()))).await;
            let client = ResultsClient::new(&config(&addr)).unwrap();
            let mut pages = client.records_since(since("2026-01-01T00:00:00Z"));
            let (_, err) = drain(&mut pages).await;
            let err = err.expect("an error");
            assert_eq!(err.kind(), kind, "{status} {body}: {err}");
        }
    }

    #[tokio::test]
    async fn undecodable_values_are_outcomes_not_errors() {
        let handler: Handler = Arc::new(|_: &Seen| {
            let not_b64 = serde_json::json!({"data": {"value": "***"}, "update_time": "2026-01-01T12:00:00Z"});
            let not_run = serde_json::json!({
                "data": {"value": base64::engine::general_purpose::STANDARD.encode("[1]")},
                "update_time": "2026-01-01T12:00:00Z"
            });
            let no_data = serde_json::json!({"update_time": "2026-01-01T12:00:00Z"});
            let page = serde_json::json!({"records": [not_b64, record("ok", "2026-01-01T12:00:00Z"), not_run, no_data]});
            (200, page.to_string())
        });
        let (addr, _) = fake(handler).await;
        let client = ResultsClient::new(&config(&addr)).unwrap();
        let mut pages = client.records_since(since("2026-01-01T00:00:00Z"));
        let page = pages.next_page().await.unwrap().unwrap();
        assert_eq!(page.read, 4);
        let kinds: Vec<_> = page
            .records
            .iter()
            .map(|r| match r {
                RecordOutcome::Object(_) => "object",
                RecordOutcome::NoEvents => "none",
                RecordOutcome::Undecodable(_) => "undecodable",
            })
            .collect();
        assert_eq!(
            kinds,
            ["undecodable", "object", "undecodable", "undecodable"]
        );
        assert!(pages.next_page().await.is_none());
    }

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
        let (addr, seen) = fake(handler).await;
        let mut c = config(&addr);
        c.token = TokenSource::File(path.clone());
        let client = ResultsClient::new(&c).unwrap();

        let (_, err) = drain(&mut client.records_since(since("2026-01-01T00:00:00Z"))).await;
        assert!(matches!(err, Some(SweepError::HttpStatus(401))), "{err:?}");
        // Rotated (possibly within the same mtime tick: the 401 forces a re-read).
        std::fs::write(&path, "two\n").unwrap();
        let (_, err) = drain(&mut client.records_since(since("2026-01-01T00:00:00Z"))).await;
        assert!(err.is_none(), "{err:?}");
        let auth: Vec<_> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.authorization.clone())
            .collect();
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
        let client = ResultsClient::new(&c).unwrap();
        assert!(!format!("{client:?}").contains("s3cr3t"));
        assert_eq!(client.endpoint(), "results.example:8080");
    }

    #[test]
    fn bad_addresses_are_refused() {
        for addr in ["", "results:8080", "ftp://x", "not a url"] {
            assert!(
                ResultsClient::new(&ResultsConfig::new(addr)).is_err(),
                "{addr}"
            );
        }
    }
}
