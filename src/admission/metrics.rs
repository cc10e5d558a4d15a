//! The webhook's metrics, registered under `konflux_telemetry_admission_*`. Labels come from
//! fixed sets (operation, kind, outcome): never a user, a name or a namespace.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::metrics::{OutcomeLabel, label_sets, metric_set};

/// What became of one admission request. A metric label, so a fixed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// An observation was handed to the core.
    Observed,
    /// A dry-run request: allowed, nothing observed.
    DryRun,
    /// Well-formed, but for an object without events (a Namespace that is not a tenant, a
    /// Konflux CR not named `konflux`).
    Ignored,
    /// A kind, operation or subresource the webhook is not registered for (a configuration
    /// that sends more than it should): allowed, logged.
    Unexpected,
    /// The object could not be read (missing uid, wrong field type...): allowed, logged.
    Undecodable,
    /// The core's queue was full: allowed, the observation is lost (the watch still sees
    /// the object).
    Dropped,
    /// Not an AdmissionReview at all: answered 400.
    BadRequest,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Observed,
        Outcome::DryRun,
        Outcome::Ignored,
        Outcome::Unexpected,
        Outcome::Undecodable,
        Outcome::Dropped,
        Outcome::BadRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Observed => "observed",
            Outcome::DryRun => "dry_run",
            Outcome::Ignored => "ignored",
            Outcome::Unexpected => "unexpected",
            Outcome::Undecodable => "undecodable",
            Outcome::Dropped => "dropped",
            Outcome::BadRequest => "bad_request",
        }
    }
}

label_sets! {
    /// Labels of `requests`.
    RequestLabels {
        /// `CREATE`, `DELETE`, `UPDATE`, `CONNECT`, or `other`.
        operation,
        /// `PipelineRun`, `Component`, `Namespace`, `Konflux`, or `other`.
        kind,
        /// An [`Outcome`] as text.
        outcome,
    }
}

metric_set! {
    /// Requests, latency, certificate reloads and TLS failures of the admission webhook.
    pub struct AdmissionMetrics {
        /// Admission requests by operation, kind and outcome.
        requests: Family<RequestLabels, Counter> =>
            "Admission requests by operation, kind and outcome",
        /// Time from a request's headers to its answer, body reading included (buckets from
        /// 50 µs to ~100 ms).
        request_duration_seconds: Histogram =
            Histogram::new(exponential_buckets(0.000_05, 2.0, 12)) =>
            "Time from an admission request's headers to its answer",
        /// Serving certificate (re)loads by outcome (`applied`, `rejected`).
        certificate_reloads: Family<OutcomeLabel, Counter> =>
            "Serving certificate loads by outcome",
        /// Connections whose TLS handshake failed (a client not trusting the certificate, no
        /// certificate loaded yet, a port scan...).
        tls_handshake_failures: Counter => "Webhook connections whose TLS handshake failed",
    }
}

impl AdmissionMetrics {
    pub fn count(&self, operation: &'static str, kind: &'static str, outcome: Outcome) {
        self.requests
            .get_or_create(&RequestLabels {
                operation,
                kind,
                outcome: outcome.as_str(),
            })
            .inc();
    }

    pub fn certificate_reload(&self, outcome: &'static str) {
        self.certificate_reloads
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }
}
