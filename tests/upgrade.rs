//! `Operator Upgrade Completed` on the real API server: the Konflux version in
//! `konflux-public-info` changes while the daemon runs, then while it is stopped; each
//! upgrade reaches the sink once, none is missed across the restart, and the last version
//! is kept in the state ConfigMap.

mod support;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use support::daemon::{
    DaemonProcess, DaemonTest, KONFLUX_CR_LOCK, WAIT, count, konflux_info, wait_for_ids,
};
use support::{crds, eventually, marker_run};

const KEY: &str = "wk-upgrade-test";
const CLUSTER_ID: &str = "upgrade-test";
const INFO: &str = "konflux-public-info";

fn start(test: &DaemonTest) -> DaemonProcess {
    let mut args = test.sending_flags(CLUSTER_ID);
    // konflux-public-info is read again each second, not every 5 minutes.
    args.extend(["--public-info-interval", "1s"].map(str::to_owned));
    test.start(&args)
}

/// Says `version` in `konflux-public-info` (created if missing).
async fn say_version(infos: &Api<ConfigMap>, version: &str) {
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": INFO},
        "data": {"info.json": json!({"konfluxVersion": version}).to_string()}
    }))
    .expect("ConfigMap");
    infos
        .patch(
            INFO,
            &PatchParams::apply("upgrade-test").force(),
            &Patch::Apply(&cm),
        )
        .await
        .expect("konflux-public-info");
}

/// Waits until the state ConfigMap keeps `version` as the last one seen.
async fn wait_kept(state: &Api<ConfigMap>, version: &str) {
    eventually(&format!("lastKonfluxVersion {version}"), WAIT, || async {
        let cm = state.get_opt("state").await.ok()??;
        (cm.data?.get("lastKonfluxVersion")? == version).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_is_sent_once_and_one_while_stopped_is_not_missed() {
    let test = DaemonTest::locked("upgrade", KEY, KONFLUX_CR_LOCK).await;
    let out = &test.out;
    let tenant = test.cluster.namespace("upgrade-runs").await;
    let runs = tenant.dynamic_api(&crds::pipelinerun());
    let infos = konflux_info(&test.cluster).await;
    let state: Api<ConfigMap> = test.home.api();
    say_version(&infos, "v1.0.0").await;
    let hash = konflux_telemetry::events::hash::short_hash(&[CLUSTER_ID]);
    let id = |from: &str, to: &str| format!("{hash}-upgrade-{from}-{to}");

    // The first version seen is kept, and is no upgrade.
    let daemon = start(&test);
    daemon.wait_ready().await;
    wait_kept(&state, "v1.0.0").await;

    // Upgraded while running: one event, then the new version kept.
    say_version(&infos, "v1.1.0").await;
    let events = wait_for_ids(out, &[id("v1.0.0", "v1.1.0")]).await;
    let upgrade = events
        .iter()
        .find(|e| e["messageId"] == id("v1.0.0", "v1.1.0").as_str())
        .expect("the upgrade");
    assert_eq!(upgrade["event"], "Operator Upgrade Completed");
    let p = &upgrade["properties"];
    assert_eq!(
        (&p["fromVersion"], &p["toVersion"]),
        (&json!("v1.0.0"), &json!("v1.1.0"))
    );
    assert_eq!(p["konfluxVersion"], "v1.1.0");
    assert_eq!(p["clusterIdHash"], hash.as_str());
    let seen = jiff::Timestamp::now().as_second();
    let at: jiff::Timestamp = upgrade["timestamp"]
        .as_str()
        .expect("time")
        .parse()
        .expect("RFC 3339");
    assert!((seen - at.as_second()).abs() < 60, "seen now: {at}");
    wait_kept(&state, "v1.1.0").await;
    daemon.stop();

    // Upgraded while stopped: the restart sends it, and not the one before again.
    say_version(&infos, "v1.2.0").await;
    let daemon = start(&test);
    daemon.wait_ready().await;
    wait_for_ids(out, &[id("v1.1.0", "v1.2.0")]).await;
    wait_kept(&state, "v1.2.0").await;
    daemon.stop();

    // A restart with no change sends no upgrade: a marker run after it arrives alone.
    let daemon = start(&test);
    daemon.wait_ready().await;
    let marker = marker_run(&runs, "after-restart").await;
    let events = wait_for_ids(out, &[marker]).await;
    assert_eq!(count(&events, &id("v1.0.0", "v1.1.0")), 1);
    assert_eq!(count(&events, &id("v1.1.0", "v1.2.0")), 1);
    let upgrades = events
        .iter()
        .filter(|e| e["event"] == "Operator Upgrade Completed")
        .count();
    assert_eq!(upgrades, 2, "only the two upgrades");
    daemon.stop();

    let _ = infos.delete(INFO, &DeleteParams::default()).await;
    test.finish([tenant]).await;
}
