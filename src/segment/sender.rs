//! `POST {api_url}/batch` with retries, backoff, `Retry-After` and a rate limit.

use super::backoff::Backoff;
use super::metrics::SenderMetrics;
use super::{EmptyWriteKey, WriteKey};
use crate::crypto::NoCryptoProvider;
use crate::events::Event;
use crate::flush::batch::{Batch, DropReason, Dropped, Limits, batches_with, sent_at_now};
use crate::flush::{Delivery, DeliveryError, Output};
use base64::Engine as _;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use std::borrow::Cow;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Most extra requests one flush spends cutting refused batches in halves.
pub const MAX_SPLIT_REQUESTS: usize = 256;

/// The header telling Segment how many times this batch was tried before, as its own
/// libraries send it (0 on the first try).
pub const RETRY_COUNT_HEADER: &str = "X-Retry-Count";

/// Most bytes of an answer's body read: Segment's answers are a few bytes of JSON whose
/// content does not matter. A longer body is left unread and its connection closed.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Segment's API for US workspaces (EU: `https://events.eu1.segmentapis.com/v1`).
pub const DEFAULT_API_URL: &str = "https://api.segment.io/v1";

/// Everything the [`Sender`] needs. `Debug` shows the write key as `***`.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    /// The API base, without `/batch` (see [`normalize_api_url`]).
    pub api_url: String,
    /// The source's write key.
    pub write_key: WriteKey,
    /// Most requests a second, all batches together.
    pub requests_per_second: NonZeroU32,
    /// Waits between attempts at one batch, and its total deadline.
    pub backoff: Backoff,
    /// Timeout of one request, response body included.
    pub request_timeout: Duration,
    /// Longest `Retry-After` honoured; longer ones are cut to this.
    pub max_retry_after: Duration,
    /// Batch limits used by [`Sender::prepare`].
    pub limits: Limits,
}

impl SenderConfig {
    /// Defaults: 50 requests/s, [`Backoff::default`], 30 s a request, `Retry-After`
    /// capped at 300 s, [`Limits::default`].
    pub fn new(api_url: impl Into<String>, write_key: WriteKey) -> Self {
        Self {
            api_url: api_url.into(),
            write_key,
            requests_per_second: NonZeroU32::new(50).unwrap_or(NonZeroU32::MIN),
            backoff: Backoff::default(),
            request_timeout: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
            limits: Limits::default(),
        }
    }
}

/// A setting the sender cannot work with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The API URL is unusable. The URL itself is not repeated.
    #[error("invalid Segment API URL: {reason}")]
    ApiUrl { reason: &'static str },
    /// No write key.
    #[error(transparent)]
    WriteKey(#[from] EmptyWriteKey),
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// No TLS crypto provider is installed.
    #[error(transparent)]
    CryptoProvider(#[from] NoCryptoProvider),
}

/// The API base from a configured URL: surrounding whitespace and trailing `/` removed,
/// and a trailing `/batch` (the old bridge's `SEGMENT_BATCH_API` has it) stripped.
/// Only `http` and `https` URLs with a host are accepted.
pub fn normalize_api_url(url: &str) -> Result<String, ConfigError> {
    let trimmed = url.trim().trim_end_matches('/');
    let base = trimmed
        .strip_suffix("/batch")
        .unwrap_or(trimmed)
        .trim_end_matches('/');
    let parsed = reqwest::Url::parse(base).map_err(|_| ConfigError::ApiUrl {
        reason: "not a URL",
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConfigError::ApiUrl {
            reason: "the scheme must be http or https",
        });
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::ApiUrl { reason: "no host" });
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ConfigError::ApiUrl {
            reason: "a query or fragment is not allowed",
        });
    }
    Ok(base.to_owned())
}

/// Why one request failed in a way worth retrying.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No connection could be made.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The connection broke during the request or response.
    #[error("connection broken: {0}")]
    Connection(String),
    /// No complete answer within the request timeout.
    #[error("request timed out")]
    Timeout,
    /// A retryable HTTP status (408, 429, 5xx but 501 and 505).
    #[error("HTTP {0}")]
    Status(u16),
    /// A `Retry-After` from an earlier answer ends after the deadline.
    #[error("the endpoint asked to wait (Retry-After) past the deadline")]
    RetryAfter,
}

impl Failure {
    /// The `send_errors` label: the status code, or `connect`, `connection`, `timeout`.
    pub fn label(&self) -> String {
        match self {
            Failure::Connect(_) => "connect".into(),
            Failure::Connection(_) => "connection".into(),
            Failure::Timeout => "timeout".into(),
            Failure::Status(code) => code.to_string(),
            Failure::RetryAfter => "retry_after".into(),
        }
    }
}

/// Why a batch was not delivered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Segment refused the batch as it is (a 4xx other than 408 and 429, 501, 505, or a
    /// redirect). Not retried: the caller keeps the events and tries at the next flush.
    #[error("Segment rejected a batch of {events} events with HTTP {status}")]
    Rejected { status: u16, events: usize },
    /// Retryable failures until the batch's deadline.
    #[error("gave up on a batch of {events} events after {attempts} attempts: {last}")]
    Exhausted {
        events: usize,
        attempts: u32,
        last: Failure,
    },
}

/// Sends batches to Segment. Cheap to clone; clones share the rate limit and the
/// `Retry-After` state, so a 429 holds back every batch, not just the one it answered.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    authorization: HeaderValue,
    limiter: DefaultDirectRateLimiter,
    /// No request before this instant (from a 429's `Retry-After`).
    blocked_until: Mutex<Option<Instant>>,
    backoff: Backoff,
    request_timeout: Duration,
    max_retry_after: Duration,
    limits: Limits,
    metrics: SenderMetrics,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("write_key", &"***")
            .finish_non_exhaustive()
    }
}

enum AttemptError {
    Retry {
        failure: Failure,
        retry_after: Option<Duration>,
    },
    Reject(u16),
}

impl Sender {
    /// A sender for `cfg`, over the process's TLS crypto provider ([`crate::crypto`]);
    /// fails when none is installed.
    pub fn new(cfg: SenderConfig, metrics: SenderMetrics) -> Result<Self, ConfigError> {
        if cfg.write_key.is_empty() {
            return Err(EmptyWriteKey.into());
        }
        let base = normalize_api_url(&cfg.api_url)?;
        let endpoint =
            reqwest::Url::parse(&format!("{base}/batch")).map_err(|_| ConfigError::ApiUrl {
                reason: "not a URL",
            })?;
        // reqwest panics without a provider: say so instead.
        crate::crypto::provider()?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(ConfigError::Client)?;
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:", cfg.write_key.expose()));
        let mut authorization =
            HeaderValue::from_str(&format!("Basic {credentials}")).map_err(|_| {
                ConfigError::ApiUrl {
                    reason: "unusable write key",
                }
            })?;
        authorization.set_sensitive(true);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                endpoint,
                authorization,
                limiter: RateLimiter::direct(Quota::per_second(cfg.requests_per_second)),
                blocked_until: Mutex::new(None),
                backoff: cfg.backoff,
                request_timeout: cfg.request_timeout,
                max_retry_after: cfg.max_retry_after,
                limits: cfg.limits,
                metrics,
            }),
        })
    }

    /// The URL batches are posted to.
    pub fn endpoint(&self) -> &str {
        self.inner.endpoint.as_str()
    }

    /// The sender's metrics.
    pub fn metrics(&self) -> &SenderMetrics {
        &self.inner.metrics
    }

    /// Splits events into batches under the configured [`Limits`]. Events too large to
    /// send are counted in `events_dropped` and logged (name and `messageId` only).
    pub fn prepare<'a>(&self, events: impl IntoIterator<Item = &'a Event>) -> Vec<Batch> {
        let (batches, dropped) = batches_with(events, &self.inner.limits);
        self.report_dropped(&dropped);
        batches
    }

    fn report_dropped(&self, dropped: &[Dropped]) {
        self.inner.metrics.record_dropped(dropped);
        crate::flush::log_unsendable(dropped);
    }

    /// Sends one batch, retrying retryable failures with backoff until the deadline.
    /// `Ok` when Segment answered 2xx. Each attempt has a fresh `sentAt` and the same
    /// events (so the same `messageId`s).
    pub async fn send(&self, batch: &Batch) -> Result<(), SendError> {
        if batch.is_empty() {
            return Ok(());
        }
        let inner = &*self.inner;
        let deadline = Instant::now() + inner.backoff.deadline;
        let mut attempts = 0u32;
        let mut last = Failure::RetryAfter;
        loop {
            if !self.wait_for_endpoint(deadline).await {
                return Err(SendError::Exhausted {
                    events: batch.len(),
                    attempts,
                    last,
                });
            }
            let timeout = inner
                .request_timeout
                .min(deadline.saturating_duration_since(Instant::now()))
                .max(Duration::from_millis(1));
            let body = batch.body(&sent_at_now());
            let body_len = body.len();
            if attempts > 0 {
                inner.metrics.record_retry();
            }
            attempts += 1;
            match self.attempt(body, timeout, attempts - 1).await {
                Ok(()) => {
                    inner.metrics.record_sent(batch.len(), body_len);
                    debug!(events = batch.len(), attempts, "batch sent");
                    return Ok(());
                }
                Err(AttemptError::Reject(status)) => {
                    inner.metrics.record_error(status.to_string());
                    return Err(SendError::Rejected {
                        status,
                        events: batch.len(),
                    });
                }
                Err(AttemptError::Retry {
                    failure,
                    retry_after,
                }) => {
                    inner.metrics.record_error(failure.label());
                    let now = Instant::now();
                    let next = match retry_after {
                        Some(wait) => self.block_for(now, wait),
                        None => now + inner.backoff.delay(attempts - 1),
                    };
                    debug!(
                        events = batch.len(),
                        attempts,
                        error = %failure,
                        wait_ms = next.saturating_duration_since(now).as_millis() as u64,
                        "batch failed, retrying"
                    );
                    last = failure;
                    if next >= deadline {
                        return Err(SendError::Exhausted {
                            events: batch.len(),
                            attempts,
                            last,
                        });
                    }
                    tokio::time::sleep_until(next).await;
                }
            }
        }
    }

    /// Sends a flush's batches one after the other and reports which `messageId`s went
    /// out.
    /// - A batch answered 400 or 413 is cut in halves, each sent on its own, down to the
    ///   event at fault, which alone is dropped (at most [`MAX_SPLIT_REQUESTS`] requests a
    ///   flush for this; what is left waits for the next flush).
    /// - The flush stops at the first batch that exhausts its retries, or at a 401 or
    ///   403 (a wrong key): the remaining batches are not tried and wait for the next
    ///   flush. Rejections are logged once per status with their event count.
    pub async fn send_all(&self, batches: &[Batch]) -> Delivery {
        let mut report = Delivery::default();
        let mut stop = false;
        let mut splits = 0usize;
        for batch in batches {
            // The batch, or the parts it was cut into, last first.
            let mut parts = vec![Cow::Borrowed(batch)];
            while let Some(part) = parts.pop() {
                if stop {
                    report.unsent.extend_from_slice(part.message_ids());
                    continue;
                }
                let Err(e) = self.send(&part).await else {
                    report.sent.extend_from_slice(part.message_ids());
                    continue;
                };
                match &e {
                    SendError::Rejected {
                        status: 400 | 413, ..
                    } if part.len() == 1 => {
                        self.drop_rejected(&part, &e, &mut report);
                        continue;
                    }
                    SendError::Rejected {
                        status: 400 | 413, ..
                    } if splits < MAX_SPLIT_REQUESTS => {
                        if let Some((first, second)) = part.split() {
                            splits += 2;
                            parts.push(Cow::Owned(second));
                            parts.push(Cow::Owned(first));
                            continue;
                        }
                    }
                    SendError::Rejected { status, .. } => stop = matches!(status, 401 | 403),
                    SendError::Exhausted {
                        events,
                        attempts,
                        last,
                    } => {
                        warn!(
                            events,
                            attempts,
                            error = %last,
                            "Segment unreachable; the events stay buffered, the rest of the flush waits for the next one"
                        );
                        stop = true;
                    }
                }
                if let SendError::Rejected { status, events } = &e {
                    *report.rejected.entry(*status).or_default() += events;
                }
                report.unsent.extend_from_slice(part.message_ids());
                report.errors.push(DeliveryError::new(e));
            }
        }
        for (status, events) in &report.rejected {
            let hint = match status {
                401 | 403 => "check the write key",
                400 | 413 => "a batch broke Segment's limits",
                _ => "unexpected answer",
            };
            warn!(
                status,
                events, hint, "Segment rejected events; they stay buffered"
            );
        }
        report
    }

    /// A batch of one event Segment refused: the event is dropped, counted and logged.
    fn drop_rejected(&self, part: &Batch, e: &SendError, report: &mut Delivery) {
        let status = match e {
            SendError::Rejected { status, .. } => *status,
            SendError::Exhausted { .. } => 0,
        };
        for (name, id) in part.names().iter().zip(part.message_ids()) {
            self.inner.metrics.dropped(DropReason::Rejected).inc();
            warn!(
                event = *name,
                message_id = %id,
                status,
                "event dropped: Segment refused it alone"
            );
            report.dropped.push(id.clone());
        }
        report.errors.push(DeliveryError::new(e.clone()));
    }

    /// Waits until a `Retry-After` block has passed and the rate limiter lets a request
    /// through. False when the block ends after `deadline`.
    async fn wait_for_endpoint(&self, deadline: Instant) -> bool {
        loop {
            let blocked = *self
                .inner
                .blocked_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match blocked {
                Some(until) if until > Instant::now() => {
                    if until >= deadline {
                        return false;
                    }
                    tokio::time::sleep_until(until).await;
                }
                _ => {
                    self.inner.limiter.until_ready().await;
                    let blocked = *self
                        .inner
                        .blocked_until
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    // Another batch may have been answered 429 meanwhile.
                    if blocked.is_none_or(|until| until <= Instant::now()) {
                        return true;
                    }
                }
            }
        }
    }

    /// Holds back every request until `now + wait` (cut to `max_retry_after`); returns
    /// the end of the block.
    fn block_for(&self, now: Instant, wait: Duration) -> Instant {
        let until = now + wait.min(self.inner.max_retry_after);
        let mut blocked = self
            .inner
            .blocked_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let until = blocked.map_or(until, |b| b.max(until));
        *blocked = Some(until);
        until
    }

    async fn attempt(
        &self,
        body: Vec<u8>,
        timeout: Duration,
        retry_count: u32,
    ) -> Result<(), AttemptError> {
        let inner = &*self.inner;
        let response = inner
            .client
            .post(inner.endpoint.clone())
            .header(AUTHORIZATION, inner.authorization.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(RETRY_COUNT_HEADER, retry_count)
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(transport_failure)?;
        let status = response.status();
        let retry_after = retry_after(&response);
        // Read the answer so the connection can be reused; its content does not matter.
        let body = read_answer(response).await;
        if status.is_success() {
            return Ok(());
        }
        if let Err(e) = body {
            return Err(transport_failure(e));
        }
        if is_retryable(status) {
            Err(AttemptError::Retry {
                failure: Failure::Status(status.as_u16()),
                retry_after: if status == StatusCode::TOO_MANY_REQUESTS {
                    retry_after
                } else {
                    None
                },
            })
        } else {
            Err(AttemptError::Reject(status.as_u16()))
        }
    }
}

/// Reads an answer's body to its end or to [`MAX_ANSWER_BYTES`], whichever comes first,
/// keeping none of it: one chunk is in memory at a time. A longer body is dropped with its
/// connection, whatever length it announces.
async fn read_answer(mut response: reqwest::Response) -> Result<(), reqwest::Error> {
    let mut read = 0usize;
    while read <= MAX_ANSWER_BYTES {
        match response.chunk().await? {
            Some(chunk) => read += chunk.len(),
            None => return Ok(()),
        }
    }
    debug!(
        read,
        "Segment's answer is longer than expected: the rest is not read"
    );
    Ok(())
}

/// 408, 429, and 5xx other than 501 and 505.
fn is_retryable(status: StatusCode) -> bool {
    match status.as_u16() {
        408 | 429 => true,
        501 | 505 => false,
        code => (500..600).contains(&code),
    }
}

/// `Retry-After` as a number of seconds (the HTTP-date form is ignored).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds: f64 = value.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(1e6)))
}

fn transport_failure(e: reqwest::Error) -> AttemptError {
    // reqwest's Display names the URL; the endpoint is configuration, not for the logs.
    let e = e.without_url();
    let failure = if e.is_timeout() {
        Failure::Timeout
    } else if e.is_connect() {
        Failure::Connect(error_chain(&e))
    } else {
        Failure::Connection(error_chain(&e))
    };
    AttemptError::Retry {
        failure,
        retry_after: None,
    }
}

/// An error and its sources, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Output for Sender {
    fn limits(&self) -> Limits {
        self.inner.limits
    }

    async fn deliver(&self, batches: &[Batch]) -> Delivery {
        self.send_all(batches).await
    }

    /// Counted in `segment_events_dropped{reason}` and logged.
    fn report_unsendable(&self, dropped: &[Dropped]) {
        self.report_dropped(dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_url_normalisation() {
        let ok = |s: &str| normalize_api_url(s).expect("valid URL");
        assert_eq!(ok("https://api.segment.io/v1"), "https://api.segment.io/v1");
        assert_eq!(
            ok("https://api.segment.io/v1/"),
            "https://api.segment.io/v1"
        );
        assert_eq!(
            ok("https://api.segment.io/v1/batch"),
            "https://api.segment.io/v1"
        );
        assert_eq!(
            ok(" https://events.eu1.segmentapis.com/v1/batch/\n"),
            "https://events.eu1.segmentapis.com/v1"
        );
        assert_eq!(ok("http://127.0.0.1:8089/v1"), "http://127.0.0.1:8089/v1");
        assert_eq!(ok("http://127.0.0.1:8089"), "http://127.0.0.1:8089");
        assert_eq!(ok("http://127.0.0.1:8089/batch"), "http://127.0.0.1:8089");
        assert!(normalize_api_url("api.segment.io/v1").is_err());
        assert!(normalize_api_url("ftp://api.segment.io/v1").is_err());
        assert!(normalize_api_url("").is_err());
        assert!(normalize_api_url("https://x/v1?k=1").is_err());
    }

    #[test]
    fn retryable_statuses() {
        let r = |c: u16| is_retryable(StatusCode::from_u16(c).expect("status"));
        for c in [408, 429, 500, 502, 503, 504, 599] {
            assert!(r(c), "{c}");
        }
        for c in [400, 401, 403, 404, 413, 501, 505, 301] {
            assert!(!r(c), "{c}");
        }
    }

    #[test]
    fn config_debug_hides_the_key() {
        let cfg = SenderConfig::new(DEFAULT_API_URL, WriteKey::new("sekrit-123"));
        let text = format!("{cfg:?}");
        assert!(!text.contains("sekrit-123"), "{text}");
        crate::crypto::install_for_tests();
        let sender = Sender::new(cfg, SenderMetrics::default()).expect("sender");
        assert!(!format!("{sender:?}").contains("sekrit-123"));
        assert_eq!(sender.endpoint(), "https://api.segment.io/v1/batch");
    }
}
