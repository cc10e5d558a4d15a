//! The buffer of events waiting to be sent, and the record of what was produced already.
//!
//! - Waiting events are keyed by `messageId`: a later sighting of the same event replaces its
//!   properties (so a `PipelineRun Started` flushed after its run ended carries the final
//!   `taskCount`), keeping the actor that admission saw.
//! - Produced events are remembered as 8-byte fingerprints with their event time, only as
//!   long as the lookback: an event older than the lookback is never produced again anyway.
//!   That keeps a relist (after a restart or a 410) from producing anything twice, at 16
//!   bytes an event instead of whole objects.
//! - The buffer is bounded: past `max` events the oldest is dropped and handed back to be
//!   counted and logged.
//! - Actors of PipelineRun creations (from admission) wait here, bounded and with expiry,
//!   for that run's Started and Completed events.

use crate::events::{Actor, Event};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// How one offered event was taken.
#[derive(Debug, PartialEq)]
pub enum Offer {
    /// New: it waits to be sent. `evicted` is the oldest event, dropped to make room.
    New { evicted: Option<Box<Event>> },
    /// It was waiting already and its properties changed.
    Updated,
    /// It was waiting already, unchanged.
    Unchanged,
    /// It was produced (sent) before.
    AlreadyProduced,
    /// Its time lies before the lookback.
    TooOld,
}

#[derive(Debug)]
struct Waiting {
    seq: u64,
    event: Event,
}

/// Fingerprint of a messageId: the first 8 bytes of its SHA-256.
pub fn fingerprint(message_id: &str) -> u64 {
    let digest = Sha256::digest(message_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// Actors kept at most, and for how long (seconds), waiting for their run's events.
const MAX_ACTORS: usize = 50_000;
const ACTOR_TTL_SECONDS: i64 = 24 * 3600;

#[derive(Debug)]
pub struct Ledger {
    max: usize,
    next_seq: u64,
    waiting: HashMap<String, Waiting>,
    order: BTreeMap<u64, String>,
    /// fingerprint -> event time (unix seconds)
    produced: HashMap<u64, i64>,
    /// PipelineRun uid -> (actor, when seen)
    actors: HashMap<String, (Actor, i64)>,
}

impl Ledger {
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            next_seq: 0,
            waiting: HashMap::new(),
            order: BTreeMap::new(),
            produced: HashMap::new(),
            actors: HashMap::new(),
        }
    }

    /// Changes the bound; events over a lower bound are dropped oldest first and returned.
    pub fn set_max(&mut self, max: usize) -> Vec<Event> {
        self.max = max.max(1);
        let mut evicted = Vec::new();
        while self.waiting.len() > self.max {
            match self.evict_oldest() {
                Some(e) => evicted.push(e),
                None => break,
            }
        }
        evicted
    }

    /// Takes an event as just derived from an object, at `now` with the given lookback.
    pub fn offer(&mut self, mut event: Event, now: i64, lookback_seconds: i64) -> Offer {
        if let Some(w) = self.waiting.get_mut(&event.message_id) {
            if event.actor.is_none() && w.event.actor.is_some() {
                event.set_actor(w.event.actor.clone());
            }
            if w.event == event {
                return Offer::Unchanged;
            }
            w.event = event;
            return Offer::Updated;
        }
        if event.timestamp.unix_seconds() < now.saturating_sub(lookback_seconds) {
            return Offer::TooOld;
        }
        if self.produced.contains_key(&fingerprint(&event.message_id)) {
            return Offer::AlreadyProduced;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, event.message_id.clone());
        self.waiting
            .insert(event.message_id.clone(), Waiting { seq, event });
        let evicted = if self.waiting.len() > self.max {
            self.evict_oldest().map(Box::new)
        } else {
            None
        };
        Offer::New { evicted }
    }

    fn evict_oldest(&mut self) -> Option<Event> {
        let (_, id) = self.order.pop_first()?;
        self.waiting.remove(&id).map(|w| w.event)
    }

    /// The waiting events, oldest first: what a flush sends and `/preview` shows.
    pub fn waiting(&self) -> Vec<Event> {
        self.iter_waiting().cloned().collect()
    }

    /// The waiting events, oldest first, without copying them.
    pub fn iter_waiting(&self) -> impl Iterator<Item = &Event> {
        self.order
            .values()
            .filter_map(|id| self.waiting.get(id).map(|w| &w.event))
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Events that reached Segment (or, with no write key, were let go): they leave the
    /// buffer and are remembered as produced.
    pub fn mark_sent<'a>(&mut self, message_ids: impl IntoIterator<Item = &'a String>) {
        for id in message_ids {
            if let Some(w) = self.waiting.remove(id) {
                self.order.remove(&w.seq);
                self.produced
                    .insert(fingerprint(id), w.event.timestamp.unix_seconds());
            }
        }
    }

    /// Drops every waiting event and every remembered actor without recording the events
    /// as produced (telemetry turned off): a later relist within the lookback produces
    /// them again. Returns how many events were dropped.
    pub fn drop_waiting(&mut self) -> usize {
        let n = self.waiting.len();
        self.waiting.clear();
        self.order.clear();
        self.actors.clear();
        n
    }

    /// Forgets what lies before the lookback, and actors past their time.
    pub fn expire(&mut self, now: i64, lookback_seconds: i64) {
        let horizon = now.saturating_sub(lookback_seconds);
        self.produced.retain(|_, at| *at >= horizon);
        self.actors
            .retain(|_, (_, seen)| *seen >= now.saturating_sub(ACTOR_TTL_SECONDS));
    }

    pub fn produced_len(&self) -> usize {
        self.produced.len()
    }

    /// Remembers who created a PipelineRun, for its later events.
    pub fn remember_actor(&mut self, uid: &str, actor: Actor, now: i64) {
        if self.actors.len() >= MAX_ACTORS && !self.actors.contains_key(uid) {
            // Bounded: forget the oldest sighting.
            if let Some(oldest) = self
                .actors
                .iter()
                .min_by_key(|(_, (_, seen))| *seen)
                .map(|(k, _)| k.clone())
            {
                self.actors.remove(&oldest);
            }
        }
        self.actors.insert(uid.to_owned(), (actor, now));
    }

    pub fn actor_of(&self, uid: &str) -> Option<Actor> {
        self.actors.get(uid).map(|(a, _)| a.clone())
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
        );
        e.properties.task_count = Some(tasks);
        e
    }

    #[test]
    fn later_sightings_update_the_waiting_event() {
        let mut l = Ledger::new(10);
        assert_eq!(
            l.offer(event("a", NOW, 1), NOW, LOOKBACK),
            Offer::New { evicted: None }
        );
        assert_eq!(l.offer(event("a", NOW, 1), NOW, LOOKBACK), Offer::Unchanged);
        assert_eq!(l.offer(event("a", NOW, 5), NOW, LOOKBACK), Offer::Updated);
        assert_eq!(l.waiting()[0].properties.task_count, Some(5));
    }

    #[test]
    fn sent_events_are_not_produced_again_until_they_leave_the_lookback() {
        let mut l = Ledger::new(10);
        l.offer(event("a", NOW - 60, 1), NOW, LOOKBACK);
        l.mark_sent(&["a".to_owned()]);
        assert!(l.is_empty());
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
        let mut l = Ledger::new(2);
        l.offer(event("a", NOW, 1), NOW, LOOKBACK);
        l.offer(event("b", NOW, 1), NOW, LOOKBACK);
        let Offer::New { evicted: Some(e) } = l.offer(event("c", NOW, 1), NOW, LOOKBACK) else {
            panic!("expected an eviction")
        };
        assert_eq!(e.message_id, "a");
        let ids: Vec<String> = l.waiting().into_iter().map(|e| e.message_id).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(l.set_max(1).len(), 1);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn the_actor_from_admission_survives_a_watch_update() {
        let id = ClusterIdentity::default();
        let mut l = Ledger::new(10);
        let with_actor = event("a", NOW, 1).with_actor(Some(Actor::new("alice", &id)));
        l.offer(with_actor.clone(), NOW, LOOKBACK);
        assert_eq!(l.offer(event("a", NOW, 1), NOW, LOOKBACK), Offer::Unchanged);
        assert_eq!(l.offer(event("a", NOW, 2), NOW, LOOKBACK), Offer::Updated);
        assert_eq!(l.waiting()[0].actor, with_actor.actor);
    }

    #[test]
    fn produced_record_round_trips() {
        let mut l = Ledger::new(10);
        for i in 0..5 {
            l.offer(event(&format!("e{i}"), NOW - i, 1), NOW, LOOKBACK);
        }
        let ids: Vec<String> = (0..5).map(|i| format!("e{i}")).collect();
        l.mark_sent(&ids);
        let bytes = l.export_produced(3);
        assert_eq!(bytes.len(), 36);
        let mut restored = Ledger::new(10);
        assert_eq!(restored.import_produced(&bytes[..35]), 2);
        assert_eq!(restored.import_produced(&bytes), 3);
        // the newest three were kept
        assert_eq!(
            restored.offer(event("e0", NOW, 1), NOW, LOOKBACK),
            Offer::AlreadyProduced
        );
        assert!(matches!(
            restored.offer(event("e4", NOW - 4, 1), NOW, LOOKBACK),
            Offer::New { .. }
        ));
    }
}
