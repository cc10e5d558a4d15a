//! The event model on fixtures written here: every event kind, every property, the hashing,
//! missing fields, running and finished runs, failed runs, Konflux before Ready, fractional
//! seconds. Hash values were computed independently (Python's hashlib), not by this crate.
//! Every event a test here makes is checked against `schema/events.json`.

#[path = "support/schema.rs"]
mod schema;

use konflux_telemetry::events::{
    self, Actor, ClusterIdentity, Decoded, Event, SCHEMA_VERSION, Timestamp, decode, events_of,
};
use serde_json::{Value, json};

fn identity() -> ClusterIdentity {
    ClusterIdentity::new(Some("c1".into()), Some("0.9".into()), Some("1.33".into()))
}

/// The events of one JSON object, as Segment would receive them.
fn events_json(object: Value, identity: &ClusterIdentity) -> Vec<Value> {
    let items = decode(object.to_string().as_bytes()).expect("decodes");
    let mut out = Vec::new();
    for item in items {
        match item {
            Decoded::Object(o) => out.extend(events_of(&o, identity).iter().map(to_value)),
            Decoded::NoEvents => {}
            Decoded::Skipped(e) => panic!("skipped: {e}"),
        }
    }
    out
}

/// The event as Segment receives it, once the schema has allowed it.
fn to_value(e: &Event) -> Value {
    let v = serde_json::from_str(&e.to_json()).expect("event JSON");
    schema::assert_valid(&v);
    v
}

fn common() -> Value {
    json!({"schemaVersion": SCHEMA_VERSION, "clusterIdHash": "d0f631ca1ddb",
           "konfluxVersion": "0.9", "kubernetesVersion": "1.33"})
}

fn with(mut base: Value, extra: Value) -> Value {
    let (Value::Object(b), Value::Object(e)) = (&mut base, extra) else {
        panic!("objects")
    };
    b.extend(e);
    base
}

fn track(event: &str, id: &str, ts: &str, properties: Value) -> Value {
    json!({
        "type": "track",
        "anonymousId": "anonymous",
        "messageId": id,
        "timestamp": ts,
        "event": event,
        "context": {
            "device": {"id": "d0f631ca1ddb"},
            "library": {"name": "konflux-telemetry", "version": env!("CARGO_PKG_VERSION")}
        },
        "properties": properties,
    })
}

fn pipelinerun(status: Value, labels: Value) -> Value {
    json!({
        "apiVersion": "tekton.dev/v1",
        "kind": "PipelineRun",
        "metadata": {
            "name": "build-abc", "namespace": "team-a", "uid": "pr-1",
            "creationTimestamp": "2026-05-01T10:00:00Z", "labels": labels,
            "annotations": {"big": "x".repeat(5000)}
        },
        "spec": {"pipelineSpec": {"tasks": [{"name": "t"}]}, "params": []},
        "status": status,
    })
}

fn pr_props(extra: Value) -> Value {
    with(
        with(common(), json!({"namespaceHash": "35454fddc831"})),
        extra,
    )
}

#[test]
fn finished_pipelinerun_gives_started_and_completed() {
    let run = pipelinerun(
        json!({
            "startTime": "2026-05-01T10:00:01Z",
            "completionTime": "2026-05-01T10:05:31Z",
            "childReferences": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            "conditions": [
                {"type": "Other", "reason": "Nope"},
                {"type": "Succeeded", "status": "True", "reason": "Succeeded",
                 "lastTransitionTime": "2026-05-01T10:05:31Z"}
            ],
            "pipelineSpec": {"tasks": []}
        }),
        json!({"tekton.dev/pipeline": "docker-build", "pipelines.appstudio.openshift.io/type": "build",
               "app.kubernetes.io/name": "secret-name"}),
    );
    let props = json!({"taskCount": 3, "hasPipelineLabel": true, "pipelineType": "build"});
    assert_eq!(
        events_json(run, &identity()),
        vec![
            track(
                "PipelineRun Started",
                "pr-1-started",
                "2026-05-01T10:00:01Z",
                pr_props(props.clone())
            ),
            track(
                "PipelineRun Completed",
                "pr-1-completed",
                "2026-05-01T10:05:31Z",
                pr_props(with(
                    props,
                    json!({
                        "startTime": "2026-05-01T10:00:01Z",
                        "completionTime": "2026-05-01T10:05:31Z",
                        "durationSeconds": 330,
                        "status": "Succeeded"
                    })
                ))
            ),
        ]
    );
}

#[test]
fn running_pipelinerun_gives_only_started_without_labels() {
    let run = pipelinerun(
        json!({"startTime": "2026-05-01T10:00:01Z", "childReferences": [{"name": "a"}]}),
        json!({}),
    );
    assert_eq!(
        events_json(run, &identity()),
        vec![track(
            "PipelineRun Started",
            "pr-1-started",
            "2026-05-01T10:00:01Z",
            pr_props(json!({"taskCount": 1, "hasPipelineLabel": false, "pipelineType": null}))
        )]
    );
}

#[test]
fn pending_pipelinerun_gives_nothing() {
    assert!(events_json(pipelinerun(json!({}), json!({})), &identity()).is_empty());
    let no_status = json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
                           "metadata": {"uid": "pr-2", "namespace": "team-a"}});
    assert!(events_json(no_status, &identity()).is_empty());
}

#[test]
fn failed_run_and_run_without_conditions() {
    let failed = pipelinerun(
        json!({"startTime": "2026-05-01T10:00:00Z", "completionTime": "2026-05-01T10:01:00Z",
               "conditions": [{"type": "Succeeded", "status": "False", "reason": "Failed"}]}),
        json!({"tekton.dev/pipeline": "p"}),
    );
    let completed = &events_json(failed, &identity())[1];
    assert_eq!(completed["properties"]["status"], "Failed");
    assert_eq!(completed["properties"]["durationSeconds"], 60);
    assert_eq!(completed["properties"]["taskCount"], 0);

    let unknown = pipelinerun(
        json!({"startTime": "2026-05-01T10:00:00Z", "completionTime": "2026-05-01T10:01:00Z"}),
        json!({}),
    );
    assert_eq!(
        events_json(unknown, &identity())[1]["properties"]["status"],
        "Unknown"
    );
}

#[test]
fn completed_without_start_has_null_start_and_duration() {
    let run = pipelinerun(json!({"completionTime": "2026-05-01T10:01:00Z"}), json!({}));
    let got = events_json(run, &identity());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["event"], "PipelineRun Completed");
    assert_eq!(got[0]["properties"]["startTime"], Value::Null);
    assert_eq!(got[0]["properties"]["durationSeconds"], Value::Null);
}

#[test]
fn fractional_seconds_parse_and_pass_through() {
    let run = pipelinerun(
        json!({"startTime": "2026-01-01T00:00:00.25Z", "completionTime": "2026-01-01T00:01:00.5Z"}),
        json!({}),
    );
    let got = events_json(run, &identity());
    assert_eq!(got[0]["timestamp"], "2026-01-01T00:00:00.25Z");
    assert_eq!(got[1]["timestamp"], "2026-01-01T00:01:00.5Z");
    assert_eq!(
        got[1]["properties"]["completionTime"],
        "2026-01-01T00:01:00.5Z"
    );
    assert_eq!(got[1]["properties"]["durationSeconds"], 60);
}

#[test]
fn component_created_hashes_name_namespace_application() {
    let c = json!({"apiVersion": "appstudio.redhat.com/v1alpha1", "kind": "Component",
        "metadata": {"name": "web", "namespace": "team-a", "uid": "c-1",
                     "creationTimestamp": "2026-05-01T09:00:00Z"},
        "spec": {"application": "shop", "source": {"git": {"url": "https://example.com/x"}}}});
    assert_eq!(
        events_json(c, &identity()),
        vec![track(
            "Component Created",
            "c-1-component-created",
            "2026-05-01T09:00:00Z",
            with(
                common(),
                json!({"namespaceHash": "35454fddc831", "componentHash": "36bec7780cc0",
                                  "applicationHash": "fc341250d1e9"})
            )
        )]
    );
    let no_app = json!({"apiVersion": "appstudio.redhat.com/v1alpha1", "kind": "Component",
        "metadata": {"name": "web", "namespace": "team-a", "uid": "c-2",
                     "creationTimestamp": "2026-05-01T09:00:00Z"}});
    assert_eq!(
        events_json(no_app, &identity())[0]["properties"]["applicationHash"],
        "c9f5b8ed1051"
    );
}

#[test]
fn only_tenant_namespaces_count() {
    let tenant = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "tenant-x", "uid": "ns-1", "creationTimestamp": "2026-05-01T08:00:00Z",
                     "labels": {"konflux-ci.dev/type": "tenant"}}});
    assert_eq!(
        events_json(tenant, &identity()),
        vec![track(
            "Namespace Created",
            "ns-1-namespace-created",
            "2026-05-01T08:00:00Z",
            with(common(), json!({"namespaceHash": "fca5a0115ff2"}))
        )]
    );
    let other = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "kube-public", "uid": "ns-2", "creationTimestamp": "2026-05-01T08:00:00Z",
                     "labels": {"konflux-ci.dev/type": "system"}}});
    assert!(events_json(other, &identity()).is_empty());
}

fn konflux(status: Value, deletion: Option<&str>) -> Value {
    let mut k = json!({"apiVersion": "konflux.konflux-ci.dev/v1alpha1", "kind": "Konflux",
        "metadata": {"name": "konflux", "uid": "k-1", "creationTimestamp": "2026-05-01T00:00:00Z"},
        "status": status});
    if let Some(d) = deletion {
        k["metadata"]["deletionTimestamp"] = json!(d);
    }
    k
}

#[test]
fn konflux_lifecycle() {
    let ns = json!({"namespaceHash": "6b97f573fc69"});
    // not Ready yet: only Started, never a Completed with a null timestamp
    let not_ready = konflux(
        json!({"conditions": [{"type": "Ready", "status": "False",
        "reason": "Reconciling", "lastTransitionTime": "2026-05-01T00:00:05Z"}]}),
        None,
    );
    assert_eq!(
        events_json(not_ready, &identity()),
        vec![track(
            "Operator Deployment Started",
            "k-1-started",
            "2026-05-01T00:00:00Z",
            with(common(), ns.clone())
        )]
    );
    let ready = konflux(
        json!({"conditions": [{"type": "Ready", "status": "True",
        "reason": "AllComponentsReady", "lastTransitionTime": "2026-05-01T00:10:00Z"}]}),
        Some("2026-06-01T00:00:00Z"),
    );
    let got = events_json(ready, &identity());
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[1],
        track(
            "Operator Deployment Completed",
            "k-1-completed",
            "2026-05-01T00:10:00Z",
            with(
                common(),
                with(
                    ns.clone(),
                    json!({"startTime": "2026-05-01T00:00:00Z",
            "completionTime": "2026-05-01T00:10:00Z", "durationSeconds": 600,
            "status": "AllComponentsReady"})
                )
            )
        )
    );
    assert_eq!(
        got[2],
        track(
            "Operator Removal Started",
            "k-1-removal-started",
            "2026-06-01T00:00:00Z",
            with(common(), ns)
        )
    );
    // Ready without a reason
    let no_reason = konflux(
        json!({"conditions": [{"type": "Ready", "status": "True",
        "lastTransitionTime": "2026-05-01T00:10:00Z"}]}),
        None,
    );
    assert_eq!(
        events_json(no_reason, &identity())[1]["properties"]["status"],
        "Unknown"
    );
    // another Konflux CR than `konflux` is not the deployment
    let mut other = konflux(json!({}), None);
    other["metadata"]["name"] = json!("konflux-2");
    assert!(events_json(other, &identity()).is_empty());
}

#[test]
fn heartbeat_with_and_without_cluster_id() {
    let at = Timestamp::parse("2026-03-04T08:00:00Z").unwrap();
    let hb = to_value(&konflux_telemetry::heartbeat::event(
        &identity(),
        at.clone(),
    ));
    assert_eq!(
        hb,
        track(
            "Segment Bridge Heartbeat",
            "d0f631ca1ddb-heartbeat-2026-03-04T08:00:00Z",
            "2026-03-04T08:00:00Z",
            common()
        )
    );
    let anon = to_value(&konflux_telemetry::heartbeat::event(
        &ClusterIdentity::default(),
        at,
    ));
    assert_eq!(anon["messageId"], "heartbeat-2026-03-04T08:00:00Z");
    assert_eq!(anon["properties"], json!({"schemaVersion": SCHEMA_VERSION}));
    assert!(anon["context"].get("device").is_none());
}

#[test]
fn unknown_cluster_salts_with_anonymous_and_sends_no_cluster_hash() {
    let c = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "team-a", "uid": "ns-1", "creationTimestamp": "2026-05-01T08:00:00Z",
                     "labels": {"konflux-ci.dev/type": "tenant"}}});
    let got = events_json(c, &ClusterIdentity::new(Some(String::new()), None, None));
    assert_eq!(
        got[0]["properties"],
        json!({"schemaVersion": SCHEMA_VERSION, "namespaceHash": "fdd9bc2e3a0e"})
    );
}

#[test]
fn actor_adds_actor_hash_and_type_properties_never_user_id() {
    let id = identity();
    let run = pipelinerun(json!({"startTime": "2026-05-01T10:00:01Z"}), json!({}));
    let Decoded::Object(o) = events::decode_one(run.to_string().as_bytes()) else {
        panic!()
    };
    let e = events_of(&o, &id)
        .remove(0)
        .with_actor(Some(Actor::new("alice", &id)));
    let v = to_value(&e);
    assert!(v.get("userId").is_none(), "{v}");
    assert_eq!(v["anonymousId"], "anonymous");
    assert_eq!(v["context"]["device"]["id"], "d0f631ca1ddb");
    assert_eq!(v["properties"]["actorHash"], "9cc84632cf74");
    assert_eq!(v["properties"]["actorType"], "user");
    let sa = Actor::new("system:serviceaccount:team-a:builder", &id);
    assert_eq!(sa.user_hash, "a854792fb180");
    assert_eq!(
        to_value(&e.clone().with_actor(Some(sa)))["properties"]["actorType"],
        "serviceaccount"
    );
    assert_eq!(
        Actor::new("system:admin", &id).kind,
        events::ActorType::System
    );
    let none = to_value(&e.with_actor(None));
    assert!(none.get("userId").is_none());
    assert!(none["properties"].get("actorHash").is_none());
    assert!(none["properties"].get("actorType").is_none());
}

/// Issue 13: what leaves is the parsed instant written anew, and strings that reach events
/// as they are stay within a label value's 63 characters; anything else is malformed.
#[test]
fn timestamps_leave_reformatted_and_long_strings_are_malformed() {
    // (a condition's reason: a label value outside pipelineType's enumeration is refused
    // by the schema)
    let run = pipelinerun(
        json!({"startTime": "2026-01-01T02:00:00.500+02:00",
               "completionTime": "2026-01-01T00:01:00.000Z",
               "conditions": [{"type": "Succeeded", "reason": "b".repeat(63)}]}),
        json!({}),
    );
    let got = events_json(run, &identity());
    assert_eq!(got[0]["timestamp"], "2026-01-01T00:00:00.5Z");
    assert_eq!(got[1]["timestamp"], "2026-01-01T00:01:00Z");
    assert_eq!(got[1]["properties"]["startTime"], "2026-01-01T00:00:00.5Z");
    assert_eq!(
        got[1]["properties"]["completionTime"],
        "2026-01-01T00:01:00Z"
    );
    assert_eq!(got[1]["properties"]["status"], "b".repeat(63));

    let skipped = |object: Value| -> (String, &'static str) {
        let items = decode(object.to_string().as_bytes()).expect("JSON");
        let [Decoded::Skipped(e)] = items.as_slice() else {
            panic!("not skipped: {items:?}")
        };
        (e.to_string(), e.reason())
    };
    let long = "x".repeat(64);
    for (object, want, reason) in [
        (
            pipelinerun(
                json!({"startTime": "2026-01-01T00:00:00Z[x-name=alice]"}),
                json!({}),
            ),
            "PipelineRun: status.startTime is not an RFC 3339 timestamp",
            "bad_timestamp",
        ),
        (
            pipelinerun(
                json!({"startTime": format!("2026-01-01T00:00:00Z{}", " ".repeat(400))}),
                json!({}),
            ),
            "PipelineRun: status.startTime is not an RFC 3339 timestamp",
            "bad_timestamp",
        ),
        (
            pipelinerun(
                json!({"startTime": "2026-01-01T00:00:00Z"}),
                json!({"pipelines.appstudio.openshift.io/type": long}),
            ),
            "PipelineRun: metadata.labels is longer than 63 characters",
            "too_long",
        ),
        (
            pipelinerun(
                json!({"completionTime": "2026-01-01T00:00:00Z",
                       "conditions": [{"type": "Succeeded", "reason": long}]}),
                json!({}),
            ),
            "PipelineRun: status.conditions[].reason is longer than 63 characters",
            "too_long",
        ),
        (
            json!({"apiVersion": "appstudio.redhat.com/v1alpha1", "kind": "Component",
                "metadata": {"uid": long, "name": "c", "namespace": "n",
                             "creationTimestamp": "2026-01-01T00:00:00Z"}}),
            "Component: metadata.uid is longer than 63 characters",
            "too_long",
        ),
    ] {
        assert_eq!(skipped(object), (want.to_owned(), reason));
    }
}

#[test]
fn malformed_objects_say_which_field_and_never_the_value() {
    let cases = [
        (
            json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
                "metadata": {"name": "secret-run", "namespace": "secret-ns"}}),
            "PipelineRun: missing metadata.uid",
        ),
        (
            json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
                "metadata": {"uid": "u", "namespace": "secret-ns"},
                "status": {"startTime": "secret-time"}}),
            "PipelineRun: status.startTime is not an RFC 3339 timestamp",
        ),
        (
            json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
                "metadata": {"uid": "u"}, "status": {"childReferences": "secret-children"}}),
            "PipelineRun: status.childReferences should be an array, found a string",
        ),
        (
            json!({"apiVersion": "appstudio.redhat.com/v1alpha1", "kind": "Component",
                "metadata": {"uid": "u", "name": 7}}),
            "Component: metadata.name should be a string, found a number",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": ["secret-list"]}),
            "Namespace: metadata should be an object, found an array",
        ),
        (json!({"kind": "Namespace"}), "object: missing apiVersion"),
    ];
    for (object, want) in cases {
        let items = decode(object.to_string().as_bytes()).expect("JSON");
        let [Decoded::Skipped(e)] = items.as_slice() else {
            panic!("not skipped: {items:?}")
        };
        assert_eq!(e.to_string(), want);
        assert!(!e.to_string().contains("secret"));
    }
    let not_json = decode(b"{\"kind\": \"secret").unwrap_err().to_string();
    assert!(not_json.starts_with("not JSON"), "{not_json}");
    assert!(!not_json.contains("secret"));
    assert_eq!(
        decode(b"[1,2]").unwrap_err().to_string(),
        "not a JSON object (found an array)"
    );
}

#[test]
fn kinds_without_events_and_lists() {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "appstudio.redhat.com/v1alpha1", "kind": "Application", "metadata": {"uid": "a"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t", "uid": "n",
            "creationTimestamp": "2026-05-01T08:00:00Z", "labels": {"konflux-ci.dev/type": "tenant"}}},
        {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "metadata": {}},
        "not an object"
    ]});
    let items = decode(list.to_string().as_bytes()).unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0], Decoded::NoEvents);
    assert!(matches!(items[1], Decoded::Object(_)));
    assert!(matches!(items[2], Decoded::Skipped(_)));
    assert!(matches!(items[3], Decoded::Skipped(_)));
}

#[test]
fn deep_nesting_is_skipped_not_a_crash() {
    let open = "[".repeat(100_000);
    let close = "]".repeat(100_000);
    // nested inside a field an event reads
    let in_labels = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{{\"uid\":\"u\",\"labels\":{open}{close}}}}}"
    );
    let items = decode(in_labels.as_bytes()).expect("JSON");
    let [Decoded::Skipped(e)] = items.as_slice() else {
        panic!("{items:?}")
    };
    assert_eq!(
        e.to_string(),
        "Namespace: metadata.labels should be an object, found an array"
    );
    // a whole document of nothing but nesting
    let bare = format!("{open}{close}");
    assert_eq!(
        decode(bare.as_bytes()).unwrap_err().to_string(),
        "not a JSON object (found an array)"
    );
    // nesting left open
    assert!(
        decode(open.as_bytes())
            .unwrap_err()
            .to_string()
            .starts_with("not JSON")
    );
}
