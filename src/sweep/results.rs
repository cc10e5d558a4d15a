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
//! The environment does have `data` (the stored object, a `jsonb` column): a sweep that
//! knows the lookback's start also asks only for runs started or completed since then
//! (`data.status.startTime` / `data.status.completionTime`, the instants of the only two
//! events a PipelineRun has), which drops records updated within the window for any
//! other reason (a re-write at pruning, long after the run). That bound is the lookback,
//! never the incremental window: a record the watcher wrote late must still be read.
//! The times are compared as strings (Kubernetes writes them `YYYY-MM-DDTHH:MM:SSZ`, so
//! string order is time order), not with CEL `timestamp()`: that becomes a PostgreSQL
//! cast, and one record whose time does not cast fails the query, which Results v0.20
//! answers with an empty page and code OK (measured), silently ending the sweep. Should
//! the server refuse the filter, the listing starts again with `data_type` alone.
//!
//! Pages are fetched and decoded one at a time ([`RecordPages`]): memory is bounded by the
//! page size, never by the number of records. Within a page, records are decoded one at a
//! time as the page is parsed ([`PageSeed`]): a page holds at most the records asked for
//! (more is a malformed page), and records past the window's start are skipped unread. A
//! page token is at most [`MAX_PAGE_TOKEN_BYTES`], and the tokens a listing saw are kept
//! as 16-byte digests, at most one a page ([`MAX_PAGES`]).

use crate::events::{self, Decoded, Object};
use base64::Engine as _;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The `data.type`s of PipelineRun records, from the table of watched kinds.
pub const PIPELINERUN_TYPES: &[&str] = crate::events::object::PIPELINE_RUN.results_data_types;

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

/// A page body larger than this is refused (`page_too_large`), so a misbehaving server
/// cannot make the daemon allocate without bound: 250 records of the 36 KB a Konflux
/// build record takes in a listing are 9 MB. After a refused page the same page is asked
/// again at half the size (down to [`MIN_PAGE_SIZE`]), so unusually large records slow
/// the sweep down rather than stop it.
pub const MAX_PAGE_BYTES: usize = 16 << 20;

/// Longest page token taken (Results' tokens are a few hundred bytes): a longer one is a
/// malformed page. Tokens go back in the next request's URL.
pub const MAX_PAGE_TOKEN_BYTES: usize = 8 * 1024;

/// Pages one sweep reads at most (`page_limit`): 2.5 million records at 250 a page.
pub const MAX_PAGES: usize = 10_000;

/// Longest one sweep may take, all pages together (`deadline`).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30 * 60);

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
    /// Accept any server certificate. Off by default; for tests and emergencies only.
    pub insecure_skip_tls_verify: bool,
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
    /// Unit tests only: their fake server speaks plain http.
    #[cfg(test)]
    token_over_plain_http: bool,
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
            max_pages: MAX_PAGES,
            deadline: DEFAULT_DEADLINE,
            max_page_bytes: MAX_PAGE_BYTES,
            #[cfg(test)]
            token_over_plain_http: false,
        }
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
    /// A page body larger than the limit: refused, and asked again at half the size.
    PageTooLarge,
    /// The server handed out a page token it had handed out before in this listing.
    PageTokenLoop,
    /// The listing reached the page count cap.
    PageLimit,
    /// The listing reached its deadline.
    Deadline,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Unreachable,
        ErrorKind::HttpStatus,
        ErrorKind::MalformedPage,
        ErrorKind::UndecodableRecord,
        ErrorKind::PageTooLarge,
        ErrorKind::PageTokenLoop,
        ErrorKind::PageLimit,
        ErrorKind::Deadline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::MalformedPage => "malformed_page",
            ErrorKind::UndecodableRecord => "undecodable_record",
            ErrorKind::PageTooLarge => "page_too_large",
            ErrorKind::PageTokenLoop => "page_token_loop",
            ErrorKind::PageLimit => "page_limit",
            ErrorKind::Deadline => "deadline",
        }
    }
}

/// A failed page request. Carries no URL, name or token: safe to log.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The transport error, its URL removed (it carries the namespace and page token).
    #[error("Results API unreachable: {}", describe(.0))]
    Unreachable(#[source] reqwest::Error),
    /// An answer other than 2xx (redirects are not followed: a 3xx is one of these).
    #[error("Results API answered HTTP {0}")]
    HttpStatus(u16),
    #[error("Results API page malformed: {0}")]
    MalformedPage(String),
    #[error("Results API page larger than {limit} bytes (at {page_size} records a page)")]
    PageTooLarge { limit: usize, page_size: u32 },
    #[error("Results API handed out a page token it had handed out before in this listing")]
    PageTokenLoop,
    #[error("the listing reached its cap of {0} pages")]
    PageLimit(usize),
    #[error("the listing reached its deadline of {0:?}")]
    Deadline(Duration),
    /// The client could not be built (bad address, unreadable CA file, token over http).
    #[error("Results API client: {0}")]
    Setup(#[from] SetupError),
    /// The client could not be built: no TLS crypto provider is installed.
    #[error("Results API client: {0}")]
    CryptoProvider(#[from] crate::crypto::NoCryptoProvider),
}

/// Why the Results API client could not be built. Says what is wrong, never the address,
/// the token or the CA file's contents.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("TEKTON_RESULTS_API_ADDR is not a URL: {0}")]
    NotAUrl(#[source] url::ParseError),
    #[error("TEKTON_RESULTS_API_ADDR must be host:port or http(s)://host[:port]")]
    NotHttp,
    #[error("TEKTON_RESULTS_API_ADDR cannot be a base URL")]
    NotABase,
    #[error(
        "TEKTON_RESULTS_API_ADDR is plain http: the bearer token is only sent over https; use https:// or host:port"
    )]
    TokenOverPlainHttp,
    #[error("cannot read the CA file: {}", .0.kind())]
    ReadCa(#[source] std::io::Error),
    #[error("the CA file is not a PEM bundle")]
    NotPem(#[source] reqwest::Error),
    #[error("the CA file holds no certificate")]
    NoCertificate,
    #[error("cannot build the HTTP client: {}", describe(.0))]
    Client(#[source] reqwest::Error),
}

impl SweepError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SweepError::Unreachable(_) | SweepError::Setup(_) | SweepError::CryptoProvider(_) => {
                ErrorKind::Unreachable
            }
            SweepError::HttpStatus(_) => ErrorKind::HttpStatus,
            SweepError::MalformedPage(_) => ErrorKind::MalformedPage,
            SweepError::PageTooLarge { .. } => ErrorKind::PageTooLarge,
            SweepError::PageTokenLoop => ErrorKind::PageTokenLoop,
            SweepError::PageLimit(_) => ErrorKind::PageLimit,
            SweepError::Deadline(_) => ErrorKind::Deadline,
        }
    }

    fn unreachable(e: reqwest::Error) -> Self {
        SweepError::Unreachable(e.without_url())
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
    /// Bytes of the page body received.
    pub bytes: usize,
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
    max_pages: usize,
    deadline: Duration,
    max_page_bytes: usize,
}

impl ResultsClient {
    /// Refuses a bad address, an unreadable CA file, and a token over plain http (the
    /// bearer token is only ever sent over https). Clamps the page size to
    /// [`clamp_page_size`], saying so in one log line.
    pub fn new(config: &ResultsConfig) -> Result<Self, SweepError> {
        let base = parse_addr(&config.addr)?;
        #[cfg(test)]
        let plain_http_ok = config.token_over_plain_http;
        #[cfg(not(test))]
        let plain_http_ok = false;
        if base.scheme() == "http" && config.token != TokenSource::None && !plain_http_ok {
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
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca).map_err(SetupError::ReadCa)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(SetupError::NotPem)?;
            if certs.is_empty() {
                return Err(SetupError::NoCertificate.into());
            }
            builder = builder.tls_certs_merge(certs);
        }
        if config.insecure_skip_tls_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| SetupError::Client(e.without_url()))?;

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
            page_size,
            filter,
            max_pages: config.max_pages.max(1),
            deadline: config.deadline,
            max_page_bytes: config.max_page_bytes,
        })
    }

    /// Records asked for a page (after clamping).
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// `host:port` of the API, for logs.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The CEL filter on `data_type` sent with every listing.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// [`ResultsClient::filter`], narrowed to runs started or completed after `after`
    /// (less one second, so that a time with a fraction, which sorts before the same
    /// second without one, is not lost).
    pub fn filter_with_events_after(&self, after: jiff::Timestamp) -> String {
        let at = after
            .checked_sub(jiff::SignedDuration::from_secs(1))
            .unwrap_or(after)
            .strftime("%Y-%m-%dT%H:%M:%SZ");
        format!(
            "({}) && (data.status.completionTime > \"{at}\" || data.status.startTime > \"{at}\")",
            self.filter
        )
    }

    /// The PipelineRun records last updated at or after `since`, newest first, page by page.
    pub fn records_since(&self, since: jiff::Timestamp) -> RecordPages<'_> {
        self.listing(since, None)
    }

    /// [`ResultsClient::records_since`], only runs started or completed after
    /// `events_after` (filtered by the server; the lookback's start, whose older events
    /// the core would not produce anyway).
    pub fn records_since_with_events_after(
        &self,
        since: jiff::Timestamp,
        events_after: jiff::Timestamp,
    ) -> RecordPages<'_> {
        self.listing(since, Some(self.filter_with_events_after(events_after)))
    }

    fn listing(&self, since: jiff::Timestamp, narrowed: Option<String>) -> RecordPages<'_> {
        RecordPages {
            client: self,
            since,
            narrowed,
            fell_back: false,
            next_token: None,
            seen_tokens: std::collections::HashSet::new(),
            done: false,
            pages: 0,
            page_size: self.page_size,
            refused_too_large: 0,
            started: tokio::time::Instant::now(),
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

    async fn get_page(
        &self,
        filter: &str,
        page_token: Option<&str>,
        page_size: u32,
        since: jiff::Timestamp,
    ) -> Result<(DecodedPage, usize), SweepError> {
        let mut url = self.records_url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("filter", filter)
                .append_pair("order_by", "update_time desc")
                .append_pair("page_size", &page_size.to_string());
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
        let limit = self.max_page_bytes;
        let too_large = SweepError::PageTooLarge { limit, page_size };
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(SweepError::unreachable)? {
            if body.len() + chunk.len() > limit {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        let page = decode_page(&body, since, page_size as usize)?;
        Ok((page, body.len()))
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
        request.send().await.map_err(SweepError::unreachable)
    }
}

/// A listing in progress: call [`RecordPages::next_page`] until it returns `None`.
///
/// A listing always ends: at the window's start, at the last page, at a page token seen
/// before in it (`page_token_loop`), at the page count cap (`page_limit`), or at the
/// deadline (`deadline`).
pub struct RecordPages<'a> {
    client: &'a ResultsClient,
    since: jiff::Timestamp,
    /// The narrowed filter, while the server takes it.
    narrowed: Option<String>,
    /// The server refused the narrowed filter: the listing started again without it.
    fell_back: bool,
    next_token: Option<String>,
    /// Digests of the page tokens seen in this listing: one a page, at most
    /// [`MAX_PAGES`] (the listing ends there).
    seen_tokens: std::collections::HashSet<[u8; 16]>,
    done: bool,
    pages: usize,
    /// The page size now: halved after each page refused as too large.
    page_size: u32,
    /// Answers refused as too large so far.
    refused_too_large: usize,
    started: tokio::time::Instant,
}

impl RecordPages<'_> {
    /// The next page, `None` when the listing is over (no more pages, or the window's
    /// start was reached). After an error the listing is over too.
    pub async fn next_page(&mut self) -> Option<Result<Page, SweepError>> {
        if self.done {
            return None;
        }
        let (page, bytes) = match self.fetch().await {
            Ok(fetched) => fetched,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        self.pages += 1;
        let DecodedPage {
            records,
            read,
            reached_window_start,
            next_page_token,
        } = page;
        if reached_window_start {
            // Newest first: everything after this is older still.
            self.done = true;
        }
        match next_page_token.filter(|t| !t.is_empty()) {
            Some(t) if !self.done => {
                if !self.seen_tokens.insert(token_digest(&t)) {
                    // The page that hands out a used token is not trusted either.
                    self.done = true;
                    return Some(Err(SweepError::PageTokenLoop));
                }
                self.next_token = Some(t);
            }
            _ => self.done = true,
        }
        Some(Ok(Page {
            records,
            read,
            bytes,
        }))
    }

    /// Answers refused as too large so far (each asked again at half the size, but the
    /// last one when the size was already the smallest).
    pub fn refused_too_large(&self) -> usize {
        self.refused_too_large
    }

    /// Whether the server refused the narrowed filter, and the listing went on without it.
    pub fn fell_back(&self) -> bool {
        self.fell_back
    }

    /// The next page's raw answer and its size. Bounded by the page cap and the deadline.
    async fn fetch(&mut self) -> Result<(DecodedPage, usize), SweepError> {
        let client = self.client;
        if self.pages >= client.max_pages {
            return Err(SweepError::PageLimit(client.max_pages));
        }
        // A deadline too far to represent is no deadline.
        let deadline = self
            .started
            .checked_add(client.deadline)
            .unwrap_or_else(|| self.started + Duration::from_secs(365 * 86_400));
        loop {
            let filter = self.narrowed.as_deref().unwrap_or(&client.filter);
            let page = client.get_page(
                filter,
                self.next_token.as_deref(),
                self.page_size,
                self.since,
            );
            match tokio::time::timeout_at(deadline, page).await {
                Err(_) => return Err(SweepError::Deadline(client.deadline)),
                Ok(Ok(fetched)) => return Ok(fetched),
                Ok(Err(SweepError::HttpStatus(status)))
                    if self.narrowed.is_some() && !matches!(status, 401 | 403 | 429) =>
                {
                    // Page tokens belong to their filter: start the listing again. The
                    // records already handed on come again; the core drops repeats.
                    tracing::warn!(
                        status,
                        "Results refused the time filter; listing by data_type alone"
                    );
                    self.narrowed = None;
                    self.fell_back = true;
                    self.next_token = None;
                    self.seen_tokens.clear();
                }
                Ok(Err(SweepError::PageTooLarge { .. })) if self.page_size > MIN_PAGE_SIZE => {
                    self.refused_too_large += 1;
                    self.page_size = (self.page_size / 2).max(MIN_PAGE_SIZE);
                    tracing::warn!(
                        page_size = self.page_size,
                        limit = client.max_page_bytes,
                        "Results page larger than the limit: asking again with smaller pages"
                    );
                }
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Pages fetched so far.
    pub fn pages(&self) -> usize {
        self.pages
    }
}

/// The digest a page token is remembered by: the first 16 bytes of its SHA-256.
fn token_digest(token: &str) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(token.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
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
    // A record holds one object: a `List` (its `items` would be decoded one by one
    // before being refused) is refused after a pass that keeps nothing of it.
    if serde_json::from_slice::<ListProbe>(&bytes).is_ok_and(|p| p.items.is_some()) {
        return RecordOutcome::Undecodable("data.value is a List, not one object".into());
    }
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

/// Whether a document has `items`, read without keeping anything.
#[derive(Deserialize)]
struct ListProbe {
    #[serde(default)]
    items: Option<serde::de::IgnoredAny>,
}

/// A page as [`decode_page`] leaves it: the records within the window, decoded.
#[derive(Debug, Default)]
struct DecodedPage {
    records: Vec<RecordOutcome>,
    /// Records on the page, those past the window's start included.
    read: usize,
    /// A record last updated before the window's start was on the page.
    reached_window_start: bool,
    next_page_token: Option<String>,
}

/// Decodes a page body record by record ([`PageSeed`]): at most `max_records`, those
/// updated before `since` (and all after them) skipped unread.
fn decode_page(
    body: &[u8],
    since: jiff::Timestamp,
    max_records: usize,
) -> Result<DecodedPage, SweepError> {
    use serde::de::DeserializeSeed;
    let mut page = DecodedPage::default();
    let mut refused = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let seed = PageSeed {
        since,
        max_records,
        page: &mut page,
        refused: &mut refused,
    };
    let parsed = seed.deserialize(&mut de).and_then(|()| de.end());
    if let Some(why) = refused {
        return Err(SweepError::MalformedPage(why));
    }
    parsed.map_err(|e| {
        SweepError::MalformedPage(format!("not a records page: {}", redact_json_error(&e)))
    })?;
    Ok(page)
}

/// Reads a records page into a [`DecodedPage`] as it is parsed: each record is decoded
/// and dropped before the next is read, so a page costs its records' objects, not a tree
/// of all its records. grpc-gateway writes proto field names (`next_page_token`) or their
/// JSON names (`nextPageToken`) depending on its marshaler options: both are read.
struct PageSeed<'a> {
    since: jiff::Timestamp,
    max_records: usize,
    page: &'a mut DecodedPage,
    /// Why the page was refused, when it was for its content (said without the content).
    refused: &'a mut Option<String>,
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum PageField {
    #[serde(rename = "records")]
    Records,
    #[serde(rename = "next_page_token", alias = "nextPageToken")]
    NextPageToken,
    #[serde(other)]
    Other,
}

impl<'de> serde::de::DeserializeSeed<'de> for PageSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for PageSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a records page")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use serde::de::Error as _;
        while let Some(field) = map.next_key::<PageField>()? {
            match field {
                PageField::Records => map.next_value_seed(RecordsSeed {
                    since: self.since,
                    max_records: self.max_records,
                    page: &mut *self.page,
                    refused: &mut *self.refused,
                })?,
                PageField::NextPageToken => {
                    let token: Option<BoundedToken> = map.next_value()?;
                    match token {
                        Some(BoundedToken(Some(t))) => self.page.next_page_token = Some(t),
                        Some(BoundedToken(None)) => {
                            *self.refused = Some(format!(
                                "a page token longer than {MAX_PAGE_TOKEN_BYTES} bytes"
                            ));
                            return Err(A::Error::custom("page token too long"));
                        }
                        None => self.page.next_page_token = None,
                    }
                }
                PageField::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A page token, `None` when longer than [`MAX_PAGE_TOKEN_BYTES`] (not kept).
struct BoundedToken(Option<String>);

impl<'de> Deserialize<'de> for BoundedToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = BoundedToken;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a page token")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<BoundedToken, E> {
                Ok(BoundedToken(
                    (v.len() <= MAX_PAGE_TOKEN_BYTES).then(|| v.to_owned()),
                ))
            }
        }
        d.deserialize_str(V)
    }
}

/// The `records` array of a page, decoded one record at a time (see [`PageSeed`]).
struct RecordsSeed<'a> {
    since: jiff::Timestamp,
    max_records: usize,
    page: &'a mut DecodedPage,
    refused: &'a mut Option<String>,
}

impl<'de> serde::de::DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RecordsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        use serde::de::Error as _;
        loop {
            // Past the window's start, records are skipped unread (still counted).
            let more = if self.page.reached_window_start {
                seq.next_element::<serde::de::IgnoredAny>()?.is_some()
            } else {
                match seq.next_element::<RawRecord>()? {
                    None => false,
                    Some(record) => {
                        if let Some(updated) = record.update_time.as_deref()
                            && let Ok(at) = updated.parse::<jiff::Timestamp>()
                            && at < self.since
                        {
                            self.page.reached_window_start = true;
                        } else {
                            self.page.records.push(decode_record(record.data));
                        }
                        true
                    }
                }
            };
            if !more {
                return Ok(());
            }
            self.page.read += 1;
            if self.page.read > self.max_records {
                *self.refused = Some(format!(
                    "more records than the {} asked for",
                    self.max_records
                ));
                return Err(A::Error::custom("too many records"));
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawRecord {
    #[serde(default)]
    data: Option<RawAny>,
    #[serde(default, alias = "updateTime")]
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
    /// `what` of each request the fake server saw, in order.
    fn each_request<T>(seen: &Mutex<Vec<Seen>>, what: impl FnMut(&Seen) -> T) -> Vec<T> {
        seen.lock().unwrap().iter().map(what).collect()
    }

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
                    // A 3xx answer's body is its Location.
                    let location = if (300..400).contains(&status) {
                        format!("location: {body}\r\n")
                    } else {
                        String::new()
                    };
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\n{location}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
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

    /// [`ResultsClient::new`] with the provider `main` installs.
    fn new_client(config: &ResultsConfig) -> Result<ResultsClient, SweepError> {
        crate::crypto::install_for_tests();
        ResultsClient::new(config)
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
        let client = new_client(&config(&addr)).unwrap();
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
        let client = new_client(&c).unwrap();
        let mut pages = client.records_since(since("2026-01-01T00:00:00Z"));
        let (uids, err) = drain(&mut pages).await;
        assert!(uids.is_empty() && err.is_none());
        assert_eq!(pages.pages(), 1);
    }

    #[tokio::test]
    async fn a_repeated_page_token_ends_the_listing() {
        let handler: Handler = Arc::new(|_: &Seen| {
            let page = serde_json::json!({"records": [record("a", "2026-01-01T12:00:00Z")], "next_page_token": "same"});
            (200, page.to_string())
        });
        let (addr, seen) = fake(handler).await;
        let client = new_client(&config(&addr)).unwrap();
        let mut pages = client.records_since(since("2026-01-01T00:00:00Z"));
        let (uids, err) = drain(&mut pages).await;
        // The page that repeats its token is not trusted.
        assert_eq!(uids, ["a"]);
        assert!(matches!(err, Some(SweepError::PageTokenLoop)), "{err:?}");
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn alternating_page_tokens_end_the_listing() {
        // A/B/A/B...: no token equals the previous one, but the listing still loops.
        let handler: Handler = Arc::new(|req: &Seen| {
            let next = match req.query.get("page_token").map(String::as_str) {
                Some("A") => "B",
                _ => "A",
            };
            let page = serde_json::json!({"records": [record("a", "2026-01-01T12:00:00Z")], "nextPageToken": next});
            (200, page.to_string())
        });
        let (addr, seen) = fake(handler).await;
        let client = new_client(&config(&addr)).unwrap();
        let mut pages = client.records_since(since("2026-01-01T00:00:00Z"));
        let (uids, err) = drain(&mut pages).await;
        assert!(matches!(err, Some(SweepError::PageTokenLoop)), "{err:?}");
        assert_eq!(uids, ["a", "a"]);
        let tokens = each_request(&seen, |s| s.query.get("page_token").cloned());
        assert_eq!(tokens, [None, Some("A".into()), Some("B".into())]);
    }

    /// A server whose every page holds `records()` and a page token never seen before.
    fn ever_new_tokens(records: fn() -> Vec<serde_json::Value>) -> Handler {
        Arc::new(move |req: &Seen| {
            let n: u64 = req
                .query
                .get("page_token")
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let page =
                serde_json::json!({"records": records(), "next_page_token": (n + 1).to_string()});
            (200, page.to_string())
        })
    }

    #[tokio::test]
    async fn ever_new_page_tokens_end_at_the_page_cap() {
        let handler = ever_new_tokens(|| vec![record("a", "2026-01-01T12:00:00Z")]);
        let (addr, seen) = fake(handler).await;
        let mut c = config(&addr);
        c.max_pages = 7;
        let client = new_client(&c).unwrap();
        let (uids, err) = drain(&mut client.records_since(since("2026-01-01T00:00:00Z"))).await;
        assert!(matches!(err, Some(SweepError::PageLimit(7))), "{err:?}");
        assert_eq!(uids.len(), 7);
        assert_eq!(seen.lock().unwrap().len(), 7);
    }

    #[tokio::test]
    async fn a_listing_ends_at_its_deadline() {
        // Ever-new tokens and no page cap to speak of: only the deadline ends it.
        let handler = ever_new_tokens(Vec::new);
        let (addr, _) = fake(handler).await;
        let mut c = config(&addr);
        c.max_pages = usize::MAX;
        c.deadline = Duration::from_millis(300);
        let client = new_client(&c).unwrap();
        let (_, err) = drain(&mut client.records_since(since("2026-01-01T00:00:00Z"))).await;
        assert!(matches!(err, Some(SweepError::Deadline(_))), "{err:?}");
    }

    /// A server answering `min(page_size, at_most)` records a page, and a config whose
    /// page limit is 20 records' worth.
    async fn sized_pages(at_most: usize) -> (ResultsConfig, Arc<Mutex<Vec<Seen>>>, String) {
        let handler: Handler = Arc::new(move |req: &Seen| {
            let size: usize = req.query["page_size"].parse().unwrap();
            let records: Vec<_> = (0..size.min(at_most))
                .map(|i| record(&format!("r{i}"), "2026-01-01T12:00:00Z"))
                .collect();
            (200, serde_json::json!({ "records": records }).to_string())
        });
        let (addr, seen) = fake(handler).await;
        let mut c = config(&addr);
        let one = serde_json::to_vec(&record("r00", "2026-01-01T12:00:00Z"))
            .unwrap()
            .len();
        c.max_page_bytes = one * 20;
        (c, seen, addr)
    }

    #[tokio::test]
    async fn a_page_too_large_is_refused_and_asked_again_smaller() {
        // Pages of more than 20 records are too large; 100 -> 50 -> 25 -> 12 succeeds.
        let (c, seen, addr) = sized_pages(usize::MAX).await;
        let client = new_client(&c).unwrap();
        let mut pages = client.records_since(since("2026-01-01T00:00:00Z"));
        let page = pages.next_page().await.unwrap().unwrap();
        assert_eq!(page.read, 12);
        assert_eq!(pages.refused_too_large(), 3);
        let sizes = each_request(&seen, |s| s.query["page_size"].clone());
        assert_eq!(sizes, ["100", "50", "25", "12"]);

        // At the smallest page size, a page still too large ends the listing.
        let mut c = config(&addr);
        c.max_page_bytes = 10;
        let client = new_client(&c).unwrap();
        let (_, err) = drain(&mut client.records_since(since("2026-01-01T00:00:00Z"))).await;
        assert!(
            matches!(err, Some(SweepError::PageTooLarge { page_size: 5, .. })),
            "{err:?}"
        );
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

    #[tokio::test]
    async fn the_time_filter_is_sent_and_dropped_when_the_server_refuses_it() {
        let handler: Handler = Arc::new(|req: &Seen| {
            if req.query["filter"].contains("completionTime") {
                // A server refusing the filter.
                return (400, r#"{"code":3}"#.to_owned());
            }
            let page = serde_json::json!({"records": [record("a", "2026-01-01T12:00:00Z")]});
            (200, page.to_string())
        });
        let (addr, seen) = fake(handler).await;
        let client = new_client(&config(&addr)).unwrap();
        let narrowed = client.filter_with_events_after(since("2026-01-01T08:00:00.75Z"));
        assert_eq!(
            narrowed,
            r#"(data_type == "tekton.dev/v1.PipelineRun" || data_type == "tekton.dev/v1beta1.PipelineRun") && (data.status.completionTime > "2026-01-01T07:59:59Z" || data.status.startTime > "2026-01-01T07:59:59Z")"#
        );
        let mut pages = client.records_since_with_events_after(
            since("2026-01-01T09:00:00Z"),
            since("2026-01-01T08:00:00.75Z"),
        );
        let (uids, err) = drain(&mut pages).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(uids, ["a"]);
        assert!(pages.fell_back());
        let filters = each_request(&seen, |s| s.query["filter"].clone());
        assert_eq!(filters, [narrowed, client.filter().to_owned()]);

        // Refusals that say nothing about the filter end the listing as before.
        let (addr, seen) = fake(Arc::new(|_: &Seen| (403, "{}".to_owned()))).await;
        let client = new_client(&config(&addr)).unwrap();
        let mut pages = client.records_since_with_events_after(
            since("2026-01-01T09:00:00Z"),
            since("2026-01-01T08:00:00Z"),
        );
        let (_, err) = drain(&mut pages).await;
        assert!(matches!(err, Some(SweepError::HttpStatus(403))), "{err:?}");
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn both_spellings_of_page_fields_are_read() {
        let handler: Handler = Arc::new(|req: &Seen| {
            let value = |uid: &str| base64::engine::general_purpose::STANDARD.encode(run_json(uid));
            let page = match req.query.get("page_token").map(String::as_str) {
                None => serde_json::json!({
                    "records": [{"data": {"value": value("a")}, "updateTime": "2026-01-01T12:00:00Z"}],
                    "nextPageToken": "t1"
                }),
                _ => serde_json::json!({
                    "records": [
                        {"data": {"value": value("b")}, "update_time": "2026-01-01T11:00:00Z"},
                        {"data": {"value": value("c")}, "updateTime": "2026-01-01T08:00:00Z"}
                    ],
                    "next_page_token": "t2"
                }),
            };
            (200, page.to_string())
        });
        let (addr, seen) = fake(handler).await;
        let client = new_client(&config(&addr)).unwrap();
        let (uids, err) = drain(&mut client.records_since(since("2026-01-01T09:00:00Z"))).await;
        assert!(err.is_none(), "{err:?}");
        // `updateTime` stopped the listing at "c", as `update_time` would.
        assert_eq!(uids, ["a", "b"]);
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
            let client = new_client(&config(&addr)).unwrap();
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
        let client = new_client(&config(&addr)).unwrap();
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
        c.token_over_plain_http = true;
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

    /// A sweeper over `client` whose observations are collected by a task.
    fn new_sweeper(
        client: ResultsClient,
    ) -> (
        crate::sweep::Sweeper,
        crate::sweep::SweepMetrics,
        tokio::task::JoinHandle<Vec<String>>,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let (_stx, srx) = tokio::sync::watch::channel(crate::sweep::SweepSettings::default());
        let metrics = crate::sweep::SweepMetrics::default();
        let sweeper = crate::sweep::Sweeper::new(client, srx, tx, metrics.clone());
        let collect = tokio::spawn(async move {
            let mut uids = Vec::new();
            while let Some(o) = rx.recv().await {
                if let Object::PipelineRun(run) = o.object {
                    uids.push(run.meta.uid);
                }
            }
            uids
        });
        (sweeper, metrics, collect)
    }

    #[tokio::test]
    async fn each_way_a_listing_is_cut_short_is_counted_by_kind() {
        let alternating: Handler = Arc::new(|req: &Seen| {
            let next = if req.query.get("page_token").map(String::as_str) == Some("A") {
                "B"
            } else {
                "A"
            };
            (
                200,
                serde_json::json!({"records": [], "next_page_token": next}).to_string(),
            )
        });
        let (addr, _) = fake(alternating).await;
        let (sweeper, metrics, _) = new_sweeper(new_client(&config(&addr)).unwrap());
        let report = sweeper.sweep_since(since("2026-01-01T00:00:00Z")).await;
        assert_eq!(report.error, Some(ErrorKind::PageTokenLoop));
        assert_eq!(report.pages, 2);
        assert_eq!(metrics.errors(ErrorKind::PageTokenLoop), 1);
        assert_eq!(metrics.sweeps("error"), 1);

        let big: Handler = Arc::new(|_: &Seen| {
            (
                200,
                format!("{{\"records\": [], \"pad\": \"{}\"}}", "x".repeat(400)),
            )
        });
        let (addr, _) = fake(big).await;
        let mut c = config(&addr);
        c.max_page_bytes = 300;
        let (sweeper, metrics, _) = new_sweeper(new_client(&c).unwrap());
        let report = sweeper.sweep_since(since("2026-01-01T00:00:00Z")).await;
        assert_eq!(report.error, Some(ErrorKind::PageTooLarge));
        // 100, 50, 25, 12, 6 refused and asked again; 5 refused and final.
        assert_eq!(metrics.errors(ErrorKind::PageTooLarge), 6);
    }

    #[tokio::test]
    async fn refused_large_pages_are_counted_even_when_the_sweep_completes() {
        let (c, _, _) = sized_pages(30).await;
        let one = c.max_page_bytes / 20;
        let (sweeper, metrics, collect) = new_sweeper(new_client(&c).unwrap());
        let report = sweeper.sweep_since(since("2026-01-01T00:00:00Z")).await;
        assert!(report.complete(), "{report:?}");
        assert_eq!(report.delivered, 12);
        assert!(report.bytes > 0 && report.bytes <= one * 20);
        assert_eq!(metrics.bytes_received.get(), report.bytes as u64);
        assert_eq!(metrics.errors(ErrorKind::PageTooLarge), 3);
        drop(sweeper);
        assert_eq!(collect.await.unwrap().len(), 12);
    }

    #[tokio::test]
    async fn incremental_sweeps_read_from_the_watermark_and_only_complete_ones_move_it() {
        use crate::sweep::{SweepSettings, WindowKind};
        let now = jiff::Timestamp::now();
        let ago = |s: i64| (now - jiff::SignedDuration::from_secs(s)).to_string();
        let (recent, hour, older) = (ago(10), ago(3600), ago(3 * 3600));
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let fail = failing.clone();
        let handler: Handler = Arc::new(move |_: &Seen| {
            if fail.load(std::sync::atomic::Ordering::SeqCst) {
                return (503, "{}".to_owned());
            }
            let page = serde_json::json!({"records": [
                record("recent", &recent), record("hour", &hour), record("older", &older)
            ]});
            (200, page.to_string())
        });
        let (addr, _) = fake(handler).await;
        let (sweeper, metrics, collect) = new_sweeper(new_client(&config(&addr)).unwrap());
        let settings = SweepSettings::default(); // 1 h interval, 4 h lookback

        // No watermark: the whole lookback.
        assert_eq!(sweeper.watermark().get(), None);
        let report = sweeper.sweep_next(settings).await;
        assert!(report.complete(), "{report:?}");
        assert_eq!(report.delivered, 3);
        let first = sweeper
            .watermark()
            .get()
            .expect("a watermark after a complete sweep");
        assert!(first.to >= now);
        assert_eq!(metrics.completed(WindowKind::Full), 1);

        // An interrupted sweep does not move it.
        failing.store(true, std::sync::atomic::Ordering::SeqCst);
        let report = sweeper.sweep_next(settings).await;
        assert!(!report.complete());
        assert_eq!(sweeper.watermark().get(), Some(first));
        failing.store(false, std::sync::atomic::Ordering::SeqCst);

        // From the watermark minus 2 min: the record of 10 s ago only.
        let report = sweeper.sweep_next(settings).await;
        assert!(report.complete(), "{report:?}");
        assert_eq!(report.delivered, 1);
        assert_eq!(metrics.completed(WindowKind::Incremental), 1);
        let second = sweeper.watermark().get().unwrap();
        assert_eq!(second.from, first.from);
        assert!(second.to >= first.to);

        // A watermark older than the lookback: the whole lookback again.
        sweeper.watermark().set(Some(crate::sweep::Coverage {
            from: now - jiff::SignedDuration::from_secs(10 * 3600),
            to: now - jiff::SignedDuration::from_secs(5 * 3600),
        }));
        let report = sweeper.sweep_next(settings).await;
        assert_eq!(report.delivered, 3);
        assert_eq!(metrics.completed(WindowKind::Full), 2);
        drop(sweeper);
        assert_eq!(
            collect.await.unwrap(),
            [
                "recent", "hour", "older", "recent", "recent", "hour", "older"
            ]
        );
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
    async fn a_page_with_more_records_than_asked_for_is_malformed() {
        let handler: Handler = Arc::new(|req: &Seen| {
            let size: usize = req.query["page_size"].parse().unwrap();
            let records: Vec<_> = (0..=size)
                .map(|i| record(&format!("r{i}"), "2026-01-01T12:00:00Z"))
                .collect();
            (200, serde_json::json!({ "records": records }).to_string())
        });
        let (addr, _) = fake(handler).await;
        let mut c = config(&addr);
        c.page_size = MIN_PAGE_SIZE;
        let client = new_client(&c).unwrap();
        let (_, err) = drain(&mut client.records_since(since("2026-01-01T00:00:00Z"))).await;
        let err = err.expect("refused");
        assert_eq!(err.kind(), ErrorKind::MalformedPage, "{err}");
        assert!(
            err.to_string()
                .contains("more records than the 5 asked for"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_page_token_over_the_bound_is_malformed() {
        let handler: Handler = Arc::new(|req: &Seen| {
            let page = match req.query.get("page_token") {
                None => serde_json::json!({"records": [record("a", "2026-01-01T12:00:00Z")],
                    "nextPageToken": "t".repeat(MAX_PAGE_TOKEN_BYTES + 1)}),
                Some(_) => serde_json::json!({"records": [record("b", "2026-01-01T12:00:00Z")]}),
            };
            (200, page.to_string())
        });
        let (addr, seen) = fake(handler).await;
        let client = new_client(&config(&addr)).unwrap();
        let (uids, err) = drain(&mut client.records_since(since("2026-01-01T00:00:00Z"))).await;
        let err = err.expect("refused");
        assert_eq!(err.kind(), ErrorKind::MalformedPage, "{err}");
        assert!(err.to_string().contains("page token longer than"), "{err}");
        assert!(uids.is_empty(), "{uids:?}");
        assert_eq!(seen.lock().unwrap().len(), 1, "the token is not sent back");
    }

    #[test]
    fn a_page_is_decoded_record_by_record_up_to_the_page_size() {
        let t = since("2026-01-01T00:00:00Z");
        let empties = |n: usize| format!("{{\"records\":[{}]}}", vec!["{}"; n].join(","));
        let page = decode_page(empties(100).as_bytes(), t, 100).expect("a page");
        assert_eq!((page.read, page.records.len()), (100, 100));
        let err = decode_page(empties(101).as_bytes(), t, 100).expect_err("too many");
        assert!(
            err.to_string().contains("more records than the 100"),
            "{err}"
        );
        // Records past the window's start are counted, not decoded; the token is read
        // wherever it is.
        let body = serde_json::json!({
            "next_page_token": "n",
            "records": [record("a", "2026-01-01T12:00:00Z"), record("old", "2025-12-31T00:00:00Z"), {"data": 1}],
        });
        let page = decode_page(body.to_string().as_bytes(), t, 100).expect("a page");
        assert_eq!((page.read, page.records.len()), (3, 1));
        assert!(page.reached_window_start);
        assert_eq!(page.next_page_token.as_deref(), Some("n"));
        // A record holding a List is refused without decoding its items.
        let list = format!("{{\"kind\":\"List\",\"items\":[{}]}}", run_json("x"));
        let body = serde_json::json!({"records": [{"data": {"value": base64::engine::general_purpose::STANDARD.encode(list)}}]});
        let page = decode_page(body.to_string().as_bytes(), t, 100).expect("a page");
        assert_eq!(
            page.records,
            [RecordOutcome::Undecodable(
                "data.value is a List, not one object".into()
            )]
        );
        assert!(decode_page(b"[]", t, 100).is_err(), "not a page");
        assert!(decode_page(b"{} x", t, 100).is_err(), "trailing bytes");
    }

    #[test]
    fn page_tokens_are_remembered_as_fixed_size_digests() {
        let long = "t".repeat(60_000);
        assert_eq!(token_digest(&long).len(), 16);
        assert_ne!(token_digest("a"), token_digest("b"));
        assert_eq!(token_digest(&long), token_digest(&long.clone()));
    }
}
