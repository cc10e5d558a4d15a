//! How each part declares its Prometheus metrics: `metric_set!` and `label_sets!`, and
//! the label sets parts share. Each part declares its own set (the pipeline's
//! `CoreMetrics`, the sender's, the sweep's, admission's, the switch's); the daemon
//! composes them into one registry (prefix `konflux_telemetry`, a sub-registry per
//! component) where it is wired ([`crate::daemon::Metrics`]). This module imports no part.
//! Each component declares its metrics once with `metric_set!`: a plain struct of metric handles (clones
//! share the metrics), its `Default` and its `register`. Label values come from fixed sets
//! only (event names, kinds, sources, reasons, status codes): never a name, a namespace or
//! a user.

use prometheus_client::metrics::family::Family;
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
