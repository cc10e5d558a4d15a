//! The documents match the code: every ConfigMap key, every metric served and every event
//! name appear in the README (and the events in docs/privacy.md), so a change to one
//! without the other fails here.

use konflux_telemetry::events::EventName;
use konflux_telemetry::metrics::{self, CoreMetrics};
use konflux_telemetry::segment::SenderMetrics;
use konflux_telemetry::settings::KEYS;
use konflux_telemetry::sweep::SweepMetrics;

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every metric the daemon serves, as Prometheus names them (counters with `_total`).
fn served_metrics() -> Vec<String> {
    let mut registry = metrics::registry(
        &CoreMetrics::default(),
        &SenderMetrics::new(),
        &SweepMetrics::new(),
    );
    konflux_telemetry::admission::AdmissionMetrics::default()
        .register(registry.sub_registry_with_prefix("admission"));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let (name, kind) = (parts.next()?, parts.next()?);
            Some(if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_owned()
            })
        })
        .collect()
}

#[test]
fn readme_documents_every_config_key() {
    let readme = read("README.md");
    for key in KEYS {
        let (name, default) = (key.name, key.default);
        assert!(
            readme.contains(&format!("| `{name}` | `{default}` |")),
            "README lacks `{name}` with default `{default}`"
        );
    }
}

/// Every name passed to `Registry::register` in a component's metrics file, with the
/// prefix of that component's sub-registry. (A family with no samples yet is not encoded,
/// so the sources are the complete list.)
fn registered_metrics() -> Vec<String> {
    let files = [
        ("src/metrics.rs", "konflux_telemetry_"),
        ("src/segment/metrics.rs", "konflux_telemetry_segment_"),
        ("src/sweep/mod.rs", "konflux_telemetry_sweep_"),
        ("src/admission/metrics.rs", "konflux_telemetry_admission_"),
    ];
    let mut names = Vec::new();
    for (file, prefix) in files {
        let text = read(file);
        for (i, _) in text.match_indices(".register(") {
            let rest = &text[i + ".register(".len()..];
            let Some(start) = rest.find('"') else {
                continue;
            };
            if rest[..start].trim().is_empty() {
                let name = &rest[start + 1..];
                if let Some(end) = name.find('"') {
                    names.push(format!("{prefix}{}", &name[..end]));
                }
            }
        }
    }
    names
}

#[test]
fn readme_documents_every_metric() {
    let readme = read("README.md");
    let documented =
        |m: &str| readme.contains(&format!("`{m}`")) || readme.contains(&format!("`{m}_total`"));
    let registered = registered_metrics();
    assert!(registered.len() >= 25, "{registered:?}");
    let served = served_metrics();
    let missing: Vec<&String> = registered
        .iter()
        .chain(&served)
        .filter(|m| !documented(m))
        .collect();
    assert!(missing.is_empty(), "README lacks metrics: {missing:?}");
}

#[test]
fn privacy_page_lists_every_event() {
    let privacy = read("docs/privacy.md");
    for name in EventName::ALL {
        assert!(
            privacy.contains(name.as_str()),
            "docs/privacy.md lacks {}",
            name.as_str()
        );
    }
}
