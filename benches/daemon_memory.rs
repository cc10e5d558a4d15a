//! `cargo bench --bench daemon_memory`: the whole daemon process, as deployed, with its
//! buffer full while Segment is down, against the memory limit of `deploy/`. Prints the
//! daemon's resident memory (VmRSS, and the peak VmHWM) at each step:
//! 1. idle after start;
//! 2. the buffer full: N completed PipelineRuns (2 events each) listed while every batch
//!    request is answered 503, so the buffer reaches `maxBufferedBytes` (default 32Mi)
//!    and drops its oldest;
//! 3. four `/preview` readers at once, each reading the whole buffer;
//! 4. Segment back: the flush that empties the buffer.
//!
//! `BENCH_RUNS` (default 25000). Needs the local API server (`make cluster-up`). Under
//! `cargo test --all-targets` (no `--bench` argument) it does nothing.

#[path = "../tests/support/mod.rs"]
mod support;

use support::bench::env_usize;

use konflux_telemetry_sink::Fault;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A `/proc/PID/status` field in KiB (`VmRSS:`, `VmHWM:`); 0 once the process is gone.
fn proc_kib(pid: u32, key: &str) -> u64 {
    support::bench::proc_status(pid, key).unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The memory limit of the daemon's container in deploy/base, in MiB.
fn deploy_limit_mib() -> Option<u64> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/base/deployment.yaml"),
    )
    .ok()?;
    let limits = text.split("limits:").nth(1)?;
    let memory = limits
        .lines()
        .find_map(|l| l.trim().strip_prefix("memory:"))?;
    memory.trim().strip_suffix("Mi")?.parse().ok()
}

async fn metric(http: &reqwest::Client, port: u16, name: &str) -> f64 {
    let Ok(r) = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
    else {
        return 0.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !support::bench::run_as_bench("daemon_memory") {
        return;
    }
    support::crypto::install_provider();
    let runs = env_usize("BENCH_RUNS", 25_000);
    let tenants = (runs / 500).max(1);
    let cluster = support::cluster().await;
    println!("daemon_memory bench: {runs} completed PipelineRuns in {tenants} tenant namespaces");

    let mut namespaces = Vec::new();
    for _ in 0..tenants {
        namespaces.push(cluster.tenant("mem-tenant").await);
    }
    let t = Instant::now();
    let created = support::create_completed_runs(
        &namespaces,
        runs,
        32,
        &[("tekton.dev/pipeline", "docker-build")],
        2,
        |_| json!({"pipelineRef": {"name": "build"}}),
    )
    .await;
    println!(
        "  setup: {created} runs created and completed in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Segment down: every batch request answered 503 until reset.
    let dir = support::daemon::tempdir("mem");
    let sink = support::daemon::start_sink("mem", &dir.join("sink.ndjson")).await;
    sink.inject(Fault::answer(503).for_seconds(86_400.0))
        .expect("fault");
    let port = support::daemon::free_port();
    let home = cluster.namespace("mem-home").await;
    let settings = home
        .settings(
            json!({"flushInterval": "2s", "retryDeadline": "1s", "retryBaseDelay": "100ms",
                         "retryMaxDelay": "200ms", "heartbeatInterval": "1h"}),
        )
        .await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_konflux-telemetry"));
    cmd.args(["run", "--segment-api-url", &sink.api_url()])
        .args(["--segment-write-key", "mem", "--cluster-id", "mem"])
        .args(["--telemetry-enabled", "true"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--config-map", &settings])
        .args(["--state-config-map", ""])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log")).expect("log"));
    if let support::ClusterSource::Local(k) = cluster.source() {
        cmd.arg("--kubeconfig").arg(k);
    }
    let mut daemon = cmd.spawn().expect("daemon");
    let pid = daemon.id();
    let http = reqwest::Client::new();

    // 1. Idle: ready, before the list has filled much.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "daemon did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let idle = proc_kib(pid, "VmRSS:");

    // 2. Every run listed; the buffer full (the oldest dropped past maxBufferedBytes).
    let expected = (2 * created + tenants) as f64;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let seen = metric(&http, port, "konflux_telemetry_events_produced_total").await;
        if seen >= expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{seen} of {expected} events produced; see {}",
            dir.join("daemon.log").display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let buffered = metric(&http, port, "konflux_telemetry_events_buffered").await;
    let dropped = metric(&http, port, "konflux_telemetry_buffer_events_dropped_total").await;
    let full_rss = proc_kib(pid, "VmRSS:");
    let full_hwm = proc_kib(pid, "VmHWM:");

    // 3. Four /preview readers at once.
    let previews = futures::future::join_all((0..4).map(|_| {
        let http = http.clone();
        async move {
            let r = http
                .get(format!("http://127.0.0.1:{port}/preview"))
                .send()
                .await
                .ok()?;
            r.bytes().await.ok().map(|b| b.len())
        }
    }))
    .await;
    let preview_bytes: Vec<usize> = previews.into_iter().flatten().collect();
    let preview_hwm = proc_kib(pid, "VmHWM:");

    // 4. Segment back: the buffer flushed.
    sink.reset();
    let deadline = Instant::now() + Duration::from_secs(300);
    while (sink.stats().accepted_events as f64) < buffered {
        assert!(Instant::now() < deadline, "the buffer was not flushed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let flush_hwm = proc_kib(pid, "VmHWM:");
    let after_rss = proc_kib(pid, "VmRSS:");
    let _ = daemon.kill();
    let _ = daemon.wait();

    println!("  idle after start: RSS {:.1} MiB", mib(idle));
    println!(
        "  buffer full ({buffered:.0} events waiting, {dropped:.0} oldest dropped): RSS {:.1} MiB, peak {:.1} MiB",
        mib(full_rss),
        mib(full_hwm)
    );
    println!(
        "  4 concurrent /preview ({} readers, {} bytes each): peak {:.1} MiB",
        preview_bytes.len(),
        preview_bytes.first().copied().unwrap_or(0),
        mib(preview_hwm)
    );
    println!(
        "  flush of the full buffer ({} events accepted): peak {:.1} MiB, RSS after {:.1} MiB",
        sink.stats().accepted_events,
        mib(flush_hwm),
        mib(after_rss)
    );
    match deploy_limit_mib() {
        Some(limit) => println!(
            "  deploy/ limit {limit} MiB: peak {:.1} MiB is {:.0}% of it",
            mib(flush_hwm),
            100.0 * mib(flush_hwm) / limit as f64
        ),
        None => println!("  deploy/ limit: not found in deploy/base/deployment.yaml"),
    }
}
