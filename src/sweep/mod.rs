//! The reconciliation sweep: every `interval`, list the PipelineRun records Tekton Results
//! holds that changed within the last `lookback`, and hand each to the core as an
//! [`Observation`] from [`Source::Sweep`]. It recovers what the watch missed (the daemon
//! was down, a watch gap, a PipelineRun pruned before it was seen); the core de-duplicates.
//!
//! One sweep at start, then one every `interval`; both settings come from a
//! `watch::Receiver<SweepSettings>` so configuration changes apply without a restart. A
//! failed sweep is logged and counted and the next one retries; nothing here panics or
//! stops anything else.
//!
//! Sweeps are incremental: a [`Watermark`] keeps what the complete sweeps so far have
//! read ([`Coverage`]: every record updated from one instant to another), and the next
//! sweep reads only the records updated since its end minus a small [`overlap`]
//! ([`window`]). Without a watermark (the first sweep, no saved state), or with one that
//! no longer reaches back to the lookback's start (a long outage, a longer lookback), a
//! sweep reads the whole lookback. Only a complete sweep moves the watermark; the daemon
//! keeps it with the record of produced events (`src/state/`), so a restart resumes.

pub mod metrics;
pub mod results;
pub mod start;

pub use metrics::SweepMetrics;
pub use start::SweepStart;

pub use results::{
    ErrorKind, Found, Override, Page, RecordOutcome, RecordPages, Resolver, ResultsClient,
    ResultsConfig, SweepError, TlsPolicy, TokenSource, clamp_page_size, parse_addr,
};

use crate::pipeline::observation::{Observation, ObservationTx, Source};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How often to sweep and how far back. Live settings: send new values on the watch channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepSettings {
    /// Time from the start of one sweep to the start of the next. Default 1 h.
    pub interval: Duration,
    /// How far back each sweep looks, by the records' update time. Default 4 h.
    pub lookback: Duration,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(3600),
            lookback: Duration::from_secs(4 * 3600),
        }
    }
}

/// Shortest interval honoured, so a zero from a bad configuration cannot spin.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Longest overlap between consecutive incremental sweeps.
pub const MAX_OVERLAP: Duration = Duration::from_secs(120);

/// How far before the last complete sweep's start the next one reads: a tenth of the
/// interval, at most [`MAX_OVERLAP`] (2 min at the default 1 h interval). It covers
/// records whose update lands while a sweep reads, and clock skew between the daemon and
/// the Results server (which stamps `update_time`).
pub fn overlap(interval: Duration) -> Duration {
    (interval / 10).min(MAX_OVERLAP)
}

/// What the complete sweeps so far have read: every record last updated from `from` to
/// `to` (by the daemon's clock at each sweep's start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coverage {
    pub from: jiff::Timestamp,
    pub to: jiff::Timestamp,
}

/// Whether a sweep reads the whole lookback or only what changed since the last one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    Full,
    Incremental,
}

impl WindowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Full => "full",
            WindowKind::Incremental => "incremental",
        }
    }
}

/// The records one sweep reads: those updated at or after `since`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub since: jiff::Timestamp,
    pub kind: WindowKind,
}

fn minus(t: jiff::Timestamp, d: Duration) -> jiff::Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_sub(d).ok())
        .unwrap_or(jiff::Timestamp::MIN)
}

/// The window of a sweep starting at `now`: from the watermark minus `overlap` when the
/// coverage reaches back to the lookback's start and that is later than it, else the
/// whole lookback. A coverage ending after `now` (the clock went back) is not trusted.
pub fn window(
    now: jiff::Timestamp,
    lookback: Duration,
    overlap: Duration,
    coverage: Option<Coverage>,
) -> Window {
    let full = minus(now, lookback);
    match coverage {
        Some(c) if c.from <= full && c.to <= now && minus(c.to, overlap) > full => Window {
            since: minus(c.to, overlap),
            kind: WindowKind::Incremental,
        },
        _ => Window {
            since: full,
            kind: WindowKind::Full,
        },
    }
}

/// The coverage after a complete sweep of `window` that started at `started`.
pub fn covered(previous: Option<Coverage>, window: Window, started: jiff::Timestamp) -> Coverage {
    let from = match (window.kind, previous) {
        (WindowKind::Incremental, Some(p)) => p.from,
        _ => window.since,
    };
    Coverage { from, to: started }
}

/// The sweep's watermark, shared between the sweeper (which moves it after each complete
/// sweep) and the daemon (which loads and saves it). Cheap to clone: clones share it.
#[derive(Clone, Debug, Default)]
pub struct Watermark(Arc<Mutex<Option<Coverage>>>);

impl Watermark {
    pub fn new(coverage: Option<Coverage>) -> Self {
        Self(Arc::new(Mutex::new(coverage)))
    }

    pub fn get(&self) -> Option<Coverage> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set(&self, coverage: Option<Coverage>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = coverage;
    }
}

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub pages: usize,
    /// Records the server returned.
    pub records_read: usize,
    /// Bytes of page bodies received.
    pub bytes: usize,
    /// Observations handed to the core.
    pub delivered: usize,
    pub undecodable: usize,
    /// The page request that ended the sweep early, if any.
    pub error: Option<ErrorKind>,
    /// The core's receiver was gone: the daemon is stopping.
    pub receiver_closed: bool,
}

impl SweepReport {
    /// Every page of the window was read and handed on: the watermark may move.
    pub fn complete(&self) -> bool {
        self.error.is_none() && !self.receiver_closed
    }
}

/// Runs sweeps: [`Sweeper::run`] for the daemon, [`Sweeper::sweep_once`] for one.
pub struct Sweeper {
    client: ResultsClient,
    settings: watch::Receiver<SweepSettings>,
    tx: ObservationTx,
    metrics: SweepMetrics,
    watermark: Watermark,
}

impl Sweeper {
    pub fn new(
        client: ResultsClient,
        settings: watch::Receiver<SweepSettings>,
        tx: ObservationTx,
        metrics: SweepMetrics,
    ) -> Self {
        Self {
            client,
            settings,
            tx,
            metrics,
            watermark: Watermark::default(),
        }
    }

    /// Uses (and moves) `watermark`, e.g. one loaded from saved state.
    pub fn with_watermark(mut self, watermark: Watermark) -> Self {
        self.watermark = watermark;
        self
    }

    pub fn watermark(&self) -> &Watermark {
        &self.watermark
    }

    /// Sweeps now, then every `interval` (from the start of one sweep to the start of the
    /// next; a changed interval reschedules the next sweep, a changed lookback applies to
    /// it), each over its [`window`], until `shutdown` completes or the core's receiver is
    /// dropped. A sweep in progress is abandoned at shutdown (the watermark stays). Pass e.g. `token.cancelled_owned()` of a
    /// `tokio_util` `CancellationToken`, or `async move { let _ = rx.changed().await; }`.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut settings_open = true;
        loop {
            let settings = *self.settings.borrow_and_update();
            let started = Instant::now();
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                report = self.sweep_next(settings) => {
                    if report.receiver_closed {
                        tracing::info!("observation channel closed; sweep stopping");
                        return;
                    }
                }
            }
            let mut next = started + settings.interval.max(MIN_INTERVAL);
            loop {
                tokio::select! {
                    biased;
                    () = &mut shutdown => return,
                    () = tokio::time::sleep_until(next) => break,
                    changed = self.settings.changed(), if settings_open => {
                        if changed.is_err() {
                            // Sender gone: keep the last settings.
                            settings_open = false;
                            continue;
                        }
                        let s = *self.settings.borrow_and_update();
                        next = started + s.interval.max(MIN_INTERVAL);
                        tracing::info!(
                            interval_s = s.interval.as_secs(),
                            lookback_s = s.lookback.as_secs(),
                            "sweep settings changed"
                        );
                    }
                }
            }
        }
    }

    /// The next sweep of [`Sweeper::run`]: over its [`window`] (from the watermark, or
    /// the whole lookback), only runs started or completed within the lookback (filtered
    /// by the server), moving the watermark if it completes.
    pub async fn sweep_next(&self, settings: SweepSettings) -> SweepReport {
        let now = jiff::Timestamp::now();
        let previous = self.watermark.get();
        let w = window(now, settings.lookback, overlap(settings.interval), previous);
        let report = self
            .sweep_window(w, Some(minus(now, settings.lookback)))
            .await;
        if report.complete() {
            self.watermark.set(Some(covered(previous, w, now)));
        }
        report
    }

    /// One sweep over the records updated within `lookback` of now, whatever the
    /// watermark (which it leaves alone). Never fails: errors are logged, counted, and in
    /// the report.
    pub async fn sweep_once(&self, lookback: Duration) -> SweepReport {
        self.sweep_since(minus(jiff::Timestamp::now(), lookback))
            .await
    }

    /// One sweep over the records updated at or after `since`, counted in the metrics.
    pub async fn sweep_since(&self, since: jiff::Timestamp) -> SweepReport {
        self.sweep_window(
            Window {
                since,
                kind: WindowKind::Full,
            },
            None,
        )
        .await
    }

    async fn sweep_window(
        &self,
        window: Window,
        events_after: Option<jiff::Timestamp>,
    ) -> SweepReport {
        let since = window.since;
        let started = std::time::Instant::now();
        let report = self.sweep_pages(since, events_after).await;
        let elapsed = started.elapsed();
        let outcome = if report.error.is_some() {
            "error"
        } else {
            "ok"
        };
        self.metrics.record_sweep(
            window.kind,
            outcome,
            report.complete(),
            elapsed.as_secs_f64(),
        );
        let window_s = jiff::Timestamp::now()
            .duration_since(since)
            .as_secs()
            .max(0);
        tracing::info!(
            outcome,
            window = window.kind.as_str(),
            window_s,
            pages = report.pages,
            records_read = report.records_read,
            bytes = report.bytes,
            delivered = report.delivered,
            undecodable = report.undecodable,
            duration_ms = elapsed.as_millis() as u64,
            "sweep finished"
        );
        report
    }

    async fn sweep_pages(
        &self,
        since: jiff::Timestamp,
        events_after: Option<jiff::Timestamp>,
    ) -> SweepReport {
        let mut pages = match events_after {
            Some(after) => self.client.records_since_with_events_after(since, after),
            None => self.client.records_since(since),
        };
        let report = self.read_pages(&mut pages).await;
        let refused = pages.refused_too_large();
        if refused > 0 {
            self.metrics
                .error_by(ErrorKind::PageTooLarge, refused as u64);
        }
        report
    }

    async fn read_pages(&self, pages: &mut RecordPages<'_>) -> SweepReport {
        let mut report = SweepReport::default();
        while let Some(page) = pages.next_page().await {
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    let kind = e.kind();
                    self.metrics.error(kind);
                    report.error = Some(kind);
                    tracing::warn!(
                        kind = kind.as_str(),
                        error = %e,
                        "sweep failed; the next sweep retries"
                    );
                    break;
                }
            };
            report.pages += 1;
            report.records_read += page.read;
            report.bytes += page.bytes;
            self.metrics.record_page(page.read, page.bytes);
            for record in page.records {
                match record {
                    RecordOutcome::Object(object) => {
                        let obs = Observation {
                            source: Source::Sweep,
                            object,
                            actor: None,
                        };
                        if self.tx.send(obs).await.is_err() {
                            report.receiver_closed = true;
                            return report;
                        }
                        report.delivered += 1;
                    }
                    RecordOutcome::NoEvents => {}
                    RecordOutcome::Undecodable(reason) => {
                        report.undecodable += 1;
                        self.metrics.error(ErrorKind::UndecodableRecord);
                        tracing::debug!(reason, "record skipped");
                    }
                }
            }
        }
        if report.undecodable > 0 {
            tracing::warn!(
                count = report.undecodable,
                "sweep skipped records whose value is not a readable PipelineRun"
            );
        }
        report
    }

    pub fn metrics(&self) -> &SweepMetrics {
        &self.metrics
    }

    pub fn client(&self) -> &ResultsClient {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Object;
    use results::fake::*;
    use std::sync::Arc;

    fn t(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    const H: u64 = 3600;

    #[test]
    fn the_overlap_is_a_tenth_of_the_interval_at_most_two_minutes() {
        assert_eq!(overlap(Duration::from_secs(H)), MAX_OVERLAP);
        assert_eq!(overlap(Duration::from_secs(60)), Duration::from_secs(6));
        assert_eq!(overlap(Duration::from_secs(10 * H)), MAX_OVERLAP);
    }

    #[test]
    fn without_a_watermark_a_sweep_reads_the_whole_lookback() {
        let now = t("2026-01-01T12:00:00Z");
        let w = window(now, Duration::from_secs(4 * H), MAX_OVERLAP, None);
        assert_eq!(
            w,
            Window {
                since: t("2026-01-01T08:00:00Z"),
                kind: WindowKind::Full
            }
        );
    }

    #[test]
    fn after_a_complete_sweep_the_next_reads_from_its_start_minus_the_overlap() {
        let lookback = Duration::from_secs(4 * H);
        let first = window(t("2026-01-01T12:00:00Z"), lookback, MAX_OVERLAP, None);
        let c = covered(None, first, t("2026-01-01T12:00:00Z"));
        assert_eq!(
            c,
            Coverage {
                from: t("2026-01-01T08:00:00Z"),
                to: t("2026-01-01T12:00:00Z")
            }
        );
        let second = window(t("2026-01-01T13:00:00Z"), lookback, MAX_OVERLAP, Some(c));
        assert_eq!(
            second,
            Window {
                since: t("2026-01-01T11:58:00Z"),
                kind: WindowKind::Incremental
            }
        );
        // The coverage grows at its end and keeps its start.
        let c2 = covered(Some(c), second, t("2026-01-01T13:00:00Z"));
        assert_eq!(c2.from, c.from);
        assert_eq!(c2.to, t("2026-01-01T13:00:00Z"));
    }

    /// The window of a sweep at `now` with a 4 h lookback, after complete sweeps that
    /// covered `from` to `to`.
    fn window_after(now: &str, from: &str, to: &str) -> Window {
        let c = Coverage {
            from: t(from),
            to: t(to),
        };
        window(t(now), Duration::from_secs(4 * H), MAX_OVERLAP, Some(c))
    }

    #[test]
    fn a_coverage_that_cannot_be_trusted_means_the_whole_lookback() {
        // (now, covered from, covered to, the lookback's start)
        let cases = [
            // A watermark older than the lookback: down for 8 h.
            (
                "2026-01-01T12:00:00Z",
                "2026-01-01T00:00:00Z",
                "2026-01-01T04:00:00Z",
                "2026-01-01T08:00:00Z",
            ),
            // Read with a 1 h lookback; now the lookback is 4 h: 3 h were never read.
            (
                "2026-01-01T12:30:00Z",
                "2026-01-01T11:00:00Z",
                "2026-01-01T12:00:00Z",
                "2026-01-01T08:30:00Z",
            ),
            // A watermark in the future (the clock went back) is not trusted.
            (
                "2026-01-01T12:00:00Z",
                "2026-01-01T08:00:00Z",
                "2026-01-01T13:00:00Z",
                "2026-01-01T08:00:00Z",
            ),
        ];
        for (now, from, to, start) in cases {
            let full = Window {
                since: t(start),
                kind: WindowKind::Full,
            };
            assert_eq!(
                window_after(now, from, to),
                full,
                "at {now}, {from} to {to}"
            );
        }
    }

    #[test]
    fn a_watermark_just_within_the_lookback_is_incremental() {
        // The watermark minus the overlap is still inside the lookback.
        let w = window_after(
            "2026-01-01T07:57:00Z",
            "2026-01-01T00:00:00Z",
            "2026-01-01T04:00:00Z",
        );
        assert_eq!(w.kind, WindowKind::Incremental);
        assert_eq!(w.since, t("2026-01-01T03:58:00Z"));
    }

    // The Sweeper over a fake Results server (`results::fake`).

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
}
