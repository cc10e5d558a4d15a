//! `konflux-telemetry run` on the real API server, sending to the project's sink: each
//! event kind produced live, nothing twice across a restart, live settings, SIGTERM
//! flushes, and no raw name or key in events, logs or `/preview`.

mod support;

use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use std::path::Path;
use support::daemon::{
    DaemonProcess, DaemonTest, KONFLUX_CR_LOCK, WAIT, by_id, count, konflux_info, sink_events,
    start_sink, wait_for_ids,
};
use support::{crds, eventually, set_status};

const KEY: &str = "wk-daemon-test-secret";

/// The daemon of these tests: sends to `sink_url` with the key, its ConfigMaps in the
/// test's home namespace.
fn start_daemon(test: &DaemonTest, sink_url: &str, extra: &[&str]) -> DaemonProcess {
    let ns = test.home.name();
    let settings = format!("{ns}/settings");
    let state = format!("{ns}/state");
    let mut args = vec![
        "--segment-api-url",
        sink_url,
        "--segment-write-key",
        KEY,
        "--cluster-id",
        "daemon-test",
        "--config-map",
        &settings,
        "--state-config-map",
        &state,
    ];
    args.extend_from_slice(extra);
    test.start(&args)
}

/// Waits until event `id` waits in the daemon's `/preview`; asserts it is not at the sink
/// (`sent_early` says what went wrong if it is).
async fn held_in_preview(daemon: &DaemonProcess, out: &Path, id: &str, sent_early: &str) {
    eventually(&format!("{id} to wait in /preview"), WAIT, || async {
        let (_, preview) = daemon.get("/preview").await?;
        preview.contains(id).then_some(())
    })
    .await;
    assert_eq!(count(&sink_events(out), id), 0, "{sent_early}");
}

/// Waits until the daemon counted a reload of the Segment credentials with `outcome`.
async fn credential_reload(daemon: &DaemonProcess, outcome: &str, what: &str) {
    let series =
        format!(r#"konflux_telemetry_segment_credential_reloads_total{{outcome="{outcome}"}}"#);
    eventually(what, WAIT, || async {
        (daemon.metric(&series).await >= 1.0).then_some(())
    })
    .await;
}

/// Where a test `name` here starts from (see [`DaemonTest`]).
async fn setup(name: &str) -> DaemonTest {
    DaemonTest::new(&format!("daemon-{name}"), KEY).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_capture_restart_and_sigterm() {
    let test = setup("live").await;
    let (cluster, out, sink_url) = (&test.cluster, &test.out, test.sink.api_url());
    let tenant = cluster.tenant("secret-tenant").await;
    let ns = tenant.name().to_owned();
    test.home
        .settings(json!({"flushInterval": "500ms", "heartbeatInterval": "1h"}))
        .await;

    let daemon = start_daemon(&test, &sink_url, &[]);
    daemon.wait_ready().await;

    // A Component and a PipelineRun, moved along as Tekton would.
    let components = tenant.dynamic_api(&crds::component());
    let component = support::new_component(&components, "secret-component", "secret-app").await;
    let runs = tenant.dynamic_api(&crds::pipelinerun());
    let mut run = support::object(
        &crds::pipelinerun(),
        "secret-run",
        json!({"pipelineRef": {"name": "p"}}),
    );
    run.metadata.labels = Some(support::labels(&[
        ("tekton.dev/pipeline", "secret-pipeline"),
        ("pipelines.appstudio.openshift.io/type", "build"),
    ]));
    let run = runs
        .create(&PostParams::default(), &run)
        .await
        .expect("run");
    let run_uid = run.metadata.uid.clone().expect("uid");
    let start = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    set_status(
        &runs,
        "secret-run",
        json!({"startTime": start, "childReferences": [{"name": "a"}]}),
    )
    .await
    .expect("start");
    let started = format!("{run_uid}-started");
    let events = wait_for_ids(out, std::slice::from_ref(&started)).await;
    let first = by_id(&events, &started);
    assert_eq!(first["timestamp"], start);
    assert_eq!(first["properties"]["pipelineType"], "build");
    assert_eq!(first["properties"]["hasPipelineLabel"], true);

    let done = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    set_status(
        &runs,
        "secret-run",
        json!({
            "startTime": start, "completionTime": done,
            "childReferences": [{"name": "a"}, {"name": "b"}],
            "conditions": [{"type": "Succeeded", "status": "False", "reason": "Failed"}]
        }),
    )
    .await
    .expect("complete");
    let ns_uid = tenant.uid().await;
    let ids = vec![
        format!("{run_uid}-completed"),
        format!(
            "{}-component-created",
            component.metadata.uid.clone().expect("uid")
        ),
        format!("{ns_uid}-namespace-created"),
    ];
    let events = wait_for_ids(out, &ids).await;
    let completed = by_id(&events, &ids[0]);
    assert_eq!(completed["properties"]["status"], "Failed");
    assert_eq!(completed["properties"]["taskCount"], 2);
    assert_eq!(completed["timestamp"], done);

    // /preview shows the buffer as it would be sent, without the key.
    let (status, preview) = daemon.get("/preview").await.expect("preview");
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Value>(&preview).expect("preview JSON")["batch"].is_array());
    let (_, metrics) = daemon.get("/metrics").await.expect("metrics");
    assert!(
        metrics.contains("konflux_telemetry_events_produced_total"),
        "{metrics}"
    );

    // SIGTERM with an event waiting: a long flush interval, then a change, then TERM.
    let log1 = daemon.stop();

    // While the daemon is down: a Component is created; it is caught up at start.
    let late = support::new_component(&components, "secret-late", "secret-app").await;
    let late_id = format!("{}-component-created", late.metadata.uid.expect("uid"));

    // Restart: everything is relisted, nothing is produced twice.
    let before = test.sent().len();
    let daemon = start_daemon(&test, &sink_url, &[]);
    daemon.wait_ready().await;
    // A new run after the restart proves the new daemon flushes.
    let mut probe = support::object(&crds::pipelinerun(), "secret-probe", json!({}));
    probe.metadata.labels = None;
    let probe = runs
        .create(&PostParams::default(), &probe)
        .await
        .expect("probe");
    set_status(
        &runs,
        "secret-probe",
        json!({"startTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}),
    )
    .await
    .expect("probe start");
    let probe_id = format!("{}-started", probe.metadata.uid.expect("uid"));
    let events = wait_for_ids(out, &[probe_id.clone(), late_id.clone()]).await;
    assert!(events.len() > before);
    for id in ids.iter().chain([&started, &probe_id, &late_id]) {
        assert_eq!(
            count(&events, id),
            1,
            "{id} sent {} times",
            count(&events, id)
        );
    }

    // Live settings: a bad value is rejected and reported, the last good one stays.
    test.home
        .replace_settings(json!({"flushInterval": "whenever", "heartbeatInterval": "1h"}))
        .await;
    eventually("the rejection to be counted", WAIT, || async {
        let (_, m) = daemon.get("/metrics").await?;
        m.contains("konflux_telemetry_config_reloads_total{outcome=\"rejected\"}")
            .then_some(())
    })
    .await;
    // SIGTERM flushes what waits: with flushes still every 500ms this only proves a clean
    // exit; the reliability suite holds the long-interval case.
    let log2 = daemon.stop();
    assert!(log2.contains("flushInterval rejected"), "{log2}");

    // Privacy: no raw name, namespace or key anywhere the daemon wrote.
    let sent = std::fs::read_to_string(out).unwrap_or_default();
    for (what, text) in [
        ("sink", &sent),
        ("log 1", &log1),
        ("log 2", &log2),
        ("preview", &preview),
        ("metrics", &metrics),
    ] {
        for secret in [
            KEY,
            "secret-tenant",
            "secret-component",
            "secret-run",
            "secret-app",
            "secret-pipeline",
            ns.as_str(),
        ] {
            assert!(!text.contains(secret), "{secret} leaked in the {what}");
        }
    }
    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(cluster.client())
        .delete(&ns, &DeleteParams::default())
        .await;
    test.finish([tenant]).await;
}

/// A long flush interval holds events in the buffer (visible at /preview, not at the sink);
/// shortening it in the ConfigMap sends them without a restart; SIGTERM sends what waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_flush_interval_and_sigterm_flush() {
    let test = setup("flush").await;
    let (home, out) = (&test.home, &test.out);
    let tenant = test.cluster.tenant("flush-tenant").await;
    let flush_every = |flush: &str| json!({"flushInterval": flush, "heartbeatInterval": "1h"});
    home.settings(flush_every("1h")).await;
    let daemon = start_daemon(&test, &test.sink.api_url(), &[]);
    daemon.wait_ready().await;

    let components = tenant.dynamic_api(&crds::component());
    let first_id = support::create_component(&components, "held").await;
    held_in_preview(&daemon, out, &first_id, "sent before the flush interval").await;

    home.replace_settings(flush_every("500ms")).await;
    wait_for_ids(out, std::slice::from_ref(&first_id)).await;

    // Back to an hour; an event waits; SIGTERM must send it before exit.
    home.replace_settings(flush_every("1h")).await;
    eventually("the longer interval to apply", WAIT, || async {
        let (_, m) = daemon.get("/metrics").await?;
        m.contains("konflux_telemetry_config_reloads_total{outcome=\"applied\"} 3")
            .then_some(())
    })
    .await;
    let second_id = support::create_component(&components, "buffered").await;
    held_in_preview(&daemon, out, &second_id, "sent before SIGTERM").await;
    let log = daemon.stop();
    assert_eq!(
        count(&test.sent(), &second_id),
        1,
        "SIGTERM did not flush; log:\n{log}"
    );
    assert!(log.contains("final flush done"), "{log}");

    test.finish([tenant]).await;
}

/// Without a write key nothing is sent (the sink sees no request) and /preview shows the
/// events; the Konflux CR's lifecycle; the cluster id from kube-system, then from
/// `konflux-public-info` once it appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_konflux_lifecycle_and_identity_refresh() {
    use konflux_telemetry::events::hash::short_hash as h;
    let test = DaemonTest::locked("daemon-nokey", KEY, KONFLUX_CR_LOCK).await;
    let cluster = &test.cluster;
    let konfluxes: Api<kube::api::DynamicObject> =
        Api::all_with(cluster.client(), &crds::konflux());
    let _ = konfluxes.delete("konflux", &DeleteParams::default()).await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.client());
    let infos = konflux_info(cluster).await;
    let _ = infos
        .delete("konflux-public-info", &DeleteParams::default())
        .await;
    let kube_system = namespaces
        .get("kube-system")
        .await
        .expect("kube-system")
        .metadata
        .uid
        .expect("uid");

    // No --segment-write-key; flushes hourly so /preview keeps what it captured.
    let sink_url = test.sink.api_url();
    let settings = format!("{}/settings", test.home.name());
    let daemon = test.start(&[
        "--segment-api-url",
        &sink_url,
        "--flush-interval",
        "1h",
        "--config-map",
        &settings,
        "--state-config-map",
        "",
        "--public-info-interval",
        "1s",
    ]);
    daemon.wait_ready().await;

    let k = konfluxes
        .create(
            &PostParams::default(),
            &support::object(&crds::konflux(), "konflux", json!({})),
        )
        .await
        .expect("konflux CR");
    let uid = k.metadata.uid.clone().expect("uid");
    let created = k
        .metadata
        .creation_timestamp
        .clone()
        .expect("created")
        .0
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let ready_at = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    set_status(
        &konfluxes,
        "konflux",
        json!({"conditions": [
            {"type": "Ready", "status": "True", "reason": "AllComponentsReady", "message": "",
             "lastTransitionTime": ready_at}
        ]}),
    )
    .await
    .expect("ready");
    konfluxes
        .delete("konflux", &DeleteParams::default())
        .await
        .expect("delete konflux");
    let preview = |want: Vec<String>| {
        let daemon = &daemon;
        async move {
            eventually(&format!("{want:?} in /preview"), WAIT, || async {
                let (_, p) = daemon.get("/preview").await?;
                let v: Value = serde_json::from_str(&p).ok()?;
                let batch = v["batch"].as_array()?.clone();
                want.iter()
                    .all(|id| batch.iter().any(|e| e["messageId"] == **id))
                    .then_some(batch)
            })
            .await
        }
    };
    let ids = vec![
        format!("{uid}-started"),
        format!("{uid}-completed"),
        format!("{uid}-removal-started"),
    ];
    let batch = preview(ids.clone()).await;
    let get = |id: &str| by_id(&batch, id).clone();
    let (started, completed, removal) = (get(&ids[0]), get(&ids[1]), get(&ids[2]));
    assert_eq!(started["event"], "Operator Deployment Started");
    assert_eq!(started["timestamp"], created);
    assert_eq!(started["properties"]["clusterIdHash"], h(&[&kube_system]));
    assert_eq!(completed["event"], "Operator Deployment Completed");
    assert_eq!(completed["timestamp"], ready_at);
    assert_eq!(completed["properties"]["status"], "AllComponentsReady");
    assert_eq!(removal["event"], "Operator Removal Started");

    // konflux-public-info appears: later events carry its cluster id and versions.
    infos
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": "konflux-public-info"},
            "data": {"info.json": "{\"clusterId\": \"from-info\", \"konfluxVersion\": \"v9.9\"}"}
        })).expect("ConfigMap"))
        .await
        .expect("public info");
    let tenant_id = eventually(
        "a tenant namespace event with the new identity",
        WAIT,
        || async {
            let t = cluster.tenant("nokey-tenant").await;
            let uid = namespaces.get(t.name()).await.ok()?.metadata.uid?;
            let id = format!("{uid}-namespace-created");
            let batch = preview(vec![id.clone()]).await;
            let e = batch
                .iter()
                .find(|e| e["messageId"] == id.as_str())?
                .clone();
            t.cleanup().await;
            (e["properties"]["clusterIdHash"] == h(&["from-info"])).then_some(e)
        },
    )
    .await;
    assert_eq!(tenant_id["properties"]["konfluxVersion"], "v9.9");
    assert_eq!(tenant_id["context"]["device"]["id"], h(&["from-info"]));

    let _ = infos
        .delete("konflux-public-info", &DeleteParams::default())
        .await;
    let log = daemon.stop();
    assert!(log.contains("no Segment write key"), "{log}");
    assert_eq!(
        test.sink.stats().requests,
        0,
        "a request reached the sink without a write key"
    );
    test.finish([]).await;
}

/// A kind whose CRD is missing is logged once and does not hold up readiness or the other
/// kinds; when the CRD appears, it is picked up without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_that_appears_later_is_picked_up() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let test = DaemonTest::locked("daemon-crd", KEY, KONFLUX_CR_LOCK).await;
    let (cluster, out) = (&test.cluster, &test.out);
    let crds_api: Api<CustomResourceDefinition> = Api::all(cluster.client());
    let crd_name = "konfluxes.konflux.konflux-ci.dev";
    let original = crds_api
        .get(crd_name)
        .await
        .expect("the Konflux CRD is installed");
    let _ = crds_api.delete(crd_name, &DeleteParams::default()).await;
    eventually("the Konflux CRD to be gone", WAIT, || async {
        crds_api
            .get_opt(crd_name)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;

    test.home.settings(json!({"flushInterval": "300ms"})).await;
    let daemon = start_daemon(&test, &test.sink.api_url(), &[]);
    daemon.wait_ready().await;

    // The other kinds go on meanwhile.
    let tenant = cluster.tenant("crd-tenant").await;
    let component = tenant
        .dynamic_api(&crds::component())
        .create(
            &PostParams::default(),
            &support::object(&crds::component(), "c", json!({})),
        )
        .await
        .expect("component");
    wait_for_ids(
        out,
        &[format!(
            "{}-component-created",
            component.metadata.uid.expect("uid")
        )],
    )
    .await;

    // The CRD comes back, as an operator installing it would.
    let mut again = original.clone();
    again.metadata = kube::api::ObjectMeta {
        name: Some(crd_name.to_owned()),
        ..Default::default()
    };
    again.status = None;
    crds_api
        .create(&PostParams::default(), &again)
        .await
        .expect("recreate the CRD");
    let konfluxes: Api<kube::api::DynamicObject> =
        Api::all_with(cluster.client(), &crds::konflux());
    let k = eventually("the Konflux CR to be accepted", WAIT, || async {
        konfluxes
            .create(
                &PostParams::default(),
                &support::object(&crds::konflux(), "konflux", json!({})),
            )
            .await
            .ok()
    })
    .await;
    wait_for_ids(out, &[format!("{}-started", k.metadata.uid.expect("uid"))]).await;
    let _ = konfluxes.delete("konflux", &DeleteParams::default()).await;

    let log = daemon.stop();
    let missing = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("is not served: is its CRD installed?"))
        .count();
    assert_eq!(missing, 1, "the missing CRD should be logged once:\n{log}");
    assert!(log.contains("watch recovered"), "{log}");
    test.finish([tenant]).await;
}

/// The operator changes `segment-bridge-config` under a running workload (a new
/// `segmentKeySecretRef` target reaches it within a second). With the Secret mounted as
/// files (`--segment-secret-dir`), the daemon reads them again and the next flush goes to
/// the new URL with the new key, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_secret_applies_at_the_next_flush() {
    // The test's sink is the first; the second takes another key.
    let test = DaemonTest::new("daemon-secret-change", "first-key-4c1a").await;
    let (dir, out1, first) = (&test.dir, &test.out, &test.sink);
    let out2 = dir.join("sink2.ndjson");
    let second = start_sink("second-key-9e2b", &out2).await;
    // The Secret as the kubelet mounts it: one file a key (a trailing newline, the URL with
    // /batch as the operator writes it). The file wins over the flag of the same name.
    let secret = dir.join("segment-bridge-config");
    std::fs::create_dir_all(&secret).expect("secret dir");
    let write = |key: &str, url: &str| {
        std::fs::write(secret.join("SEGMENT_WRITE_KEY"), format!("{key}\n")).expect("key");
        std::fs::write(secret.join("SEGMENT_API_URL"), format!("{url}/batch\n")).expect("url");
    };
    write("first-key-4c1a", &first.api_url());
    let tenant = test.cluster.tenant("secret-change").await;
    test.home
        .settings(json!({"flushInterval": "300ms", "heartbeatInterval": "1h"}))
        .await;
    let secret_dir = secret.to_string_lossy().into_owned();
    // The flags name no sink at all: only the files do.
    let daemon = start_daemon(
        &test,
        "https://flags-url.invalid/v1",
        &[
            "--segment-secret-dir",
            &secret_dir,
            "--segment-secret-poll",
            "100ms",
        ],
    );
    daemon.wait_ready().await;

    let components = tenant.dynamic_api(&crds::component());
    let before = support::create_component(&components, "before-change").await;
    wait_for_ids(out1, std::slice::from_ref(&before)).await;

    write("second-key-9e2b", &second.api_url());
    // The marker that the daemon read the change: its counter, before anything is created.
    credential_reload(&daemon, "applied", "the change applied").await;
    let after = support::create_component(&components, "after-change").await;
    let events = wait_for_ids(&out2, std::slice::from_ref(&after)).await;
    assert_eq!(
        count(&events, &before),
        0,
        "the first sink's event went there alone"
    );
    assert_eq!(
        count(&test.sent(), &after),
        0,
        "nothing after the change at the first"
    );

    // A value that cannot be used keeps the last good credentials, and says so.
    std::fs::write(secret.join("SEGMENT_API_URL"), "not a url\n").expect("url");
    credential_reload(&daemon, "rejected", "the bad value counted").await;
    let last = support::create_component(&components, "after-bad-value").await;
    wait_for_ids(&out2, std::slice::from_ref(&last)).await;
    let log = daemon.stop();
    for secret in ["first-key-4c1a", "second-key-9e2b", "not a url"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
    assert!(log.contains("the Segment Secret changed"), "{log}");
    second.shutdown().await;
    test.finish([tenant]).await;
}
