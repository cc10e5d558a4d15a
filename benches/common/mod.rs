//! What the benchmarks share: their knobs from the environment and a process's memory.
#![allow(dead_code)]

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
