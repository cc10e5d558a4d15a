//! The daemon's core: observations in, events into the [`Ledger`], flushes out to Segment.
//!
//! Capture paths (watch, sweep, admission) only observe; the core alone decides whether an
//! observation produces an event, so de-duplication is shared by all of them.

use crate::events::{self, ClusterIdentity, EventName, Object};
use crate::ledger::{Ledger, Offer};
use crate::metrics::{CoreMetrics, OutcomeLabel, ReasonLabel};
use crate::observation::{Observation, Source};
use crate::segment::Sender;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;
use tokio::sync::Notify;
use tracing::{info, warn};

/// Events in a full batch: a buffer this size flushes early.
pub const FULL_BATCH: usize = 2_500;

pub struct Core {
    ledger: Mutex<Ledger>,
    identity: RwLock<Arc<ClusterIdentity>>,
    lookback_seconds: std::sync::atomic::AtomicI64,
    metrics: CoreMetrics,
    /// Woken when the buffer holds a full batch.
    pub full: Notify,
}

/// What a flush did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    pub sent: usize,
    pub unsent: usize,
    pub dropped: usize,
}

impl Core {
    pub fn new(
        identity: ClusterIdentity,
        max_buffered: usize,
        lookback_seconds: i64,
        metrics: CoreMetrics,
    ) -> Self {
        Self {
            ledger: Mutex::new(Ledger::new(max_buffered)),
            identity: RwLock::new(Arc::new(identity)),
            lookback_seconds: lookback_seconds.into(),
            metrics,
            full: Notify::new(),
        }
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // A panic while holding the lock cannot leave the ledger half-written in a way that
        // matters more than losing it: keep going with what is there.
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn identity(&self) -> Arc<ClusterIdentity> {
        self.identity
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_identity(&self, identity: ClusterIdentity) {
        let mut current = self
            .identity
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if **current != identity {
            info!(
                cluster_id_known = identity.has_cluster_id(),
                "cluster identity updated"
            );
            *current = Arc::new(identity);
        }
    }

    pub fn set_lookback(&self, seconds: i64) {
        self.lookback_seconds
            .store(seconds, std::sync::atomic::Ordering::Relaxed);
    }

    fn lookback(&self) -> i64 {
        self.lookback_seconds
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_max_buffered(&self, max: usize) {
        let evicted = self.ledger().set_max(max);
        self.count_evicted(evicted.len());
    }

    fn count_evicted(&self, n: usize) {
        if n > 0 {
            self.metrics
                .events_dropped
                .get_or_create(&ReasonLabel {
                    reason: "buffer_full",
                })
                .inc_by(n as u64);
            warn!(
                events = n,
                "buffer full: oldest events dropped (is Segment reachable?)"
            );
        }
    }

    /// Turns one sighting into the events it implies, at `now` (unix seconds).
    pub fn observe(&self, obs: Observation, now: i64) {
        let identity = self.identity();
        let uid = obs.object.meta().uid.clone();
        let is_run = matches!(obs.object, Object::PipelineRun(_));
        let produced = events::events_of(&obs.object, &identity);
        let lookback = self.lookback();
        let mut ledger = self.ledger();
        let actor = match (&obs.actor, is_run) {
            (Some(actor), true) => {
                ledger.remember_actor(&uid, actor.clone(), now);
                Some(actor.clone())
            }
            (Some(actor), false) => Some(actor.clone()),
            (None, true) => ledger.actor_of(&uid),
            (None, false) => None,
        };
        let mut evicted = 0;
        for mut event in produced {
            if actor.is_some() && actor_applies(event.name) {
                event.set_actor(actor.clone());
            }
            let labels = CoreMetrics::event(event.name, obs.source);
            match ledger.offer(event, now, lookback) {
                Offer::New { evicted: e } => {
                    self.metrics.events_produced.get_or_create(&labels).inc();
                    evicted += usize::from(e.is_some());
                }
                Offer::Updated | Offer::Unchanged | Offer::AlreadyProduced => {
                    self.metrics
                        .events_deduplicated
                        .get_or_create(&labels)
                        .inc();
                }
                Offer::TooOld => {
                    self.metrics.events_too_old.get_or_create(&labels).inc();
                }
            }
        }
        let len = ledger.len();
        drop(ledger);
        self.count_evicted(evicted);
        self.metrics.events_buffered.set(len as i64);
        if len >= FULL_BATCH {
            self.full.notify_one();
        }
    }

    /// Produces the heartbeat for `now`.
    pub fn heartbeat(&self, now: events::Timestamp) {
        let event = events::heartbeat::event(&self.identity(), now);
        let labels = CoreMetrics::event(EventName::Heartbeat, Source::Watch);
        let mut ledger = self.ledger();
        let at = event.timestamp.unix_seconds();
        if let Offer::New { evicted } = ledger.offer(event, at, self.lookback()) {
            self.metrics.events_produced.get_or_create(&labels).inc();
            drop(ledger);
            self.count_evicted(usize::from(evicted.is_some()));
        }
    }

    /// The waiting events as JSON, exactly as they would be sent: `{"batch": [...]}`.
    pub fn preview(&self) -> String {
        let events = self.ledger().waiting();
        serde_json::json!({ "batch": events }).to_string()
    }

    pub fn buffered(&self) -> usize {
        self.ledger().len()
    }

    /// Forgets produced events that left the lookback.
    pub fn expire(&self, now: i64) {
        let lookback = self.lookback();
        self.ledger().expire(now, lookback);
    }

    pub fn export_produced(&self, limit: usize) -> Vec<u8> {
        self.ledger().export_produced(limit)
    }

    pub fn import_produced(&self, bytes: &[u8]) -> usize {
        self.ledger().import_produced(bytes)
    }

    /// Sends what waits. With no sender (no write key), the events are let go as if sent:
    /// the daemon then only captures and previews.
    pub async fn flush(&self, sender: Option<&Sender>) -> Flushed {
        let started = Instant::now();
        let events = self.ledger().waiting();
        let mut flushed = Flushed::default();
        let outcome = if events.is_empty() {
            "ok"
        } else if let Some(sender) = sender {
            let batches = sender.prepare(&events);
            let batched: HashSet<&String> = batches.iter().flat_map(|b| b.message_ids()).collect();
            let too_large: Vec<String> = events
                .iter()
                .filter(|e| !batched.contains(&e.message_id))
                .map(|e| e.message_id.clone())
                .collect();
            flushed.dropped = too_large.len();
            let report = sender.send_all(&batches).await;
            flushed.sent = report.sent.len();
            flushed.unsent = report.unsent.len();
            let mut ledger = self.ledger();
            ledger.mark_sent(&too_large);
            ledger.mark_sent(&report.sent);
            self.metrics.events_buffered.set(ledger.len() as i64);
            match (flushed.sent, flushed.unsent) {
                (_, 0) => "ok",
                (0, _) => "failed",
                _ => "partial",
            }
        } else {
            let ids: Vec<String> = events.iter().map(|e| e.message_id.clone()).collect();
            let mut ledger = self.ledger();
            ledger.mark_sent(&ids);
            self.metrics.events_buffered.set(ledger.len() as i64);
            flushed.sent = ids.len();
            "no_write_key"
        };
        self.metrics
            .flushes
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        self.metrics
            .flush_duration_seconds
            .observe(started.elapsed().as_secs_f64());
        if outcome != "failed" && outcome != "partial" {
            self.metrics
                .last_successful_flush
                .set(events::Timestamp::now().unix_seconds());
        }
        flushed
    }
}

/// The events an actor belongs to: the creation of the object admission saw, a run's own
/// events, and the Konflux CR's removal; not a deployment the deleting user did not start.
fn actor_applies(name: EventName) -> bool {
    !matches!(
        name,
        EventName::OperatorDeploymentStarted
            | EventName::OperatorDeploymentCompleted
            | EventName::Heartbeat
    )
}
