//! The pipeline's metrics (`konflux_telemetry_*` at the registry's root): events
//! produced and de-duplicated, the buffer, flushes; the watches' and the live settings'
//! counters, which share the root.

use super::observation::Source;
use crate::events::{EventName, Kind};
use crate::metrics::{EventLabels, KindLabel, OutcomeLabel, ReasonLabel, SkipLabels, metric_set};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

metric_set! {
    /// Capture, buffer, flush and config metrics of the daemon's core.
    pub struct CoreMetrics {
        /// New events entering the buffer, by event name and capture path.
        events_produced: Family<EventLabels, Counter> => "New events entering the buffer",
        /// Sightings of events produced before (a relist, a sweep, admission and watch both).
        events_deduplicated: Family<EventLabels, Counter> =>
            "Sightings of events already produced",
        /// Events not produced because their time lies before the lookback.
        events_too_old: Family<EventLabels, Counter> =>
            "Events not produced because they lie before the lookback",
        /// Objects that could not be read, by kind and reason.
        objects_skipped: Family<SkipLabels, Counter> => "Objects that could not be read",
        /// Watch streams that failed and were restarted, by kind.
        watch_restarts: Family<KindLabel, Counter> => "Watch streams restarted after an error",
        /// Events waiting in the buffer.
        events_buffered: Gauge => "Events waiting to be sent",
        /// Events dropped from the buffer before they could be sent, by reason.
        buffer_events_dropped: Family<ReasonLabel, Counter> =>
            "Events dropped from the buffer before they could be sent",
        /// Flushes by outcome: a [`crate::flush::FlushOutcome`] (`ok`, `partial`, `failed`,
        /// `no_write_key`, ...).
        flushes: Family<OutcomeLabel, Counter> => "Flushes by outcome",
        /// Time a flush took, from taking the batches to recording the delivery.
        flush_duration_seconds: Histogram = Histogram::new(exponential_buckets(0.001, 4.0, 10)) =>
            "Time a flush took, retries included",
        /// Unix time of the last flush that left nothing behind.
        last_successful_flush_timestamp_seconds: Gauge =>
            "Unix time of the last flush that sent everything it held",
        /// ConfigMap reloads by outcome (`applied`, `rejected`).
        config_reloads: Family<OutcomeLabel, Counter> => "ConfigMap reloads by outcome",
        /// 1 while telemetry is on (sending), 0 while it is off or not known yet.
        enabled: Gauge =>
            "1 while telemetry is on, 0 while it is off (Konflux CR, telemetryEnabled or the platform's default) or not known yet",
    }
}

impl CoreMetrics {
    pub fn event(name: EventName, source: Source) -> EventLabels {
        EventLabels {
            event: name.as_str(),
            source: source.as_str(),
        }
    }

    /// Counts an object of `kind` that could not be read.
    pub fn skipped(&self, kind: Kind, reason: &'static str) {
        self.objects_skipped
            .get_or_create(&SkipLabels {
                kind: kind.as_str(),
                reason,
            })
            .inc();
    }

    /// Counts `n` events dropped from the buffer for `reason`.
    pub fn dropped(&self, reason: &'static str, n: u64) {
        self.buffer_events_dropped
            .get_or_create(&ReasonLabel { reason })
            .inc_by(n);
    }
}
