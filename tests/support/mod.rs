//! Helpers for integration tests that need a real Kubernetes API server.
//!
//! ```ignore
//! mod support;
//!
//! #[tokio::test]
//! async fn my_test() {
//!     let cluster = support::cluster().await;            // kube::Client inside
//!     let ns = cluster.namespace("my-test").await;       // unique, deleted afterwards
//!     let prs = ns.dynamic_api(&support::crds::pipelinerun());
//!     // ... create objects, watch, support::set_status(&prs, "name", json!({...}))
//!     ns.cleanup().await;                                 // or let Drop do it
//! }
//! ```
//!
//! Which cluster: `$KUBECONFIG` when it is set (kind, or any cluster with the
//! CRDs from `e2e/crds/` installed); otherwise the local control plane of
//! `e2e/control-plane/cluster-up.sh`, started on first use.
//!
//! Each test binary compiles this module separately and uses only part of it.
#![allow(dead_code, unused_imports)]

pub mod bench;
pub mod crds;
pub mod crypto;
pub mod daemon;
pub mod etcd;
pub mod kubectl;
pub mod results;
pub mod schema;
pub mod webhook;

mod cluster;
mod namespace;

pub use cluster::{ClusterSource, TestCluster, cluster, try_cluster};
pub use namespace::TestNamespace;

use kube::api::{Api, DynamicObject, Patch, PatchParams};

/// Sets `.status` of an object through its status subresource with a JSON
/// merge patch (nested maps merge, lists are replaced), as a controller would.
/// No Tekton controller runs in the test cluster, so this is how a test moves a
/// PipelineRun along.
pub async fn set_status(
    api: &Api<DynamicObject>,
    name: &str,
    status: serde_json::Value,
) -> kube::Result<DynamicObject> {
    let patch = serde_json::json!({ "status": status });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
}

/// Creates namespace `name` unless it is there already: a namespace that tests running in
/// parallel may make too (`konflux-info`, `segment-bridge`), which the caller leaves.
pub async fn ensure_namespace(cluster: &TestCluster, name: &str) {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.client());
    let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
        .expect("a namespace");
    match namespaces
        .create(&kube::api::PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create namespace {name}: {e}"),
    }
}

/// Now plus `offset_seconds`, as RFC 3339 in whole seconds (a status time).
pub fn at(offset_seconds: i64) -> String {
    jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(offset_seconds))
        .expect("time")
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Creates a PipelineRun `name` with an empty spec in `runs` (no status: a test moves it
/// along with [`set_status`]).
pub async fn create_run(runs: &Api<DynamicObject>, name: &str) -> kube::Result<DynamicObject> {
    let run = object(&crds::pipelinerun(), name, serde_json::json!({}));
    runs.create(&kube::api::PostParams::default(), &run).await
}

/// Creates a Component `name` of application `a` in `components`; returns the
/// `messageId` of its `Component Created` event.
pub async fn create_component(components: &Api<DynamicObject>, name: &str) -> String {
    let created = new_component(components, name, "a").await;
    format!("{}-component-created", created.metadata.uid.expect("uid"))
}

/// Creates a Component `name` of application `application` in `components`; returns it
/// as the API server answered.
pub async fn new_component(
    components: &Api<DynamicObject>,
    name: &str,
    application: &str,
) -> DynamicObject {
    components
        .create(
            &kube::api::PostParams::default(),
            &component(name, application),
        )
        .await
        .unwrap_or_else(|e| panic!("creating Component {name}: {e}"))
}

/// Creates a PipelineRun `name` in `runs` and starts it: a marker to wait for at the sink,
/// sent after what a test checks, so that once it arrives the flushes before it have
/// passed (the buffer flushes oldest first). Returns its `messageId` (`<uid>-started`).
pub async fn marker_run(runs: &Api<DynamicObject>, name: &str) -> String {
    let created = create_run(runs, name).await.expect("marker run");
    set_status(runs, name, serde_json::json!({"startTime": at(0)}))
        .await
        .expect("marker status");
    format!("{}-started", created.metadata.uid.expect("uid"))
}

/// Creates `n` PipelineRuns `run-0`, `run-1`, ... spread over `namespaces`, each with
/// `spec(i)` and `labels`, and completes each (Succeeded, `children` child references),
/// `concurrency` at a time; returns how many were created and completed (the benches'
/// cluster workload).
pub async fn create_completed_runs(
    namespaces: &[namespace::TestNamespace],
    n: usize,
    concurrency: usize,
    labels: &[(&str, &str)],
    children: usize,
    spec: impl Fn(usize) -> serde_json::Value,
) -> usize {
    use futures::StreamExt;
    let pr = crds::pipelinerun();
    let labels = self::labels(labels);
    let children: Vec<serde_json::Value> = (0..children)
        .map(|c| serde_json::json!({"name": format!("t{c}")}))
        .collect();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = namespaces[i % namespaces.len()].dynamic_api(&pr);
            let name = format!("run-{i}");
            let mut o = object(&pr, &name, spec(i));
            o.metadata.labels = Some(labels.clone());
            let children = children.clone();
            async move {
                api.create(&kube::api::PostParams::default(), &o)
                    .await
                    .ok()?;
                let now = at(0);
                set_status(&api, &name, serde_json::json!({
                    "startTime": now, "completionTime": now, "childReferences": children,
                    "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]
                }))
                .await
                .ok()
            }
        })
        .buffer_unordered(concurrency)
        .filter(|r| std::future::ready(r.is_some()))
        .count()
        .await
}

/// Labels (or annotations) for `metadata`, from `(key, value)` pairs.
pub fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A Component `name` of application `application`, ready for `Api::create`.
pub fn component(name: &str, application: &str) -> DynamicObject {
    object(
        &crds::component(),
        name,
        serde_json::json!({ "application": application }),
    )
}

/// A `DynamicObject` of the given CRD with `spec` set, ready for `Api::create`.
pub fn object(
    ar: &kube::discovery::ApiResource,
    name: &str,
    spec: serde_json::Value,
) -> DynamicObject {
    DynamicObject::new(name, ar).data(serde_json::json!({ "spec": spec }))
}

/// Runs `cmd`: whether it succeeded, and what it wrote (its stdout, then its stderr).
pub fn run_output(cmd: &mut std::process::Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: std::time::Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
