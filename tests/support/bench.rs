//! What the benchmarks share: their knobs from the environment, a process's memory and
//! CPU time.

/// Whether `cargo bench` runs this bench (it passes `--bench`). Under `cargo test`, which
/// only builds it, says so and how to run bench `name`.
pub fn run_as_bench(name: &str) -> bool {
    let asked = std::env::args().any(|a| a == "--bench");
    if !asked {
        println!(
            "{name} bench: not run under cargo test, which builds it only (run: cargo bench --bench {name})"
        );
    }
    asked
}

/// `name` from the environment as a number, else `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `/proc/PID/status` field in KiB (`VmRSS:`, `VmHWM:`), if the process is there.
pub fn proc_status(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The CPU time (user + system, in seconds) process `pid` has used; 0 when it is gone.
pub fn cpu_seconds(pid: impl std::fmt::Display) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let after = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// Task `n` of a Konflux build pipeline's spec, building image tag `tag` (about 600 bytes of
/// JSON): the bulk of a real-size PipelineRun, repeated until it is large enough.
pub fn build_task(n: usize, tag: &str) -> serde_json::Value {
    serde_json::json!({
        "name": format!("task-{n}"),
        "params": [{"name": "IMAGE", "value": format!("quay.io/org/repo:{tag}")},
                   {"name": "SCRIPT", "value": "set -euo pipefail; echo building; ".repeat(8)}],
        "taskRef": {"resolver": "bundles", "params": [{"name": "bundle", "value": "quay.io/konflux-ci/tekton-catalog/task-buildah:0.4@sha256:0123456789abcdef"}]},
        "runAfter": ["init"]
    })
}
