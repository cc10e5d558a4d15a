//! `cargo bench --bench sweep`: one reconciliation sweep (`Sweeper::sweep_since`) over N
//! PipelineRun records held by the real local Tekton Results API server
//! (`e2e/tekton-results/results-up.sh`). Prints, for each page size: pages, wall time,
//! records/s, MB/s received, the sweep process's peak RSS, events delivered and errors.
//!
//! The records (10 to 40 KB of JSON each before base64, shaped like a Konflux build
//! PipelineRun) are created through the REST API, 16 requests in flight, a Result then a
//! Record under it, spread over 50 namespaces. Afterwards they are deleted (they would
//! otherwise be within the daemon's 4 h lookback for the other tests sharing the server),
//! unless `BENCH_KEEP=1`: then a marker in `.cluster/results/` (which goes away with the
//! server's database) lets a later run with the same N reuse them.
//!
//! Each sweep runs in a child process (this binary with `SWEEP_BENCH_CHILD=1`), so its
//! `VmHWM` is the sweep's own peak, not the record creation's.
//!
//! `BENCH_RECORDS` (default 50000), `BENCH_PAGE_SIZES` (default `100,250`; larger sizes
//! are clamped to 250 as in the daemon). Under `cargo test --all-targets` (no `--bench`
//! argument) it only checks that a record decodes.
//!
//! `BENCH_MODE=incremental`: steady traffic instead, scaled down in time. Every
//! `BENCH_INTERVAL_SECONDS` (default 20, the sweep interval) `BENCH_RUNS_PER_INTERVAL`
//! (default 200) new runs are recorded, spread over the interval, for `BENCH_INTERVALS`
//! (default 8) intervals; the lookback is four intervals, as 1 h and 4 h in production.
//! At the end of each interval two sweeps run back to back: today's full-lookback sweep
//! and the daemon's incremental one (`Sweeper::sweep_next`, its watermark from the
//! previous interval). Each prints records read, bytes received and the Results API
//! server's CPU. The records are deleted at the end.

#[path = "../tests/support/mod.rs"]
mod support;
use support::bench::{build_task, env_usize};

use base64::Engine as _;
use futures::StreamExt;
use konflux_telemetry::events::{self, Decoded, Object};
use konflux_telemetry::sweep::{
    ResultsClient, ResultsConfig, SweepMetrics, SweepSettings, Sweeper, TokenSource,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PIPELINERUN_TYPE: &str = "tekton.dev/v1.PipelineRun";
const NAMESPACES: usize = 50;
const IN_FLIGHT: usize = 16;
const SIZES: [usize; 4] = [10_000, 20_000, 30_000, 40_000];

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A PipelineRun of about `target` bytes (compact JSON) with `__NS__`, `__ID__` (name and
/// uid) placeholders: the bulk is the pipeline spec, in `spec` and again in `status`, as
/// in a real build PipelineRun.
fn template(target: usize) -> String {
    let (started, done) = ("__START__", "__DONE__");
    let mut tasks = Vec::new();
    let mut n = 0;
    loop {
        tasks.push(build_task(n, &n.to_string()));
        let run = json!({
            "apiVersion": "tekton.dev/v1",
            "kind": "PipelineRun",
            "metadata": {
                "name": "__ID__", "namespace": "__NS__", "uid": "__ID__",
                "creationTimestamp": started, "generation": 1, "resourceVersion": "123456",
                "labels": {"tekton.dev/pipeline": "docker-build", "pipelines.appstudio.openshift.io/type": "build",
                           "appstudio.openshift.io/application": "app", "appstudio.openshift.io/component": "web"},
                "annotations": {"pipelinesascode.tekton.dev/event-type": "push",
                                "results.tekton.dev/record": "__NS__/results/__ID__/records/__ID__",
                                "results.tekton.dev/result": "__NS__/results/__ID__"}
            },
            "spec": {"params": [{"name": "git-url", "value": "https://github.com/org/repo"}],
                     "pipelineSpec": {"tasks": tasks}},
            "status": {
                "startTime": started, "completionTime": done,
                "conditions": [{"type": "Succeeded", "status": "True", "reason": "Completed",
                                "lastTransitionTime": done, "message": "Tasks Completed: 16"}],
                "childReferences": (0..16).map(|k| json!({"apiVersion": "tekton.dev/v1", "kind": "TaskRun",
                    "name": format!("__ID__-task-{k}"), "pipelineTaskName": format!("task-{k}")})).collect::<Vec<_>>(),
                "pipelineSpec": {"tasks": tasks},
                "results": [{"name": "IMAGE_DIGEST", "value": "sha256:0123456789abcdef0123456789abcdef"}]
            }
        });
        let text = run.to_string();
        if text.len() >= target {
            return text;
        }
        n += 1;
    }
}

fn instantiate(template: &str, ns: &str, id: &str) -> String {
    let now = jiff::Timestamp::now();
    instantiate_at(
        template,
        ns,
        id,
        now - jiff::SignedDuration::from_secs(600),
        now,
    )
}

/// A run of `template` started at `started` and completed at `done`.
fn instantiate_at(
    template: &str,
    ns: &str,
    id: &str,
    started: jiff::Timestamp,
    done: jiff::Timestamp,
) -> String {
    template
        .replace("__NS__", ns)
        .replace("__ID__", id)
        .replace("__START__", &rfc3339(started))
        .replace("__DONE__", &rfc3339(done))
}

fn proc_status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with(key))?.to_owned();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Bytes a record takes in a listing page (JSON, value in base64), measured on a page of
/// 100 from each of two of the bench's namespaces (between them, all four sizes).
async fn bytes_per_record(addr: &str, ca: &Path, prefix: &str) -> f64 {
    let http = admin(ca);
    let filter = ResultsClient::new(&ResultsConfig::new(addr))
        .expect("client")
        .filter()
        .to_owned();
    let (mut bytes, mut records) = (0usize, 0usize);
    for ns in ["00", "01"] {
        let mut url = reqwest::Url::parse(&format!(
            "{addr}/apis/results.tekton.dev/v1alpha2/parents/{prefix}-ns-{ns}/results/-/records"
        ))
        .expect("URL");
        url.query_pairs_mut()
            .append_pair("filter", &filter)
            .append_pair("order_by", "update_time desc")
            .append_pair("page_size", "100");
        let Ok(r) = http.get(url).send().await else {
            continue;
        };
        let Ok(body) = r.bytes().await else { continue };
        let n = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("records").and_then(|r| r.as_array()).map(Vec::len))
            .unwrap_or(0);
        if n > 0 {
            bytes += body.len();
            records += n;
        }
    }
    bytes as f64 / records.max(1) as f64
}

fn admin(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("read CA");
    reqwest::Client::builder()
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem).expect("CA PEM"))
        .timeout(Duration::from_secs(60))
        .no_proxy()
        .build()
        .expect("client")
}

/// POSTs `body` to `url`, up to 3 times; an `AlreadyExists` (a retry of one that got
/// through) counts as done.
/// Creates the Result `ns/results/id` under `base` (the parents URL) and its one record, a
/// PipelineRun of JSON `value`.
async fn create_record(
    http: &reqwest::Client,
    base: &str,
    ns: &str,
    id: &str,
    value: String,
) -> Result<(), String> {
    let result = json!({ "name": format!("{ns}/results/{id}") }).to_string();
    post(http, &format!("{base}/{ns}/results"), result).await?;
    let record = format!(
        r#"{{"name":"{ns}/results/{id}/records/{id}","data":{{"type":"{PIPELINERUN_TYPE}","value":"{}"}}}}"#,
        base64::engine::general_purpose::STANDARD.encode(value)
    );
    post(http, &format!("{base}/{ns}/results/{id}/records"), record).await
}

async fn post(http: &reqwest::Client, url: &str, body: String) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
        }
        match http
            .post(url)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
        {
            Ok(r) if r.status().is_success() || r.status() == reqwest::StatusCode::CONFLICT => {
                return Ok(());
            }
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

#[derive(Debug)]
struct Marker {
    addr: String,
    prefix: String,
    records: usize,
    since: String,
}

impl Marker {
    fn path() -> PathBuf {
        repo_root().join(".cluster/results/bench-sweep")
    }

    fn load() -> Option<Self> {
        let m = support::results::read_env(&Self::path())?;
        Some(Self {
            addr: m.get("ADDR")?.clone(),
            prefix: m.get("PREFIX")?.clone(),
            records: m.get("RECORDS")?.parse().ok()?,
            since: m.get("SINCE")?.clone(),
        })
    }

    fn save(&self) {
        let text = format!(
            "export ADDR={}\nexport PREFIX={}\nexport RECORDS={}\nexport SINCE={}\n",
            self.addr, self.prefix, self.records, self.since
        );
        let _ = std::fs::write(Self::path(), text);
    }
}

/// Creates `n` records under `prefix`; returns how many were created and the bytes of
/// PipelineRun JSON they hold.
async fn create_records(addr: &str, ca: &Path, prefix: &str, n: usize) -> (usize, u64) {
    let http = admin(ca);
    let templates: Vec<String> = SIZES.iter().map(|&s| template(s)).collect();
    let base = format!("{addr}/apis/results.tekton.dev/v1alpha2/parents");
    let t = Instant::now();
    let mut created = 0usize;
    let mut failed = 0usize;
    let mut bytes = 0u64;
    let mut done = 0usize;
    let mut results = futures::stream::iter(0..n)
        .map(|i| {
            let ns = format!("{prefix}-ns-{:02}", i % NAMESPACES);
            let id = format!("{prefix}-{i:06}");
            let value = instantiate(&templates[i % templates.len()], &ns, &id);
            let len = value.len() as u64;
            let http = &http;
            let base = &base;
            async move {
                create_record(http, base, &ns, &id, value).await?;
                Ok::<u64, String>(len)
            }
        })
        .buffer_unordered(IN_FLIGHT);
    while let Some(r) = results.next().await {
        done += 1;
        match r {
            Ok(len) => {
                created += 1;
                bytes += len;
            }
            Err(e) => {
                failed += 1;
                if failed <= 5 {
                    eprintln!("  create failed: {e}");
                }
            }
        }
        if done.is_multiple_of(5000) || done == n {
            let secs = t.elapsed().as_secs_f64();
            println!(
                "  created {created}/{n} ({failed} failed) in {secs:.0} s, {:.0} records/s",
                created as f64 / secs
            );
        }
    }
    (created, bytes)
}

/// Deletes the Results (and with them their Records) `create_records` made.
async fn delete_records(addr: &str, ca: &Path, prefix: &str, n: usize) {
    let http = admin(ca);
    let t = Instant::now();
    let base = format!("{addr}/apis/results.tekton.dev/v1alpha2/parents");
    let failed = futures::stream::iter(0..n)
        .map(|i| {
            let url = format!(
                "{base}/{prefix}-ns-{:02}/results/{prefix}-{i:06}",
                i % NAMESPACES
            );
            let http = &http;
            async move {
                match http.delete(url).send().await {
                    Ok(r)
                        if r.status().is_success()
                            || r.status() == reqwest::StatusCode::NOT_FOUND =>
                    {
                        0
                    }
                    _ => 1,
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .fold(0usize, |a, b| async move { a + b })
        .await;
    println!(
        "  deleted the {n} records {prefix}-* in {:.0} s ({failed} failed; BENCH_KEEP=1 keeps them)",
        t.elapsed().as_secs_f64()
    );
}

/// The child: one sweep, then its figures on stdout.
fn child() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let mut config = ResultsConfig::new(var("TEKTON_RESULTS_API_ADDR"));
    config.ca_file = Some(PathBuf::from(var("TEKTON_RESULTS_CA_FILE")));
    config.token = TokenSource::None;
    config.timeout = Duration::from_secs(120);
    config.page_size = var("SWEEP_BENCH_PAGE_SIZE").parse().expect("page size");
    let since: jiff::Timestamp = var("SWEEP_BENCH_SINCE").parse().expect("since");
    let prefix = var("SWEEP_BENCH_PREFIX");
    let bytes_per_record: f64 = var("SWEEP_BENCH_BYTES_PER_RECORD").parse().expect("bytes");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let client = ResultsClient::new(&config).expect("client");
        let page_size = client.page_size();
        // As the daemon: a bounded channel the core drains.
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let (_settings_tx, settings_rx) = tokio::sync::watch::channel(SweepSettings::default());
        let sweeper = Sweeper::new(client, settings_rx, tx, SweepMetrics::default());
        let counter = tokio::spawn(async move {
            let (mut all, mut ours) = (0usize, 0usize);
            while let Some(o) = rx.recv().await {
                all += 1;
                if let Object::PipelineRun(run) = &o.object
                    && run.meta.uid.starts_with(&prefix)
                {
                    ours += 1;
                }
            }
            (all, ours)
        });
        let rss_before = proc_status_kib("VmRSS:");
        let cpu_before = support::bench::cpu_seconds("self");
        let t = Instant::now();
        let report = sweeper.sweep_since(since).await;
        drop(sweeper);
        let (all, ours) = counter.await.expect("counter");
        let secs = t.elapsed().as_secs_f64();
        let cpu = support::bench::cpu_seconds("self") - cpu_before;
        let read = report.records_read as f64 * bytes_per_record;
        let errors = report.error.map_or("none", |k| k.as_str());
        println!(
            "  page size {} (asked {}): {} records in {} pages, {:.2} s, {:.0} records/s, ~{:.1} MB/s received (~{:.0} MB)",
            page_size,
            config.page_size,
            report.records_read,
            report.pages,
            secs,
            report.records_read as f64 / secs,
            read / secs / 1e6,
            read / 1e6
        );
        println!(
            "    peak RSS {:.1} MiB (VmHWM; {:.1} MiB before the sweep), sweep CPU {:.2} s",
            proc_status_kib("VmHWM:") as f64 / 1024.0,
            rss_before as f64 / 1024.0,
            cpu
        );
        println!(
            "    delivered {} ({} of this bench's records), undecodable {}, error {}",
            report.delivered, ours, report.undecodable, errors
        );
        assert_eq!(all, report.delivered, "every delivery was received");
    });
}

fn main() {
    // What the daemon's `main` does first: ResultsClient::new needs it.
    support::crypto::install_provider();
    if std::env::var_os("SWEEP_BENCH_CHILD").is_some() {
        return child();
    }
    // Cheap in any mode: the records are PipelineRuns of the intended sizes that decode.
    let templates: Vec<String> = SIZES.iter().map(|&s| template(s)).collect();
    for t in &templates {
        let v = instantiate(t, "ns", "uid-1");
        assert!(
            matches!(
                events::decode_one(v.as_bytes()),
                Decoded::Object(Object::PipelineRun(_))
            ),
            "the bench record is not a readable PipelineRun"
        );
    }
    if !support::bench::run_as_bench("sweep") {
        return;
    }
    let n = env_usize("BENCH_RECORDS", 50_000);
    let page_sizes: Vec<u32> = std::env::var("BENCH_PAGE_SIZES")
        .unwrap_or_else(|_| "100,250".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();

    let status = Command::new("bash")
        .arg(repo_root().join("e2e/tekton-results/results-up.sh"))
        .current_dir(repo_root())
        .status()
        .expect("run e2e/tekton-results/results-up.sh");
    assert!(status.success(), "results-up.sh failed ({status})");
    let env = support::results::read_env(&repo_root().join(".cluster/results/env"))
        .expect(".cluster/results/env");
    let addr = env["TEKTON_RESULTS_API_ADDR"].clone();
    let ca = PathBuf::from(&env["TEKTON_RESULTS_CA_FILE"]);
    let api_pid = std::fs::read_to_string(repo_root().join(".cluster/results/api.pid"))
        .unwrap_or_default()
        .trim()
        .to_owned();

    let keep = std::env::var_os("BENCH_KEEP").is_some();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if std::env::var("BENCH_MODE").as_deref() == Ok("incremental") {
        runtime.block_on(incremental(&addr, &ca, &api_pid, &templates));
        return;
    }
    let marker = Marker::load().filter(|m| m.addr == addr);
    let _ = std::fs::remove_file(Marker::path());
    let marker = match marker {
        Some(m) if m.records == n => {
            println!(
                "sweep bench: reusing {} records {}-* created since {} (kept by BENCH_KEEP=1)",
                m.records, m.prefix, m.since
            );
            m
        }
        stale => {
            if let Some(m) = stale {
                runtime.block_on(delete_records(&addr, &ca, &m.prefix, m.records));
            }
            let since = rfc3339(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(2));
            let prefix = format!("sb{:x}", jiff::Timestamp::now().as_second() % 0xff_ffff);
            let avg: usize = templates.iter().map(String::len).sum::<usize>() / templates.len();
            println!(
                "sweep bench: creating {n} records {prefix}-* of 10-40 KB (avg ~{avg} bytes) in {NAMESPACES} namespaces, {IN_FLIGHT} in flight"
            );
            let t = Instant::now();
            let (created, bytes) = runtime.block_on(create_records(&addr, &ca, &prefix, n));
            let secs = t.elapsed().as_secs_f64();
            println!(
                "  setup: {created} records, {:.0} MB of PipelineRun JSON, in {secs:.0} s ({:.0} records/s); this process peaked at {:.1} MiB",
                bytes as f64 / 1e6,
                created as f64 / secs,
                proc_status_kib("VmHWM:") as f64 / 1024.0
            );
            Marker {
                addr: addr.clone(),
                prefix,
                // Failed ones are retried by the deletion too: it takes what is not there.
                records: n,
                since,
            }
        }
    };

    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("  load average before the sweeps: {}", load.join(" "));
    }
    let per_record = runtime.block_on(bytes_per_record(&addr, &ca, &marker.prefix));
    println!("  a record in a listing page: {per_record:.0} bytes (JSON, value in base64)");
    println!(
        "sweep since {} (every record updated after it, newest first), each in a child process:",
        marker.since
    );
    for page_size in page_sizes {
        let api_cpu = support::bench::cpu_seconds(&api_pid);
        let status = Command::new(std::env::current_exe().expect("current exe"))
            .arg("--bench")
            .env("SWEEP_BENCH_CHILD", "1")
            .env("TEKTON_RESULTS_API_ADDR", &addr)
            .env("TEKTON_RESULTS_CA_FILE", &ca)
            .env("SWEEP_BENCH_PAGE_SIZE", page_size.to_string())
            .env("SWEEP_BENCH_SINCE", &marker.since)
            .env("SWEEP_BENCH_PREFIX", &marker.prefix)
            .env("SWEEP_BENCH_BYTES_PER_RECORD", per_record.to_string())
            .status()
            .expect("run the sweep child");
        assert!(status.success(), "the sweep child failed ({status})");
        if !api_pid.is_empty() {
            println!(
                "    Results API server CPU meanwhile: {:.2} s (PostgreSQL not counted)",
                support::bench::cpu_seconds(&api_pid) - api_cpu
            );
        }
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("  load average after: {}", load.join(" "));
    }
    if keep {
        marker.save();
    } else {
        runtime.block_on(delete_records(&addr, &ca, &marker.prefix, marker.records));
    }
}

/// One sweep's figures.
struct Figures {
    read: usize,
    bytes: usize,
    api_cpu: f64,
    delivered: usize,
}

async fn measured(
    sweep: impl std::future::Future<Output = konflux_telemetry::sweep::SweepReport>,
    api_pid: &str,
) -> Figures {
    let cpu = support::bench::cpu_seconds(api_pid);
    let report = sweep.await;
    assert!(report.complete(), "{report:?}");
    Figures {
        read: report.records_read,
        bytes: report.bytes,
        api_cpu: support::bench::cpu_seconds(api_pid) - cpu,
        delivered: report.delivered,
    }
}

/// `BENCH_MODE=incremental`: see the module's documentation.
async fn incremental(addr: &str, ca: &Path, api_pid: &str, templates: &[String]) {
    let interval = Duration::from_secs(env_usize("BENCH_INTERVAL_SECONDS", 20) as u64);
    let per_interval = env_usize("BENCH_RUNS_PER_INTERVAL", 200);
    let intervals = env_usize("BENCH_INTERVALS", 8);
    let settings = SweepSettings {
        interval,
        lookback: interval * 4,
    };
    let http = admin(ca);
    let base = format!("{addr}/apis/results.tekton.dev/v1alpha2/parents");
    let prefix = format!("si{:x}", jiff::Timestamp::now().as_second() % 0xff_ffff);
    let mut config = ResultsConfig::new(addr);
    config.ca_file = Some(ca.to_path_buf());
    config.token = TokenSource::None;
    config.timeout = Duration::from_secs(120);
    let sweeper = |config: &ResultsConfig| {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let (_stx, srx) = tokio::sync::watch::channel(settings);
        Sweeper::new(
            ResultsClient::new(config).expect("client"),
            srx,
            tx,
            SweepMetrics::default(),
        )
    };
    let (full, incr) = (sweeper(&config), sweeper(&config));
    println!(
        "sweep bench (incremental): {per_interval} runs every {interval:?} (the sweep interval), lookback {:?}, {intervals} intervals, page size {}",
        settings.lookback,
        ResultsClient::new(&config).expect("client").page_size()
    );
    println!(
        "| interval | changed | full: read | bytes | Results CPU | incremental: read | bytes | Results CPU | read / changed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut created = 0usize;
    for k in 0..intervals {
        let end = tokio::time::Instant::now() + interval;
        // Spread over the interval, one batch a second.
        let seconds = interval.as_secs().max(1) as usize;
        let mut changed = 0usize;
        for s in 0..seconds {
            tokio::time::sleep_until(end - interval + Duration::from_secs(s as u64)).await;
            let batch = per_interval * (s + 1) / seconds - per_interval * s / seconds;
            let posts = (0..batch).map(|j| {
                let i = created + j;
                let ns = format!("{prefix}-ns-{:02}", i % NAMESPACES);
                let id = format!("{prefix}-{i:06}");
                let now = jiff::Timestamp::now();
                let value = instantiate_at(
                    &templates[i % templates.len()],
                    &ns,
                    &id,
                    now - jiff::SignedDuration::from_secs(5),
                    now,
                );
                let (http, base) = (&http, &base);
                async move { create_record(http, base, &ns, &id, value).await }
            });
            let ok = futures::stream::iter(posts)
                .buffer_unordered(IN_FLIGHT)
                .filter(|r| std::future::ready(r.is_ok()))
                .count()
                .await;
            created += batch;
            changed += ok;
        }
        tokio::time::sleep_until(end).await;
        let now = jiff::Timestamp::now();
        let f = measured(
            full.sweep_since(
                now - jiff::SignedDuration::try_from(settings.lookback).expect("lookback"),
            ),
            api_pid,
        )
        .await;
        let i = measured(incr.sweep_next(settings), api_pid).await;
        println!(
            "| {} | {changed} | {} | {:.1} MB | {:.2} s | {} | {:.1} MB | {:.2} s | {:.2} |",
            k + 1,
            f.read,
            f.bytes as f64 / 1e6,
            f.api_cpu,
            i.read,
            i.bytes as f64 / 1e6,
            i.api_cpu,
            i.read as f64 / changed.max(1) as f64
        );
        let _ = (f.delivered, i.delivered);
    }
    delete_records(addr, ca, &prefix, created).await;
}
