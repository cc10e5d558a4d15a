//! What the capture paths (watch, sweep, admission) hand to the daemon's core: an object as
//! seen, by whom it was seen, and (from admission) who acted on it.

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
/// - Unconfirmed sightings expire after [`UNCONFIRMED_TTL_SECONDS`], counted.
#[derive(Debug, Default)]
pub struct Sightings {
    by_uid: HashMap<String, Sighting>,
    /// uids in the order they were first seen, for dropping the oldest when full.
    order: VecDeque<String>,
}

impl Sightings {
    /// Takes admission's sighting of `object` at `now`. Returns the kind of an unconfirmed
    /// sighting dropped to make room, to be counted.
    pub fn sighted(&mut self, object: &Object, actor: Option<Actor>, now: i64) -> Option<Kind> {
        let meta = object.meta();
        if self.by_uid.contains_key(&meta.uid) {
            return None;
        }
        let mut dropped = None;
        while self.by_uid.len() >= MAX_SIGHTINGS {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(s) = self.by_uid.remove(&oldest)
                && !s.confirmed
            {
                dropped = Some(s.kind);
            }
        }
        self.order.push_back(meta.uid.clone());
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
        dropped
    }

    /// The watch or the sweep saw `object`: the actor admission saw for it, if admission's
    /// sighting matches it.
    pub fn confirm(&mut self, object: &Object) -> Option<Actor> {
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
        s.confirmed = true;
        s.actor.clone()
    }

    /// Forgets unconfirmed sightings older than [`UNCONFIRMED_TTL_SECONDS`] (returning
    /// their kinds, to be counted) and confirmed ones older than
    /// [`CONFIRMED_TTL_SECONDS`].
    pub fn expire(&mut self, now: i64) -> Vec<Kind> {
        let mut unconfirmed = Vec::new();
        self.by_uid.retain(|_, s| {
            let ttl = if s.confirmed {
                CONFIRMED_TTL_SECONDS
            } else {
                UNCONFIRMED_TTL_SECONDS
            };
            let keep = s.seen >= now.saturating_sub(ttl);
            if !keep && !s.confirmed {
                unconfirmed.push(s.kind);
            }
            keep
        });
        let by_uid = &self.by_uid;
        self.order.retain(|uid| by_uid.contains_key(uid));
        unconfirmed
    }

    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
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

    #[test]
    fn the_watch_confirms_the_same_object_and_its_actor_attaches() {
        let mut s = Sightings::default();
        let c = object("Component", "u1", Some("ns"), AT);
        assert_eq!(s.sighted(&c, actor("alice"), NOW), None);
        assert_eq!(s.confirm(&c), actor("alice"));
        // again, for the object's later updates
        assert_eq!(s.confirm(&c), actor("alice"));
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
            s.confirm(&object("PipelineRun", "u1", Some("ns"), AT)),
            None
        );
        assert_eq!(
            s.confirm(&object("Component", "u1", Some("other"), AT)),
            None
        );
        assert_eq!(s.confirm(&object("Component", "u1", None, AT)), None);
        assert_eq!(s.confirm(&object("Component", "u2", Some("ns"), AT)), None);
        // a forged review naming a real object that was created long before
        let old = object("Component", "u1", Some("ns"), "2025-12-31T23:57:59Z");
        assert_eq!(s.confirm(&old), None);
        let within = object("Component", "u1", Some("ns"), "2025-12-31T23:58:00Z");
        assert_eq!(s.confirm(&within), actor("mallory"));
    }

    #[test]
    fn the_first_actor_of_a_uid_is_kept() {
        let mut s = Sightings::default();
        let c = object("PipelineRun", "r", Some("ns"), AT);
        s.sighted(&c, actor("alice"), NOW);
        s.sighted(&c, actor("mallory"), NOW + 1);
        assert_eq!(s.confirm(&c), actor("alice"));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn unconfirmed_sightings_expire_counted_confirmed_ones_stay_a_day() {
        let mut s = Sightings::default();
        let forged = object("Component", "forged", Some("ns"), AT);
        let real = object("PipelineRun", "real", Some("ns"), AT);
        s.sighted(&forged, actor("mallory"), NOW);
        s.sighted(&real, actor("alice"), NOW);
        assert!(s.confirm(&real).is_some());
        assert!(s.expire(NOW + UNCONFIRMED_TTL_SECONDS).is_empty());
        assert_eq!(
            s.expire(NOW + UNCONFIRMED_TTL_SECONDS + 1),
            vec![Kind::Component]
        );
        assert_eq!(s.confirm(&forged), None);
        assert_eq!(s.confirm(&real), actor("alice"));
        assert!(s.expire(NOW + CONFIRMED_TTL_SECONDS + 1).is_empty());
        assert!(s.is_empty());
        assert!(s.order.is_empty());
    }

    #[test]
    fn a_full_table_forgets_the_oldest_and_counts_it_if_unconfirmed() {
        let mut s = Sightings::default();
        for i in 0..MAX_SIGHTINGS {
            let o = object("Component", &format!("u{i}"), Some("ns"), AT);
            assert_eq!(s.sighted(&o, None, NOW), None);
        }
        let next = object("Component", "next", Some("ns"), AT);
        assert_eq!(s.sighted(&next, None, NOW), Some(Kind::Component));
        assert_eq!(s.len(), MAX_SIGHTINGS);
        assert_eq!(s.confirm(&object("Component", "u0", Some("ns"), AT)), None);
    }
}
