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

pub mod crds;
pub mod daemon;
pub mod etcd;
pub mod kubectl;
pub mod results;

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

/// A `DynamicObject` of the given CRD with `spec` set, ready for `Api::create`.
pub fn object(
    ar: &kube::discovery::ApiResource,
    name: &str,
    spec: serde_json::Value,
) -> DynamicObject {
    DynamicObject::new(name, ar).data(serde_json::json!({ "spec": spec }))
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
