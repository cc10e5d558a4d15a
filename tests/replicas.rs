//! One replica, checked: a second instance that starts while the first holds the state
//! ConfigMap says so in its log; an instance starting after a clean stop does not.

mod support;

use k8s_openapi::api::core::v1::ConfigMap;
use konflux_telemetry::state::{HOLDER_ANNOTATION, RENEWED_ANNOTATION};
use kube::api::Api;
use std::collections::BTreeMap;
use support::daemon::{DaemonProcess, WAIT, tempdir};
use support::eventually;

const WARNING: &str = "another instance holds the state";

async fn holder(api: &Api<ConfigMap>) -> Option<BTreeMap<String, String>> {
    api.get_opt("state")
        .await
        .ok()
        .flatten()
        .and_then(|cm| cm.metadata.annotations)
        .filter(|a| a.contains_key(HOLDER_ANNOTATION))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_warns_that_another_holds_the_state() {
    let cluster = support::cluster().await;
    let home = cluster.namespace("replicas").await;
    let dir = tempdir("replicas");
    let settings = format!("{}/settings", home.name());
    let state = format!("{}/state", home.name());
    let args = [
        "--config-map",
        settings.as_str(),
        "--state-config-map",
        state.as_str(),
        "--cluster-id",
        "replicas-test",
    ];
    let api: Api<ConfigMap> = home.api();

    let first = DaemonProcess::start(&cluster, &args, dir.join("first.log"));
    first.wait_ready().await;
    let held = eventually("the first instance to claim the state", WAIT, || async {
        holder(&api)
            .await
            .filter(|a| a.contains_key(RENEWED_ANNOTATION))
    })
    .await;
    let first_id = held[HOLDER_ANNOTATION].clone();

    let second = DaemonProcess::start(&cluster, &args, dir.join("second.log"));
    second.wait_ready().await;
    // The second claims after it has checked: once the holder is no longer the first,
    // the check is done and its warning logged.
    eventually("the second instance to claim the state", WAIT, || async {
        holder(&api)
            .await
            .filter(|a| a[HOLDER_ANNOTATION] != first_id)
    })
    .await;
    let (ok, second_log) = second.terminate();
    assert!(ok, "second exit; log:\n{second_log}");
    assert!(
        second_log.contains(WARNING) && second_log.contains(&first_id),
        "no warning naming {first_id}:\n{second_log}"
    );
    let (ok, first_log) = first.terminate();
    assert!(ok, "first exit; log:\n{first_log}");
    assert!(!first_log.contains("cannot release"), "{first_log}");

    // Both stopped cleanly and released it: the next instance (a Recreate rollout) is
    // alone and says nothing.
    let released = holder(&api).await.expect("holder annotations stay");
    assert!(!released.contains_key(RENEWED_ANNOTATION), "{released:?}");
    let third = DaemonProcess::start(&cluster, &args, dir.join("third.log"));
    third.wait_ready().await;
    eventually("the third instance to claim the state", WAIT, || async {
        holder(&api)
            .await
            .filter(|a| a.contains_key(RENEWED_ANNOTATION))
    })
    .await;
    let (ok, third_log) = third.terminate();
    assert!(ok, "third exit; log:\n{third_log}");
    assert!(!third_log.contains(WARNING), "{third_log}");
    home.cleanup().await;
}
