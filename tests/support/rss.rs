//! The test process's resident memory, for the hostile-input tests that print a figure
//! (`#[ignore]`d by default, run one at a time by `make test-faults`). Linux only.
//! Included with `#[path]` by tests that need nothing else of `support`.

/// A `/proc/self/status` field in KiB (`VmRSS`, `VmHWM`); 0 when it cannot be read.
pub fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the peak (`VmHWM`) to the current RSS.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Starts a measure: resets the peak and returns the RSS now (KiB).
pub fn start() -> u64 {
    reset_peak();
    status_kib("VmRSS")
}

/// Prints and returns how far the peak RSS rose over `start`'s RSS, in MiB.
pub fn peak_growth_mib(what: &str, start: u64) -> f64 {
    let grown = status_kib("VmHWM").saturating_sub(start) as f64 / 1024.0;
    println!(
        "memory: {what}: peak +{grown:.1} MiB over {:.1} MiB",
        start as f64 / 1024.0
    );
    grown
}
