//! The reconciliation sweep: every `interval`, list the PipelineRun records Tekton Results
//! holds that changed within the last `lookback`, and hand each to the core as an
//! [`Observation`] from [`Source::Sweep`]. It recovers what the watch missed (the daemon
//! was down, a watch gap, a PipelineRun pruned before it was seen); the core de-duplicates.
//!
//! One sweep at start, then one every `interval`; both settings come from a
//! `watch::Receiver<SweepSettings>` so configuration changes apply without a restart. A
//! failed sweep is logged and counted and the next one retries; nothing here panics or
//! stops anything else.

pub mod results;

pub use results::{
    ErrorKind, Page, RecordOutcome, RecordPages, ResultsClient, ResultsConfig, SweepError,
    TokenSource,
};

use crate::observation::{Observation, ObservationTx, Source};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::sync::Arc;
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

/// Label of `sweeps`: `ok` or `error`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// Label of `errors`: an [`ErrorKind`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Debug)]
struct Inner {
    sweeps: Family<OutcomeLabel, Counter>,
    records_read: Counter,
    errors: Family<KindLabel, Counter>,
    sweep_duration_seconds: Histogram,
}

/// The sweep's metrics. Cheap to clone: clones share the same metrics.
#[derive(Clone, Debug)]
pub struct SweepMetrics(Arc<Inner>);

impl Default for SweepMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SweepMetrics {
    pub fn new() -> Self {
        let buckets = [0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0];
        let m = Self(Arc::new(Inner {
            sweeps: Family::default(),
            records_read: Counter::default(),
            errors: Family::default(),
            sweep_duration_seconds: Histogram::new(buckets),
        }));
        // Every label value shows from the start (at 0).
        for outcome in ["ok", "error"] {
            let _ = m.0.sweeps.get_or_create(&OutcomeLabel { outcome });
        }
        for kind in ErrorKind::ALL {
            let _ = m.0.errors.get_or_create(&KindLabel {
                kind: kind.as_str(),
            });
        }
        m
    }

    /// Registers in `registry` (the caller's sub-registry for the sweep):
    /// `sweeps{outcome}`, `records_read`, `errors{kind}`, `sweep_duration_seconds`.
    pub fn register(&self, registry: &mut Registry) {
        let m = &self.0;
        registry.register(
            "sweeps",
            "Reconciliation sweeps over Tekton Results, by outcome",
            m.sweeps.clone(),
        );
        registry.register(
            "records_read",
            "Records read from Tekton Results by the sweep",
            m.records_read.clone(),
        );
        registry.register(
            "errors",
            "Sweep failures (whole pages) and undecodable records, by kind",
            m.errors.clone(),
        );
        registry.register(
            "sweep_duration_seconds",
            "Duration of a reconciliation sweep",
            m.sweep_duration_seconds.clone(),
        );
    }

    /// Sweeps that ended with `outcome` (`ok` or `error`).
    pub fn sweeps(&self, outcome: &'static str) -> u64 {
        self.0.sweeps.get_or_create(&OutcomeLabel { outcome }).get()
    }

    pub fn records_read(&self) -> u64 {
        self.0.records_read.get()
    }

    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.0
            .errors
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .get()
    }

    fn error(&self, kind: ErrorKind) {
        self.0
            .errors
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .inc();
    }
}

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub pages: usize,
    /// Records the server returned.
    pub records_read: usize,
    /// Observations handed to the core.
    pub delivered: usize,
    pub undecodable: usize,
    /// The page request that ended the sweep early, if any.
    pub error: Option<ErrorKind>,
    /// The core's receiver was gone: the daemon is stopping.
    pub receiver_closed: bool,
}

/// Runs sweeps: [`Sweeper::run`] for the daemon, [`Sweeper::sweep_once`] for one.
pub struct Sweeper {
    client: ResultsClient,
    settings: watch::Receiver<SweepSettings>,
    tx: ObservationTx,
    metrics: SweepMetrics,
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
        }
    }

    /// Sweeps now, then every `interval` (from the start of one sweep to the start of the
    /// next; a changed interval reschedules the next sweep, a changed lookback applies to
    /// it), until `shutdown` completes or the core's receiver is dropped. A sweep in
    /// progress is abandoned at shutdown. Pass e.g. `token.cancelled_owned()` of a
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
                report = self.sweep_once(settings.lookback) => {
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

    /// One sweep over the records updated within `lookback` of now. Never fails: errors
    /// are logged, counted, and in the report.
    pub async fn sweep_once(&self, lookback: Duration) -> SweepReport {
        let since = jiff::Timestamp::now()
            .checked_sub(
                jiff::SignedDuration::try_from(lookback).unwrap_or(jiff::SignedDuration::MAX),
            )
            .unwrap_or(jiff::Timestamp::MIN);
        self.sweep_since(since).await
    }

    /// One sweep over the records updated at or after `since`, counted in the metrics.
    pub async fn sweep_since(&self, since: jiff::Timestamp) -> SweepReport {
        let started = std::time::Instant::now();
        let report = self.sweep_pages(since).await;
        let elapsed = started.elapsed();
        self.metrics
            .0
            .sweep_duration_seconds
            .observe(elapsed.as_secs_f64());
        let outcome = if report.error.is_some() {
            "error"
        } else {
            "ok"
        };
        self.metrics
            .0
            .sweeps
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        tracing::info!(
            endpoint = self.client.endpoint(),
            outcome,
            pages = report.pages,
            records_read = report.records_read,
            delivered = report.delivered,
            undecodable = report.undecodable,
            duration_ms = elapsed.as_millis() as u64,
            "sweep finished"
        );
        report
    }

    async fn sweep_pages(&self, since: jiff::Timestamp) -> SweepReport {
        let mut report = SweepReport::default();
        let mut pages = self.client.records_since(since);
        while let Some(page) = pages.next_page().await {
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    let kind = e.kind();
                    self.metrics.error(kind);
                    report.error = Some(kind);
                    tracing::warn!(
                        endpoint = self.client.endpoint(),
                        kind = kind.as_str(),
                        error = %e,
                        "sweep failed; the next sweep retries"
                    );
                    break;
                }
            };
            report.pages += 1;
            report.records_read += page.read;
            self.metrics.0.records_read.inc_by(page.read as u64);
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
