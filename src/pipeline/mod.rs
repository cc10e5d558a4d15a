//! The pipeline: observations in, events into the [`Ledger`], flushes out as plain
//! data ([`crate::flush`]).
//!
//! Capture paths (watch, sweep, admission) only observe; the core alone decides whether an
//! observation produces an event, so de-duplication is shared by all of them.

pub mod ledger;
pub mod metrics;
pub mod observation;
pub mod preview;

use crate::events::{self, ClusterIdentity};
use crate::flush::{Buffer, Delivery, FlushOutcome, Flushed, Outgoing};
use crate::flush::{Limits, batches_of};
use crate::metrics::OutcomeLabel;
use crate::pipeline::metrics::CoreMetrics;
use crate::summary::activity::{Activity, Own, WindowActivity};
use crate::summary::window::Window;
use ledger::{Ledger, Offer};
use observation::{Observation, ObservationRx, Sightings, Source};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use tokio::sync::Notify;
use tracing::{info, warn};

/// Events in a full batch: a buffer this size flushes early.
pub const FULL_BATCH: usize = 2_500;

pub struct Core {
    ledger: Mutex<Ledger>,
    /// Admission's sightings, waiting for the watch or the sweep to confirm them.
    sightings: Mutex<Sightings>,
    identity: RwLock<Arc<ClusterIdentity>>,
    lookback_seconds: std::sync::atomic::AtomicI64,
    /// False while telemetry is off ([`crate::switch`]): nothing enters the buffer.
    enabled: std::sync::atomic::AtomicBool,
    metrics: CoreMetrics,
    /// Events a flush recorded as delivered or let go, since start: the state is saved
    /// when this moves.
    recorded: std::sync::atomic::AtomicU64,
    /// What happened in the current and the last usage-summary window.
    activity: Mutex<Activity>,
    /// Woken when the buffer holds a full batch.
    pub full: Notify,
}

impl Core {
    /// A core whose buffer holds at most `max_buffered` events and `max_buffered_bytes`
    /// (see [`Ledger::cost`]).
    pub fn new(
        identity: ClusterIdentity,
        max_buffered: usize,
        max_buffered_bytes: usize,
        lookback_seconds: i64,
        metrics: CoreMetrics,
    ) -> Self {
        Self {
            ledger: Mutex::new(Ledger::new(max_buffered, max_buffered_bytes)),
            sightings: Mutex::default(),
            identity: RwLock::new(Arc::new(identity)),
            lookback_seconds: lookback_seconds.into(),
            enabled: true.into(),
            metrics,
            recorded: 0.into(),
            activity: Mutex::new(Activity::new(24 * 3600)),
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

    pub fn set_max_buffered(&self, max: usize, max_bytes: usize) {
        let mut ledger = self.ledger();
        ledger.set_max(max, max_bytes);
        self.settle(ledger);
    }

    /// After a change to the buffer: counts and logs what it dropped to make room, and
    /// updates the gauge. Takes the lock guard to release it before logging.
    /// Wakes the flusher when the buffer holds a full batch.
    fn settle(&self, mut ledger: MutexGuard<'_, Ledger>) {
        let evicted = ledger.take_evicted();
        let len = ledger.len();
        self.metrics.events_buffered.set(len as i64);
        drop(ledger);
        self.count_evicted(evicted);
        if len >= FULL_BATCH {
            self.full.notify_one();
        }
    }

    /// Sets `konflux_telemetry_enabled`: 1 while the flusher sends, 0 while telemetry is
    /// off or not known yet.
    pub fn set_enabled_gauge(&self, on: bool) {
        self.metrics.enabled.set(i64::from(on));
    }

    fn activity(&self) -> MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `n` of the daemon's own events in the current summary window.
    fn own(&self, what: Own, n: usize) {
        if n > 0 {
            let now = events::Timestamp::now().unix_seconds();
            self.activity().own(what, n as u64, now);
        }
    }

    /// Sets the usage summary's window (`summaryInterval`); a change starts over.
    pub fn set_summary_interval(&self, seconds: i64) {
        self.activity().set_interval(seconds);
    }

    /// What happened in `window`, as far as the pipeline saw it.
    pub fn window_activity(&self, window: Window) -> WindowActivity {
        self.activity().of(window)
    }

    /// What the summary's activity holds, in bytes.
    pub fn activity_bytes(&self) -> usize {
        self.activity().bytes()
    }

    fn count_evicted(&self, n: usize) {
        self.own(Own::Dropped, n);
        if n > 0 {
            self.metrics.dropped("buffer_full", n as u64);
            warn!(
                events = n,
                "buffer full: oldest events dropped (is Segment reachable?)"
            );
        }
    }

    /// Turns telemetry on or off. Off drops what is buffered (and admission's sightings
    /// waiting for confirmation) without recording it as produced, so that the relist after it is turned
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
        // The actors waiting for their objects go too: none is confirmed while off.
        *self
            .sightings
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Sightings::default();
        self.count_off(dropped);
        self.metrics.events_buffered.set(0);
        dropped
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn count_off(&self, n: usize) {
        if n > 0 {
            self.metrics.dropped("telemetry_off", n as u64);
        }
    }

    /// Turns one sighting into the events it implies, at `now` (unix seconds).
    ///
    /// Admission's sightings produce nothing themselves: anyone who reaches the webhook
    /// port can send a review. They wait (see [`Sightings`]) for the watch or the sweep
    /// to see the same object, whose events then carry the actor admission saw.
    pub fn observe(&self, obs: Observation, now: i64) {
        let actor = {
            let mut sightings = self
                .sightings
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match obs.source {
                Source::Admission => {
                    let dropped = sightings.sighted(&obs.object, obs.actor, now);
                    drop(sightings);
                    self.count_unconfirmed(dropped);
                    return;
                }
                Source::Watch | Source::Sweep => {
                    let (actor, expired) = sightings.confirm(&obs.object, now);
                    drop(sightings);
                    self.count_unconfirmed(expired);
                    actor
                }
                Source::Clock => None,
            }
        };
        if obs.object.counts() {
            self.activity().observe(&obs.object, now);
        }
        let identity = self.identity();
        let produced = events::events_of(&obs.object, &identity);
        let lookback = self.lookback();
        let mut ledger = self.ledger();
        if !self.enabled() {
            drop(ledger);
            self.count_off(produced.len());
            return;
        }
        for mut event in produced {
            if actor.is_some() && event.name.takes_actor() {
                event.set_actor(actor.clone());
            }
            let labels = CoreMetrics::event(event.name, obs.source);
            let offer = ledger.offer(event, now, lookback);
            self.count_offer(&offer, &labels);
        }
        self.settle(ledger);
    }

    /// Produces the heartbeat for `now`.
    pub fn heartbeat(&self, now: events::Timestamp) {
        let event = crate::heartbeat::event(&self.identity(), now);
        let at = event.timestamp.unix_seconds();
        self.produce(event, at);
    }

    /// Takes an event the daemon made itself (a feature's loop: the heartbeat, an upgrade
    /// seen, a usage summary): into the buffer unless telemetry is off, or it
    /// was produced before (its `messageId` in the record of produced events).
    pub fn produce(&self, event: events::Event, now: i64) {
        let labels = CoreMetrics::event(event.name, Source::Clock);
        let mut ledger = self.ledger();
        if !self.enabled() {
            drop(ledger);
            self.count_off(1);
            return;
        }
        let offer = ledger.offer(event, now, self.lookback());
        self.count_offer(&offer, &labels);
        self.settle(ledger);
    }

    /// Whether the event `message_id` waits in the buffer (not sent, not let go yet).
    pub fn is_waiting(&self, message_id: &str) -> bool {
        self.ledger().is_waiting(message_id)
    }

    fn count_offer(&self, offer: &Offer, labels: &crate::metrics::EventLabels) {
        let family = match offer {
            Offer::New => {
                self.own(Own::Produced, 1);
                &self.metrics.events_produced
            }
            Offer::Updated | Offer::Unchanged | Offer::AlreadyProduced => {
                &self.metrics.events_deduplicated
            }
            Offer::TooOld => &self.metrics.events_too_old,
            Offer::Unserializable => return self.metrics.dropped("unserializable", 1),
            Offer::InFuture => return self.metrics.dropped("future_time", 1),
        };
        family.get_or_create(labels).inc();
    }

    pub fn buffered(&self) -> usize {
        self.ledger().len()
    }

    /// What the waiting events count against `maxBufferedBytes`.
    pub fn buffered_bytes(&self) -> usize {
        self.ledger().bytes()
    }

    /// Forgets produced events that left the lookback, and admission sightings past
    /// their time (counting those never confirmed).
    pub fn expire(&self, now: i64) {
        let lookback = self.lookback();
        self.ledger().expire(now, lookback);
        let unconfirmed = self
            .sightings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .expire(now);
        if !unconfirmed.is_empty() {
            info!(
                sightings = unconfirmed.len(),
                "admission sightings the watch never confirmed expired (forged reviews, or objects the watch missed); no event from them"
            );
        }
        self.count_unconfirmed(unconfirmed);
    }

    fn count_unconfirmed(&self, kinds: Vec<events::Kind>) {
        for kind in kinds {
            self.metrics.skipped(kind, "unconfirmed");
        }
    }

    /// What waits, cut into batches under `limits` (the batches share the buffer's
    /// bytes: a flush holds the events once), and the events no batch can carry. Taken
    /// under the lock, without copying the events.
    pub fn outgoing(&self, limits: &Limits) -> Outgoing {
        let (batches, unsendable) = batches_of(self.ledger().iter_waiting(), limits);
        Outgoing::new(batches, unsendable)
    }

    /// Records what `delivery` did with `out`: accepted events, events refused alone and
    /// events no batch can carry leave the buffer and are remembered as produced; the
    /// rest wait for the next flush. `reached` says whether the output reached a receiver
    /// (false without a write key).
    pub fn record(&self, out: &Outgoing, delivery: &Delivery, reached: bool) -> Flushed {
        let mut ledger = self.ledger();
        ledger.mark_sent(out.unsendable.iter().map(|d| &d.message_id));
        ledger.mark_sent(&delivery.dropped);
        ledger.mark_sent(&delivery.sent);
        self.settle(ledger);
        self.own(Own::Sent, delivery.sent.len());
        self.own(Own::Dropped, out.unsendable.len() + delivery.dropped.len());
        let recorded = out.unsendable.len() + delivery.dropped.len() + delivery.sent.len();
        self.recorded
            .fetch_add(recorded as u64, std::sync::atomic::Ordering::Relaxed);
        let outcome = match (reached, delivery.sent.len(), delivery.unsent.len()) {
            (false, _, _) => FlushOutcome::NoWriteKey,
            (true, _, 0) => FlushOutcome::Ok,
            (true, 0, _) => FlushOutcome::Failed,
            (true, _, _) => FlushOutcome::Partial,
        };
        self.count_flush(outcome);
        self.metrics
            .flush_duration_seconds
            .observe(out.started.elapsed().as_secs_f64());
        Flushed {
            outcome,
            sent: delivery.sent.len(),
            unsent: delivery.unsent.len(),
            dropped: out.unsendable.len() + delivery.dropped.len(),
        }
    }

    /// Counts a flush (or a flush time passed without one) by outcome.
    pub fn count_flush(&self, outcome: FlushOutcome) {
        self.metrics
            .flushes
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            })
            .inc();
        if outcome.succeeded() {
            self.metrics
                .last_successful_flush_timestamp_seconds
                .set(events::Timestamp::now().unix_seconds());
        }
    }
}

/// What the state checkpoint saves and restores: the record of produced events (see
/// [`Ledger::export_produced`]), and how many events left the buffer since start, so it
/// saves only after a change.
pub trait ProducedRecord: Send + Sync {
    /// The produced events' record, at most `limit` entries, newest kept.
    fn export_produced(&self, limit: usize) -> Vec<u8>;

    /// Restores a record [`ProducedRecord::export_produced`] wrote; returns the entries.
    fn import_produced(&self, bytes: &[u8]) -> usize;

    /// Events recorded as delivered or let go since start.
    fn recorded(&self) -> u64;
}

impl ProducedRecord for Core {
    fn export_produced(&self, limit: usize) -> Vec<u8> {
        self.ledger().export_produced(limit)
    }

    fn import_produced(&self, bytes: &[u8]) -> usize {
        self.ledger().import_produced(bytes)
    }

    fn recorded(&self) -> u64 {
        self.recorded.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Buffer for Core {
    fn outgoing(&self, limits: &Limits) -> Outgoing {
        Core::outgoing(self, limits)
    }

    fn record(&self, out: &Outgoing, delivery: &Delivery, reached: bool) -> Flushed {
        Core::record(self, out, delivery, reached)
    }

    fn count_flush(&self, outcome: FlushOutcome) {
        Core::count_flush(self, outcome);
    }

    fn buffered(&self) -> usize {
        Core::buffered(self)
    }

    fn expire(&self, now: i64) {
        Core::expire(self, now);
    }

    fn full(&self) -> &Notify {
        &self.full
    }

    fn set_sending(&self, on: bool) {
        self.set_enabled_gauge(on);
    }
}

/// Hands every observation to the core until all senders are gone.
pub async fn consume(core: Arc<Core>, mut rx: ObservationRx) {
    while let Some(obs) = rx.recv().await {
        core.observe(obs, events::Timestamp::now().unix_seconds());
    }
}

#[cfg(test)]
mod tests {
    use super::preview::{PREVIEW_CHUNK, PreviewCursor, PreviewSource};
    use super::*;
    use crate::events::{Actor, Decoded, Object};
    use crate::metrics::ReasonLabel;

    const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn run(uid: &str, start: &str, completion: Option<&str>) -> Object {
        let mut status = serde_json::json!({"startTime": start});
        if let Some(c) = completion {
            status["completionTime"] = c.into();
        }
        let json = serde_json::json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
            "metadata": {"uid": uid, "namespace": "ns", "creationTimestamp": start}, "status": status});
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
            usize::MAX,
            4 * 3600,
            CoreMetrics::default(),
        )
    }

    fn ids(core: &Core) -> Vec<String> {
        core.ledger()
            .iter_waiting()
            .map(|e| e.message_id.to_string())
            .collect()
    }

    /// The preview as JSON.
    fn preview_json(core: &Core) -> serde_json::Value {
        serde_json::from_str(&preview(core)).expect("the preview is JSON")
    }

    fn preview(core: &Core) -> String {
        let mut cursor = PreviewCursor::default();
        let mut out = Vec::new();
        while let Some(chunk) = core.preview_chunk(&mut cursor) {
            out.extend_from_slice(&chunk);
        }
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn a_run_dated_2999_is_counted_and_not_kept() {
        let core = core();
        core.observe(
            watch(run(
                "far",
                "2999-01-01T00:00:00Z",
                Some("2999-01-01T01:00:00Z"),
            )),
            NOW,
        );
        assert!(ids(&core).is_empty(), "nothing waits");
        assert!(core.export_produced(10).is_empty(), "nothing is recorded");
        let dropped = core
            .metrics
            .buffer_events_dropped
            .get_or_create(&ReasonLabel {
                reason: "future_time",
            })
            .get();
        assert_eq!(dropped, 2, "Started and Completed");
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
        let flushed = crate::flush::flush_once(&core, &crate::flush::Discard).await;
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
        let waiting = preview_json(&core);
        let waiting = waiting["batch"].as_array().unwrap();
        assert_eq!(waiting.len(), 2);
        assert!(
            waiting
                .iter()
                .all(|e| e["properties"]["actorHash"] == alice.user_hash.as_str()
                    && e.get("userId").is_none())
        );
    }

    fn decoded(json: serde_json::Value) -> Object {
        match events::decode_one(json.to_string().as_bytes()) {
            Decoded::Object(o) => o,
            other => panic!("{other:?}"),
        }
    }

    fn admission(object: Object, user: &str, core: &Core) -> Observation {
        Observation {
            source: Source::Admission,
            object,
            actor: Some(Actor::new(user, &core.identity())),
        }
    }

    /// The `actorHash` of the `i`th event of the preview (never a `userId`).
    fn actor_hash(core: &Core, i: usize) -> Option<String> {
        let shown = preview_json(core);
        assert!(shown["batch"][i].get("userId").is_none());
        shown["batch"][i]["properties"]
            .get("actorHash")
            .map(|u| u.as_str().unwrap_or_default().to_owned())
    }

    /// `user` creates `object` at `at`: admission sees it, then the watch a second later.
    fn created_by(core: &Core, object: &Object, user: &str, at: i64) {
        core.observe(admission(object.clone(), user, core), at);
        core.observe(watch(object.clone()), at + 1);
    }

    fn component(uid: &str, created: &str) -> Object {
        decoded(
            serde_json::json!({"apiVersion": "appstudio.redhat.com/v1alpha1", "kind": "Component",
            "metadata": {"uid": uid, "name": "c", "namespace": "ns", "creationTimestamp": created},
            "spec": {"application": "a"}}),
        )
    }

    fn konflux(uid: &str, deleted: Option<&str>) -> Object {
        let mut meta = serde_json::json!({"uid": uid, "name": "konflux", "creationTimestamp": "2025-12-01T00:00:00Z"});
        if let Some(d) = deleted {
            meta["deletionTimestamp"] = d.into();
        }
        decoded(
            serde_json::json!({"apiVersion": "konflux.konflux-ci.dev/v1alpha1", "kind": "Konflux",
            "metadata": meta,
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "lastTransitionTime": "2025-12-01T00:10:00Z"}]}}),
        )
    }

    fn skipped(core: &Core, kind: events::Kind, reason: &'static str) -> u64 {
        core.metrics
            .objects_skipped
            .get_or_create(&crate::metrics::SkipLabels {
                kind: kind.as_str(),
                reason,
            })
            .get()
    }

    #[tokio::test]
    async fn forged_reviews_alone_produce_nothing_and_expire_counted() {
        let core = core();
        let at = "2026-01-01T00:00:00Z";
        core.observe(admission(component("forged-c", at), "mallory", &core), NOW);
        let mut removed = konflux("forged-k", None);
        removed.mark_deleted_now();
        core.observe(admission(removed, "mallory", &core), NOW);
        core.observe(
            admission(
                run("forged-r", "2025-12-31T23:59:30Z", None),
                "mallory",
                &core,
            ),
            NOW,
        );
        assert!(ids(&core).is_empty(), "{:?}", ids(&core));
        assert_eq!(
            crate::flush::flush_once(&core, &crate::flush::Discard)
                .await
                .sent,
            0
        );
        core.expire(NOW + crate::pipeline::observation::UNCONFIRMED_TTL_SECONDS + 1);
        for kind in [
            events::Kind::Component,
            events::Kind::Konflux,
            events::Kind::PipelineRun,
        ] {
            assert_eq!(skipped(&core, kind, "unconfirmed"), 1, "{kind:?}");
        }
        // and the watch seeing them later (after expiry) gives no forged actor
        core.observe(watch(component("forged-c", at)), NOW + 700);
        assert_eq!(actor_hash(&core, 0), None);
    }

    #[tokio::test]
    async fn a_forged_review_cannot_pin_an_actor_on_a_real_object() {
        let core = core();
        // the real creation, confirmed by the watch
        let c = component("c1", "2026-01-01T00:00:00Z");
        created_by(&core, &c, "alice", NOW);
        // a forged review naming the same uid comes later: the first actor stays
        created_by(&core, &c, "mallory", NOW + 2);
        let alice = Actor::new("alice", &core.identity());
        assert_eq!(ids(&core).len(), 1);
        assert_eq!(actor_hash(&core, 0), Some(alice.user_hash));
        // a forged review naming an old object (created an hour ago) confirms nothing
        let old = component("c-old", "2025-12-31T23:00:00Z");
        created_by(&core, &old, "mallory", NOW);
        assert_eq!(actor_hash(&core, 1), None);
    }

    #[tokio::test]
    async fn a_component_created_and_deleted_at_once_counts_once_with_its_actor() {
        let core = core();
        let c = component("brief", "2026-01-01T00:00:00Z");
        core.observe(admission(c.clone(), "alice", &core), NOW);
        // the watch's ADDED and DELETED
        core.observe(watch(c.clone()), NOW);
        core.observe(watch(c), NOW + 1);
        assert_eq!(ids(&core), ["brief-component-created"]);
        let alice = Actor::new("alice", &core.identity());
        assert_eq!(actor_hash(&core, 0), Some(alice.user_hash));
    }

    #[tokio::test]
    async fn the_konflux_removal_waits_for_the_watch_and_takes_the_deleting_user() {
        let core = core();
        let deleting = konflux("k", Some("2026-01-01T00:00:00Z"));
        core.observe(admission(deleting.clone(), "bob", &core), NOW);
        assert!(!ids(&core).iter().any(|id| id.ends_with("removal-started")));
        core.observe(watch(deleting), NOW + 1);
        let shown = preview_json(&core);
        let removal = shown["batch"]
            .as_array()
            .and_then(|b| b.iter().find(|e| e["event"] == "Operator Removal Started"))
            .cloned()
            .expect("removal event");
        assert_eq!(
            removal["properties"]["actorHash"],
            Actor::new("bob", &core.identity()).user_hash.as_str()
        );
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
                .buffer_events_dropped
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
        let shown = preview_json(&core);
        assert_eq!(shown["batch"][0]["messageId"], "a-started");
        crate::flush::flush_once(&core, &crate::flush::Discard).await;
        assert_eq!(preview(&core), r#"{"batch":[]}"#);
    }

    #[test]
    fn preview_is_the_wire_json_in_pieces_of_bounded_size() {
        let core = Core::new(
            ClusterIdentity::new(Some("c".into()), None, None),
            1_000,
            usize::MAX,
            4 * 3600,
            CoreMetrics::default(),
        );
        let mut expected = Vec::new();
        for i in 0..200 {
            let o = run(
                &format!("r{i:03}"),
                "2025-12-31T23:00:00Z",
                Some("2025-12-31T23:30:00Z"),
            );
            expected.extend(events::events_of(&o, &core.identity()));
            core.observe(watch(o), NOW);
        }
        let mut cursor = PreviewCursor::default();
        let mut pieces = 0;
        let mut whole = Vec::new();
        while let Some(chunk) = core.preview_chunk(&mut cursor) {
            assert!(chunk.len() <= PREVIEW_CHUNK + 256, "{}", chunk.len());
            pieces += 1;
            whole.extend_from_slice(&chunk);
        }
        // 400 events of ~600 bytes: several pieces, and the closing one
        assert!(pieces >= 4, "{pieces}");
        let body: Vec<String> = expected.iter().map(events::Event::to_json).collect();
        assert_eq!(
            String::from_utf8(whole).unwrap(),
            format!(r#"{{"batch":[{}]}}"#, body.join(","))
        );
    }
}
