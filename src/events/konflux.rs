//! Where the Konflux CR becomes `Operator Deployment Started`, `Operator Deployment
//! Completed` (once `Ready` is `True`) and `Operator Removal Started` (once it is being
//! deleted).

use super::object::{KONFLUX_NAME, Konflux};
use super::{ClusterIdentity, Event, EventName, Properties};

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
    let mut out = Vec::new();
    // The operator reconciles only the CR named `konflux`; others are not deployments.
    if k.meta.name.as_deref() != Some(KONFLUX_NAME) {
        return out;
    }
    // Cluster-scoped: the namespace hash is that of `unknown`, as the old bridge sent it.
    let base = Properties {
        namespace_hash: Some(identity.namespace_hash(None)),
        ..Properties::common(identity)
    };
    let uid = &k.meta.uid;
    if let Some(created) = &k.meta.creation_timestamp {
        out.push(Event {
            properties: base.clone(),
            ..Event::new(
                EventName::OperatorDeploymentStarted,
                started_id(uid),
                created.clone(),
                identity,
            )
        });
    }
    if let Some(ready) = &k.ready
        && let Some(done) = &ready.last_transition_time
    {
        let start = k.meta.creation_timestamp.as_ref();
        out.push(Event {
            properties: Properties {
                start_time: Some(start.map(|t| t.as_str().to_owned())),
                completion_time: Some(done.as_str().to_owned()),
                duration_seconds: Some(start.map(|s| s.whole_seconds_until(done))),
                status: Some(ready.reason.clone().unwrap_or_else(|| "Unknown".to_owned())),
                ..base.clone()
            },
            ..Event::new(
                EventName::OperatorDeploymentCompleted,
                completed_id(uid),
                done.clone(),
                identity,
            )
        });
    }
    if let Some(deleted) = &k.meta.deletion_timestamp {
        out.push(Event {
            properties: base,
            ..Event::new(
                EventName::OperatorRemovalStarted,
                removal_started_id(uid),
                deleted.clone(),
                identity,
            )
        });
    }
    out
}
