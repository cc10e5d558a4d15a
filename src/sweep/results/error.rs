//! What can go wrong with a listing, as errors that carry no URL, name or token, and as
//! the fixed set of kinds the metrics count.

use std::time::Duration;

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
    #[error(
        "--tekton-results-insecure-skip-tls-verify with a token applies to the cluster's service names only (NAME.NAMESPACE.svc[.cluster.local]); give the CA with --tekton-results-ca-file"
    )]
    UnverifiedTokenOutsideCluster,
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

    pub(super) fn unreachable(e: reqwest::Error) -> Self {
        SweepError::Unreachable(e.without_url())
    }
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
