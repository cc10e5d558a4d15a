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
    let mut out = Vec::with_capacity(2);
    let common = common_properties(run, identity);
    if let Some(start) = &run.start_time {
        out.push(Event {
            properties: common.clone(),
            ..Event::new(
                EventName::PipelineRunStarted,
                started_id(&run.meta.uid),
                start.clone(),
                identity,
            )
        });
    }
    if let Some(completion) = &run.completion_time {
        out.push(Event {
            properties: Properties {
                start_time: Some(run.start_time.as_ref().map(|t| t.as_str().to_owned())),
                completion_time: Some(completion.as_str().to_owned()),
                duration_seconds: Some(
                    run.start_time
                        .as_ref()
                        .map(|start| start.whole_seconds_until(completion)),
                ),
                status: Some(
                    run.succeeded_reason
                        .clone()
                        .unwrap_or_else(|| "Unknown".to_owned()),
                ),
                ..common
            },
            ..Event::new(
                EventName::PipelineRunCompleted,
                completed_id(&run.meta.uid),
                completion.clone(),
                identity,
            )
        });
    }
    out
}

fn common_properties(run: &PipelineRun, identity: &ClusterIdentity) -> Properties {
    Properties {
        namespace_hash: Some(identity.namespace_hash(run.meta.namespace.as_deref())),
        task_count: Some(run.task_count),
        has_pipeline_label: Some(run.has_pipeline_label),
        pipeline_type: Some(run.pipeline_type.clone()),
        ..Properties::common(identity)
    }
}
