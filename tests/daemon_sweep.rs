//! The daemon with the reconciliation sweep, on the real API server and the real Tekton
//! Results API: runs that finished and were pruned while the daemon was down are
//! recovered from Results, exactly once; what the watch already sent is not sent again;
//! records older than the lookback are ignored; an unreachable Results API is survived.

mod support;

use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};
use std::path::Path;
use support::daemon::{DaemonProcess, sink_events, start_sink, wait_for_ids};
use support::results::results_server;
use support::{TestCluster, crds, set_status};

const KEY: &str = "wk-sweep-test";

/// The daemon of this test: flushes every 300 ms, sweeps `results_addr` at start.
fn start(
    cluster: &TestCluster,
    sink: &str,
    home: &str,
    results_addr: &str,
    ca: &Path,
    log: &Path,
) -> DaemonProcess {
    let (settings, state) = (format!("{home}/settings"), format!("{home}/state"));
    let ca = ca.to_string_lossy();
    let args = [
        "--segment-api-url",
        sink,
        "--segment-write-key",
        KEY,
        "--cluster-id",
        "sweep-test",
        "--flush-interval",
        "300ms",
        "--config-map",
        &settings,
        "--state-config-map",
        &state,
        "--tekton-results-api-addr",
        results_addr,
        "--tekton-results-token",
        "not-checked",
        "--tekton-results-ca-file",
        &ca,
    ];
    DaemonProcess::start(cluster, &args, log.to_path_buf())
}

/// SIGTERM; the daemon must exit 0. Returns its log.
fn stop(daemon: DaemonProcess) -> String {
    let (ok, log) = daemon.terminate();
    assert!(ok, "daemon exit; log:\n{log}");
    log
}

fn count(out: &Path, id: &str) -> usize {
    support::daemon::count(&sink_events(out), id)
}

async fn arrive(out: &Path, ids: &[String]) {
    wait_for_ids(out, ids).await;
}

fn sent(out: &Path) -> Vec<Value> {
    sink_events(out)
}

fn at(offset_seconds: i64) -> String {
    jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(offset_seconds))
        .expect("time")
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_while_down_is_recovered_once() {
    let cluster = support::cluster().await;
    let results = results_server();
    let dir = std::env::temp_dir().join(format!("konflux-telemetry-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let out = dir.join("sink.ndjson");
    let sink = start_sink(KEY, &out).await;
    let sink_url = sink.api_url();
    let home = cluster.namespace("sweep-home").await;
    let tenant = cluster.namespace("sweep-tenant").await;
    let ns = tenant.name().to_owned();
    let runs = tenant.dynamic_api(&crds::pipelinerun());

    // 1. The daemon runs; a run starts and completes; the watch sends it; Results records it.
    let log1 = dir.join("d1.log");
    let d1 = start(
        &cluster,
        &sink_url,
        home.name(),
        &results.addr,
        &results.ca,
        &log1,
    );
    runs.create(
        &PostParams::default(),
        &support::object(&crds::pipelinerun(), "seen", json!({})),
    )
    .await
    .expect("run");
    let status = json!({"startTime": at(-120), "completionTime": at(-60), "childReferences": [{"name": "a"}],
                        "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]});
    let seen = set_status(&runs, "seen", status.clone())
        .await
        .expect("status");
    let seen_uid = seen.metadata.uid.clone().expect("uid");
    let seen_ids = [
        format!("{seen_uid}-started"),
        format!("{seen_uid}-completed"),
    ];
    arrive(&out, &seen_ids).await;
    results
        .record(
            &ns,
            &json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": "seen", "namespace": ns, "uid": seen_uid}, "status": status}),
        )
        .await;
    stop(d1);

    // 2. While it is down: a run completes, is recorded, and is pruned from the cluster;
    //    and an old record lies before the lookback.
    runs.create(
        &PostParams::default(),
        &support::object(&crds::pipelinerun(), "missed", json!({})),
    )
    .await
    .expect("run");
    let missed_status = json!({"startTime": at(-50), "completionTime": at(-10), "childReferences": [{"name": "a"}, {"name": "b"}],
                               "conditions": [{"type": "Succeeded", "status": "False", "reason": "Failed"}]});
    let missed = set_status(&runs, "missed", missed_status.clone())
        .await
        .expect("status");
    let missed_uid = missed.metadata.uid.clone().expect("uid");
    results.record(&ns, &json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": "missed", "namespace": ns, "uid": missed_uid}, "status": missed_status})).await;
    runs.delete("missed", &DeleteParams::default())
        .await
        .expect("prune");
    let ancient_uid = format!("ancient-{}", std::process::id());
    results
        .record(
            &ns,
            &json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": "ancient", "namespace": ns, "uid": ancient_uid},
        "status": {"startTime": at(-6 * 3600), "completionTime": at(-5 * 3600)}}),
        )
        .await;

    // 3. Restart: the sweep recovers exactly the missing events.
    let log2 = dir.join("d2.log");
    let d2 = start(
        &cluster,
        &sink_url,
        home.name(),
        &results.addr,
        &results.ca,
        &log2,
    );
    let missed_ids = [
        format!("{missed_uid}-started"),
        format!("{missed_uid}-completed"),
    ];
    arrive(&out, &missed_ids).await;
    let completed = sent(&out)
        .into_iter()
        .find(|e| e["messageId"] == missed_ids[1])
        .expect("completed");
    assert_eq!(completed["properties"]["status"], "Failed");
    assert_eq!(completed["properties"]["taskCount"], 2);
    // One more flush cycle passes with nothing new for these runs.
    let probe = runs
        .create(
            &PostParams::default(),
            &support::object(&crds::pipelinerun(), "probe", json!({})),
        )
        .await
        .expect("probe");
    set_status(&runs, "probe", json!({"startTime": at(0)}))
        .await
        .expect("probe status");
    arrive(
        &out,
        &[format!("{}-started", probe.metadata.uid.expect("uid"))],
    )
    .await;
    let log = stop(d2);
    for id in seen_ids.iter().chain(missed_ids.iter()) {
        assert_eq!(count(&out, id), 1, "{id}; log:\n{log}");
    }
    assert_eq!(count(&out, &format!("{ancient_uid}-started")), 0);
    assert_eq!(count(&out, &format!("{ancient_uid}-completed")), 0);

    // 4. An unreachable Results API costs the sweep only: the watch goes on.
    let log3 = dir.join("d3.log");
    let d3 = start(
        &cluster,
        &sink_url,
        home.name(),
        "https://127.0.0.1:1",
        &results.ca,
        &log3,
    );
    let alive = runs
        .create(
            &PostParams::default(),
            &support::object(&crds::pipelinerun(), "alive", json!({})),
        )
        .await
        .expect("run");
    set_status(&runs, "alive", json!({"startTime": at(0)}))
        .await
        .expect("status");
    arrive(
        &out,
        &[format!("{}-started", alive.metadata.uid.expect("uid"))],
    )
    .await;
    let log = stop(d3);
    assert!(
        log.to_lowercase().contains("sweep"),
        "no sweep error logged:\n{log}"
    );
    assert!(!log.contains(&ns), "namespace in the log");

    sink.shutdown().await;
    tenant.cleanup().await;
    home.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}
