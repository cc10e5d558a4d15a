//! The REAL Tekton Results watcher (`cmd/watcher` of the pinned release, built from source
//! and run by `e2e/tekton-results/watcher.sh`) against the local API server and the local
//! Results server: a PipelineRun it records, then pruned from the cluster, is recovered by
//! the daemon's sweep exactly once, and its record decodes without a skip.

mod support;

use support::at;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use konflux_telemetry::sweep::{
    ResultsClient, ResultsConfig, SweepMetrics, SweepSettings, Sweeper, TokenSource,
};
use kube::api::DeleteParams;
use serde_json::json;
use support::daemon::{
    DaemonProcess, by_id, count, sending_flags, sink_events, sink_in, wait_for_ids,
};
use support::results::results_server;
use support::{crds, eventually, set_status};
use tokio::sync::{mpsc, watch};

const KEY: &str = "wk-watcher-test";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/tekton-results/watcher.sh")
}

/// The watcher process, stopped on drop (also when the test panics).
struct Watcher;

impl Watcher {
    /// Starts the watcher on `namespace` (its system namespace too); ready when this returns.
    fn start(namespace: &str) -> Self {
        let status = Command::new("bash")
            .arg(script())
            .args(["start", namespace])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run e2e/tekton-results/watcher.sh start");
        assert!(
            status.success(),
            "watcher.sh start failed ({status}); see .cluster/results/watcher.log"
        );
        Watcher
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).arg("stop").status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_the_watcher_recorded_and_pruning_removed_is_swept_once() {
    let cluster = support::cluster().await;
    let results = results_server();
    let (dir, out, sink) = sink_in("results-watcher", KEY).await;
    let home = cluster.namespace("watcher-home").await;
    let tenant = cluster.tenant("watcher-tenant").await;
    let ns = tenant.name().to_owned();
    let runs = tenant.dynamic_api(&crds::pipelinerun());

    // 1. The watcher records a run as it starts and completes (no daemon yet).
    let watcher = Watcher::start(&ns);
    let created = support::create_run(&runs, "built")
        .await
        .expect("create the run");
    let uid = created.metadata.uid.clone().expect("uid");
    set_status(
        &runs,
        "built",
        json!({"startTime": at(-60),
               "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running"}]}),
    )
    .await
    .expect("started");
    set_status(
        &runs,
        "built",
        json!({"completionTime": at(-10), "childReferences": [{"name": "built-task"}],
               "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]}),
    )
    .await
    .expect("completed");
    // The watcher marks a run `stored` once the done run is in Results.
    let record = eventually(
        "the watcher to mark the run stored",
        support::daemon::WAIT,
        || async {
            let run = runs.get("built").await.ok()?;
            let ann = run.metadata.annotations?;
            (ann.get("results.tekton.dev/stored").map(String::as_str) == Some("true"))
                .then(|| ann.get("results.tekton.dev/record").cloned())
                .flatten()
        },
    )
    .await;
    assert_eq!(record, format!("{ns}/results/{uid}/records/{uid}"));

    // 2. Pruned: deleted from the cluster. The watcher's finalizer stores the final state
    //    and lets it go.
    runs.delete("built", &DeleteParams::default())
        .await
        .expect("prune the run");
    eventually(
        "the pruned run to be gone",
        support::daemon::WAIT,
        || async { matches!(runs.get_opt("built").await, Ok(None)).then_some(()) },
    )
    .await;
    drop(watcher);
    let stored = results.records(&ns).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].0, record);
    let value = &stored[0].1;
    assert_eq!(value["metadata"]["uid"], uid.as_str());
    assert_eq!(value["status"]["conditions"][0]["reason"], "Succeeded");

    // What the watcher wrote decodes: a sweep of this namespace alone skips nothing.
    support::crypto::install_provider();
    let mut config = ResultsConfig::new(&results.addr);
    config.ca_file = Some(results.ca.clone());
    config.token = TokenSource::Fixed("not-checked".into());
    config.timeout = Duration::from_secs(20);
    config.parent = ns.clone();
    let (tx, mut rx) = mpsc::channel(8);
    let (_settings_tx, settings_rx) = watch::channel(SweepSettings::default());
    let sweeper = Sweeper::new(
        ResultsClient::new(&config).expect("a Results client"),
        settings_rx,
        tx,
        SweepMetrics::default(),
    );
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let since = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(10);
    let report = sweeper.sweep_since(since).await;
    drop(sweeper);
    drain.await.expect("drain");
    assert_eq!(
        (report.error, report.undecodable, report.delivered),
        (None, 0, 1),
        "{report:?}"
    );

    // 3. The daemon starts only now: its watch never saw the run; the sweep recovers it.
    let mut args = sending_flags(&sink.api_url(), KEY, "watcher-test", home.name());
    args.extend(results.sweep_flags());
    let daemon = DaemonProcess::start(&cluster, &args, dir.join("daemon.log"));
    let ids = [format!("{uid}-started"), format!("{uid}-completed")];
    let events = wait_for_ids(&out, &ids).await;
    let completed = by_id(&events, &ids[1]);
    assert_eq!(completed["properties"]["status"], "Succeeded");
    assert_eq!(completed["properties"]["taskCount"], 1);

    // A marker run through the watch: once it is at the sink, later flushes have passed.
    wait_for_ids(&out, &[support::marker_run(&runs, "probe").await]).await;
    let (_, metrics) = daemon.get("/metrics").await.expect("metrics");
    let (ok, log) = daemon.terminate();
    assert!(ok, "daemon exit; log:\n{log}");
    assert_eq!(
        support::daemon::sample_sum(&metrics, "konflux_telemetry_objects_skipped_total"),
        0.0,
        "objects skipped:\n{metrics}"
    );
    let events = sink_events(&out);
    for id in &ids {
        assert_eq!(count(&events, id), 1, "{id}; log:\n{log}");
    }

    sink.shutdown().await;
    tenant.cleanup().await;
    home.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}
