//! What the capture paths (watch, sweep, admission) hand to the daemon's core: an object as
//! seen, by whom it was seen, and (from admission) who acted on it.

use crate::events::object::MAX_FIELD_CHARS;
use crate::events::{Actor, Kind, Object};
use std::collections::{HashMap, VecDeque};

/// Which capture path saw an object. A metric label, so a fixed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// kube-runtime watchers on the API server.
    Watch,
    /// The reconciliation sweep over Tekton Results.
    Sweep,
    /// The admission webhook.
    Admission,
    /// The daemon's own clock: heartbeats.
    Clock,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Watch => "watch",
            Source::Sweep => "sweep",
            Source::Admission => "admission",
            Source::Clock => "clock",
        }
    }
}

/// One sighting of an object.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub source: Source,
    pub object: Object,
    /// Who created the object (or deleted the Konflux CR), when admission saw it.
    pub actor: Option<Actor>,
}

/// Where capture paths send what they see. Bounded: a full channel slows the capture path,
/// it never grows memory.
pub type ObservationTx = tokio::sync::mpsc::Sender<Observation>;
pub type ObservationRx = tokio::sync::mpsc::Receiver<Observation>;

/// How far (seconds) the confirmed object's own time may lie from admission's sighting:
/// its `creationTimestamp` (the API server sets it just before it calls the webhook), or
/// for the Konflux CR its deletion time. Room for clock skew between the API server and
/// the daemon and for a queue backlog; a forged review that names an object created (or
/// deleted) at another time confirms nothing.
pub const CONFIRM_WINDOW_SECONDS: i64 = 120;
/// How long (seconds) a sighting waits for the watch or the sweep before it expires.
pub const UNCONFIRMED_TTL_SECONDS: i64 = 600;
/// How long (seconds) a confirmed actor is kept for the object's later events (a
/// PipelineRun's Completed comes hours after its creation).
pub const CONFIRMED_TTL_SECONDS: i64 = 24 * 3600;
/// Sightings kept at most; past it the oldest is forgotten.
pub const MAX_SIGHTINGS: usize = 50_000;
/// Bytes the sightings may hold at most (as [`Sightings::bytes`] counts them); past it
/// the oldest is forgotten. With every field capped a sighting costs at most about 400
/// bytes: at the longest, about 37,000 fit; at real sizes (a 36-character uid, a short
/// namespace), [`MAX_SIGHTINGS`].
pub const MAX_SIGHTINGS_BYTES: usize = 16 * 1024 * 1024;
/// What one sighting costs besides its strings: the map's entry and the queue's, the
/// actor's hash, allocator rounding.
const SIGHTING_OVERHEAD_BYTES: usize = 256;

/// Admission's word about one object: who created it (or deleted the Konflux CR). It is
/// not trusted: anyone who can reach the webhook port can send a review.
#[derive(Clone, Debug, PartialEq)]
struct Sighting {
    kind: Kind,
    namespace: Option<String>,
    actor: Option<Actor>,
    /// When admission saw it (unix seconds, the daemon's clock).
    seen: i64,
    /// The watch or the sweep has seen the same object.
    confirmed: bool,
}

/// Admission sightings waiting for the watch or the sweep, and the actors of confirmed
/// ones. Pure: the time is given.
///
/// - Admission's word alone produces no event: the core produces events only from what
///   the watch and the sweep see, which come from the API server (or Tekton Results).
/// - An actor attaches only to an object the watch or the sweep confirms: same uid, kind
///   and namespace, and the object's own time (creation, or the Konflux CR's deletion)
///   within [`CONFIRM_WINDOW_SECONDS`] of the sighting.
/// - The first sighting of a uid is kept; later ones (a forged review naming a real
///   object) change nothing.
/// - Unconfirmed sightings expire after [`UNCONFIRMED_TTL_SECONDS`], counted: at every
///   [`Sightings::sighted`] and [`Sightings::confirm`] (each is given the time), whether
///   or not anything else ([`Sightings::expire`]) runs.
/// - Bounded by count ([`MAX_SIGHTINGS`]) and by bytes ([`MAX_SIGHTINGS_BYTES`]): past
///   either the oldest unconfirmed sighting is forgotten (counted), then the oldest
///   confirmed one. A namespace longer than [`MAX_FIELD_CHARS`] (no Kubernetes namespace
///   is) is not kept at all.
#[derive(Debug, Default)]
pub struct Sightings {
    by_uid: HashMap<String, Sighting>,
    /// Unconfirmed sightings, (seen, uid) in the order they were first seen. An entry
    /// whose uid is gone, confirmed, or sighted again at another time is stale: skipped.
    pending: VecDeque<(i64, String)>,
    /// Confirmed sightings, (seen, uid) in the order they were confirmed.
    kept: VecDeque<(i64, String)>,
    /// What the entries hold, as [`cost`] counts it.
    bytes: usize,
}

/// What a sighting of `uid` in `namespace` is counted for: its strings twice (the map's
/// key and a queue's) and a fixed overhead.
fn cost(uid: &str, namespace: Option<&str>) -> usize {
    SIGHTING_OVERHEAD_BYTES + 2 * uid.len() + namespace.map_or(0, str::len)
}

impl Sightings {
    /// Takes admission's sighting of `object` at `now`. Returns the kinds of unconfirmed
    /// sightings forgotten (expired, or dropped to make room, or this one refused), to be
    /// counted.
    pub fn sighted(&mut self, object: &Object, actor: Option<Actor>, now: i64) -> Vec<Kind> {
        let mut forgotten = self.expire_due(now);
        let meta = object.meta();
        if self.by_uid.contains_key(&meta.uid) {
            return forgotten;
        }
        let namespace = meta.namespace.as_deref();
        if namespace.is_some_and(|ns| ns.chars().count() > MAX_FIELD_CHARS)
            || meta.uid.chars().count() > MAX_FIELD_CHARS
        {
            forgotten.push(object.kind());
            return forgotten;
        }
        let cost = cost(&meta.uid, namespace);
        while !self.by_uid.is_empty()
            && (self.by_uid.len() >= MAX_SIGHTINGS || self.bytes + cost > MAX_SIGHTINGS_BYTES)
        {
            match self.drop_oldest() {
                Some(Some(kind)) => forgotten.push(kind),
                Some(None) => {}
                None => break,
            }
        }
        self.pending.push_back((now, meta.uid.clone()));
        self.bytes += cost;
        self.by_uid.insert(
            meta.uid.clone(),
            Sighting {
                kind: object.kind(),
                namespace: meta.namespace.clone(),
                actor,
                seen: now,
                confirmed: false,
            },
        );
        forgotten
    }

    /// The watch or the sweep saw `object` at `now`: the actor admission saw for it, if
    /// admission's sighting matches it. Also returns the kinds of unconfirmed sightings
    /// that expired by `now`, to be counted.
    pub fn confirm(&mut self, object: &Object, now: i64) -> (Option<Actor>, Vec<Kind>) {
        let expired = self.expire_due(now);
        (self.matching(object), expired)
    }

    fn matching(&mut self, object: &Object) -> Option<Actor> {
        let meta = object.meta();
        let s = self.by_uid.get_mut(&meta.uid)?;
        if s.kind != object.kind() || s.namespace != meta.namespace {
            return None;
        }
        let at = match object {
            Object::Konflux(_) => meta.deletion_timestamp.as_ref(),
            _ => meta.creation_timestamp.as_ref(),
        }?;
        if (at.unix_seconds() - s.seen).abs() > CONFIRM_WINDOW_SECONDS {
            return None;
        }
        if !s.confirmed {
            s.confirmed = true;
            self.kept.push_back((s.seen, meta.uid.clone()));
        }
        s.actor.clone()
    }

    /// Forgets the oldest sighting: unconfirmed first. `None` when there is none left;
    /// else the kind of an unconfirmed one forgotten.
    fn drop_oldest(&mut self) -> Option<Option<Kind>> {
        for confirmed in [false, true] {
            let queue = if confirmed {
                &mut self.kept
            } else {
                &mut self.pending
            };
            while let Some((seen, uid)) = queue.pop_front() {
                let live = self
                    .by_uid
                    .get(&uid)
                    .is_some_and(|s| s.seen == seen && s.confirmed == confirmed);
                if live {
                    let kind = self.remove(&uid).map(|s| s.kind);
                    return Some(if confirmed { None } else { kind });
                }
            }
        }
        None
    }

    fn remove(&mut self, uid: &str) -> Option<Sighting> {
        let s = self.by_uid.remove(uid)?;
        self.bytes = self.bytes.saturating_sub(cost(uid, s.namespace.as_deref()));
        Some(s)
    }

    /// Forgets what is past its time, from the fronts of the queues only (cheap enough
    /// for every call): unconfirmed sightings older than [`UNCONFIRMED_TTL_SECONDS`]
    /// (returning their kinds) and confirmed ones older than [`CONFIRMED_TTL_SECONDS`].
    fn expire_due(&mut self, now: i64) -> Vec<Kind> {
        let mut unconfirmed = Vec::new();
        for confirmed in [false, true] {
            let ttl = if confirmed {
                CONFIRMED_TTL_SECONDS
            } else {
                UNCONFIRMED_TTL_SECONDS
            };
            loop {
                let queue = if confirmed {
                    &mut self.kept
                } else {
                    &mut self.pending
                };
                let Some((seen, uid)) = queue.front() else {
                    break;
                };
                let (seen, live) = match self.by_uid.get(uid) {
                    Some(s) if s.seen == *seen && s.confirmed == confirmed => (*seen, true),
                    _ => (*seen, false),
                };
                if live && seen >= now.saturating_sub(ttl) {
                    break;
                }
                let Some((_, uid)) = queue.pop_front() else {
                    break;
                };
                if live
                    && let Some(s) = self.remove(&uid)
                    && !confirmed
                {
                    unconfirmed.push(s.kind);
                }
            }
        }
        unconfirmed
    }

    /// Forgets unconfirmed sightings older than [`UNCONFIRMED_TTL_SECONDS`] (returning
    /// their kinds, to be counted) and confirmed ones older than
    /// [`CONFIRMED_TTL_SECONDS`], wherever they are in the queues.
    pub fn expire(&mut self, now: i64) -> Vec<Kind> {
        let mut unconfirmed = Vec::new();
        let mut freed = 0;
        self.by_uid.retain(|uid, s| {
            let ttl = if s.confirmed {
                CONFIRMED_TTL_SECONDS
            } else {
                UNCONFIRMED_TTL_SECONDS
            };
            let keep = s.seen >= now.saturating_sub(ttl);
            if !keep {
                freed += cost(uid, s.namespace.as_deref());
                if !s.confirmed {
                    unconfirmed.push(s.kind);
                }
            }
            keep
        });
        self.bytes = self.bytes.saturating_sub(freed);
        let by_uid = &self.by_uid;
        let live = |confirmed: bool| {
            move |(seen, uid): &(i64, String)| {
                by_uid
                    .get(uid)
                    .is_some_and(|s| s.seen == *seen && s.confirmed == confirmed)
            }
        };
        self.pending.retain(live(false));
        self.kept.retain(live(true));
        unconfirmed
    }

    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }

    /// What the sightings hold, as counted against [`MAX_SIGHTINGS_BYTES`].
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ClusterIdentity, Decoded, decode_one};

    const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn object(kind: &str, uid: &str, namespace: Option<&str>, created: &str) -> Object {
        let (api_version, kind) = match kind {
            "Component" => ("appstudio.redhat.com/v1alpha1", "Component"),
            "PipelineRun" => ("tekton.dev/v1", "PipelineRun"),
            _ => panic!("{kind}"),
        };
        let mut meta = serde_json::json!({"uid": uid, "name": "n", "creationTimestamp": created});
        if let Some(ns) = namespace {
            meta["namespace"] = ns.into();
        }
        let json = serde_json::json!({"apiVersion": api_version, "kind": kind, "metadata": meta,
            "spec": {"application": "a"}});
        match decode_one(json.to_string().as_bytes()) {
            Decoded::Object(o) => o,
            other => panic!("{other:?}"),
        }
    }

    fn actor(user: &str) -> Option<Actor> {
        Some(Actor::new(user, &ClusterIdentity::default()))
    }

    const AT: &str = "2026-01-01T00:00:00Z";

    /// A Component only a forged review names, and a PipelineRun that exists.
    fn forged_and_real() -> (Object, Object) {
        (
            object("Component", "forged", Some("ns"), AT),
            object("PipelineRun", "real", Some("ns"), AT),
        )
    }

    #[test]
    fn the_watch_confirms_the_same_object_and_its_actor_attaches() {
        let mut s = Sightings::default();
        let c = object("Component", "u1", Some("ns"), AT);
        assert!(s.sighted(&c, actor("alice"), NOW).is_empty());
        assert_eq!(s.confirm(&c, NOW).0, actor("alice"));
        // again, for the object's later updates
        assert_eq!(s.confirm(&c, NOW).0, actor("alice"));
    }

    #[test]
    fn another_kind_namespace_or_time_confirms_nothing() {
        let mut s = Sightings::default();
        s.sighted(
            &object("Component", "u1", Some("ns"), AT),
            actor("mallory"),
            NOW,
        );
        assert_eq!(
            s.confirm(&object("PipelineRun", "u1", Some("ns"), AT), NOW)
                .0,
            None
        );
        assert_eq!(
            s.confirm(&object("Component", "u1", Some("other"), AT), NOW)
                .0,
            None
        );
        assert_eq!(s.confirm(&object("Component", "u1", None, AT), NOW).0, None);
        assert_eq!(
            s.confirm(&object("Component", "u2", Some("ns"), AT), NOW).0,
            None
        );
        // a forged review naming a real object that was created long before
        let old = object("Component", "u1", Some("ns"), "2025-12-31T23:57:59Z");
        assert_eq!(s.confirm(&old, NOW).0, None);
        let within = object("Component", "u1", Some("ns"), "2025-12-31T23:58:00Z");
        assert_eq!(s.confirm(&within, NOW).0, actor("mallory"));
    }

    #[test]
    fn the_first_actor_of_a_uid_is_kept() {
        let mut s = Sightings::default();
        let c = object("PipelineRun", "r", Some("ns"), AT);
        s.sighted(&c, actor("alice"), NOW);
        s.sighted(&c, actor("mallory"), NOW + 1);
        assert_eq!(s.confirm(&c, NOW).0, actor("alice"));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn unconfirmed_sightings_expire_counted_confirmed_ones_stay_a_day() {
        let mut s = Sightings::default();
        let (forged, real) = forged_and_real();
        s.sighted(&forged, actor("mallory"), NOW);
        s.sighted(&real, actor("alice"), NOW);
        assert!(s.confirm(&real, NOW).0.is_some());
        assert!(s.expire(NOW + UNCONFIRMED_TTL_SECONDS).is_empty());
        assert_eq!(
            s.expire(NOW + UNCONFIRMED_TTL_SECONDS + 1),
            vec![Kind::Component]
        );
        assert_eq!(s.confirm(&forged, NOW).0, None);
        assert_eq!(s.confirm(&real, NOW).0, actor("alice"));
        assert!(s.expire(NOW + CONFIRMED_TTL_SECONDS + 1).is_empty());
        assert!(s.is_empty());
        assert!(s.pending.is_empty() && s.kept.is_empty());
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn unconfirmed_sightings_expire_on_time_without_a_flush() {
        let mut s = Sightings::default();
        let (forged, real) = forged_and_real();
        assert!(s.sighted(&forged, actor("mallory"), NOW).is_empty());
        assert!(s.sighted(&real, actor("alice"), NOW + 1).is_empty());
        assert_eq!(s.confirm(&real, NOW + 2).0, actor("alice"));
        // 10 minutes on, any sighting or confirmation forgets the forged one (counted)
        let later = object("Component", "later", Some("ns"), AT);
        let (actor_of_later, expired) = s.confirm(&later, NOW + UNCONFIRMED_TTL_SECONDS + 1);
        assert_eq!((actor_of_later, expired), (None, vec![Kind::Component]));
        assert_eq!(s.len(), 1);
        assert_eq!(
            s.confirm(&forged, NOW + UNCONFIRMED_TTL_SECONDS + 2).0,
            None
        );
        // the confirmed one stays its day, then goes uncounted
        assert_eq!(s.confirm(&real, NOW + 3600).0, actor("alice"));
        assert!(
            s.sighted(&later, None, NOW + CONFIRMED_TTL_SECONDS + 2)
                .is_empty()
        );
        assert_eq!(s.confirm(&real, NOW + CONFIRMED_TTL_SECONDS + 2).0, None);
        assert_eq!(s.len(), 1);
        assert_eq!(s.bytes(), cost("later", Some("ns")));
    }

    #[test]
    fn long_namespaces_are_not_kept_and_bytes_are_bounded() {
        let mut s = Sightings::default();
        let long = "n".repeat(MAX_FIELD_CHARS + 1);
        let o = object("Component", "u", Some(&long), AT);
        assert_eq!(s.sighted(&o, actor("mallory"), NOW), vec![Kind::Component]);
        assert!(s.is_empty());
        assert_eq!(s.bytes(), 0);
        let ns = "n".repeat(MAX_FIELD_CHARS);
        let mut forgotten = 0;
        for i in 0..MAX_SIGHTINGS {
            let uid = format!("{i:0>63}");
            let o = object("Component", &uid, Some(&ns), AT);
            forgotten += s.sighted(&o, actor("mallory"), NOW).len();
            assert!(s.bytes() <= MAX_SIGHTINGS_BYTES);
        }
        let each = cost(&"0".repeat(63), Some(&ns));
        assert_eq!(s.len(), MAX_SIGHTINGS.min(MAX_SIGHTINGS_BYTES / each));
        assert_eq!(forgotten + s.len(), MAX_SIGHTINGS);
    }

    #[test]
    fn a_full_table_forgets_the_oldest_and_counts_it_if_unconfirmed() {
        let mut s = Sightings::default();
        for i in 0..MAX_SIGHTINGS {
            let o = object("Component", &format!("u{i}"), Some("ns"), AT);
            assert!(s.sighted(&o, None, NOW).is_empty());
        }
        let next = object("Component", "next", Some("ns"), AT);
        assert_eq!(s.sighted(&next, None, NOW), vec![Kind::Component]);
        assert_eq!(s.len(), MAX_SIGHTINGS);
        assert_eq!(
            s.confirm(&object("Component", "u0", Some("ns"), AT), NOW).0,
            None
        );
    }
}
