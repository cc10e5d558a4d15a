//! Where a PipelineRun becomes events: `PipelineRun Started` once it has a `startTime`,
//! `PipelineRun Completed` once it has a `completionTime`.

use super::object::PipelineRun;
use super::{ClusterIdentity, Event, EventName, Properties};

pub fn started_id(uid: &str) -> String {
    format!("{uid}-started")
}

pub fn completed_id(uid: &str) -> String {
    format!("{uid}-completed")
}

/// The events the run implies as it stands: none, Started, or Started and Completed.
pub fn events(run: &PipelineRun, identity: &ClusterIdentity) -> Vec<Event> {
    let common = common_properties(run, identity);
    let (uid, start) = (&run.meta.uid, run.start_time.as_ref());
    let started = start.map(|at| {
        let name = EventName::PipelineRunStarted;
        Event::new(name, started_id(uid), at.clone(), identity, common.clone())
    });
    let completed = run.completion_time.as_ref().map(|done| {
        let properties = common.completed(start, done, run.succeeded_reason.as_deref());
        let name = EventName::PipelineRunCompleted;
        Event::new(name, completed_id(uid), done.clone(), identity, properties)
    });
    started.into_iter().chain(completed).collect()
}

fn common_properties(run: &PipelineRun, identity: &ClusterIdentity) -> Properties {
    Properties {
        task_count: Some(run.task_count),
        has_pipeline_label: Some(run.has_pipeline_label),
        pipeline_type: Some(run.pipeline_type.as_deref().map(pipeline_type)),
        ..Properties::in_namespace(run.meta.namespace.as_deref(), identity)
    }
}

/// The values Konflux's own services set in `pipelines.appstudio.openshift.io/type`:
/// `build` (build-service, Pipelines as Code), `test` (integration-service), `release`,
/// `managed`, `tenant`, `final`, `managed-collectors` and `tenant-collectors`
/// (release-service).
pub const KNOWN_PIPELINE_TYPES: &[&str] = &[
    "build",
    "test",
    "release",
    "managed",
    "tenant",
    "final",
    "managed-collectors",
    "tenant-collectors",
];

/// What `pipelineType` sends for a label value: a value Konflux sets as it is (an empty
/// one stays empty), [`OTHER_PIPELINE_TYPE`] for anything else. Tenants can set the
/// label to anything, a name included; only Konflux's enumeration leaves the cluster.
pub fn pipeline_type(label: &str) -> String {
    if label.is_empty() || KNOWN_PIPELINE_TYPES.contains(&label) {
        label.to_owned()
    } else {
        OTHER_PIPELINE_TYPE.to_owned()
    }
}

/// `pipelineType` for a label value Konflux does not set.
pub const OTHER_PIPELINE_TYPE: &str = "other";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_type_is_konfluxs_enumeration_or_other() {
        for known in KNOWN_PIPELINE_TYPES {
            assert_eq!(pipeline_type(known), *known);
        }
        assert_eq!(pipeline_type(""), "");
        for tenant_set in [
            "jane-doe-project",
            "Build",
            "build ",
            "x".repeat(63).as_str(),
        ] {
            assert_eq!(pipeline_type(tenant_set), "other", "{tenant_set:?}");
        }
    }
}
