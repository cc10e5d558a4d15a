//! `cargo bench --bench admission`: the admission webhook's request path.
//!
//! 1. The handler alone (decode the review, hand the observation over, build the answer),
//!    on one core: requests/s and latency percentiles, for a Component and for a 20 KB
//!    PipelineRun.
//! 2. The webhook server over HTTPS on loopback (rustls, HTTP/1.1 keep-alive, as the API
//!    server calls it): an open-loop load of 500 requests/s (one request every 2 ms,
//!    whatever the previous ones do), latency percentiles measured by the client, and the
//!    handler's own time from the daemon's histogram; then the most requests/s 16
//!    concurrent clients get. Target: p99 under 5 ms at 500 requests/s.
//!
//! 3. Hostile reviews, each under the 8 MiB body cap (issue 24): what one costs the
//!    process at its peak (`VmHWM` of `/proc/self/status`, reset before each), against
//!    its size. The decoder must cost a bounded multiple of the body: asserted (at most
//!    twice the body), so a regression fails the bench and its smoke run.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it is a quick smoke run.
//! `BENCH_SECONDS` sets the length of each loaded phase (default 10).

#[path = "../tests/support/mod.rs"]
mod support;

use konflux_telemetry::admission::{AdmissionMetrics, Handler, Webhook};
use konflux_telemetry::events::ClusterIdentity;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A kind: (group, version, kind).
type Gvk = (&'static str, &'static str, &'static str);

const COMPONENT: Gvk = ("appstudio.redhat.com", "v1alpha1", "Component");
const PIPELINERUN: Gvk = ("tekton.dev", "v1", "PipelineRun");

/// The namespace of every review's object.
const NAMESPACE: &str = "tenant-a";

/// An object of kind `gvk` in [`NAMESPACE`], as the API server hands it to the webhook:
/// its name, uid and creation time; the caller adds the rest (labels, spec, status).
fn object(gvk: Gvk, name: &str, uid: &str, created: &str) -> Value {
    json!({
        "apiVersion": format!("{}/{}", gvk.0, gvk.1), "kind": gvk.2,
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": uid, "creationTimestamp": created}
    })
}

fn review(object: Value, gvk: Gvk, i: usize) -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": format!("705ab4f5-6393-11e8-b7cc-{i:012}"),
            "kind": {"group": gvk.0, "version": gvk.1, "kind": gvk.2},
            "resource": {"group": gvk.0, "version": gvk.1, "resource": "x"},
            "requestKind": {"group": gvk.0, "version": gvk.1, "kind": gvk.2},
            "name": "web", "namespace": NAMESPACE, "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:tenant-a:pipelines-as-code",
                         "uid": "3f9c", "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": object, "oldObject": null, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
    .to_string()
}

fn component_review(i: usize) -> String {
    let uid = format!("00000000-0000-4000-8000-{i:012}");
    let mut component = object(COMPONENT, &format!("web-{i}"), &uid, "2026-03-03T10:00:00Z");
    component["metadata"]["annotations"] = json!({"applicationFailCounter": "0"});
    component["spec"] = json!({"application": "app", "componentName": "web",
        "source": {"git": {"url": "https://github.com/org/repo", "revision": "main"}}});
    review(component, COMPONENT, i)
}

/// A PipelineRun as created (no status yet) of about 20 KB, most of it pipelineSpec.
fn pipelinerun_review(i: usize) -> String {
    let tasks: Vec<Value> = (0..24)
        .map(|n| json!({
            "name": format!("task-{n}"),
            "params": [{"name": "IMAGE", "value": format!("quay.io/org/repo:{i}-{n}")},
                       {"name": "SCRIPT", "value": "set -euo pipefail; echo building; ".repeat(12)}],
            "taskRef": {"resolver": "bundles", "params": [{"name": "bundle", "value": "quay.io/konflux-ci/tekton-catalog/task-buildah:0.4@sha256:0123456789abcdef"}]},
            "runAfter": ["init"]
        }))
        .collect();
    let uid = format!("00000000-0000-4000-9000-{i:012}");
    let name = format!("app-on-push-{i}");
    let mut run = object(PIPELINERUN, &name, &uid, "2026-03-03T10:44:10Z");
    run["metadata"]["labels"] = json!({"tekton.dev/pipeline": "docker-build",
        "pipelines.appstudio.openshift.io/type": "build"});
    run["spec"] = json!({"params": [{"name": "git-url", "value": "https://github.com/org/repo"}],
        "pipelineSpec": {"tasks": tasks}});
    review(run, PIPELINERUN, i)
}

fn handler() -> Handler {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    // The core's consumer, reduced to taking observations off the queue.
    std::thread::spawn(move || while rx.blocking_recv().is_some() {});
    let identity = Arc::new(ClusterIdentity::new(Some("bench".into()), None, None));
    Handler::new(
        tx,
        move || Arc::clone(&identity),
        AdmissionMetrics::default(),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, mut latencies: Vec<Duration>, elapsed: Duration) {
    latencies.sort_unstable();
    let n = latencies.len();
    println!(
        "{what:<44} {n:>7} requests {:>9.0}/s  p50 {:>8.1?}  p99 {:>8.1?}  max {:>8.1?}",
        n as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    );
}

fn handler_alone(seconds: f64) {
    let h = handler();
    for (what, bodies) in [
        (
            "handler, Component review",
            (0..256).map(component_review).collect::<Vec<_>>(),
        ),
        (
            "handler, PipelineRun review",
            (0..256).map(pipelinerun_review).collect::<Vec<_>>(),
        ),
    ] {
        let size = bodies.iter().map(String::len).sum::<usize>() / bodies.len();
        let mut latencies = Vec::new();
        let started = Instant::now();
        let mut i = 0;
        while started.elapsed().as_secs_f64() < seconds {
            let t = Instant::now();
            let reply = h.review(bodies[i % bodies.len()].as_bytes());
            latencies.push(t.elapsed());
            assert_eq!(reply.status, 200);
            i += 1;
        }
        report(&format!("{what} ({size} B)"), latencies, started.elapsed());
    }
}

/// A Component review whose object, under `cap` bytes in all, is padded with `pad` repeated
/// in `field` (an array).
fn padded_review(kind: Gvk, object: Value, field: &[&str], pad: &str, cap: usize) -> String {
    let mut object = object;
    let mut at = &mut object;
    for f in field {
        at = &mut at[*f];
    }
    *at = json!([]);
    let empty = review(object, kind, 0);
    let marker = "[]";
    let n = (cap - empty.len()) / (pad.len() + 1);
    let items = format!("[{}]", vec![pad; n].join(","));
    let last = empty.rfind(marker).expect("the padded field");
    format!("{}{items}{}", &empty[..last], &empty[last + marker.len()..])
}

/// Peak RSS growth (KiB) while the handler answers `body`, and the answer's status.
fn peak_of(h: &Handler, body: &str) -> (u64, u16, usize) {
    let me = std::process::id();
    // Resets VmHWM to the current RSS (Linux: "5" > clear_refs).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = support::bench::proc_status(me, "VmRSS:").unwrap_or(0);
    let reply = h.review(body.as_bytes());
    let peak = support::bench::proc_status(me, "VmHWM:").unwrap_or(0);
    (peak.saturating_sub(before), reply.status, reply.body.len())
}

fn hostile_reviews() {
    let h = handler();
    let cap = konflux_telemetry::admission::MAX_BODY - 1024;
    let created = "2026-03-03T10:00:00Z";
    let mut component = object(
        COMPONENT,
        "web",
        "00000000-0000-4000-8000-000000000001",
        created,
    );
    component["spec"] = json!({"application": "app"});
    let mut run = object(
        PIPELINERUN,
        "r",
        "00000000-0000-4000-9000-000000000001",
        created,
    );
    run["status"] = json!({});
    let (gvk_c, gvk_r) = (COMPONENT, PIPELINERUN);
    let long_uid = {
        let r = review(component.clone(), gvk_c, 0);
        let uid = "705ab4f5-6393-11e8-b7cc-000000000000";
        r.replace(uid, &"u".repeat(cap - r.len()))
    };
    let cases = [
        (
            "object.items of {}",
            padded_review(gvk_c, component.clone(), &["items"], "{}", cap),
        ),
        (
            "object.items of {\"metadata\":{}}",
            padded_review(
                gvk_c,
                component.clone(),
                &["items"],
                r#"{"metadata":{}}"#,
                cap,
            ),
        ),
        (
            "status.conditions of {}",
            padded_review(gvk_r, run.clone(), &["status", "conditions"], "{}", cap),
        ),
        (
            "status.conditions, 64-byte entries",
            padded_review(
                gvk_r,
                run.clone(),
                &["status", "conditions"],
                r#"{"type":"Other","status":"True","reason":"SomeReason","message":"m"}"#,
                cap,
            ),
        ),
        (
            "status.childReferences of {}",
            padded_review(gvk_r, run, &["status", "childReferences"], "{}", cap),
        ),
        ("request.uid of 8 MiB", long_uid),
    ];
    for (what, body) in cases {
        let (peak_kib, status, answer) = peak_of(&h, &body);
        let body_kib = body.len() as u64 / 1024;
        println!(
            "hostile review, {what:<36} body {:>5.1} MiB: peak +{:>6.1} MiB ({:.2}x the body), {status}, answer {answer} B",
            body_kib as f64 / 1024.0,
            peak_kib as f64 / 1024.0,
            peak_kib as f64 / body_kib.max(1) as f64,
        );
        assert!(
            peak_kib <= 2 * body_kib,
            "{what}: the decoder cost {peak_kib} KiB for a body of {body_kib} KiB"
        );
        assert!(answer <= 512, "{what}: an answer of {answer} bytes");
    }
}

fn make_certs(dir: &Path) -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("webhook-certs/make-certs.sh");
    let ok = Command::new("bash")
        .arg(script)
        .arg(dir)
        .arg("IP:127.0.0.1")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| dir.to_owned())
}

/// The handler time histogram's cumulative buckets: (upper bound in seconds, count).
fn buckets(metrics: &AdmissionMetrics) -> Vec<(f64, u64)> {
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.clone().register(&mut registry);
    let mut text = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text.lines()
        .filter_map(|l| l.strip_prefix("request_duration_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, rest) = l.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, rest.split(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// The server-side p50 and p99 bounds between two snapshots: the smallest bucket bound
/// holding that share of the requests.
/// Waits for `tasks` (each gives the latencies of its requests), then [`report`]s them
/// and what the server measured since `before`.
async fn report_tasks(
    what: &str,
    mut tasks: tokio::task::JoinSet<Vec<Duration>>,
    started: Instant,
    before: &[(f64, u64)],
    metrics: &AdmissionMetrics,
) {
    let mut latencies = Vec::new();
    while let Some(l) = tasks.join_next().await {
        latencies.extend(l.expect("requests"));
    }
    report(what, latencies, started.elapsed());
    println!(
        "{:<44} {}",
        "  server side (headers to answer)",
        server_side(before, &buckets(metrics))
    );
}

fn server_side(before: &[(f64, u64)], after: &[(f64, u64)]) -> String {
    let diff: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, n)| {
            let b = before.iter().find(|(l, _)| l == le).map_or(0, |(_, n)| *n);
            (*le, n - b)
        })
        .collect();
    let total = diff.last().map_or(0, |(_, n)| *n);
    let bound = |p: f64| {
        diff.iter()
            .find(|(_, n)| *n as f64 >= p * total as f64)
            .map_or("?".to_owned(), |(le, _)| format!("{:.2} ms", le * 1000.0))
    };
    format!(
        "{total} requests, p50 <= {}, p99 <= {}",
        bound(0.50),
        bound(0.99)
    )
}

async fn over_https(seconds: f64) {
    let dir = std::env::temp_dir().join(format!(
        "konflux-telemetry-bench-admission-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let Some(certs) = make_certs(&dir) else {
        println!("over HTTPS: skipped (webhook-certs/make-certs.sh failed: is openssl there?)");
        return;
    };
    let h = handler();
    let metrics = h.metrics().clone();
    let webhook = Webhook::bind_with(
        "127.0.0.1:0".parse().expect("addr"),
        &certs,
        h,
        Duration::from_secs(2),
    )
    .await
    .expect("webhook");
    let url = format!(
        "https://{}/validate",
        webhook.local_addr().expect("address")
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(webhook.run(stop.clone()));

    let ca = std::fs::read(certs.join("ca.crt")).expect("ca.crt");
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).expect("CA")])
        .no_proxy()
        .build()
        .expect("client");
    // Bodies: mostly PipelineRuns, as on a busy Konflux.
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..200)
            .map(|i| {
                if i % 5 == 0 {
                    component_review(i)
                } else {
                    pipelinerun_review(i)
                }
            })
            .collect(),
    );
    let post = move |i: usize| {
        let client = client.clone();
        let bodies = Arc::clone(&bodies);
        let url = url.clone();
        async move {
            let t = Instant::now();
            let r = client
                .post(&url)
                .header("content-type", "application/json")
                .body(bodies[i % bodies.len()].clone())
                .send()
                .await
                .expect("answer");
            assert_eq!(r.status().as_u16(), 200);
            let _ = r.bytes().await;
            t.elapsed()
        }
    };
    // Warm-up: connections and handshakes.
    for i in 0..50 {
        post(i).await;
    }

    // Open loop at 500/s.
    let before = buckets(&metrics);
    let rate = 500.0;
    let total = (rate * seconds) as usize;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..total {
        tick.tick().await;
        let request = post(i);
        tasks.spawn(async move { vec![request.await] });
    }
    let what = "HTTPS, open loop at 500/s (client-side)";
    report_tasks(what, tasks, started, &before, &metrics).await;

    // Closed loop, 16 clients: the most it takes.
    let before = buckets(&metrics);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..16 {
        let post = post.clone();
        workers.spawn(async move {
            let mut out = Vec::new();
            let mut i = w;
            while started.elapsed().as_secs_f64() < seconds {
                out.push(post(i).await);
                i += 16;
            }
            out
        });
    }
    let what = "HTTPS, 16 concurrent clients (client-side)";
    report_tasks(what, workers, started, &before, &metrics).await;

    stop.cancel();
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    // What the daemon's `main` does first: the webhook and the client need it.
    support::crypto::install_provider();
    let full = std::env::args().any(|a| a == "--bench");
    let seconds: f64 = if full {
        std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10.0)
    } else {
        0.3
    };
    println!(
        "admission webhook ({}; {} cores)",
        if full { "bench" } else { "smoke run" },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    hostile_reviews();
    handler_alone(seconds.min(3.0));
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(over_https(seconds));
}
