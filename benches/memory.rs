//! `cargo bench --bench memory`: the buffer's memory with Segment down, in one process
//! (no API server needed). The core is built with the live settings' defaults
//! (`maxBufferedEvents` 100,000, `maxBufferedBytes` 32Mi) and fed PipelineRun sightings as
//! the watch makes them (`BENCH_RUNS`, default 100,000 runs: 200,000 events offered, far
//! more than fit). Prints the process's RSS (`VmRSS`, and the peak `VmHWM`, reset between
//! phases through `/proc/self/clear_refs`):
//! 1. with the buffer full;
//! 2. during a flush to an unreachable Segment;
//! 3. during 4 concurrent `GET /preview` through the real HTTP server, each client
//!    reading slowly (16 KiB, then 1 ms), and checking it got the whole buffer.
//!
//! `BENCH_MAX_BYTES` (bytes) and `BENCH_MAX_EVENTS` change the bounds. The figures are
//! the buffer's share; the daemon's own steady RSS (kube client, watches: docs/performance.md)
//! comes on top. Under `cargo test --all-targets` (no `--bench` argument) it does nothing.

#[path = "../tests/support/mod.rs"]
mod support;
use support::bench::env_usize;

use konflux_telemetry::events::{self, ClusterIdentity, Decoded};
use konflux_telemetry::http::{self, Endpoints, Preview};
use konflux_telemetry::pipeline::Core;
use konflux_telemetry::pipeline::metrics::CoreMetrics;
use konflux_telemetry::pipeline::observation::{Observation, Source};
use konflux_telemetry::pipeline::preview::{PreviewCursor, PreviewSource};
use konflux_telemetry::segment::{Backoff, Sender, SenderConfig, SenderMetrics, WriteKey};
use konflux_telemetry::settings::Settings;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// A field of /proc/self/status, in KiB.
fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Resets VmHWM to the current RSS (Linux: "5" > clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn run(i: usize, at: &str) -> events::Object {
    let json = serde_json::json!({
        "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {
            "uid": format!("{:08x}-5e1f-4c2a-9d3b-{:012x}", i, i * 7919),
            "name": format!("build-{i}"), "namespace": format!("tenant-{}", i % 100),
            "creationTimestamp": at,
            "labels": {"tekton.dev/pipeline": "docker-build", "pipelines.appstudio.openshift.io/type": "build"}
        },
        "status": {
            "startTime": at, "completionTime": at,
            "childReferences": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}],
            "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]
        }
    });
    match events::decode_one(json.to_string().as_bytes()) {
        Decoded::Object(o) => o,
        other => panic!("{other:?}"),
    }
}

/// Reads `GET /preview` from `addr` slowly; returns the body's length, and whether it
/// began and ended as `{"batch":[...]}` does.
async fn slow_preview(addr: std::net::SocketAddr) -> (usize, bool) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /preview HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut buf = vec![0u8; 16 * 1024];
    let mut head = Vec::new();
    let mut body_len = 0usize;
    let mut in_body = false;
    let mut first = Vec::new();
    // The last 64 bytes read.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = s.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        let mut chunk = &buf[..n];
        if !in_body {
            head.extend_from_slice(chunk);
            let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            in_body = true;
            let rest = head.split_off(end + 4);
            first.extend_from_slice(&rest[..rest.len().min(64)]);
            body_len += rest.len();
            tail = rest;
            chunk = &[];
        }
        body_len += chunk.len();
        tail.extend_from_slice(chunk);
        let cut = tail.len().saturating_sub(64);
        tail.drain(..cut);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let last = tail;
    // Chunked encoding: the JSON lies between chunk sizes, the closing `]}` is a piece of
    // its own, then the last chunk.
    let text = String::from_utf8_lossy(&first);
    let end = String::from_utf8_lossy(&last);
    let ok = String::from_utf8_lossy(&head).starts_with("HTTP/1.1 200")
        && text.contains(r#"{"batch":[{"#)
        && end.ends_with("]}\r\n0\r\n\r\n");
    (body_len, ok)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !support::bench::run_as_bench("memory") {
        return;
    }
    // What the daemon's `main` does first: Sender::new needs it.
    support::crypto::install_provider();
    let defaults = Settings::default();
    let runs = env_usize("BENCH_RUNS", 100_000);
    let max_events = env_usize("BENCH_MAX_EVENTS", defaults.max_buffered_events);
    let max_bytes = env_usize("BENCH_MAX_BYTES", defaults.max_buffered_bytes);
    let identity = ClusterIdentity::new(
        Some("bench-cluster".to_owned()),
        Some("v0.2026.11".to_owned()),
        Some("v1.34.4".to_owned()),
    );
    let metrics = CoreMetrics::default();
    let core = Arc::new(Core::new(
        identity,
        max_events,
        max_bytes,
        4 * 3600,
        metrics.clone(),
    ));
    println!(
        "memory bench: {runs} PipelineRuns offered (2 events each), maxBufferedEvents {max_events}, maxBufferedBytes {max_bytes}"
    );
    let start_rss = status_kib("VmRSS");

    // 1. Fill.
    reset_peak();
    let now = events::Timestamp::now();
    let at = now.as_str().to_owned();
    let t = Instant::now();
    for i in 0..runs {
        core.observe(
            Observation {
                source: Source::Watch,
                object: run(i, &at),
                actor: None,
            },
            now.unix_seconds(),
        );
    }
    let held = core.buffered();
    let counted = core.buffered_bytes();
    let dropped = metrics
        .buffer_events_dropped
        .get_or_create(&konflux_telemetry::metrics::ReasonLabel {
            reason: "buffer_full",
        })
        .get();
    let mut wire = 0usize;
    let mut cursor = PreviewCursor::default();
    while let Some(piece) = core.preview_chunk(&mut cursor) {
        wire += piece.len();
    }
    let full_rss = status_kib("VmRSS");
    let full_peak = status_kib("VmHWM");
    println!(
        "  full buffer: {held} events held ({dropped} dropped oldest-first), {:.1} MiB counted, {:.1} MiB of JSON ({} bytes an event), filled in {:.1} s",
        counted as f64 / 1048576.0,
        wire as f64 / 1048576.0,
        wire / held.max(1),
        t.elapsed().as_secs_f64()
    );
    println!(
        "  RSS: {:.1} MiB before, {:.1} MiB full (peak {:.1} MiB while filling): the buffer holds {:.0} bytes an event",
        mib(start_rss),
        mib(full_rss),
        mib(full_peak),
        (full_rss.saturating_sub(start_rss) * 1024) as f64 / held.max(1) as f64
    );

    // 2. A flush against an unreachable Segment (connection refused), short retries.
    let mut cfg = SenderConfig::new("http://127.0.0.1:9/v1", WriteKey::new("bench"));
    cfg.backoff = Backoff {
        base: Duration::from_millis(50),
        cap: Duration::from_millis(100),
        deadline: Duration::from_millis(300),
    };
    cfg.requests_per_second = std::num::NonZeroU32::new(1000).expect("nonzero");
    let sender = Sender::new(cfg, SenderMetrics::default()).expect("sender");
    reset_peak();
    let t = Instant::now();
    let flushed = konflux_telemetry::flush::flush_once(&*core, &sender).await;
    println!(
        "  flush, Segment down: {} sent, {} unsent in {:.1} s; RSS peak {:.1} MiB, after {:.1} MiB",
        flushed.sent,
        flushed.unsent,
        t.elapsed().as_secs_f64(),
        mib(status_kib("VmHWM")),
        mib(status_kib("VmRSS"))
    );

    // 3. Four concurrent slow /preview readers through the real server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let endpoints = Arc::new(Endpoints {
        buffer: core.clone(),
        registry: prometheus_client::registry::Registry::default(),
        ready: Box::new(|| true),
        preview: Preview::new(false),
        switch: tokio::sync::watch::channel(konflux_telemetry::switch::Decision::PENDING).1,
    });
    let stop = CancellationToken::new();
    let limits = konflux_telemetry::http::server::ServerArgs::default()
        .limits(http::MAX_BODY, http::MAX_BYTES_IN_FLIGHT);
    let server = tokio::spawn(http::serve(listener, endpoints, limits, stop.clone()));
    reset_peak();
    let t = Instant::now();
    let readers: Vec<_> = (0..4).map(|_| tokio::spawn(slow_preview(addr))).collect();
    let mut lens = Vec::new();
    for r in readers {
        let (len, ok) = r.await.expect("reader");
        assert!(ok, "a /preview reader did not get {{\"batch\":[...]}}");
        lens.push(len);
    }
    println!(
        "  4 concurrent slow GET /preview: {:.1} MiB each (JSON {:.1} MiB plus chunk framing) in {:.1} s; RSS peak {:.1} MiB, after {:.1} MiB",
        lens[0] as f64 / 1048576.0,
        wire as f64 / 1048576.0,
        t.elapsed().as_secs_f64(),
        mib(status_kib("VmHWM")),
        mib(status_kib("VmRSS"))
    );
    stop.cancel();
    let _ = server.await;
}
