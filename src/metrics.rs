//! The daemon's Prometheus metrics: one registry (prefix `konflux_telemetry`) with a
//! sub-registry per component, built in one place ([`Metrics::new`]). Each component
//! declares its metrics once with `metric_set!`: a plain struct of metric handles (clones
//! share the metrics), its `Default` and its `register`. Label values come from fixed sets
//! only (event names, kinds, sources, reasons, status codes): never a name, a namespace or
//! a user.

use crate::admission::AdmissionMetrics;
use crate::events::{EventName, Kind};
use crate::pipeline::observation::Source;
use crate::segment::SenderMetrics;
use crate::sweep::SweepMetrics;
use crate::switch::inputs::SwitchMetrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::hash::Hash;

/// Declares a component's metrics once: a `#[derive(Clone, Debug)]` struct with one pub
/// field per metric, its `Default` (the constructor given after `=`, else the metric's
/// own default), `register(self, registry) -> Self`, which registers every field under its
/// own name with the help text after `=>`, and `NAMES`, those names in order.
///
/// ```ignore
/// metric_set! {
///     /// What the set is about.
///     pub struct ExampleMetrics {
///         /// What the metric means.
///         events_sent: Counter => "Help text served with the metric",
///         batch_bytes: Histogram = Histogram::new([1.0, 10.0]) => "Help text",
///     }
/// }
/// ```
macro_rules! metric_set {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                $field:ident: $ty:ty $(= $init:expr)? => $help:literal
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        $vis struct $name {
            $(
                $(#[$field_meta])*
                pub $field: $ty,
            )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    $($field: $crate::metrics::metric_set!(@init $($init)?),)*
                }
            }
        }

        impl $name {
            /// The names the metrics are registered under, in order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Registers every metric in `registry` (the caller picks the sub-registry) and
            /// returns the handles.
            pub fn register(self, registry: &mut ::prometheus_client::registry::Registry) -> Self {
                $(registry.register(stringify!($field), $help, self.$field.clone());)*
                self
            }
        }
    };
    (@init) => {
        Default::default()
    };
    (@init $init:expr) => {
        $init
    };
}
pub(crate) use metric_set;

/// Declares label sets: structs whose fields are the labels, each a `&'static str`, so
/// that every value comes from a fixed set of texts in the code (never a name, a namespace
/// or a user).
macro_rules! label_sets {
    ($(
        $(#[$meta:meta])*
        $name:ident { $($(#[$field_meta:meta])* $field:ident),+ $(,)? }
    )*) => {$(
        $(#[$meta])*
        #[derive(
            Clone, Debug, Hash, PartialEq, Eq, ::prometheus_client::encoding::EncodeLabelSet,
        )]
        pub struct $name {
            $($(#[$field_meta])* pub $field: &'static str,)+
        }
    )*};
}
pub(crate) use label_sets;

/// A family with a sample (at 0) for each of `labels`, so that every value is served from
/// the start rather than from its first count.
pub fn family_with<L, M>(labels: impl IntoIterator<Item = L>) -> Family<L, M>
where
    L: Clone + Hash + Eq,
    M: Default,
{
    let family = Family::default();
    for label in labels {
        drop(family.get_or_create(&label));
    }
    family
}

label_sets! {
    /// Labels of the core's event counters: the event name and the capture path.
    EventLabels { event, source }
    /// A kind: of object (`watch_restarts`) or of sweep failure (`sweep_errors`).
    KindLabel { kind }
    /// Labels of `objects_skipped`: the kind of object and why it could not be read.
    SkipLabels { kind, reason }
    /// Why events were dropped: `buffer_full`, `telemetry_off`, `unserializable`
    /// (`buffer_events_dropped`); `too_large`, `unserializable`, `rejected` (the sender's
    /// `events_dropped`: a [`crate::flush::DropReason`] as text).
    ReasonLabel { reason }
    /// An outcome: of a flush, a ConfigMap reload, a certificate reload, a sweep.
    OutcomeLabel { outcome }
}

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

/// Every component's metrics, registered in the one registry the daemon serves.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// `konflux_telemetry_*`.
    pub core: CoreMetrics,
    /// `konflux_telemetry_segment_*`.
    pub segment: SenderMetrics,
    /// `konflux_telemetry_sweep_*`.
    pub sweep: SweepMetrics,
    /// `konflux_telemetry_admission_*`.
    pub admission: AdmissionMetrics,
    /// `konflux_telemetry_decided_by`: the telemetry switch.
    pub switch: SwitchMetrics,
}

impl Metrics {
    /// Fresh metrics and the registry (prefix `konflux_telemetry`) that serves them: the
    /// core's at the root, each other component's in its sub-registry.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> (Self, Registry) {
        let mut registry = Registry::with_prefix("konflux_telemetry");
        let metrics = Self {
            core: CoreMetrics::default().register(&mut registry),
            segment: SenderMetrics::default()
                .register(registry.sub_registry_with_prefix("segment")),
            sweep: SweepMetrics::default().register(registry.sub_registry_with_prefix("sweep")),
            admission: AdmissionMetrics::default()
                .register(registry.sub_registry_with_prefix("admission")),
            switch: SwitchMetrics::default().register(&mut registry),
        };
        (metrics, registry)
    }
}
