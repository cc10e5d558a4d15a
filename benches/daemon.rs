//! `cargo bench --bench daemon`: the daemon on the local API server with N real-size
//! PipelineRuns (10 to 40 KB), sending to the project's sink. Prints:
//! - the initial list: time to ready and until every event is at the sink, events/s;
//! - the daemon's peak and steady RSS, and CPU seconds per 1,000 events;
//! - the latency from a status change to the event at the sink (p50, p99), flush 1 s;
//! - bytes sent per event (against the old bridge's up to 4 sends);
//! - LIST and WATCH requests the API server served meanwhile.
//!
//! `BENCH_RUNS` (default 10000), `BENCH_LATENCY_SAMPLES` (default 200). Under
//! `cargo test --all-targets` (no `--bench` argument) it does nothing.

#[path = "../tests/support/mod.rs"]
mod support;

use support::bench::{env_usize, proc_status};

use kube::api::PostParams;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn unix_ms() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0)
}

/// A PipelineRun spec of about `target` bytes, shaped like a Konflux build pipeline.
fn spec(target: usize) -> serde_json::Value {
    let mut tasks = Vec::new();
    let mut n = 0;
    loop {
        tasks.push(json!({
            "name": format!("task-{n}"),
            "params": [{"name": "SCRIPT", "value": "set -euo pipefail; echo building; ".repeat(8)}],
            "taskRef": {"resolver": "bundles", "params": [{"name": "bundle", "value": "quay.io/konflux-ci/tekton-catalog/task-buildah:0.4@sha256:0123456789abcdef"}]}
        }));
        let s = json!({"pipelineSpec": {"tasks": tasks}, "params": [{"name": "git-url", "value": "https://github.com/org/repo"}]});
        if s.to_string().len() >= target {
            return s;
        }
        n += 1;
    }
}

async fn apiserver_requests(client: &kube::Client) -> BTreeMap<String, f64> {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = client.request_text(req).await.unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let verb = ["LIST", "WATCH"]
            .into_iter()
            .find(|v| line.contains(&format!("verb=\"{v}\"")));
        let resource = [
            "pipelineruns",
            "components",
            "namespaces",
            "konfluxes",
            "configmaps",
        ]
        .into_iter()
        .find(|r| line.contains(&format!("resource=\"{r}\"")));
        if let (Some(v), Some(r), Some(n)) = (
            verb,
            resource,
            line.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()),
        ) {
            *out.entry(format!("{v} {r}")).or_default() += n;
        }
    }
    out
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !support::bench::run_as_bench("daemon") {
        return;
    }
    let runs = env_usize("BENCH_RUNS", 10_000);
    let samples = env_usize("BENCH_LATENCY_SAMPLES", 200);
    let tenants = (runs / 100).max(1);
    let cluster = support::cluster().await;
    let client = cluster.client();
    println!("daemon bench: {runs} PipelineRuns of 10-40 KB in {tenants} tenant namespaces");

    // The cluster's objects, made before the daemon starts.
    let mut namespaces = Vec::new();
    for _ in 0..tenants {
        namespaces.push(cluster.tenant("bench-tenant").await);
    }
    let specs: Vec<serde_json::Value> = [10_000, 20_000, 30_000, 40_000]
        .into_iter()
        .map(spec)
        .collect();
    let t = Instant::now();
    let pr = support::crds::pipelinerun();
    let created = support::create_completed_runs(
        &namespaces,
        runs,
        16,
        &[
            ("tekton.dev/pipeline", "docker-build"),
            ("pipelines.appstudio.openshift.io/type", "build"),
        ],
        3,
        |i| specs[i % specs.len()].clone(),
    )
    .await;
    println!(
        "  setup: {created} runs created and completed in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let expected = 2 * created + tenants;

    // Sink and daemon.
    let dir = support::daemon::tempdir("bench");
    let sink = support::daemon::start_sink("bench", &dir.join("sink.ndjson")).await;
    let port = support::daemon::free_port();
    let home = cluster.namespace("bench-home").await;
    let before = apiserver_requests(&client).await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_konflux-telemetry"));
    cmd.args([
        "run",
        "--segment-api-url",
        &sink.api_url(),
        "--segment-write-key",
        "bench",
    ])
    .args([
        "--cluster-id",
        "bench",
        "--telemetry-enabled",
        "true",
        "--flush-interval",
        "1s",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ])
    .args([
        "--config-map",
        &format!("{}/settings", home.name()),
        "--state-config-map",
        "",
    ])
    .env("RUST_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(dir.join("daemon.log")).expect("log"));
    if let support::ClusterSource::Local(k) = cluster.source() {
        cmd.arg("--kubeconfig").arg(k);
    }
    let started = Instant::now();
    let mut daemon = cmd.spawn().expect("daemon");
    let pid = daemon.id();
    let http = reqwest::Client::new();
    let ready_url = format!("http://127.0.0.1:{port}/readyz");
    let mut ready_at = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut peak_kib = 0;
    let all_at = loop {
        peak_kib = peak_kib.max(proc_status(pid, "VmHWM:").unwrap_or(0));
        if ready_at.is_none()
            && http
                .get(&ready_url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        {
            ready_at = Some(started.elapsed());
        }
        if sink.stats().accepted_events as usize >= expected {
            break started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "events did not all arrive; see {}",
            dir.join("daemon.log").display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if ready_at.is_none() {
        // Every event arrived before /readyz was first polled; take the next answer.
        for _ in 0..200 {
            if http
                .get(&ready_url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                ready_at = Some(started.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    let cpu_list = support::bench::cpu_seconds(pid);
    let list_events = sink.stats().accepted_events;
    println!(
        "  initial list: ready after {:.2} s, all {} events at the sink after {:.2} s ({:.0} events/s)",
        ready_at.unwrap_or_default().as_secs_f64(),
        list_events,
        all_at.as_secs_f64(),
        list_events as f64 / all_at.as_secs_f64()
    );
    println!(
        "  daemon: peak RSS {:.1} MiB after the list; CPU {:.2} s = {:.3} CPU-s per 1,000 events",
        peak_kib as f64 / 1024.0,
        cpu_list,
        cpu_list * 1000.0 / list_events as f64
    );

    // Latency: a status change, then the event at the sink.
    let api = namespaces[0].dynamic_api(&pr);
    let mut changed_at: HashMap<String, u64> = HashMap::new();
    for i in 0..samples {
        let name = format!("latency-{i}");
        let Ok(o) = api
            .create(
                &PostParams::default(),
                &support::object(&pr, &name, json!({})),
            )
            .await
        else {
            continue;
        };
        let uid = o.metadata.uid.unwrap_or_default();
        let t0 = unix_ms();
        if support::set_status(&api, &name, json!({"startTime": now_rfc3339()}))
            .await
            .is_ok()
        {
            changed_at.insert(format!("{uid}-started"), t0);
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // a steady 20 changes/s
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut latencies = loop {
        let stats = sink.stats();
        let mut found = Vec::new();
        for r in &stats.request_log {
            for id in &r.message_ids {
                if let Some(t0) = changed_at.get(id) {
                    found.push(r.arrival_ms.saturating_sub(*t0));
                }
            }
        }
        if found.len() >= changed_at.len() || Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    latencies.sort_unstable();
    println!(
        "  latency status change -> sink (flush 1 s, {} samples): p50 {} ms, p99 {} ms, max {} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0)
    );
    let steady_kib = proc_status(pid, "VmRSS:").unwrap_or(0);
    let stats = sink.stats();
    let (bytes, events) = stats
        .request_log
        .iter()
        .filter(|r| r.status == Some(200))
        .fold((0usize, 0usize), |(b, e), r| (b + r.bytes, e + r.events));
    let per_event = bytes as f64 / events.max(1) as f64;
    println!(
        "  steady RSS {:.1} MiB; {} batches, {:.0} bytes per event sent once (the old bridge: up to {:.0} for 4 sends)",
        steady_kib as f64 / 1024.0,
        stats.request_log.len(),
        per_event,
        per_event * 4.0
    );
    let after = apiserver_requests(&client).await;
    let diff: Vec<String> = after
        .iter()
        .map(|(k, v)| format!("{k}: {}", v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|s| !s.ends_with(": 0"))
        .collect();
    println!(
        "  API server requests meanwhile (all clients): {}",
        diff.join(", ")
    );

    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = daemon.wait();
    sink.shutdown().await;
    for ns in namespaces {
        ns.cleanup().await;
    }
    home.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}
