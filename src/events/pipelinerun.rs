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
        pipeline_type: Some(run.pipeline_type.clone()),
        ..Properties::in_namespace(run.meta.namespace.as_deref(), identity)
    }
}
