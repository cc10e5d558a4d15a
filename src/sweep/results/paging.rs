//! Paging and its guards: the filter text, page after page by `next_page_token`, and what
//! ends a listing whatever the server answers (the window's start, a page token seen
//! before, the page cap, the deadline, the page body cap with its smaller retries, a
//! refused time filter).

use super::client::{ResultsClient, TokenSource};
use super::decode::{DecodedPage, decode_page};
use super::error::SweepError;
use super::{MIN_PAGE_SIZE, Page};
use std::time::Duration;

/// The `data.type`s of PipelineRun records, from the table of watched kinds.
pub const PIPELINERUN_TYPES: &[&str] = crate::events::object::PIPELINE_RUN.results_data_types;

/// A page body larger than this is refused (`page_too_large`), so a misbehaving server
/// cannot make the daemon allocate without bound: 250 records of the 36 KB a Konflux
/// build record takes in a listing are 9 MB. After a refused page the same page is asked
/// again at half the size (down to [`MIN_PAGE_SIZE`]), so unusually large records slow
/// the sweep down rather than stop it.
pub const MAX_PAGE_BYTES: usize = 16 << 20;

/// Pages one sweep reads at most (`page_limit`): 2.5 million records at 250 a page.
pub const MAX_PAGES: usize = 10_000;

/// Longest one sweep may take, all pages together (`deadline`).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30 * 60);

/// The CEL filter on `data_type` sent with every listing: the PipelineRun types.
pub(super) fn data_type_filter() -> String {
    PIPELINERUN_TYPES
        .iter()
        .map(|t| format!("data_type == \"{t}\""))
        .collect::<Vec<_>>()
        .join(" || ")
}

impl ResultsClient {
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

    /// One page: its answer read up to the page body cap, decoded.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::results::fake::*;
    use crate::sweep::results::{ErrorKind, MAX_PAGE_TOKEN_BYTES};
    use std::sync::Arc;

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
    fn page_tokens_are_remembered_as_fixed_size_digests() {
        let long = "t".repeat(60_000);
        assert_eq!(token_digest(&long).len(), 16);
        assert_ne!(token_digest("a"), token_digest("b"));
        assert_eq!(token_digest(&long), token_digest(&long.clone()));
    }
}
