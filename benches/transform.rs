//! `cargo bench --bench transform`: transform throughput on real-size PipelineRuns
//! (10 to 40 KB each, shaped like those of a Konflux cluster), and the peak memory of the
//! `transform` command on a 1 GB input. Prints figures; asserts nothing.
//!
//! Set `BENCH_INPUT_MB` to change the size of the memory run (default 1024).

#[path = "../tests/support/mod.rs"]
mod support;
use support::bench::build_task;

use konflux_telemetry::events::{ClusterIdentity, Timestamp};
use konflux_telemetry::transform;
use serde_json::json;
use std::io::{BufWriter, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

/// A PipelineRun of about `target` bytes: the bulk is spec, results and provenance, as in a
/// real build pipeline, which the decoder skips.
fn pipelinerun(i: usize, target: usize) -> String {
    let mut tasks = Vec::new();
    let mut run = json!({});
    let mut n = 0;
    loop {
        tasks.push(build_task(n, &format!("{i}-{n}")));
        run = json!({
            "apiVersion": "tekton.dev/v1",
            "kind": "PipelineRun",
            "metadata": {
                "name": format!("app-on-push-{i}"), "namespace": format!("tenant-{}", i % 50),
                "uid": format!("00000000-0000-4000-8000-{i:012}"),
                "creationTimestamp": "2026-03-03T10:44:10Z", "generation": 1, "resourceVersion": "123456",
                "labels": {"tekton.dev/pipeline": "docker-build", "pipelines.appstudio.openshift.io/type": "build",
                           "appstudio.openshift.io/component": "web", "pipelinesascode.tekton.dev/sha": "abc"},
                "annotations": {"pipelinesascode.tekton.dev/on-cel-expression": "event == \"push\"",
                                "build.appstudio.openshift.io/repo": "https://github.com/org/repo?rev=abc"}
            },
            "spec": {"params": [{"name": "git-url", "value": "https://github.com/org/repo"}],
                     "pipelineSpec": {"tasks": tasks}},
            "status": {
                "startTime": "2026-03-03T10:44:11Z", "completionTime": "2026-03-03T11:09:59Z",
                "conditions": [{"type": "Succeeded", "status": "True", "reason": "Completed",
                                "lastTransitionTime": "2026-03-03T11:09:59Z", "message": "Tasks Completed: 16"}],
                "childReferences": (0..16).map(|k| json!({"apiVersion": "tekton.dev/v1", "kind": "TaskRun",
                    "name": format!("app-on-push-{i}-task-{k}"), "pipelineTaskName": format!("task-{k}")})).collect::<Vec<_>>(),
                "pipelineSpec": {"tasks": tasks},
                "provenance": {"featureFlags": {"enableAPIFields": "beta", "resultExtractionMethod": "termination-message"}},
                "results": [{"name": "IMAGE_DIGEST", "value": "sha256:0123456789abcdef0123456789abcdef"}]
            }
        });
        if run.to_string().len() >= target {
            return run.to_string();
        }
        n += 1;
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a smoke test.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let sizes = [10_000usize, 20_000, 30_000, 40_000];
    let objects: Vec<String> = (0..400)
        .map(|i| pipelinerun(i, sizes[i % sizes.len()]))
        .collect();
    let mut input = String::new();
    for o in &objects {
        input.push_str(o);
        input.push('\n');
    }
    let identity = ClusterIdentity::new(
        Some("bench".into()),
        Some("1.0".into()),
        Some("1.33".into()),
    );
    let at = Timestamp::parse("2026-03-04T08:00:00Z").ok();
    let avg = input.len() / objects.len();
    println!(
        "transform throughput, one thread, {} PipelineRuns of 10-40 KB (avg {} bytes)",
        objects.len(),
        avg
    );
    let mut best = f64::MAX;
    let rounds = if smoke { 1 } else { 25 };
    for _ in 0..rounds {
        let t = Instant::now();
        let s = transform::run(
            input.as_bytes(),
            std::io::sink(),
            std::io::sink(),
            &identity,
            at.clone(),
        )
        .expect("in-memory transform");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(s.events, 2 * objects.len() as u64 + 1);
        best = best.min(secs);
    }
    println!(
        "  best of {rounds}: {:.0} PipelineRuns/s, {:.0} MB/s ({:.1} us per object)",
        objects.len() as f64 / best,
        input.len() as f64 / best / 1e6,
        best * 1e6 / objects.len() as f64
    );

    if smoke {
        return;
    }
    let mb: usize = std::env::var("BENCH_INPUT_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = std::env::temp_dir().join(format!("konflux-telemetry-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("input.ndjson");
    {
        let mut f = BufWriter::new(std::fs::File::create(&path).expect("create input"));
        let mut written = 0;
        while written < mb * 1_000_000 {
            f.write_all(input.as_bytes()).expect("write input");
            written += input.len();
        }
        f.flush().expect("flush input");
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    // The child's peak includes what a fork copies of this process: keep this one small.
    drop(objects);
    drop(input);
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_konflux-telemetry"))
        .arg("transform")
        .env("CLUSTER_ID", "bench")
        .stdin(std::fs::File::open(&path).expect("open input"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run transform");
    // VmHWM is the high-water mark of the child's own address space (getrusage would also
    // count what the spawn shared with this process); it only grows, so the last reading
    // before exit is the peak.
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let status = loop {
        if let Some(kib) = vm_hwm_kib(&status_file) {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "transform failed on the big input");
    println!(
        "transform command on {:.2} GB: {:.1} s, {:.0} MB/s, peak RSS {:.1} MiB",
        size as f64 / 1e9,
        secs,
        size as f64 / secs / 1e6,
        peak_kib as f64 / 1024.0
    );
}

fn vm_hwm_kib(status_file: &str) -> Option<u64> {
    let text = std::fs::read_to_string(status_file).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
