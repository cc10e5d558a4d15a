//! The Konflux CR's telemetry switch on the real API server: `spec.telemetry.enabled: false`
//! stops sending (even mid-retry), drops the buffer, and no request reaches the sink while
//! it stays false; `true` again resumes, and the relist catches up what lies within the
//! lookback. Without a CR, the daemon's own `telemetryEnabled` decides; where nobody said,
//! the platform: off on vanilla Kubernetes, the console's telemetry state on OpenShift.
//!
//! No "sleep, then check nothing arrived": while off, the test waits for the daemon's own
//! markers that it saw a new object (`buffer_events_dropped_total{reason="telemetry_off"}`)
//! and that a flush time passed after it (`flushes_total{outcome="telemetry_off"}`); a
//! daemon that still sent would have sent by then.

mod support;

use k8s_openapi::api::core::v1::ConfigMap;
use konflux_telemetry_sink::Fault;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use support::daemon::{
    DaemonProcess, WAIT, count, free_port, konflux_lock, sink_events, sink_in, wait_for_ids,
};
use support::{TestCluster, crds, eventually};

const KEY: &str = "wk-switch-test";

async fn wait_metric(daemon: &DaemonProcess, name: &str, what: &str, ok: impl Fn(f64) -> bool) {
    eventually(what, WAIT, || async {
        ok(daemon.metric(name).await).then_some(())
    })
    .await;
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs `clean_up` with a client of the cluster when dropped, panicking or not (on a
/// thread of its own: a test's runtime may be gone), so that no later test's daemon finds
/// what a test left: a `konflux` CR turning telemetry off, OpenShift's objects.
struct CleanUp(
    kube::Config,
    fn(kube::Client) -> futures::future::BoxFuture<'static, ()>,
);

impl Drop for CleanUp {
    fn drop(&mut self) {
        let (config, clean_up) = (self.0.clone(), self.1);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                if let Ok(client) = kube::Client::try_from(config) {
                    clean_up(client).await;
                }
            });
            Ok::<(), std::io::Error>(())
        })
        .join();
    }
}

async fn delete_konflux(client: kube::Client) {
    let api: Api<DynamicObject> = Api::all_with(client, &crds::konflux());
    let _ = api.delete("konflux", &DeleteParams::default()).await;
}

/// Applies JSON merge `patch` to object `name`; panics saying `what` if that fails.
async fn merge_patch<K>(api: &Api<K>, name: &str, patch: serde_json::Value, what: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if let Err(e) = api
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        panic!("{what}: {e}");
    }
}

async fn set_telemetry(konfluxes: &Api<DynamicObject>, enabled: bool) {
    let patch = json!({"spec": {"telemetry": {"enabled": enabled}}});
    merge_patch(konfluxes, "konflux", patch, "patch spec.telemetry.enabled").await;
}

/// Sets the daemon's own `telemetryEnabled` setting in its settings ConfigMap.
async fn set_telemetry_enabled(settings: &Api<ConfigMap>, value: &str) {
    let patch = json!({"data": {"telemetryEnabled": value}});
    merge_patch(settings, "settings", patch, "telemetryEnabled").await;
}

fn start_daemon(
    cluster: &TestCluster,
    sink_url: &str,
    home: &str,
    dir: &std::path::Path,
) -> DaemonProcess {
    start_daemon_with_env(cluster, sink_url, home, dir, &[])
}

/// [`start_daemon`] with environment variables (an empty value unsets one).
fn start_daemon_with_env(
    cluster: &TestCluster,
    sink_url: &str,
    home: &str,
    dir: &std::path::Path,
    env: &[(String, String)],
) -> DaemonProcess {
    let settings = format!("{home}/settings");
    let state = format!("{home}/state");
    let args = [
        "--segment-api-url",
        sink_url,
        "--segment-write-key",
        KEY,
        "--cluster-id",
        "switch-test",
        "--config-map",
        &settings,
        "--state-config-map",
        &state,
    ];
    DaemonProcess::start_with_env(
        cluster,
        &args,
        env,
        dir.join(format!("daemon-{}.log", free_port())),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn konflux_cr_turns_telemetry_off_and_on_again() {
    let cluster = support::cluster().await;
    let _lock = konflux_lock();
    let konfluxes: Api<DynamicObject> = Api::all_with(cluster.client(), &crds::konflux());
    let _ = konfluxes.delete("konflux", &DeleteParams::default()).await;
    let _cleanup = CleanUp(cluster.config().clone(), |c| Box::pin(delete_konflux(c)));
    konfluxes
        .create(
            &PostParams::default(),
            &support::object(
                &crds::konflux(),
                "konflux",
                json!({"telemetry": {"enabled": true}}),
            ),
        )
        .await
        .expect("konflux CR");

    let (dir, out, sink) = sink_in("switch", KEY).await;
    let home = cluster.namespace("switch-home").await;
    let settings: Api<ConfigMap> = Api::namespaced(cluster.client(), home.name());
    home.settings(json!({"flushInterval": "200ms", "heartbeatInterval": "1h",
                         "retryBaseDelay": "50ms", "retryMaxDelay": "100ms"}))
        .await;
    let daemon = start_daemon(&cluster, &sink.api_url(), home.name(), &dir);
    daemon.wait_ready().await;
    wait_metric(&daemon, "konflux_telemetry_enabled", "telemetry on", |v| {
        v == 1.0
    })
    .await;

    let tenant = cluster.namespace("switch-tenant").await;
    let components = tenant.dynamic_api(&crds::component());
    let create = |name: &'static str| support::create_component(&components, name);

    // On: sent.
    let first = create("first").await;
    wait_for_ids(&out, std::slice::from_ref(&first)).await;

    // Segment failing: the next event stays buffered, retried.
    sink.inject(Fault::answer(503).times(1_000_000))
        .expect("fault");
    let buffered = create("buffered").await;
    eventually("a 503 retry of the buffered event", WAIT, || async {
        let (_, preview) = daemon.get("/preview").await?;
        (preview.contains(&buffered) && sink.stats().statuses.get("503").is_some_and(|n| *n >= 2))
            .then_some(())
    })
    .await;

    // Off, in the middle of those retries.
    let dropped_name = "konflux_telemetry_buffer_events_dropped_total{reason=\"telemetry_off\"}";
    let patched = Instant::now();
    set_telemetry(&konfluxes, false).await;
    wait_metric(&daemon, "konflux_telemetry_enabled", "telemetry off", |v| {
        v == 0.0
    })
    .await;
    let off_at = unix_ms();
    eprintln!(
        "telemetry off acknowledged {:?} after the patch",
        patched.elapsed()
    );
    assert_eq!(
        daemon.get("/preview").await.expect("/preview").1,
        r#"{"batch":[],"telemetry":"off","decidedBy":"konflux_cr"}"#
    );
    assert_eq!(
        daemon.metric("konflux_telemetry_events_buffered").await,
        0.0
    );
    let dropped = daemon.metric(dropped_name).await;
    assert!(dropped >= 1.0, "the buffered event was dropped: {dropped}");

    // While off: a new object is seen (and not produced), then a flush time passes.
    let unsent = create("while-off").await;
    wait_metric(&daemon, dropped_name, "the object seen while off", |v| {
        v > dropped
    })
    .await;
    let skipped_name = "konflux_telemetry_flushes_total{outcome=\"telemetry_off\"}";
    let skipped = daemon.metric(skipped_name).await;
    wait_metric(&daemon, skipped_name, "a flush time while off", |v| {
        v > skipped
    })
    .await;
    let log = sink.stats().request_log;
    let late: Vec<_> = log.iter().filter(|r| r.arrival_ms >= off_at).collect();
    assert!(
        late.is_empty(),
        "requests reached the sink while off: {late:?}"
    );
    assert_eq!(count(&sink_events(&out), &unsent), 0);
    assert_eq!(count(&sink_events(&out), &buffered), 0);

    // On again (Segment healthy): the marker is sent, and the relist catches up what was
    // dropped or not produced while off; what was sent before is not sent again.
    sink.reset();
    let on_at = unix_ms();
    set_telemetry(&konfluxes, true).await;
    wait_metric(
        &daemon,
        "konflux_telemetry_enabled",
        "telemetry on again",
        |v| v == 1.0,
    )
    .await;
    let marker = create("marker").await;
    let events = wait_for_ids(&out, &[marker, buffered, unsent]).await;
    assert_eq!(
        count(&events, &first),
        1,
        "sent before the switch, not again"
    );
    assert!(
        sink.stats()
            .request_log
            .iter()
            .all(|r| r.arrival_ms >= on_at),
        "after the reset, only requests sent once on again"
    );

    // No CR: the daemon's own telemetryEnabled decides.
    konfluxes
        .delete("konflux", &DeleteParams::default())
        .await
        .expect("delete konflux");
    set_telemetry_enabled(&settings, "false").await;
    wait_metric(
        &daemon,
        "konflux_telemetry_enabled",
        "off by telemetryEnabled",
        |v| v == 0.0,
    )
    .await;

    let (clean, log) = daemon.terminate();
    assert!(clean, "{log}");
    assert!(log.contains("telemetry off"), "{log}");
    assert!(log.contains("decided by the Konflux CR"), "{log}");
    assert!(
        log.contains("decided by the daemon's telemetryEnabled setting"),
        "{log}"
    );
    assert!(!log.contains(KEY), "the write key in the log");
    sink.shutdown().await;
    tenant.cleanup().await;
    home.cleanup().await;
}

async fn delete_openshift(client: kube::Client) {
    let dp = DeleteParams::default();
    let cv: Api<DynamicObject> = Api::all_with(client.clone(), &crds::cluster_version());
    let _ = cv.delete("version", &dp).await;
    let consoles: Api<DynamicObject> = Api::all_with(client.clone(), &crds::console());
    let _ = consoles.delete("cluster", &dp).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "openshift-monitoring");
    let _ = cms.delete("cluster-monitoring-config", &dp).await;
}

async fn wait_decided(daemon: &DaemonProcess, by: &str, enabled: f64) {
    let series = format!("konflux_telemetry_decided_by{{by=\"{by}\"}}");
    eventually(&format!("telemetry decided by {by}"), WAIT, || async {
        (daemon.metric(&series).await == 1.0
            && daemon.metric("konflux_telemetry_enabled").await == enabled)
            .then_some(())
    })
    .await;
}

/// The `konflux-telemetry` header of `/preview`: `on; decided-by=config`.
async fn preview_says(daemon: &DaemonProcess) -> String {
    let r = reqwest::get(format!("{}/preview", daemon.http))
        .await
        .expect("/preview");
    r.headers()
        .get("konflux-telemetry")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_nobody_said_the_platform_decides() {
    let cluster = support::cluster().await;
    let _lock = konflux_lock();
    let client = cluster.client();
    let konfluxes: Api<DynamicObject> = Api::all_with(client.clone(), &crds::konflux());
    let _ = konfluxes.delete("konflux", &DeleteParams::default()).await;
    delete_openshift(client.clone()).await;
    let _cleanup = CleanUp(cluster.config().clone(), |c| Box::pin(delete_openshift(c)));

    let (dir, out, sink) = sink_in("platform", KEY).await;
    let home = cluster.namespace("platform-home").await;
    let settings: Api<ConfigMap> = Api::namespaced(client.clone(), home.name());
    home.settings(json!({"flushInterval": "200ms", "heartbeatInterval": "1h"}))
        .await;
    // No CR, no telemetryEnabled (neither flag nor key): the platform decides.
    let unset = [("TELEMETRY_ENABLED".to_owned(), String::new())];
    let daemon = start_daemon_with_env(&cluster, &sink.api_url(), home.name(), &dir, &unset);
    daemon.wait_ready().await;

    // Vanilla Kubernetes (no ClusterVersion named version): off.
    wait_decided(&daemon, "kubernetes_default", 0.0).await;
    assert_eq!(
        preview_says(&daemon).await,
        "off; decided-by=kubernetes_default"
    );
    assert_eq!(
        daemon.get("/preview").await.expect("/preview").1,
        r#"{"batch":[],"telemetry":"off","decidedBy":"kubernetes_default"}"#
    );

    // OpenShift, with neither a console config nor an opt-out: the console's telemetry is
    // on, and so is the daemon's; a Component is sent.
    let cv: Api<DynamicObject> = Api::all_with(client.clone(), &crds::cluster_version());
    cv.create(
        &PostParams::default(),
        &support::object(&crds::cluster_version(), "version", json!({})),
    )
    .await
    .expect("ClusterVersion version");
    wait_decided(&daemon, "openshift_console", 1.0).await;
    assert_eq!(
        preview_says(&daemon).await,
        "on; decided-by=openshift_console"
    );
    let tenant = cluster.namespace("platform-tenant").await;
    let id = support::create_component(&tenant.dynamic_api(&crds::component()), "c").await;
    wait_for_ids(&out, &[id]).await;

    // The console operator's annotation turns it off.
    let consoles: Api<DynamicObject> = Api::all_with(client.clone(), &crds::console());
    let mut console = support::object(&crds::console(), "cluster", json!({}));
    console.metadata.annotations = Some(support::labels(&[(
        "telemetry.console.openshift.io/DISABLED",
        "true",
    )]));
    consoles
        .create(&PostParams::default(), &console)
        .await
        .expect("Console cluster");
    wait_decided(&daemon, "openshift_console", 0.0).await;

    // Without it, the cluster's own opt-out turns it off.
    merge_patch(
        &consoles,
        "cluster",
        json!({"metadata": {"annotations": {
                "telemetry.console.openshift.io/DISABLED": null}}}),
        "remove the annotation",
    )
    .await;
    wait_decided(&daemon, "openshift_console", 1.0).await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "openshift-monitoring"}});
    let _ = namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(ns).expect("namespace"),
        )
        .await;
    let monitoring: Api<ConfigMap> = Api::namespaced(client.clone(), "openshift-monitoring");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "cluster-monitoring-config"},
                    "data": {"config.yaml": "telemeterClient:\n  enabled: false\n"}});
    monitoring
        .create(
            &PostParams::default(),
            &serde_json::from_value(cm).expect("config map"),
        )
        .await
        .expect("cluster-monitoring-config");
    wait_decided(&daemon, "openshift_cluster_monitoring", 0.0).await;

    // An explicit telemetryEnabled wins over the platform.
    set_telemetry_enabled(&settings, "true").await;
    wait_decided(&daemon, "config", 1.0).await;

    let (clean, log) = daemon.terminate();
    assert!(clean, "{log}");
    // The start line: the switch as it settled, where events go (the host only), where
    // to see them, how to turn it off.
    let start = log
        .lines()
        .find(|l| l.contains("events go to"))
        .unwrap_or_else(|| panic!("no start line: {log}"));
    for said in [
        "telemetry off (decided by the default on Kubernetes",
        "events go to 127.0.0.1;",
        "/preview",
        "spec.telemetry.enabled: false on the Konflux CR",
    ] {
        assert!(
            start.contains(said),
            "{said:?} not in the start line: {start}"
        );
    }
    assert!(!start.contains(KEY), "the write key in the start line");
    for said in [
        "telemetry off: nothing is buffered or sent (decided by the default on Kubernetes",
        "telemetry on (decided by the OpenShift console's telemetry setting)",
        "telemetry off: nothing is buffered or sent (decided by the OpenShift cluster's telemetry opt-out",
        "telemetry on (decided by the daemon's telemetryEnabled setting)",
    ] {
        assert!(log.contains(said), "{said:?} not in the log: {log}");
    }
    sink.shutdown().await;
    tenant.cleanup().await;
    home.cleanup().await;
}
