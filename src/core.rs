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
    /// False while telemetry is off ([`crate::switch`]): nothing enters the buffer.
    enabled: std::sync::atomic::AtomicBool,
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
            enabled: true.into(),
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

    /// Turns telemetry on or off. Off drops what is buffered (and the actors waiting for
    /// their runs) without recording it as produced, so that the relist after it is turned
    /// on again produces what still lies within the lookback; while off, sightings produce
    /// nothing. Returns how many events were dropped.
    pub fn set_enabled(&self, on: bool) -> usize {
        // Under the ledger's lock, so that no sighting that read the old value lands after.
        let mut ledger = self.ledger();
        self.enabled.store(on, std::sync::atomic::Ordering::SeqCst);
        if on {
            return 0;
        }
        let dropped = ledger.drop_waiting();
        drop(ledger);
        self.count_off(dropped);
        self.metrics.events_buffered.set(0);
        dropped
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn count_off(&self, n: usize) {
        if n > 0 {
            self.metrics
                .events_dropped
                .get_or_create(&ReasonLabel {
                    reason: "telemetry_off",
                })
                .inc_by(n as u64);
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
        if !self.enabled() {
            drop(ledger);
            self.count_off(produced.len());
            return;
        }
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
        let labels = CoreMetrics::event(EventName::Heartbeat, Source::Clock);
        let mut ledger = self.ledger();
        if !self.enabled() {
            drop(ledger);
            self.count_off(1);
            return;
        }
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
        // Serialise under the lock rather than copy every waiting event: a flush after a
        // large relist would otherwise hold the events twice.
        let (ids, batches) = {
            let ledger = self.ledger();
            let ids: Vec<String> = ledger
                .iter_waiting()
                .map(|e| e.message_id.clone())
                .collect();
            let batches = sender.map(|s| s.prepare(ledger.iter_waiting()));
            (ids, batches)
        };
        let mut flushed = Flushed::default();
        let outcome = match (sender, batches) {
            _ if ids.is_empty() => "ok",
            (Some(sender), Some(batches)) => {
                let batched: HashSet<&String> =
                    batches.iter().flat_map(|b| b.message_ids()).collect();
                let too_large: Vec<String> = ids
                    .iter()
                    .filter(|id| !batched.contains(id))
                    .cloned()
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
            }
            _ => {
                let mut ledger = self.ledger();
                ledger.mark_sent(&ids);
                self.metrics.events_buffered.set(ledger.len() as i64);
                flushed.sent = ids.len();
                "no_write_key"
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Actor, Decoded};

    const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn run(uid: &str, start: &str, completion: Option<&str>) -> Object {
        let mut status = serde_json::json!({"startTime": start});
        if let Some(c) = completion {
            status["completionTime"] = c.into();
        }
        let json = serde_json::json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
            "metadata": {"uid": uid, "namespace": "ns"}, "status": status});
        match events::decode_one(json.to_string().as_bytes()) {
            Decoded::Object(o) => o,
            other => panic!("{other:?}"),
        }
    }

    fn watch(object: Object) -> Observation {
        Observation {
            source: Source::Watch,
            object,
            actor: None,
        }
    }

    fn core() -> Core {
        Core::new(
            ClusterIdentity::new(Some("c".into()), None, None),
            100,
            4 * 3600,
            CoreMetrics::default(),
        )
    }

    fn ids(core: &Core) -> Vec<String> {
        core.ledger()
            .waiting()
            .into_iter()
            .map(|e| e.message_id)
            .collect()
    }

    #[tokio::test]
    async fn a_relist_after_a_flush_produces_nothing_again() {
        let core = core();
        let objects = [
            run("a", "2025-12-31T23:00:00Z", Some("2025-12-31T23:30:00Z")),
            run("b", "2025-12-31T23:50:00Z", None),
            run("old", "2025-12-31T10:00:00Z", Some("2025-12-31T11:00:00Z")),
        ];
        for o in &objects {
            core.observe(watch(o.clone()), NOW);
        }
        assert_eq!(ids(&core), ["a-started", "a-completed", "b-started"]);
        let flushed = core.flush(None).await;
        assert_eq!(flushed.sent, 3);
        // kube-runtime replays every object after a 410 or a restart of the watch
        for o in &objects {
            core.observe(watch(o.clone()), NOW + 60);
        }
        assert!(ids(&core).is_empty(), "{:?}", ids(&core));
        // and a run that completed meanwhile gives only its new event
        core.observe(
            watch(run(
                "b",
                "2025-12-31T23:50:00Z",
                Some("2026-01-01T00:00:30Z"),
            )),
            NOW + 60,
        );
        assert_eq!(ids(&core), ["b-completed"]);
    }

    #[tokio::test]
    async fn the_admission_actor_follows_the_run() {
        let core = core();
        let identity = core.identity();
        let alice = Actor::new("alice", &identity);
        let created = run("r", "2025-12-31T23:59:00Z", None);
        let Object::PipelineRun(mut pending) = created else {
            panic!()
        };
        pending.start_time = None;
        core.observe(
            Observation {
                source: Source::Admission,
                object: Object::PipelineRun(pending),
                actor: Some(alice.clone()),
            },
            NOW,
        );
        assert!(ids(&core).is_empty());
        core.observe(
            watch(run(
                "r",
                "2025-12-31T23:59:00Z",
                Some("2026-01-01T00:00:00Z"),
            )),
            NOW,
        );
        let waiting = core.ledger().waiting();
        assert_eq!(waiting.len(), 2);
        assert!(waiting.iter().all(|e| e.actor.as_ref() == Some(&alice)));
    }

    #[tokio::test]
    async fn telemetry_off_drops_the_buffer_and_on_again_lets_a_relist_catch_up() {
        let core = core();
        let a = run("a", "2025-12-31T23:00:00Z", None);
        core.observe(watch(a.clone()), NOW);
        assert_eq!(ids(&core), ["a-started"]);
        assert_eq!(core.set_enabled(false), 1);
        assert!(ids(&core).is_empty());
        assert_eq!(core.buffered(), 0);
        // while off, nothing enters the buffer: not a sighting, not a heartbeat
        core.observe(watch(run("b", "2025-12-31T23:30:00Z", None)), NOW);
        core.heartbeat(events::Timestamp::from_unix_seconds(NOW).unwrap());
        assert!(ids(&core).is_empty());
        assert_eq!(
            core.metrics
                .events_dropped
                .get_or_create(&ReasonLabel {
                    reason: "telemetry_off"
                })
                .get(),
            3
        );
        // on again: the relist within the lookback produces both, as nothing was sent
        core.set_enabled(true);
        core.observe(watch(a), NOW + 1);
        core.observe(watch(run("b", "2025-12-31T23:30:00Z", None)), NOW + 1);
        assert_eq!(ids(&core), ["a-started", "b-started"]);
    }

    #[tokio::test]
    async fn without_a_key_flush_lets_events_go_and_preview_shows_them_first() {
        let core = core();
        core.observe(watch(run("a", "2025-12-31T23:00:00Z", None)), NOW);
        let preview: serde_json::Value = serde_json::from_str(&core.preview()).unwrap();
        assert_eq!(preview["batch"][0]["messageId"], "a-started");
        core.flush(None).await;
        assert_eq!(core.preview(), r#"{"batch":[]}"#);
    }
}
