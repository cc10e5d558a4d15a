//! The sweep's Prometheus metrics, registered under `konflux_telemetry_sweep_*`. Labels
//! only take values from fixed sets; every value is served from the start (at 0).

use super::results::{Found, TlsPolicy};
use super::{ErrorKind, WindowKind};
use crate::metrics::{KindLabel, OutcomeLabel, family_with, label_sets, metric_set};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

label_sets! {
    /// Label of `completed`: `full` or `incremental`.
    WindowLabel { window }
    /// Label of `results_address`: [`Found`].
    FoundLabel { found }
    /// Label of `results_tls`: [`TlsPolicy`].
    PolicyLabel { policy }
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
        /// Where Tekton Results was found: 1 for the current [`Found`], 0 for the others
        /// (all 0 without a Results address).
        results_address: Family<FoundLabel, Gauge> =
            family_with(Found::ALL.map(|f| FoundLabel { found: f.as_str() })) =>
            "1 for where the sweep found Tekton Results: configured (the configured host resolves), discovered (a Tekton Results service name of Konflux's namespaces, the configured host does not resolve), none (no name resolves: no sweep)",
        /// What the Results client trusts: 1 for the current [`TlsPolicy`].
        results_tls: Family<PolicyLabel, Gauge> =
            family_with(TlsPolicy::LABELS.map(|policy| PolicyLabel { policy })) =>
            "1 for the TLS policy of the Tekton Results client (docs/security.md): ca_file, service_ca, in_cluster_unverified, system_roots, insecure, plain_http",
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

    /// `results_address{found}`: 1 when Results was last found so.
    pub fn results_address(&self, found: Found) -> i64 {
        self.results_address
            .get_or_create(&FoundLabel {
                found: found.as_str(),
            })
            .get()
    }

    /// `results_tls{policy}`.
    pub fn results_tls(&self, policy: &'static str) -> i64 {
        self.results_tls
            .get_or_create(&PolicyLabel { policy })
            .get()
    }

    /// Results was found so (and no longer otherwise).
    pub(crate) fn set_results_address(&self, found: Found) {
        for f in Found::ALL {
            let label = FoundLabel { found: f.as_str() };
            self.results_address
                .get_or_create(&label)
                .set(i64::from(f == found));
        }
    }

    /// The client trusts per `policy`.
    pub(crate) fn set_results_tls(&self, policy: &TlsPolicy) {
        for label in TlsPolicy::LABELS {
            self.results_tls
                .get_or_create(&PolicyLabel { policy: label })
                .set(i64::from(label == policy.as_str()));
        }
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
