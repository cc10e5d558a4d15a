//! The buffer of events waiting to be sent, and the record of what was produced already.
//!
//! - Waiting events are keyed by `messageId`: a later sighting of the same event replaces its
//!   properties (so a `PipelineRun Started` flushed after its run ended carries the final
//!   `taskCount`), keeping the actor that admission saw.
//! - Produced events are remembered as 8-byte fingerprints with their event time, only as
//!   long as the lookback: an event older than the lookback is never produced again anyway.
//!   That keeps a relist (after a restart or a 410) from producing anything twice, at 16
//!   bytes an event instead of whole objects.
//! - Waiting events are held as the JSON they are sent as ([`Encoded`]: one allocation of
//!   their wire size, shared with the batches of a flush and with `/preview`), not as a
//!   tree of fields.
//! - The buffer is bounded twice: past `max` events, or past `max_bytes` of
//!   [`Ledger::cost`], the oldest events are dropped; [`Ledger::take_evicted`] hands their
//!   number back to be counted and logged.

use crate::events::{Actor, Event};
use crate::flush::Encoded;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// How one offered event was taken.
#[derive(Debug, PartialEq)]
pub enum Offer {
    /// New: it waits to be sent (older events may have been dropped to make room; see
    /// [`Ledger::take_evicted`]).
    New,
    /// It was waiting already and its properties changed.
    Updated,
    /// It was waiting already, unchanged.
    Unchanged,
    /// It was produced (sent) before.
    AlreadyProduced,
    /// Its time lies before the lookback.
    TooOld,
    /// Its time lies more than [`MAX_FUTURE_SECONDS`] after now: a clock far off, or a
    /// timestamp a tenant wrote. Not kept, so it neither waits nor enters the produced
    /// record (where it would stay until that time) nor sorts first.
    InFuture,
    /// It could not be serialised (cannot happen with the event model's types).
    Unserializable,
}

/// How far after now an event's time may lie: a day, for clocks that disagree.
pub const MAX_FUTURE_SECONDS: i64 = 86_400;

/// Bytes of bookkeeping a waiting event costs beyond its JSON and its `messageId`: its
/// entry in the order and in the index, the shared handle to its bytes, the allocator's
/// rounding. Measured with `cargo bench --bench memory` (docs/performance.md).
pub const ENTRY_OVERHEAD: usize = 320;

#[derive(Debug)]
struct Waiting {
    /// The event time (unix seconds), kept in the produced record once sent.
    at: i64,
    /// The actor admission saw, kept when a later sighting has none.
    actor: Option<Actor>,
    encoded: Encoded,
}

/// Fingerprint of a messageId: the first 8 bytes of its SHA-256.
pub fn fingerprint(message_id: &str) -> u64 {
    let digest = Sha256::digest(message_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

#[derive(Debug)]
pub struct Ledger {
    max: usize,
    max_bytes: usize,
    /// [`Ledger::cost`] of the waiting events.
    bytes: usize,
    /// Events dropped to make room since the last [`Ledger::take_evicted`].
    evicted: usize,
    next_seq: u64,
    /// messageId -> its place in `order`.
    index: HashMap<Arc<str>, u64>,
    /// The waiting events, oldest first.
    order: BTreeMap<u64, Waiting>,
    /// fingerprint -> event time (unix seconds)
    produced: HashMap<u64, i64>,
}

impl Ledger {
    /// A buffer of at most `max` events and `max_bytes` of [`Ledger::cost`].
    pub fn new(max: usize, max_bytes: usize) -> Self {
        Self {
            max: max.max(1),
            max_bytes,
            bytes: 0,
            evicted: 0,
            next_seq: 0,
            index: HashMap::new(),
            order: BTreeMap::new(),
            produced: HashMap::new(),
        }
    }

    /// What a waiting event counts against `max_bytes`: its JSON, its `messageId` and
    /// [`ENTRY_OVERHEAD`]; about what it holds in memory.
    pub fn cost(encoded: &Encoded) -> usize {
        encoded.json.len() + encoded.message_id.len() + ENTRY_OVERHEAD
    }

    /// Changes the bounds; events over a lower bound are dropped oldest first (see
    /// [`Ledger::take_evicted`]).
    pub fn set_max(&mut self, max: usize, max_bytes: usize) {
        self.max = max.max(1);
        self.max_bytes = max_bytes;
        self.evict_over_bounds();
    }

    /// Events dropped to make room since the last call.
    pub fn take_evicted(&mut self) -> usize {
        std::mem::take(&mut self.evicted)
    }

    /// The [`Ledger::cost`] of the waiting events.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes an event as just derived from an object, at `now` with the given lookback.
    /// An event whose time lies more than [`MAX_FUTURE_SECONDS`] after `now` is refused.
    pub fn offer(&mut self, mut event: Event, now: i64, lookback_seconds: i64) -> Offer {
        if event.timestamp.unix_seconds() > now.saturating_add(MAX_FUTURE_SECONDS) {
            return Offer::InFuture;
        }
        if let Some(w) = self
            .index
            .get(event.message_id.as_str())
            .and_then(|seq| self.order.get_mut(seq))
        {
            if event.actor.is_none() && w.actor.is_some() {
                event.set_actor(w.actor.clone());
            }
            let Ok(encoded) = Encoded::new(&event) else {
                return Offer::Unserializable;
            };
            if encoded.json == w.encoded.json {
                return Offer::Unchanged;
            }
            self.bytes = self.bytes - Self::cost(&w.encoded) + Self::cost(&encoded);
            w.at = event.timestamp.unix_seconds();
            w.actor = event.actor;
            w.encoded = encoded;
            self.evict_over_bounds();
            return Offer::Updated;
        }
        if event.timestamp.unix_seconds() < now.saturating_sub(lookback_seconds) {
            return Offer::TooOld;
        }
        if self.produced.contains_key(&fingerprint(&event.message_id)) {
            return Offer::AlreadyProduced;
        }
        let Ok(encoded) = Encoded::new(&event) else {
            return Offer::Unserializable;
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += Self::cost(&encoded);
        self.index.insert(Arc::clone(&encoded.message_id), seq);
        self.order.insert(
            seq,
            Waiting {
                at: event.timestamp.unix_seconds(),
                actor: event.actor,
                encoded,
            },
        );
        self.evict_over_bounds();
        Offer::New
    }

    /// Drops the oldest events while over a bound, but never the last one: a single event
    /// always fits (none is larger than Segment's 32 KB).
    fn evict_over_bounds(&mut self) {
        while self.order.len() > self.max || (self.bytes > self.max_bytes && self.order.len() > 1) {
            let Some((_, w)) = self.order.pop_first() else {
                break;
            };
            self.index.remove(&w.encoded.message_id);
            self.bytes -= Self::cost(&w.encoded);
            self.evicted += 1;
        }
    }

    /// The waiting events, oldest first: what a flush sends and `/preview` shows. Cloning
    /// an [`Encoded`] shares its bytes.
    pub fn waiting(&self) -> Vec<Encoded> {
        self.iter_waiting().cloned().collect()
    }

    /// The waiting events, oldest first, without copying them.
    pub fn iter_waiting(&self) -> impl Iterator<Item = &Encoded> {
        self.order.values().map(|w| &w.encoded)
    }

    /// A page of the waiting events after position `after` (from the start with `None`),
    /// oldest first: at least one event, then more while under `max_bytes` of JSON. Gives
    /// the events' shared bytes and the position to continue after; an empty page at
    /// the end. Events that arrive meanwhile come after the position, so paging to the
    /// end sees each event waiting at the start once.
    pub fn page_after(&self, after: Option<u64>, max_bytes: usize) -> (Vec<Bytes>, Option<u64>) {
        let from = after.map_or(0, |a| a.saturating_add(1));
        let mut page = Vec::new();
        let mut bytes = 0;
        let mut last = after;
        for (seq, w) in self.order.range(from..) {
            if !page.is_empty() && bytes + w.encoded.json.len() > max_bytes {
                break;
            }
            bytes += w.encoded.json.len();
            page.push(w.encoded.json.clone());
            last = Some(*seq);
        }
        (page, last)
    }

    /// Whether the event `message_id` waits to be sent.
    pub fn is_waiting(&self, message_id: &str) -> bool {
        self.index.contains_key(message_id)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Events that reached Segment (or, with no write key, were let go): they leave the
    /// buffer and are remembered as produced.
    pub fn mark_sent<'a>(&mut self, message_ids: impl IntoIterator<Item = &'a String>) {
        for id in message_ids {
            if let Some(w) = self
                .index
                .remove(id.as_str())
                .and_then(|seq| self.order.remove(&seq))
            {
                self.bytes -= Self::cost(&w.encoded);
                self.produced.insert(fingerprint(id), w.at);
            }
        }
    }

    /// Drops every waiting event without recording it as produced (telemetry turned off):
    /// a later relist within the lookback produces them again. Returns how many events
    /// were dropped.
    pub fn drop_waiting(&mut self) -> usize {
        let n = self.order.len();
        self.index.clear();
        self.order.clear();
        self.bytes = 0;
        n
    }

    /// Forgets what lies before the lookback.
    pub fn expire(&mut self, now: i64, lookback_seconds: i64) {
        let horizon = now.saturating_sub(lookback_seconds);
        self.produced.retain(|_, at| *at >= horizon);
    }

    #[cfg(test)]
    pub fn produced_len(&self) -> usize {
        self.produced.len()
    }

    /// The produced record, for keeping across a restart: 12 bytes an entry (fingerprint,
    /// then the event time as unsigned seconds), newest first, at most `limit` entries.
    pub fn export_produced(&self, limit: usize) -> Vec<u8> {
        let mut entries: Vec<(u64, i64)> = self.produced.iter().map(|(f, t)| (*f, *t)).collect();
        entries.sort_unstable_by_key(|e| std::cmp::Reverse(e.1));
        let mut out = Vec::with_capacity(entries.len().min(limit) * 12);
        for (f, t) in entries.into_iter().take(limit) {
            out.extend_from_slice(&f.to_be_bytes());
            out.extend_from_slice(&u32::try_from(t.max(0)).unwrap_or(u32::MAX).to_be_bytes());
        }
        out
    }

    /// Restores a record made by [`Ledger::export_produced`]; returns the entries taken.
    /// A trailing partial entry (a torn write) is ignored.
    pub fn import_produced(&mut self, bytes: &[u8]) -> usize {
        let mut n = 0;
        for chunk in bytes.chunks_exact(12) {
            let mut f = [0u8; 8];
            f.copy_from_slice(&chunk[..8]);
            let mut t = [0u8; 4];
            t.copy_from_slice(&chunk[8..]);
            self.produced
                .insert(u64::from_be_bytes(f), i64::from(u32::from_be_bytes(t)));
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ClusterIdentity, EventName, Timestamp};

    const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    const LOOKBACK: i64 = 4 * 3600;

    fn event(id: &str, at: i64, tasks: usize) -> Event {
        let mut e = Event::new(
            EventName::PipelineRunStarted,
            id.to_owned(),
            Timestamp::from_unix_seconds(at).unwrap(),
            &ClusterIdentity::default(),
            crate::events::Properties::default(),
        );
        e.properties.task_count = Some(tasks);
        e
    }

    fn ids(l: &Ledger) -> Vec<String> {
        l.iter_waiting().map(|e| e.message_id.to_string()).collect()
    }

    fn json(l: &Ledger, i: usize) -> serde_json::Value {
        serde_json::from_slice(&l.waiting()[i].json).expect("JSON")
    }

    #[test]
    fn later_sightings_update_the_waiting_event() {
        let mut l = Ledger::new(10, usize::MAX);
        assert_eq!(l.offer(event("a", NOW, 1), NOW, LOOKBACK), Offer::New);
        assert_eq!(l.offer(event("a", NOW, 1), NOW, LOOKBACK), Offer::Unchanged);
        assert_eq!(l.offer(event("a", NOW, 5), NOW, LOOKBACK), Offer::Updated);
        assert_eq!(json(&l, 0)["properties"]["taskCount"], 5);
        assert_eq!(l.len(), 1);
        assert_eq!(l.take_evicted(), 0);
    }

    #[test]
    fn events_dated_more_than_a_day_ahead_are_refused() {
        let mut l = Ledger::new(10, usize::MAX);
        let year_2999 = 32_503_680_000;
        assert_eq!(
            l.offer(event("far", year_2999, 1), NOW, LOOKBACK),
            Offer::InFuture
        );
        let tomorrow_plus = NOW + MAX_FUTURE_SECONDS + 1;
        assert_eq!(
            l.offer(event("soon", tomorrow_plus, 1), NOW, LOOKBACK),
            Offer::InFuture
        );
        assert!(l.is_empty(), "neither waits");
        l.mark_sent(&["far".to_owned()]);
        assert!(l.export_produced(10).is_empty(), "nor is recorded");
        assert_eq!(
            l.offer(event("skew", NOW + MAX_FUTURE_SECONDS, 1), NOW, LOOKBACK),
            Offer::New,
            "a day of clock skew is taken"
        );
    }

    #[test]
    fn waiting_events_are_held_as_their_wire_json() {
        let mut l = Ledger::new(10, usize::MAX);
        let e = event("a", NOW, 3);
        l.offer(e.clone(), NOW, LOOKBACK);
        let held = &l.waiting()[0];
        assert_eq!(held.json, e.to_json().into_bytes());
        assert_eq!(l.bytes(), Ledger::cost(held));
        assert_eq!(Ledger::cost(held), e.to_json().len() + 1 + ENTRY_OVERHEAD);
    }

    #[test]
    fn sent_events_are_not_produced_again_until_they_leave_the_lookback() {
        let mut l = Ledger::new(10, usize::MAX);
        l.offer(event("a", NOW - 60, 1), NOW, LOOKBACK);
        l.mark_sent(&["a".to_owned()]);
        assert!(l.is_empty());
        assert_eq!(l.bytes(), 0);
        assert_eq!(
            l.offer(event("a", NOW - 60, 1), NOW, LOOKBACK),
            Offer::AlreadyProduced
        );
        assert_eq!(
            l.offer(event("old", NOW - LOOKBACK - 1, 1), NOW, LOOKBACK),
            Offer::TooOld
        );
        l.expire(NOW + LOOKBACK, LOOKBACK);
        assert_eq!(l.produced_len(), 0);
    }

    #[test]
    fn full_buffer_drops_the_oldest() {
        let mut l = Ledger::new(2, usize::MAX);
        l.offer(event("a", NOW, 1), NOW, LOOKBACK);
        l.offer(event("b", NOW, 1), NOW, LOOKBACK);
        assert_eq!(l.offer(event("c", NOW, 1), NOW, LOOKBACK), Offer::New);
        assert_eq!(l.take_evicted(), 1);
        assert_eq!(l.take_evicted(), 0);
        assert_eq!(ids(&l), ["b", "c"]);
        l.set_max(1, usize::MAX);
        assert_eq!(l.take_evicted(), 1);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn the_byte_bound_drops_the_oldest_exactly_at_the_limit() {
        let cost = Ledger::cost(&Encoded::new(&event("a", NOW, 1)).expect("JSON"));
        // Room for exactly three events of this size.
        let mut l = Ledger::new(100, 3 * cost);
        for id in ["a", "b", "c"] {
            assert_eq!(l.offer(event(id, NOW, 1), NOW, LOOKBACK), Offer::New);
        }
        assert_eq!(l.take_evicted(), 0);
        assert_eq!(l.bytes(), 3 * cost);
        l.offer(event("d", NOW, 1), NOW, LOOKBACK);
        assert_eq!(l.take_evicted(), 1);
        assert_eq!(ids(&l), ["b", "c", "d"]);
        assert_eq!(l.bytes(), 3 * cost);
        // An update that grows an event makes room the same way.
        assert_eq!(
            l.offer(event("d", NOW, 1000), NOW, LOOKBACK),
            Offer::Updated
        );
        assert_eq!(l.take_evicted(), 1);
        assert_eq!(ids(&l), ["c", "d"]);
        // A lower bound applies at once; one event always stays.
        l.set_max(100, 1);
        assert_eq!(l.take_evicted(), 1);
        assert_eq!(ids(&l), ["d"]);
        // What was dropped was not produced: it is new again.
        assert_eq!(l.offer(event("a", NOW, 1), NOW, LOOKBACK), Offer::New);
    }

    #[test]
    fn pages_cover_the_buffer_once_in_order() {
        let mut l = Ledger::new(100, usize::MAX);
        for i in 0..10 {
            l.offer(event(&format!("e{i}"), NOW, 1), NOW, LOOKBACK);
        }
        let one = l.waiting()[0].json.len();
        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let (page, last) = l.page_after(after, 3 * one);
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 3);
            pages += 1;
            // an event sent meanwhile, after the cursor, is not shown
            if pages == 1 {
                l.mark_sent(&["e5".to_owned()]);
            }
            seen.extend(page);
            after = last;
        }
        let all: Vec<Bytes> = (0..10)
            .filter(|i| *i != 5)
            .map(|i| Bytes::from(event(&format!("e{i}"), NOW, 1).to_json()))
            .collect();
        assert_eq!(seen, all);
        // a single event larger than the page still makes a page
        assert_eq!(l.page_after(None, 1).0.len(), 1);
    }

    #[test]
    fn the_actor_from_admission_survives_a_watch_update() {
        let id = ClusterIdentity::default();
        let mut l = Ledger::new(10, usize::MAX);
        let with_actor = event("a", NOW, 1).with_actor(Some(Actor::new("alice", &id)));
        l.offer(with_actor.clone(), NOW, LOOKBACK);
        assert_eq!(l.offer(event("a", NOW, 1), NOW, LOOKBACK), Offer::Unchanged);
        assert_eq!(l.offer(event("a", NOW, 2), NOW, LOOKBACK), Offer::Updated);
        let mut expected = event("a", NOW, 2);
        expected.set_actor(with_actor.actor);
        assert_eq!(l.waiting()[0].json, expected.to_json().into_bytes());
    }

    #[test]
    fn produced_record_round_trips() {
        let mut l = Ledger::new(10, usize::MAX);
        for i in 0..5 {
            l.offer(event(&format!("e{i}"), NOW - i, 1), NOW, LOOKBACK);
        }
        let ids: Vec<String> = (0..5).map(|i| format!("e{i}")).collect();
        l.mark_sent(&ids);
        let bytes = l.export_produced(3);
        assert_eq!(bytes.len(), 36);
        let mut restored = Ledger::new(10, usize::MAX);
        assert_eq!(restored.import_produced(&bytes[..35]), 2);
        assert_eq!(restored.import_produced(&bytes), 3);
        // the newest three were kept
        assert_eq!(
            restored.offer(event("e0", NOW, 1), NOW, LOOKBACK),
            Offer::AlreadyProduced
        );
        assert_eq!(
            restored.offer(event("e4", NOW - 4, 1), NOW, LOOKBACK),
            Offer::New
        );
    }
}
