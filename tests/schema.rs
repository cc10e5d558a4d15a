//! `schema/events.json` against the code: the version the events carry, the events the
//! model names, which take an actor; and the schema refuses what the contract forbids (a
//! `userId`, a property no definition has, a malformed hash, an unknown value).

#[path = "support/schema.rs"]
mod schema;

use konflux_telemetry::events::{
    Actor, ClusterIdentity, Decoded, EventName, SCHEMA_VERSION, decode_one, events_of,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;

#[test]
fn events_carry_the_schema_files_version() {
    let written = &schema::document()["$defs"]["CommonFields"]["properties"]["schemaVersion"];
    assert_eq!(written["const"], SCHEMA_VERSION);
    assert_eq!(
        completed_run()["properties"]["schemaVersion"],
        SCHEMA_VERSION
    );
}

#[test]
fn the_schema_defines_each_event_of_the_model_once() {
    let defined: Vec<&str> = schema::event_definitions()
        .iter()
        .map(|(n, _)| *n)
        .collect();
    let defined_set: BTreeSet<&str> = defined.iter().copied().collect();
    assert_eq!(defined.len(), defined_set.len(), "{defined:?}");
    let model: BTreeSet<&str> = EventName::ALL.iter().map(|e| e.as_str()).collect();
    assert_eq!(defined_set, model);
    // the root's oneOf: one entry per event, its name leading to its definition
    let branches = schema::document()["oneOf"].as_array().expect("oneOf");
    assert_eq!(branches.len(), defined.len());
    for branch in branches {
        let name = branch["properties"]["event"]["const"]
            .as_str()
            .expect("name");
        let target = branch["properties"]["properties"]["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/$defs/"))
            .expect("a $ref to a definition");
        assert_eq!(
            schema::document()["$defs"][target]["x-event-name"],
            name,
            "oneOf entry {name} leads to {target}"
        );
    }
    // the actor only on the events the model gives it to
    for name in EventName::ALL {
        let (_, d) = schema::event_definitions()
            .into_iter()
            .find(|(n, _)| *n == name.as_str())
            .expect("defined");
        assert_eq!(
            schema::parts(d).contains(&"ActorFields"),
            name.takes_actor(),
            "{}",
            name.as_str()
        );
    }
}

fn identity() -> ClusterIdentity {
    ClusterIdentity::new(Some("c1".into()), Some("0.9".into()), Some("1.33".into()))
}

/// A finished build run, created by alice, as the daemon would send its Completed event.
fn completed_run() -> Value {
    let object = json!({
        "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": "r", "namespace": "team-a", "uid": "pr-1",
                     "labels": {"pipelines.appstudio.openshift.io/type": "build"}},
        "status": {"startTime": "2026-05-01T10:00:00Z", "completionTime": "2026-05-01T10:01:00Z",
                   "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]}
    });
    let Decoded::Object(o) = decode_one(object.to_string().as_bytes()) else {
        panic!("decodes")
    };
    let events = events_of(&o, &identity());
    let completed = events
        .into_iter()
        .find(|e| e.name == EventName::PipelineRunCompleted)
        .expect("completed")
        .with_actor(Some(Actor::new("alice", &identity())));
    serde_json::from_str(&completed.to_json()).expect("JSON")
}

/// `event` changed by `change`.
fn changed(mut event: Value, change: impl FnOnce(&mut Value)) -> Value {
    change(&mut event);
    event
}

/// `event` with the field at `path` (keys from the top) set to `value`.
fn with(event: &Value, path: &[&str], value: Value) -> Value {
    changed(event.clone(), |e| {
        *path.iter().fold(e, |v, key| &mut v[*key]) = value;
    })
}

/// `event` without its property `name`.
fn without_property(event: &Value, name: &str) -> Value {
    changed(event.clone(), |e| {
        e["properties"]
            .as_object_mut()
            .expect("properties")
            .remove(name);
    })
}

#[test]
fn the_schema_refuses_what_the_contract_forbids() {
    let good = completed_run();
    schema::assert_valid(&good);
    assert_eq!(good["properties"]["actorType"], "user");
    let refused = [
        ("a userId", with(&good, &["userId"], json!("9cc84632cf74"))),
        (
            "a property no definition has",
            with(&good, &["properties", "pipelineName"], json!("x")),
        ),
        (
            "a Started event with the Completed's properties",
            with(&good, &["event"], json!("PipelineRun Started")),
        ),
        (
            "an actor on the heartbeat",
            changed(good.clone(), |e| {
                e["event"] = json!("Segment Bridge Heartbeat");
                let p = e["properties"].as_object_mut().expect("properties");
                p.retain(|k, _| {
                    ["schemaVersion", "clusterIdHash", "actorHash", "actorType"]
                        .contains(&k.as_str())
                });
            }),
        ),
        (
            "an actorHash without actorType",
            without_property(&good, "actorType"),
        ),
        (
            "an unknown actorType",
            with(&good, &["properties", "actorType"], json!("robot")),
        ),
        (
            "a name where a hash goes",
            with(&good, &["properties", "namespaceHash"], json!("team-a")),
        ),
        (
            "a full SHA-256 where a 12-hex hash goes",
            with(&good, &["properties", "actorHash"], json!("9".repeat(64))),
        ),
        (
            "a pipelineType outside the enumeration",
            with(
                &good,
                &["properties", "pipelineType"],
                json!("alice-s-project"),
            ),
        ),
        ("no schemaVersion", without_property(&good, "schemaVersion")),
        (
            "another schemaVersion",
            with(&good, &["properties", "schemaVersion"], json!("0.0.1")),
        ),
        (
            "an event name the schema does not know",
            with(&good, &["event"], json!("PipelineRun Deleted")),
        ),
        (
            "a timestamp that is not UTC",
            with(&good, &["timestamp"], json!("2026-05-01T12:01:00+02:00")),
        ),
        (
            "a device other than the cluster hash",
            with(&good, &["context", "device", "id"], json!("cluster-1")),
        ),
        (
            "an anonymousId other than the constant",
            with(&good, &["anonymousId"], json!("alice")),
        ),
    ];
    for (what, event) in refused {
        assert!(
            schema::violation(&event).is_some(),
            "the schema allowed {what}: {event}"
        );
    }
}
