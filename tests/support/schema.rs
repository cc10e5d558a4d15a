//! `schema/events.json`, as every test applies it: each event a test produces (the model,
//! `transform`) or receives at the sink passes [`assert_valid`], so an event the schema
//! does not allow fails the test that made it.
//!
//! The validator is `boon` (JSON Schema draft 2020-12, which the schema needs for
//! `unevaluatedProperties`). Compiled once per test binary.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

/// Where the schema is.
pub fn path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/events.json")
}

/// The schema as JSON.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let text = std::fs::read_to_string(path()).expect("schema/events.json");
        serde_json::from_str(&text).expect("schema/events.json is JSON")
    })
}

struct Compiled {
    schemas: boon::Schemas,
    /// The whole schema: what decides.
    root: boon::SchemaIndex,
    /// The envelope and each event's properties on their own: what explains a refusal.
    envelope: boon::SchemaIndex,
    by_name: BTreeMap<String, boon::SchemaIndex>,
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let location = "urn:konflux-telemetry:schema:events.json";
        let mut compiler = boon::Compiler::new();
        compiler
            .add_resource(location, document().clone())
            .expect("add the schema");
        let mut schemas = boon::Schemas::new();
        let mut compile = |fragment: &str| {
            compiler
                .compile(&format!("{location}{fragment}"), &mut schemas)
                .unwrap_or_else(|e| panic!("schema/events.json is not a valid JSON Schema: {e}"))
        };
        let root = compile("");
        let envelope = compile("#/$defs/SegmentTrack");
        let defs = document()["$defs"].as_object().expect("$defs");
        let by_name = defs
            .iter()
            .filter_map(|(key, d)| Some((d["x-event-name"].as_str()?.to_owned(), key)))
            .map(|(name, key)| (name, compile(&format!("#/$defs/{key}"))))
            .collect();
        Compiled {
            schemas,
            root,
            envelope,
            by_name,
        }
    })
}

/// Why the schema refuses `event`, or `None` when it allows it. The reason names the
/// envelope's faults and those of the properties against the event's own definition
/// (the root's `oneOf` alone would list every definition's).
pub fn violation(event: &Value) -> Option<String> {
    let c = compiled();
    let refused = c.schemas.validate(event, c.root).err()?.to_string();
    let name = event["event"].as_str().unwrap_or_default();
    let Some(&definition) = c.by_name.get(name) else {
        return Some(format!("no definition has x-event-name {name:?}"));
    };
    let reasons: Vec<String> = [
        c.schemas.validate(event, c.envelope).err(),
        c.schemas.validate(&event["properties"], definition).err(),
    ]
    .into_iter()
    .flatten()
    .map(|e| e.to_string())
    .collect();
    Some(if reasons.is_empty() {
        refused
    } else {
        reasons.join("\n")
    })
}

/// Panics, naming the reason and the event, unless the schema allows `event`.
pub fn assert_valid(event: &Value) {
    if let Some(why) = violation(event) {
        panic!("event not allowed by schema/events.json:\n{why}\nevent: {event}");
    }
}

/// [`assert_valid`] for each of `events`.
pub fn assert_all_valid<'a>(events: impl IntoIterator<Item = &'a Value>) {
    events.into_iter().for_each(assert_valid);
}

/// Each line of `ndjson` parsed and validated; the events.
pub fn valid_lines(ndjson: &str) -> Vec<Value> {
    ndjson
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let event: Value = serde_json::from_str(l).expect("one JSON event a line");
            assert_valid(&event);
            event
        })
        .collect()
}

/// The definition `$defs/NAME` a `{"$ref": "#/$defs/NAME"}` points to.
fn resolve(part: &Value) -> &Value {
    match part["$ref"].as_str() {
        Some(r) => {
            let name = r.strip_prefix("#/$defs/").expect("a local $ref");
            &document()["$defs"][name]
        }
        None => part,
    }
}

/// Each event definition of the schema: its `x-event-name` and its definition.
pub fn event_definitions() -> Vec<(&'static str, &'static Value)> {
    document()["$defs"]
        .as_object()
        .expect("$defs")
        .values()
        .filter_map(|d| Some((d["x-event-name"].as_str()?, d)))
        .collect()
}

/// The names of the definitions an event definition's `allOf` refers to.
pub fn parts(definition: &Value) -> Vec<&str> {
    definition["allOf"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["$ref"].as_str()?.strip_prefix("#/$defs/"))
        .collect()
}

/// The property names of a definition (its `properties` and those of its `allOf` parts).
pub fn property_names(definition: &Value) -> BTreeSet<String> {
    let definition = resolve(definition);
    let own = definition["properties"].as_object().into_iter().flatten();
    let mut names: BTreeSet<String> = own.map(|(k, _)| k.clone()).collect();
    for part in definition["allOf"].as_array().into_iter().flatten() {
        names.extend(property_names(part));
    }
    names
}

/// The properties every event has (`CommonFields`).
pub fn common_properties() -> BTreeSet<String> {
    property_names(&document()["$defs"]["CommonFields"])
}

/// An event's properties besides the common ones.
pub fn own_properties(definition: &Value) -> BTreeSet<String> {
    let common = common_properties();
    property_names(definition)
        .into_iter()
        .filter(|p| !common.contains(p))
        .collect()
}
