//! The sender's Prometheus metrics. Labels only take values from fixed sets.

use super::batch::{DropReason, Dropped};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Label of `events_dropped`: `too_large` or `unserializable`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The [`DropReason`] as text.
    pub reason: &'static str,
}

/// Label of `send_errors`: an HTTP status code, or `connect`, `timeout`, `body`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// The status code or the transport failure kind.
    pub status: String,
}

#[derive(Debug)]
struct Inner {
    events_sent: Counter,
    events_dropped: Family<ReasonLabel, Counter>,
    batches_sent: Counter,
    batch_bytes: Histogram,
    send_errors: Family<StatusLabel, Counter>,
    send_retries: Counter,
}

/// Counters of the sender. Cheap to clone: clones share the same metrics.
#[derive(Clone, Debug)]
pub struct SenderMetrics(Arc<Inner>);

impl Default for SenderMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SenderMetrics {
    /// Fresh metrics, not yet registered.
    pub fn new() -> Self {
        let buckets = [
            1_000.0, 10_000.0, 50_000.0, 100_000.0, 200_000.0, 300_000.0, 400_000.0, 475_000.0,
        ];
        Self(Arc::new(Inner {
            events_sent: Counter::default(),
            events_dropped: Family::default(),
            batches_sent: Counter::default(),
            batch_bytes: Histogram::new(buckets),
            send_errors: Family::default(),
            send_retries: Counter::default(),
        }))
    }

    /// Registers the metrics in `registry` (the caller's sub-registry for the sender):
    /// `events_sent`, `events_dropped{reason}`, `batches_sent`, `batch_bytes`,
    /// `send_errors{status}`, `send_retries`.
    pub fn register(&self, registry: &mut Registry) {
        let m = &self.0;
        registry.register(
            "events_sent",
            "Events in batches Segment answered 2xx to",
            m.events_sent.clone(),
        );
        registry.register(
            "events_dropped",
            "Events never sent, by reason",
            m.events_dropped.clone(),
        );
        registry.register(
            "batches_sent",
            "Batches Segment answered 2xx to",
            m.batches_sent.clone(),
        );
        registry.register(
            "batch_bytes",
            "Size of the request bodies Segment accepted, in bytes",
            m.batch_bytes.clone(),
        );
        registry.register(
            "send_errors",
            "Failed requests, by HTTP status or connect/timeout/body",
            m.send_errors.clone(),
        );
        registry.register(
            "send_retries",
            "Requests repeated after a retryable failure",
            m.send_retries.clone(),
        );
    }

    /// Counts events the batching dropped.
    pub fn record_dropped(&self, dropped: &[Dropped]) {
        for d in dropped {
            self.dropped(d.reason).inc();
        }
    }

    pub(crate) fn record_sent(&self, events: usize, body_bytes: usize) {
        self.0.events_sent.inc_by(events as u64);
        self.0.batches_sent.inc();
        self.0.batch_bytes.observe(body_bytes as f64);
    }

    pub(crate) fn record_error(&self, status: String) {
        self.0
            .send_errors
            .get_or_create(&StatusLabel { status })
            .inc();
    }

    pub(crate) fn record_retry(&self) {
        self.0.send_retries.inc();
    }

    pub(crate) fn dropped(&self, reason: DropReason) -> Counter {
        self.0
            .events_dropped
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .clone()
    }

    /// `events_sent`.
    pub fn events_sent(&self) -> u64 {
        self.0.events_sent.get()
    }

    /// `events_dropped{reason}`.
    pub fn events_dropped(&self, reason: DropReason) -> u64 {
        self.dropped(reason).get()
    }

    /// `batches_sent`.
    pub fn batches_sent(&self) -> u64 {
        self.0.batches_sent.get()
    }

    /// `send_errors{status}`, `status` being a code (`"503"`) or `connect`/`timeout`/`body`.
    pub fn send_errors(&self, status: &str) -> u64 {
        self.0
            .send_errors
            .get_or_create(&StatusLabel {
                status: status.to_owned(),
            })
            .get()
    }

    /// `send_retries`.
    pub fn send_retries(&self) -> u64 {
        self.0.send_retries.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_encodes() {
        let metrics = SenderMetrics::new();
        let mut registry = Registry::default();
        metrics.register(registry.sub_registry_with_prefix("segment"));
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
