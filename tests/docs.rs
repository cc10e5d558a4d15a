//! The documents match the code: every ConfigMap key, every metric served and every event
//! name appear in the README (and the events in docs/privacy.md), and docs/privacy.md
//! lists the events and properties of schema/events.json, so a change to one without the
//! other fails here.

#[path = "support/schema.rs"]
mod schema;

use std::collections::{BTreeMap, BTreeSet};

use konflux_telemetry::admission::AdmissionMetrics;
use konflux_telemetry::daemon::Metrics;
use konflux_telemetry::events::EventName;
use konflux_telemetry::pipeline::metrics::CoreMetrics;
use konflux_telemetry::segment::SenderMetrics;
use konflux_telemetry::settings::KEYS;
use konflux_telemetry::sweep::SweepMetrics;
use konflux_telemetry::switch::inputs::SwitchMetrics;

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every metric the daemon serves, as Prometheus names them (counters with `_total`).
fn served_metrics() -> Vec<String> {
    let (_, registry) = Metrics::new();
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
        // An empty default is a key that is unset unless written.
        let shown = if default.is_empty() {
            "(unset)".to_owned()
        } else {
            format!("`{default}`")
        };
        assert!(
            readme.contains(&format!("| `{name}` | {shown} |")),
            "README lacks `{name}` with default {shown}"
        );
    }
}

/// Every metric registered, with the prefix of its component's sub-registry. (A family
/// with no samples yet is not encoded, so the served text is not the complete list.)
fn registered_metrics() -> Vec<String> {
    let components = [
        ("konflux_telemetry_", CoreMetrics::NAMES),
        ("konflux_telemetry_segment_", SenderMetrics::NAMES),
        ("konflux_telemetry_sweep_", SweepMetrics::NAMES),
        ("konflux_telemetry_admission_", AdmissionMetrics::NAMES),
        ("konflux_telemetry_", SwitchMetrics::NAMES),
    ];
    components
        .iter()
        .flat_map(|(prefix, names)| names.iter().map(move |name| format!("{prefix}{name}")))
        .collect()
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

/// The words in backticks of `text`.
fn backticked(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// docs/privacy.md's table of events: each event's properties besides the common ones.
fn privacy_events(page: &str) -> BTreeMap<String, BTreeSet<String>> {
    let header = "| event | when | properties besides the common ones |";
    let start = page
        .find(header)
        .expect("the events table of docs/privacy.md");
    page[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let name = backticked(cells[1])
                .into_iter()
                .next()
                .expect("an event name");
            (name, backticked(cells[3]))
        })
        .collect()
}

#[test]
fn privacy_page_and_schema_list_the_same_events_and_properties() {
    let page = read("docs/privacy.md");
    let documented = privacy_events(&page);
    let schema: BTreeMap<String, BTreeSet<String>> = schema::event_definitions()
        .into_iter()
        .map(|(name, d)| (name.to_owned(), schema::own_properties(d)))
        .collect();
    assert_eq!(schema.len(), EventName::ALL.len(), "{schema:?}");
    assert_eq!(
        documented, schema,
        "docs/privacy.md (left) vs schema/events.json"
    );

    let common_line = page
        .lines()
        .find(|l| l.starts_with("**Common properties**"))
        .expect("docs/privacy.md's line of common properties");
    assert_eq!(backticked(common_line), schema::common_properties());
    // and each property is explained somewhere beside the table
    for (event, properties) in &documented {
        for p in properties {
            assert!(
                page.matches(&format!("`{p}`")).count() > 1,
                "docs/privacy.md names {p} of {event} only in the table"
            );
        }
    }
}

/// The schema's `pipelineType` enumeration is the model's: Konflux's values, `other`, the
/// empty value and `null`; a value added to one and not the other fails here.
#[test]
fn schema_pipeline_type_is_the_models_enumeration() {
    use konflux_telemetry::events::pipelinerun::{KNOWN_PIPELINE_TYPES, OTHER_PIPELINE_TYPE};
    let found = schema::document()
        .pointer("/$defs")
        .and_then(|defs| defs.as_object())
        .into_iter()
        .flat_map(|defs| defs.values())
        .find_map(|d| d.pointer("/properties/pipelineType/enum"))
        .expect("pipelineType's enum in schema/events.json");
    let in_schema: BTreeSet<String> = found
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_str().map_or_else(|| "null".to_owned(), str::to_owned))
        .collect();
    let mut expected: BTreeSet<String> =
        KNOWN_PIPELINE_TYPES.iter().map(|s| s.to_string()).collect();
    expected.extend([
        OTHER_PIPELINE_TYPE.to_owned(),
        String::new(),
        "null".to_owned(),
    ]);
    assert_eq!(in_schema, expected);
}
