//! The sender's Prometheus metrics, registered under `konflux_telemetry_segment_*`. Labels
//! only take values from fixed sets.

use crate::flush::batch::{DropReason, Dropped};
use crate::metrics::{OutcomeLabel, ReasonLabel, metric_set};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// Label of `send_errors`: an HTTP status code, or `connect`, `timeout`, `body`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// The status code or the transport failure kind.
    pub status: String,
}

metric_set! {
    /// Counters of the sender.
    pub struct SenderMetrics {
        /// Events in batches Segment accepted.
        events_sent: Counter => "Events in batches Segment answered 2xx to",
        /// Events never sent, by [`DropReason`].
        events_dropped: Family<ReasonLabel, Counter> => "Events never sent, by reason",
        /// Batches Segment accepted.
        batches_sent: Counter => "Batches Segment answered 2xx to",
        /// Size of the accepted request bodies.
        batch_bytes: Histogram = Histogram::new([
            1_000.0, 10_000.0, 50_000.0, 100_000.0, 200_000.0, 300_000.0, 400_000.0, 475_000.0,
        ]) => "Size of the request bodies Segment accepted, in bytes",
        /// Failed requests, by [`StatusLabel`].
        send_errors: Family<StatusLabel, Counter> =>
            "Failed requests, by HTTP status or connect/timeout/body",
        /// Requests repeated after a retryable failure.
        send_retries: Counter => "Requests repeated after a retryable failure",
        /// Reads of the Secret's folder that changed the credentials (`applied`) or could
        /// not be used (`rejected`, once until it reads again).
        credential_reloads: Family<OutcomeLabel, Counter> =>
            "Changes of the Segment Secret applied, or rejected and the last good kept",
    }
}

impl SenderMetrics {
    /// Counts events the batching dropped.
    pub fn record_dropped(&self, dropped: &[Dropped]) {
        for d in dropped {
            self.dropped(d.reason).inc();
        }
    }

    pub(crate) fn record_sent(&self, events: usize, body_bytes: usize) {
        self.events_sent.inc_by(events as u64);
        self.batches_sent.inc();
        self.batch_bytes.observe(body_bytes as f64);
    }

    pub(crate) fn record_error(&self, status: String) {
        self.send_errors
            .get_or_create(&StatusLabel { status })
            .inc();
    }

    pub(crate) fn record_retry(&self) {
        self.send_retries.inc();
    }

    /// The `events_dropped` counter of `reason`.
    pub(crate) fn dropped(&self, reason: DropReason) -> Counter {
        self.events_dropped
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .clone()
    }

    /// `events_dropped{reason}`.
    pub fn events_dropped(&self, reason: DropReason) -> u64 {
        self.dropped(reason).get()
    }

    /// `send_errors{status}`, `status` being a code (`"503"`) or `connect`/`timeout`/`body`.
    pub fn send_errors(&self, status: &str) -> u64 {
        self.send_errors
            .get_or_create(&StatusLabel {
                status: status.to_owned(),
            })
            .get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn registers_and_encodes() {
        let mut registry = Registry::default();
        let metrics =
            SenderMetrics::default().register(registry.sub_registry_with_prefix("segment"));
        metrics.record_sent(3, 1_234);
        metrics.record_error("503".into());
        metrics.record_retry();
        metrics.record_dropped(&[Dropped {
            name: "Heartbeat",
            message_id: "m".into(),
            bytes: 40_000,
            reason: DropReason::TooLarge,
        }]);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(text.contains("segment_events_sent_total 3"), "{text}");
        assert!(text.contains(r#"segment_events_dropped_total{reason="too_large"} 1"#));
        assert!(text.contains(r#"segment_send_errors_total{status="503"} 1"#));
        assert!(text.contains("segment_send_retries_total 1"));
        assert!(text.contains("segment_batch_bytes_sum 1234"));
        assert_eq!(metrics.events_dropped(DropReason::TooLarge), 1);
    }
}
