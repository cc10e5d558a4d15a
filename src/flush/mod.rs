//! The flush: when the buffer goes out, and how, as plain data.
//!
//! - [`batch`]: pure splitting of events into request-sized [`Batch`]es under the
//!   [`Limits`]; events too large to send come back as [`Dropped`].
//! - this module: one flush in three steps, through the two handles it needs:
//!   1. the [`Buffer`] hands out what waits, cut into batches, and what cannot be sent at
//!      all ([`Buffer::outgoing`], an [`Outgoing`]);
//!   2. an [`Output`] delivers the batches and reports what was accepted ([`Delivery`]);
//!   3. the buffer records that ([`Buffer::record`]): accepted events leave it and are
//!      remembered as produced, the rest wait for the next flush.
//! - [`flusher`]: the loop: every `flushInterval`, at a full batch, and at stop.
//!
//! The outputs are Segment (`crate::segment::Sender`) and, without a write key,
//! [`Discard`]: it accepts everything without a network, so the daemon captures and
//! previews only.

pub mod batch;
pub mod flusher;

pub use batch::{Batch, DropReason, Dropped, Encoded, Limits, batches, batches_of, batches_with};

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Instant;
use tracing::warn;

/// What a flush takes out of the buffer: the batches to deliver, in order, and the events
/// no batch can carry (too large, unserializable), which are let go.
#[derive(Debug)]
pub struct Outgoing {
    pub batches: Vec<Batch>,
    pub unsendable: Vec<Dropped>,
    pub(crate) started: Instant,
}

impl Outgoing {
    pub fn new(batches: Vec<Batch>, unsendable: Vec<Dropped>) -> Self {
        Self {
            batches,
            unsendable,
            started: Instant::now(),
        }
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty() && self.unsendable.is_empty()
    }
}

/// What an [`Output`] did with a flush's batches, by `messageId`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Accepted (Segment answered 2xx): they leave the buffer.
    pub sent: Vec<String>,
    /// Not delivered: they wait for the next flush.
    pub unsent: Vec<String>,
    /// Refused alone by the receiver (400 or 413 for a batch of that event only): never
    /// sendable, they leave the buffer. Counted in `events_dropped{reason="rejected"}` and
    /// logged by name and `messageId`.
    pub dropped: Vec<String>,
    /// Events rejected, by HTTP status.
    pub rejected: BTreeMap<u16, usize>,
    /// Every batch error, in order.
    pub errors: Vec<DeliveryError>,
}

/// An error met while delivering, kept whole (its `source()` chain) for the report.
#[derive(Clone, Debug)]
pub struct DeliveryError(std::sync::Arc<dyn std::error::Error + Send + Sync>);

impl DeliveryError {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(e))
    }
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DeliveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Two errors are the same when they read the same.
impl PartialEq for DeliveryError {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for DeliveryError {}

/// What the flusher flushes: the pipeline's buffer, as its outgoing/delivery pair
/// ([`Buffer::outgoing`], then [`Buffer::record`]) and the little the loop needs beside.
pub trait Buffer: Send + Sync {
    /// What waits, cut into batches under `limits`, and the events no batch can carry.
    fn outgoing(&self, limits: &Limits) -> Outgoing;

    /// Records what `delivery` did with `out`; `reached` says whether the output reached
    /// a receiver (false without a write key).
    fn record(&self, out: &Outgoing, delivery: &Delivery, reached: bool) -> Flushed;

    /// Counts a flush (or a flush time passed without one) by outcome.
    fn count_flush(&self, outcome: FlushOutcome);

    /// Events waiting.
    fn buffered(&self) -> usize;

    /// Forgets what left the lookback at `now` (unix seconds).
    fn expire(&self, now: i64);

    /// Woken when the buffer holds a full batch.
    fn full(&self) -> &tokio::sync::Notify;

    /// Says whether the flusher sends (`konflux_telemetry_enabled`).
    fn set_sending(&self, on: bool);
}

/// One flush of `buffer` to `output`: [`Buffer::outgoing`], the output's delivery,
/// [`Buffer::record`].
pub async fn flush_once<B: Buffer + ?Sized, O: Output>(buffer: &B, output: &O) -> Flushed {
    let out = buffer.outgoing(&output.limits());
    if out.is_empty() {
        buffer.count_flush(FlushOutcome::Ok);
        return Flushed::default();
    }
    output.report_unsendable(&out.unsendable);
    let delivery = output.deliver(&out.batches).await;
    buffer.record(&out, &delivery, output.reaches_receiver())
}

/// Where flushed batches go.
pub trait Output: Send + Sync {
    /// The limits batches are cut to for this output.
    fn limits(&self) -> Limits;

    /// Delivers `batches` in order and says which events were accepted.
    fn deliver(&self, batches: &[Batch]) -> impl Future<Output = Delivery> + Send;

    /// Whether delivering reaches a receiver; `false` for [`Discard`] (no write key).
    fn reaches_receiver(&self) -> bool {
        true
    }

    /// Events that no batch can carry, about to be let go: logged (name and `messageId`
    /// only) and counted by the output that could not carry them.
    fn report_unsendable(&self, dropped: &[Dropped]) {
        log_unsendable(dropped);
    }
}

/// Logs each event no batch can carry, by name and `messageId`.
pub fn log_unsendable(dropped: &[Dropped]) {
    for d in dropped {
        warn!(
            event = d.name,
            message_id = %d.message_id,
            bytes = d.bytes,
            reason = d.reason.as_str(),
            "event dropped: it cannot be sent to Segment"
        );
    }
}

/// The output without a write key: accepts everything, sends nothing, opens no connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Discard;

impl Output for Discard {
    fn limits(&self) -> Limits {
        Limits::default()
    }

    async fn deliver(&self, batches: &[Batch]) -> Delivery {
        Delivery {
            sent: batches
                .iter()
                .flat_map(|b| b.message_ids().iter().cloned())
                .collect(),
            ..Delivery::default()
        }
    }

    fn reaches_receiver(&self) -> bool {
        false
    }
}

/// How a flush went: the `outcome` label of `konflux_telemetry_flushes_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushOutcome {
    /// Everything was delivered (or nothing waited).
    Ok,
    /// Some batches were delivered, some wait.
    Partial,
    /// Nothing was delivered.
    Failed,
    /// No write key: the events were let go ([`Discard`]).
    NoWriteKey,
    /// Telemetry is off: the flush time passed without a flush.
    TelemetryOff,
    /// Telemetry is not known yet (the Konflux CR is being read): nothing is sent.
    TelemetryPending,
}

impl FlushOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            FlushOutcome::Ok => "ok",
            FlushOutcome::Partial => "partial",
            FlushOutcome::Failed => "failed",
            FlushOutcome::NoWriteKey => "no_write_key",
            FlushOutcome::TelemetryOff => "telemetry_off",
            FlushOutcome::TelemetryPending => "telemetry_pending",
        }
    }

    /// The flush left nothing behind that it could have sent.
    pub fn succeeded(self) -> bool {
        matches!(self, FlushOutcome::Ok | FlushOutcome::NoWriteKey)
    }
}

/// What a flush did, in events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flushed {
    pub outcome: FlushOutcome,
    pub sent: usize,
    pub unsent: usize,
    pub dropped: usize,
}

impl Default for Flushed {
    fn default() -> Self {
        Self {
            outcome: FlushOutcome::Ok,
            sent: 0,
            unsent: 0,
            dropped: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ClusterIdentity, Event, EventName, Timestamp};

    #[tokio::test]
    async fn discard_accepts_every_event_without_a_receiver() {
        let identity = ClusterIdentity::new(None, None, None);
        let at = Timestamp::from_unix_seconds(1_767_225_600).expect("a time");
        let events: Vec<Event> = (0..3)
            .map(|i| {
                Event::new(
                    EventName::Heartbeat,
                    format!("id-{i}"),
                    at.clone(),
                    &identity,
                    crate::events::Properties::common(&identity),
                )
            })
            .collect();
        let (batches, dropped) = crate::flush::batches_with(&events, &Discard.limits());
        assert!(dropped.is_empty());
        let delivery = Discard.deliver(&batches).await;
        assert_eq!(delivery.sent, ["id-0", "id-1", "id-2"]);
        assert!(delivery.unsent.is_empty());
        assert!(!Discard.reaches_receiver());
    }
}
