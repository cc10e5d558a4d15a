//! Segment quota per PipelineRun (issue 14), measured: the daemon with the watch and the
//! sweep over Tekton Results, for a lookback of four sweep intervals (scaled down through
//! the ConfigMap: `sweepInterval` 15s, `lookback` 60s). Every run is live in the cluster
//! and recorded in Results, so both capture paths see each of its events, the sweep four
//! times within the lookback. The old bridge re-sent every event at each of its runs
//! within its lookback (the Konflux operator's guide: up to ~16 calls per PipelineRun);
//! here each event must reach the sink exactly once. Prints the figures from the sink's
//! request log (docs/performance.md, "Segment requests per PipelineRun").
//!
//! No sleeps: the test waits for the daemon's own counters, four more completed sweeps
//! after the last record was written, then one more flush.

mod support;

use serde_json::json;
use std::collections::BTreeMap;
use support::daemon::{DaemonTest, WAIT};
use support::results::results_server;
use support::{crds, eventually, set_status};

const KEY: &str = "wk-quota-test";
const RUNS: usize = 20;
const SWEEPS: f64 = 4.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_is_sent_once_over_four_sweeps_of_the_lookback() {
    let test = DaemonTest::new("quota", KEY).await;
    let results = results_server();
    let tenant = test.cluster.namespace("quota-tenant").await;
    let ns = tenant.name().to_owned();
    // The settings ConfigMap where `sending_flags` points the daemon (NAMESPACE/settings).
    test.home
        .settings(
            json!({"flushInterval": "300ms", "sweepInterval": "15s", "lookback": "60s",
               "heartbeatInterval": "1h"}),
        )
        .await;
    let mut args = test.sending_flags("quota-test");
    args.extend(results.sweep_flags());
    let daemon = test.start(&args);
    daemon.wait_ready().await;

    // The workload: RUNS PipelineRuns that start and complete now, live and in Results.
    let runs = tenant.dynamic_api(&crds::pipelinerun());
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut uids = Vec::new();
    for i in 0..RUNS {
        let name = format!("run-{i}");
        support::create_run(&runs, &name).await.expect("run");
        let status = json!({"startTime": now, "completionTime": now,
            "childReferences": [{"name": "a"}],
            "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]});
        let run = set_status(&runs, &name, status.clone())
            .await
            .expect("status");
        let uid = run.metadata.uid.clone().expect("uid");
        results
            .record(
                &ns,
                &json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
                    "metadata": {"name": name, "namespace": ns, "uid": uid}, "status": status}),
            )
            .await;
        uids.push(uid);
    }

    // Four sweeps over all of them (the lookback), then a flush after the last.
    let sweeps = "konflux_telemetry_sweep_sweeps_total{outcome=\"ok\"}";
    let base = daemon.metric(sweeps).await;
    eventually("four sweeps after the last record", WAIT * 3, || async {
        (daemon.metric(sweeps).await >= base + SWEEPS).then_some(())
    })
    .await;
    let flushes = "konflux_telemetry_flushes_total{outcome=\"ok\"}";
    let flushed = daemon.metric(flushes).await;
    eventually("a flush after the fourth sweep", WAIT, || async {
        (daemon.metric(flushes).await > flushed).then_some(())
    })
    .await;
    let dedup = daemon.metric("konflux_telemetry_events_deduplicated_total{event=\"PipelineRun Completed\",source=\"sweep\"}",
    )
    .await;
    let records_read = daemon
        .metric("konflux_telemetry_sweep_records_read_total")
        .await;
    daemon.stop();

    // Every event the sink took passes schema/events.json.
    test.sent();
    // The sink's request log: every event of every run, each exactly once.
    let stats = test.sink.stats();
    let mut sent: BTreeMap<&str, usize> = BTreeMap::new();
    for id in stats.request_log.iter().flat_map(|r| &r.message_ids) {
        *sent.entry(id.as_str()).or_default() += 1;
    }
    let mut run_events = 0;
    let mut run_requests = 0;
    for r in &stats.request_log {
        if r.message_ids
            .iter()
            .any(|id| uids.iter().any(|u| id.starts_with(u.as_str())))
        {
            run_requests += 1;
        }
    }
    for uid in &uids {
        for suffix in ["started", "completed"] {
            let id = format!("{uid}-{suffix}");
            assert_eq!(sent.get(id.as_str()), Some(&1), "{id}");
            run_events += 1;
        }
    }
    // The sweep path was exercised: each run's record was read by a sweep at least once
    // and found already sent. (Sweeps are incremental: after the first covering them,
    // the records are read again only within the overlap, not at every sweep as the old
    // bridge's full re-listing did.)
    assert!(
        dedup >= RUNS as f64,
        "the sweeps did not see every run ({dedup} de-duplicated Completed events)"
    );
    let n = RUNS as f64;
    eprintln!(
        "quota: {RUNS} PipelineRuns, lookback 60s = {SWEEPS} sweeps of 15s, flush every 300ms: \
         {} batch requests in all ({} carrying run events), {} events in all, {run_events} run \
         events; per PipelineRun: {:.2} events sent, {:.2} requests; sweep re-sightings \
         de-duplicated (Completed): {dedup}; Results records read by the sweeps: {records_read}",
        stats.request_log.len(),
        run_requests,
        stats.accepted_events,
        run_events as f64 / n,
        run_requests as f64 / n,
    );
    test.finish([tenant]).await;
}
