//! The daemon's Prometheus metrics: one registry (prefix `konflux_telemetry`) with a
//! sub-registry per component. Label values come from fixed sets only (event names, kinds,
//! sources, reasons, status codes): never a name, a namespace or a user.

use crate::events::{EventName, Kind};
use crate::observation::Source;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub event: &'static str,
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SkipLabels {
    pub kind: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// Capture, buffer, flush and config metrics of the daemon's core.
#[derive(Clone, Debug)]
pub struct CoreMetrics {
    /// New events entering the buffer, by event name and capture path.
    pub events_produced: Family<EventLabels, Counter>,
    /// Sightings of events produced before (a relist, a sweep, admission and watch both).
    pub events_deduplicated: Family<EventLabels, Counter>,
    /// Events not produced because their time lies before the lookback.
    pub events_too_old: Family<EventLabels, Counter>,
    /// Objects that could not be read, by kind and reason.
    pub objects_skipped: Family<SkipLabels, Counter>,
    /// Events waiting in the buffer.
    pub events_buffered: Gauge,
    /// Events dropped from the buffer before they could be sent, by reason.
    pub events_dropped: Family<ReasonLabel, Counter>,
    /// Watch streams that failed and were restarted, by kind.
    pub watch_restarts: Family<KindLabel, Counter>,
    /// Flushes by outcome (`ok`, `partial`, `failed`, `no_write_key`).
    pub flushes: Family<OutcomeLabel, Counter>,
    pub flush_duration_seconds: Histogram,
    /// Unix time of the last flush that left nothing behind.
    pub last_successful_flush: Gauge,
    /// ConfigMap reloads by outcome (`applied`, `rejected`).
    pub config_reloads: Family<OutcomeLabel, Counter>,
    /// 1 while telemetry is on (sending), 0 while it is off or not known yet.
    pub enabled: Gauge,
}

impl Default for CoreMetrics {
    fn default() -> Self {
        Self {
            events_produced: Family::default(),
            events_deduplicated: Family::default(),
            events_too_old: Family::default(),
            objects_skipped: Family::default(),
            events_buffered: Gauge::default(),
            events_dropped: Family::default(),
            watch_restarts: Family::default(),
            flushes: Family::default(),
            flush_duration_seconds: Histogram::new(exponential_buckets(0.001, 4.0, 10)),
            last_successful_flush: Gauge::default(),
            config_reloads: Family::default(),
            enabled: Gauge::default(),
        }
    }
}

impl CoreMetrics {
    pub fn event(name: EventName, source: Source) -> EventLabels {
        EventLabels {
            event: name.as_str(),
            source: source.as_str(),
        }
    }

    pub fn skipped(&self, kind: Kind, reason: &'static str) {
        self.objects_skipped
            .get_or_create(&SkipLabels {
                kind: kind.as_str(),
                reason,
            })
            .inc();
    }

    pub fn register(&self, capture: &mut Registry) {
        capture.register(
            "events_produced",
            "New events entering the buffer",
            self.events_produced.clone(),
        );
        capture.register(
            "events_deduplicated",
            "Sightings of events already produced",
            self.events_deduplicated.clone(),
        );
        capture.register(
            "events_too_old",
            "Events not produced because they lie before the lookback",
            self.events_too_old.clone(),
        );
        capture.register(
            "objects_skipped",
            "Objects that could not be read",
            self.objects_skipped.clone(),
        );
        capture.register(
            "watch_restarts",
            "Watch streams restarted after an error",
            self.watch_restarts.clone(),
        );
        capture.register(
            "events_buffered",
            "Events waiting to be sent",
            self.events_buffered.clone(),
        );
        capture.register(
            "buffer_events_dropped",
            "Events dropped from the buffer before they could be sent",
            self.events_dropped.clone(),
        );
        capture.register("flushes", "Flushes by outcome", self.flushes.clone());
        capture.register(
            "flush_duration_seconds",
            "Time a flush took, retries included",
            self.flush_duration_seconds.clone(),
        );
        capture.register(
            "last_successful_flush_timestamp_seconds",
            "Unix time of the last flush that sent everything it held",
            self.last_successful_flush.clone(),
        );
        capture.register(
            "config_reloads",
            "ConfigMap reloads by outcome",
            self.config_reloads.clone(),
        );
        capture.register(
            "enabled",
            "1 while telemetry is on, 0 while it is off (Konflux CR or telemetryEnabled) or not known yet",
            self.enabled.clone(),
        );
    }
}

/// Builds the one registry: `konflux_telemetry_*` for the core, `konflux_telemetry_segment_*`
/// for the sender, and what else registers a sub-registry.
pub fn registry(
    core: &CoreMetrics,
    sender: &crate::segment::SenderMetrics,
    sweep: &crate::sweep::SweepMetrics,
) -> Registry {
    let mut registry = Registry::with_prefix("konflux_telemetry");
    core.register(&mut registry);
    sender.register(registry.sub_registry_with_prefix("segment"));
    sweep.register(registry.sub_registry_with_prefix("sweep"));
    registry
}
