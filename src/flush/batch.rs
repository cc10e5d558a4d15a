//! Splitting events into request bodies that respect Segment's limits. Pure: no I/O.
//!
//! Each event is serialised once, into an [`Encoded`]: the buffer holds events in that
//! form, and a [`Batch`] shares their bytes (no copy) and builds the request body
//! `{"batch":[...],"sentAt":"..."}` at each attempt, so `sentAt` is always the time of
//! that attempt.

use crate::events::{Event, EventName};
use bytes::Bytes;
use std::sync::Arc;

/// `{"batch":[`
const BODY_HEAD: &[u8] = br#"{"batch":["#;
/// `],"sentAt":"`
const BODY_MID: &[u8] = br#"],"sentAt":""#;
/// `"}`
const BODY_TAIL: &[u8] = br#""}"#;
/// Room kept for the `sentAt` value. [`sent_at_now`] writes 24 bytes
/// (`2024-01-01T00:00:00.000Z`); this leaves margin for any RFC 3339 form.
pub const SENT_AT_RESERVE: usize = 40;
/// Bytes of a body that are not events or the commas between them, with
/// [`SENT_AT_RESERVE`] bytes counted for the `sentAt` value.
pub const ENVELOPE_BYTES: usize =
    BODY_HEAD.len() + BODY_MID.len() + BODY_TAIL.len() + SENT_AT_RESERVE;

/// The limits batches are cut to. The defaults are the spec's; tests may lower them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body, envelope (with [`SENT_AT_RESERVE`]) included.
    pub max_body_bytes: usize,
    /// Largest serialised event; larger ones are dropped.
    pub max_event_bytes: usize,
    /// Most events in one request.
    pub max_events: usize,
}

impl Default for Limits {
    /// 475,000 bytes a body, 32,000 bytes an event, 2,500 events a request.
    fn default() -> Self {
        Self {
            max_body_bytes: 475_000,
            max_event_bytes: 32_000,
            max_events: 2_500,
        }
    }
}

/// An event serialised once, as Segment receives it: what the buffer holds. Cloning
/// shares the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub name: EventName,
    pub message_id: Arc<str>,
    /// The event's JSON, exactly as it goes in a batch.
    pub json: Bytes,
}

impl Encoded {
    /// Serialises `event` (the bytes are allocated to their exact length).
    pub fn new(event: &Event) -> Result<Self, serde_json::Error> {
        let json = serde_json::to_vec(event)?;
        Ok(Self {
            name: event.name,
            message_id: Arc::from(event.message_id.as_str()),
            json: Bytes::from(json.into_boxed_slice()),
        })
    }
}

/// The events of one request, serialised, in their original order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Each event's JSON (shared with the buffer, not copied); the body puts commas
    /// between them.
    events: Vec<Bytes>,
    /// Bytes of the events' JSON, commas included: the inside of the `batch` array.
    events_len: usize,
    message_ids: Vec<String>,
    /// Each event's name, for the log when one is dropped.
    names: Vec<&'static str>,
}

impl Batch {
    fn new() -> Self {
        Self {
            events: Vec::new(),
            events_len: 0,
            message_ids: Vec::new(),
            names: Vec::new(),
        }
    }

    /// The event names, in order (the same order as [`Batch::message_ids`]).
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// The batch cut in two halves, in order (the first gets the smaller half); `None`
    /// for a batch of fewer than two events.
    pub fn split(&self) -> Option<(Batch, Batch)> {
        if self.len() < 2 {
            return None;
        }
        let mid = self.len() / 2;
        Some((self.part(0, mid), self.part(mid, self.len())))
    }

    /// The events `from..to` as a batch of their own (sharing their bytes).
    fn part(&self, from: usize, to: usize) -> Batch {
        let events = self.events[from..to].to_vec();
        let events_len =
            events.iter().map(Bytes::len).sum::<usize>() + (to - from).saturating_sub(1);
        Batch {
            events,
            events_len,
            message_ids: self.message_ids[from..to].to_vec(),
            names: self.names[from..to].to_vec(),
        }
    }

    /// The `messageId`s of the batch's events, in order.
    pub fn message_ids(&self) -> &[String] {
        &self.message_ids
    }

    /// How many events the batch holds.
    pub fn len(&self) -> usize {
        self.message_ids.len()
    }

    /// True when the batch holds no event.
    pub fn is_empty(&self) -> bool {
        self.message_ids.is_empty()
    }

    /// The size of the body with a `sentAt` of [`SENT_AT_RESERVE`] bytes: the figure
    /// checked against [`Limits::max_body_bytes`]. The real body is never larger.
    pub fn reserved_body_len(&self) -> usize {
        ENVELOPE_BYTES + self.events_len
    }

    /// The request body, with `sent_at` as the `sentAt` value (an RFC 3339 time, written
    /// as is: it must need no JSON escaping).
    pub fn body(&self, sent_at: &str) -> Vec<u8> {
        let mut body = Vec::with_capacity(
            BODY_HEAD.len() + self.events_len + BODY_MID.len() + sent_at.len() + 2,
        );
        body.extend_from_slice(BODY_HEAD);
        for (i, json) in self.events.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(json);
        }
        body.extend_from_slice(BODY_MID);
        body.extend_from_slice(sent_at.as_bytes());
        body.extend_from_slice(BODY_TAIL);
        body
    }

    /// Size after adding an event of `len` bytes.
    fn len_with(&self, len: usize) -> usize {
        self.reserved_body_len() + len + usize::from(!self.is_empty())
    }

    fn push(&mut self, json: Bytes, message_id: &str, name: &'static str) {
        self.events_len += json.len() + usize::from(!self.is_empty());
        self.events.push(json);
        self.message_ids.push(message_id.to_owned());
        self.names.push(name);
    }
}

/// The current time as `sentAt`: RFC 3339, UTC, milliseconds (24 bytes).
pub fn sent_at_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Why an event was not put in any batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Its JSON is over [`Limits::max_event_bytes`] (or could not fit in a body at all).
    TooLarge,
    /// It could not be serialised.
    Unserializable,
    /// Segment refused it (HTTP 400 or 413 for a batch of that event alone).
    Rejected,
}

impl DropReason {
    /// The metric label: `too_large` or `unserializable`.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::TooLarge => "too_large",
            DropReason::Unserializable => "unserializable",
            DropReason::Rejected => "rejected",
        }
    }
}

/// An event that is never sent. Only its name and `messageId` are kept, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// The event name (`PipelineRun Completed`, ...).
    pub name: &'static str,
    /// The event's `messageId`.
    pub message_id: String,
    /// Its serialised size (0 when it could not be serialised).
    pub bytes: usize,
    /// Why it was dropped.
    pub reason: DropReason,
}

/// [`batches_with`] the spec's [`Limits`].
pub fn batches<'a>(events: impl IntoIterator<Item = &'a Event>) -> (Vec<Batch>, Vec<Dropped>) {
    batches_with(events, &Limits::default())
}

/// Splits events into batches, in order, each within `limits`; each event is serialised
/// once. Events over [`Limits::max_event_bytes`] are returned as [`Dropped`].
pub fn batches_with<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    limits: &Limits,
) -> (Vec<Batch>, Vec<Dropped>) {
    let mut unserializable = Vec::new();
    let encoded = events
        .into_iter()
        .filter_map(|event| match Encoded::new(event) {
            Ok(e) => Some(e),
            Err(_) => {
                unserializable.push(Dropped {
                    name: event.name.as_str(),
                    message_id: event.message_id.clone(),
                    bytes: 0,
                    reason: DropReason::Unserializable,
                });
                None
            }
        });
    let (batches, mut dropped) = batches_of(encoded, limits);
    dropped.append(&mut unserializable);
    (batches, dropped)
}

/// [`batches_with`] for events serialised already (the buffer's): the batches share the
/// events' bytes.
pub fn batches_of<E: std::borrow::Borrow<Encoded>>(
    events: impl IntoIterator<Item = E>,
    limits: &Limits,
) -> (Vec<Batch>, Vec<Dropped>) {
    let mut out = Vec::new();
    let mut dropped = Vec::new();
    let mut current = Batch::new();
    for event in events {
        let event: &Encoded = event.borrow();
        let len = event.json.len();
        // An event too large for an empty batch can never be sent either.
        if len > limits.max_event_bytes || ENVELOPE_BYTES + len > limits.max_body_bytes {
            dropped.push(Dropped {
                name: event.name.as_str(),
                message_id: event.message_id.to_string(),
                bytes: len,
                reason: DropReason::TooLarge,
            });
            continue;
        }
        if !current.is_empty()
            && (current.len() >= limits.max_events || current.len_with(len) > limits.max_body_bytes)
        {
            out.push(std::mem::replace(&mut current, Batch::new()));
        }
        current.push(event.json.clone(), &event.message_id, event.name.as_str());
    }
    if !current.is_empty() {
        out.push(current);
    }
    (out, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ClusterIdentity, EventName, Timestamp};

    fn event(id: usize, status_len: usize) -> Event {
        let identity = ClusterIdentity::new(None, None, None);
        let ts = Timestamp::parse("2024-05-01T10:00:00Z").expect("valid timestamp");
        let mut e = Event::new(
            EventName::PipelineRunCompleted,
            format!("m{id:06}"),
            ts,
            &identity,
            crate::events::Properties::common(&identity),
        );
        e.properties.status = Some("x".repeat(status_len));
        e
    }

    /// An event whose JSON is exactly `len` bytes.
    fn event_of_len(id: usize, len: usize) -> Event {
        let base = event(id, 0).to_json().len();
        let e = event(id, len - base);
        assert_eq!(e.to_json().len(), len);
        e
    }

    #[test]
    fn a_split_batch_makes_the_same_bodies_in_two() {
        let events: Vec<Event> = (0..5).map(|i| event(i, i)).collect();
        let (batches, _) = batches(&events);
        let whole = &batches[0];
        let (a, b) = whole.split().expect("five events split");
        assert_eq!(a.message_ids(), &whole.message_ids()[..2]);
        assert_eq!(b.message_ids(), &whole.message_ids()[2..]);
        assert_eq!(a.names().len(), 2);
        let json = |b: &Batch| -> serde_json::Value {
            serde_json::from_slice(&b.body("2024-05-01T10:00:01.000Z")).expect("JSON")
        };
        let mut joined = json(&a)["batch"].as_array().expect("array").clone();
        joined.extend(json(&b)["batch"].as_array().expect("array").iter().cloned());
        assert_eq!(serde_json::Value::Array(joined), json(whole)["batch"]);
        // Down to single events, each still a valid body.
        let (b1, b2) = b.split().expect("three split");
        let (b21, b22) = b2.split().expect("two split");
        assert!(b1.split().is_none() && b21.split().is_none());
        assert_eq!(json(&b22)["batch"][0]["messageId"], "m000004");
        assert_eq!(
            b1.reserved_body_len() + b21.reserved_body_len() + b22.reserved_body_len(),
            b.reserved_body_len() + 2 * ENVELOPE_BYTES - 2
        );
    }

    #[test]
    fn body_is_the_envelope_with_sent_at() {
        let events = [event(1, 1), event(2, 2)];
        let (batches, dropped) = batches(&events);
        assert!(dropped.is_empty());
        assert_eq!(batches.len(), 1);
        let body = batches[0].body("2024-05-01T10:00:01.000Z");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("body is JSON");
        assert_eq!(v["sentAt"], "2024-05-01T10:00:01.000Z");
        assert_eq!(v["batch"][0]["messageId"], "m000001");
        assert_eq!(v["batch"][1]["messageId"], "m000002");
        assert_eq!(
            v["batch"][1],
            serde_json::to_value(&events[1]).expect("event")
        );
        assert_eq!(batches[0].message_ids(), ["m000001", "m000002"]);
        assert!(body.len() <= batches[0].reserved_body_len());
        assert_eq!(
            body.len() + SENT_AT_RESERVE - 24,
            batches[0].reserved_body_len()
        );
    }

    #[test]
    fn sent_at_fits_the_reserve() {
        let s = sent_at_now();
        assert_eq!(s.len(), 24);
        assert!(s.len() <= SENT_AT_RESERVE);
        assert!(Timestamp::parse(&s).is_ok());
    }

    #[test]
    fn event_exactly_at_the_size_limit_is_kept_one_over_is_dropped() {
        let limits = Limits::default();
        let at = event_of_len(1, 32_000);
        let over = event_of_len(2, 32_001);
        let (b, d) = batches([&at, &over]);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].message_ids(), ["m000001"]);
        assert_eq!(
            d,
            vec![Dropped {
                name: "PipelineRun Completed",
                message_id: "m000002".into(),
                bytes: 32_001,
                reason: DropReason::TooLarge,
            }]
        );
        assert_eq!(limits.max_event_bytes, 32_000);
    }

    fn limits(max_body_bytes: usize, max_event_bytes: usize, max_events: usize) -> Limits {
        Limits {
            max_body_bytes,
            max_event_bytes,
            max_events,
        }
    }

    #[test]
    fn count_limit_exactly_and_one_over() {
        // 2,500 events of ~250 bytes exceed 475,000 bytes: lift the body limit only.
        let limits = Limits {
            max_body_bytes: usize::MAX,
            ..Limits::default()
        };
        assert_eq!(limits.max_events, 2_500);
        let events: Vec<Event> = (0..2_501).map(|i| event(i, 0)).collect();
        let (b, d) = batches_with(&events[..2_500], &limits);
        assert!(d.is_empty());
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].len(), 2_500);
        let (b, _) = batches_with(&events, &limits);
        assert_eq!(b.iter().map(Batch::len).collect::<Vec<_>>(), [2_500, 1]);
    }

    #[test]
    fn body_limit_exactly_and_one_over() {
        // 15 events of 31,000 bytes and one sized to land exactly on 475,000.
        let limits = Limits::default();
        let big = 31_000;
        let n = 15;
        let used = ENVELOPE_BYTES + n * big + n; // n commas: n - 1 between + 1 before the last
        let last = limits.max_body_bytes - used;
        let mut events: Vec<Event> = (0..n).map(|i| event_of_len(i, big)).collect();
        events.push(event_of_len(n, last));
        let (b, d) = batches(&events);
        assert!(d.is_empty());
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].reserved_body_len(), 475_000);
        assert!(b[0].body(&sent_at_now()).len() <= 475_000);

        events.pop();
        events.push(event_of_len(n, last + 1));
        let (b, _) = batches(&events);
        assert_eq!(b.iter().map(Batch::len).collect::<Vec<_>>(), [n, 1]);
        assert!(b.iter().all(|b| b.reserved_body_len() <= 475_000));
    }

    #[test]
    fn lower_limits_split_and_keep_order() {
        let limits = limits(2_000, 900, 3);
        let events: Vec<Event> = (0..20).map(|i| event(i, (i * 97) % 1_000)).collect();
        let (b, d) = batches_with(&events, &limits);
        let sent: Vec<&String> = b.iter().flat_map(|b| b.message_ids()).collect();
        let dropped: Vec<&String> = d.iter().map(|d| &d.message_id).collect();
        assert_eq!(sent.len() + dropped.len(), 20);
        let expected: Vec<&String> = events
            .iter()
            .map(|e| &e.message_id)
            .filter(|id| !dropped.contains(id))
            .collect();
        assert_eq!(sent, expected);
        for batch in &b {
            assert!(batch.len() <= 3);
            assert!(batch.reserved_body_len() <= 2_000);
            let v: serde_json::Value =
                serde_json::from_slice(&batch.body(&sent_at_now())).expect("JSON");
            assert_eq!(v["batch"].as_array().map(Vec::len), Some(batch.len()));
        }
        assert!(d.iter().all(|d| d.bytes > 900));
    }

    #[test]
    fn encoded_events_batch_to_the_same_bytes() {
        let limits = limits(3_000, 900, 4);
        let events: Vec<Event> = (0..30).map(|i| event(i, (i * 131) % 1_100)).collect();
        let encoded: Vec<Encoded> = events
            .iter()
            .map(|e| Encoded::new(e).expect("serialisable"))
            .collect();
        assert_eq!(encoded[3].json, events[3].to_json().into_bytes());
        let (from_events, d1) = batches_with(&events, &limits);
        let (from_encoded, d2) = batches_of(&encoded, &limits);
        assert_eq!(d1, d2);
        assert!(!d1.is_empty());
        assert_eq!(from_events.len(), from_encoded.len());
        for (a, b) in from_events.iter().zip(&from_encoded) {
            assert_eq!(
                a.body("2024-05-01T10:00:01.000Z"),
                b.body("2024-05-01T10:00:01.000Z")
            );
            assert_eq!(a.reserved_body_len(), b.reserved_body_len());
            assert_eq!(a.message_ids(), b.message_ids());
        }
    }

    #[test]
    fn nothing_in_nothing_out() {
        let (b, d) = batches(std::iter::empty());
        assert!(b.is_empty() && d.is_empty());
    }
}
