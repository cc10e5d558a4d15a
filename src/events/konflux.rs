//! Where the Konflux CR becomes `Operator Deployment Started`, `Operator Deployment
//! Completed` (once `Ready` is `True`) and `Operator Removal Started` (once it is being
//! deleted).

use super::object::Konflux;
use super::{ClusterIdentity, Event, EventName, Properties, Timestamp};

pub fn started_id(uid: &str) -> String {
    format!("{uid}-started")
}

pub fn completed_id(uid: &str) -> String {
    format!("{uid}-completed")
}

pub fn removal_started_id(uid: &str) -> String {
    format!("{uid}-removal-started")
}

pub fn events(k: &Konflux, identity: &ClusterIdentity) -> Vec<Event> {
    // Cluster-scoped: the namespace hash is that of `unknown`, as the old bridge sent it.
    let base = Properties::in_namespace(None, identity);
    let (uid, created) = (&k.meta.uid, k.meta.creation_timestamp.as_ref());
    let event = |name, id, at: &Timestamp, properties| {
        Event::new(name, id, at.clone(), identity, properties)
    };
    let started = created.map(|at| {
        let name = EventName::OperatorDeploymentStarted;
        event(name, started_id(uid), at, base.clone())
    });
    // Completed once `Ready` is `True`, at its last transition.
    let completed = k.ready.as_ref().and_then(|ready| {
        let done = ready.last_transition_time.as_ref()?;
        let properties = base
            .clone()
            .completed(created, done, ready.reason.as_deref());
        Some(event(
            EventName::OperatorDeploymentCompleted,
            completed_id(uid),
            done,
            properties,
        ))
    });
    let removal = k.meta.deletion_timestamp.as_ref().map(|at| {
        let name = EventName::OperatorRemovalStarted;
        event(name, removal_started_id(uid), at, base.clone())
    });
    started
        .into_iter()
        .chain(completed)
        .chain(removal)
        .collect()
}
