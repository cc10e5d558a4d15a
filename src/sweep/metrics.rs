//! The sweep's Prometheus metrics, registered under `konflux_telemetry_sweep_*`. Labels
//! only take values from fixed sets; every value is served from the start (at 0).

use super::{ErrorKind, WindowKind};
use crate::metrics::{KindLabel, OutcomeLabel, family_with, label_sets, metric_set};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

label_sets! {
    /// Label of `completed`: `full` or `incremental`.
    WindowLabel { window }
}

metric_set! {
    /// The sweep's metrics.
    pub struct SweepMetrics {
        /// Sweeps by outcome: `ok` or `error`.
        sweeps: Family<OutcomeLabel, Counter> =
            family_with(["ok", "error"].map(|outcome| OutcomeLabel { outcome })) =>
            "Reconciliation sweeps over Tekton Results, by outcome",
        /// Sweeps that read their whole window, by [`WindowKind`].
        completed: Family<WindowLabel, Counter> =
            family_with([WindowKind::Full, WindowKind::Incremental].map(|w| WindowLabel {
                window: w.as_str(),
            })) =>
            "Sweeps that read their whole window, by window: the full lookback, or incremental from the watermark",
        /// Records read from Tekton Results.
        records_read: Counter => "Records read from Tekton Results by the sweep",
        /// Bytes of listing pages received from Tekton Results.
        bytes_received: Counter =>
            "Bytes of listing pages received from Tekton Results by the sweep",
        /// Failed page requests and undecodable records, by [`ErrorKind`].
        errors: Family<KindLabel, Counter> =
            family_with(ErrorKind::ALL.map(|kind| KindLabel { kind: kind.as_str() })) =>
            "Sweep failures (whole pages) and undecodable records, by kind",
        /// Duration of a sweep.
        sweep_duration_seconds: Histogram =
            Histogram::new([0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0]) =>
            "Duration of a reconciliation sweep",
    }
}

impl SweepMetrics {
    /// Sweeps that ended with `outcome` (`ok` or `error`).
    pub fn sweeps(&self, outcome: &'static str) -> u64 {
        self.sweeps.get_or_create(&OutcomeLabel { outcome }).get()
    }

    /// Sweeps of `window` that read all of it.
    pub fn completed(&self, window: WindowKind) -> u64 {
        self.completed
            .get_or_create(&WindowLabel {
                window: window.as_str(),
            })
            .get()
    }

    /// `errors{kind}`.
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .get()
    }

    /// Counts a sweep of `window` that ended with `outcome`, and took `seconds`.
    pub(crate) fn record_sweep(
        &self,
        window: WindowKind,
        outcome: &'static str,
        complete: bool,
        seconds: f64,
    ) {
        self.sweep_duration_seconds.observe(seconds);
        self.sweeps.get_or_create(&OutcomeLabel { outcome }).inc();
        if complete {
            self.completed
                .get_or_create(&WindowLabel {
                    window: window.as_str(),
                })
                .inc();
        }
    }

    /// Counts a page of `read` records and `bytes` bytes.
    pub(crate) fn record_page(&self, read: usize, bytes: usize) {
        self.records_read.inc_by(read as u64);
        self.bytes_received.inc_by(bytes as u64);
    }

    pub(crate) fn error(&self, kind: ErrorKind) {
        self.error_by(kind, 1);
    }

    pub(crate) fn error_by(&self, kind: ErrorKind, n: u64) {
        self.errors
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .inc_by(n);
    }
}
