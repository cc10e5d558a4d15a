//! Reading objects: [`decode`] reads one JSON document (a `kubectl get -o json` object, or
//! a `List` of them) in a single pass into the domain types of [`super::object`]; every
//! field that no event needs (a PipelineRun's spec, results, provenance... most of its 10
//! to 42 KB) is skipped without being stored, and a field of the wrong type skips its
//! object with a [`DecodeError`] rather than failing the document. [`Watched`] is one
//! object as a watch hands it over, read the same way.

use super::lenient::{
    BoolField, CountField, JsonType, ObjectField, StringField, lenient, wrong_types,
};
use super::object::*;
use super::time::Timestamp;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess};
use std::fmt;

/// One item of a decoded document: an object with events, a kind without events, or an
/// object that was skipped and why.
// Decoded values are made and consumed one at a time; boxing would cost an allocation
// per object for no saving.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    Object(Object),
    NoEvents,
    Skipped(DecodeError),
}

/// Decodes one JSON document: an object, or a `List` whose `items` are objects. Fails as a
/// whole only when the document is not JSON or not an object; a malformed item of a `List`
/// is one `Skipped` among the others.
pub fn decode(json: &[u8]) -> Result<Vec<Decoded>, DecodeError> {
    let doc: ObjectField<RawObject<Items>> =
        serde_json::from_slice(json).map_err(|e| DecodeError::Syntax(redact(&e)))?;
    match doc {
        ObjectField::Wrong(found) => Err(DecodeError::NotAnObject(found)),
        ObjectField::Ok(wire) => {
            let mut out = Vec::with_capacity(1);
            wire.interpret_into(&mut out);
            Ok(out)
        }
    }
}

/// Decodes a document known to be one object (a watch event, a Tekton Results record).
pub fn decode_one(json: &[u8]) -> Decoded {
    match decode(json) {
        Err(e) => Decoded::Skipped(e),
        Ok(mut items) if items.len() == 1 => items.pop().unwrap_or(Decoded::NoEvents),
        Ok(_) => Decoded::Skipped(DecodeError::Missing {
            kind: Kind::Other,
            field: "a single object (found a List)",
        }),
    }
}

/// One object as a watch, a list or an admission request delivers it: read in one pass into
/// the fields some kind's events read, not yet interpreted as a kind. The `resourceVersion`
/// is what the watch resumes from. Read by any serde deserializer; fails only when the input
/// is not JSON.
///
/// What it costs does not grow with what it skips: `items` (an object is not a `List`) is
/// passed over unread, and of `status.conditions` only the two conditions events read are
/// kept ([`Conditions`]), so a body of N bytes costs N plus a few small strings.
#[derive(Clone)]
pub struct Watched {
    pub resource_version: Option<String>,
    wire: ObjectField<RawObject>,
}

impl<'de> Deserialize<'de> for Watched {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut wire: ObjectField<RawObject> = Deserialize::deserialize(d)?;
        let resource_version = match &mut wire {
            ObjectField::Ok(RawObject {
                metadata: Some(ObjectField::Ok(m)),
                ..
            }) => match m.resource_version.take() {
                Some(StringField::Ok(rv)) => Some(rv),
                _ => None,
            },
            _ => None,
        };
        Ok(Watched {
            resource_version,
            wire,
        })
    }
}

impl Watched {
    /// What the event model reads from it as an object of `kind`, whatever its `apiVersion`
    /// and `kind` say (list items of built-in types carry neither); an object of the wrong
    /// shape is `Decoded::Skipped`.
    pub fn decode_as(self, kind: Kind) -> Decoded {
        match self.wire {
            ObjectField::Wrong(found) => Decoded::Skipped(DecodeError::NotAnObject(found)),
            ObjectField::Ok(wire) => match wire.interpret_as(kind) {
                Ok(Some(object)) => Decoded::Object(object),
                Ok(None) => Decoded::NoEvents,
                Err(e) => Decoded::Skipped(e),
            },
        }
    }
}

/// Names stay out of Debug output: only the `resourceVersion` is shown.
impl fmt::Debug for Watched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watched")
            .field("resource_version", &self.resource_version)
            .finish_non_exhaustive()
    }
}

/// serde_json's syntax messages quote no input, but keep only the position to be sure.
pub(crate) fn redact(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Eof => "unexpected end of input",
        Category::Syntax => "invalid syntax",
        Category::Data => "invalid data",
        Category::Io => "read error",
    };
    let detail = e.to_string();
    if detail.contains("recursion limit exceeded") {
        return format!("nested too deeply at column {}", e.column());
    }
    format!("{what} at column {}", e.column())
}

// ---- the wire form: one struct that reads every kind's fields in one pass ----

/// One object's fields; `items` as `I`: [`Items`] for a document that may be a `List`
/// ([`decode`]), skipped unread ([`IgnoredAny`]) for one object ([`Watched`]).
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "I: Deserialize<'de>"))]
struct RawObject<I = IgnoredAny> {
    api_version: Option<StringField>,
    kind: Option<StringField>,
    metadata: Option<ObjectField<RawMeta>>,
    spec: Option<ObjectField<RawSpec>>,
    status: Option<ObjectField<RawStatus>>,
    items: Option<I>,
}

/// A `List`'s `items`, each interpreted as it is read: what is kept per item is its
/// [`Decoded`], never its wire form.
#[derive(Clone)]
enum Items {
    Ok(Vec<Decoded>),
    Wrong(JsonType),
}

lenient!(Items, Items::Wrong, wrong: [bool, number, string, null, object],
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element::<ObjectField<RawObject<Items>>>()? {
            match item {
                ObjectField::Ok(wire) => wire.interpret_into(&mut out),
                ObjectField::Wrong(found) => out.push(Decoded::Skipped(DecodeError::NotAnObject(found))),
            }
        }
        Ok(Items::Ok(out))
    }
);

#[derive(Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawMeta {
    uid: Option<StringField>,
    name: Option<StringField>,
    namespace: Option<StringField>,
    creation_timestamp: Option<StringField>,
    deletion_timestamp: Option<StringField>,
    resource_version: Option<StringField>,
    labels: Option<WantedLabels>,
}

#[derive(Clone, Deserialize, Default)]
struct RawSpec {
    application: Option<StringField>,
    telemetry: Option<ObjectField<RawTelemetry>>,
}

#[derive(Clone, Deserialize, Default)]
struct RawTelemetry {
    enabled: Option<BoolField>,
}

#[derive(Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawStatus {
    start_time: Option<StringField>,
    completion_time: Option<StringField>,
    child_references: Option<CountField>,
    conditions: Option<Conditions>,
}

/// `status.conditions`, scanned for the conditions events read: the first of type
/// `Succeeded` (a PipelineRun's) and the first of type `Ready` (the Konflux CR's). The
/// others are read one at a time and dropped, so a long list costs no more than one of
/// its entries.
#[derive(Clone, Default)]
struct Conditions {
    succeeded: Option<RawCondition>,
    ready: Option<RawCondition>,
    wrong: Option<JsonType>,
}

lenient!(Conditions, wrong_conditions, wrong: [bool, number, string, null, object],
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Conditions, A::Error> {
        let mut out = Conditions::default();
        while let Some(c) = seq.next_element::<ObjectField<RawCondition>>()? {
            // A condition that is not an object, or has no string type, is not one sought.
            let ObjectField::Ok(c) = c else { continue };
            let slot = match &c.type_ {
                Some(StringField::Ok(t)) if t == "Succeeded" => &mut out.succeeded,
                Some(StringField::Ok(t)) if t == "Ready" => &mut out.ready,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(c);
            }
        }
        Ok(out)
    }
);

fn wrong_conditions(found: JsonType) -> Conditions {
    Conditions {
        wrong: Some(found),
        ..Conditions::default()
    }
}

#[derive(Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawCondition {
    #[serde(rename = "type")]
    type_: Option<StringField>,
    status: Option<StringField>,
    reason: Option<StringField>,
    last_transition_time: Option<StringField>,
}

/// The three labels events read; every other label is skipped unread, however large.
#[derive(Clone, Default)]
struct WantedLabels {
    has_pipeline: bool,
    pipeline_type: Option<StringField>,
    namespace_type: Option<StringField>,
    wrong: Option<JsonType>,
}

lenient!(WantedLabels, wrong_labels, wrong: [bool, number, string, array],
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WantedLabels, A::Error> {
        let mut out = WantedLabels::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                PIPELINE_LABEL => {
                    map.next_value::<IgnoredAny>()?;
                    out.has_pipeline = true;
                }
                PIPELINE_TYPE_LABEL => out.pipeline_type = Some(map.next_value()?),
                NAMESPACE_TYPE_LABEL => out.namespace_type = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
    fn visit_unit<E>(self) -> Result<WantedLabels, E> {
        Ok(WantedLabels::default())
    }
);

fn wrong_labels(found: JsonType) -> WantedLabels {
    WantedLabels {
        wrong: Some(found),
        ..WantedLabels::default()
    }
}

// ---- from the wire form to the domain types ----

/// Field readers that know the kind and field path, for error messages.
struct Reader {
    kind: Kind,
}

impl Reader {
    fn string(
        &self,
        field: &'static str,
        v: Option<StringField>,
    ) -> Result<Option<String>, DecodeError> {
        match v {
            None => Ok(None),
            Some(StringField::Ok(s)) => Ok(Some(s)),
            Some(StringField::Wrong(found)) => Err(self.wrong(field, "a string", found)),
        }
    }

    /// A string that reaches events as it is: at most [`MAX_FIELD_CHARS`] characters.
    fn sent(
        &self,
        field: &'static str,
        v: Option<StringField>,
    ) -> Result<Option<String>, DecodeError> {
        match self.string(field, v)? {
            Some(s) if s.chars().count() > MAX_FIELD_CHARS => Err(DecodeError::TooLong {
                kind: self.kind,
                field,
            }),
            other => Ok(other),
        }
    }

    fn required(&self, field: &'static str, v: Option<StringField>) -> Result<String, DecodeError> {
        self.sent(field, v)?
            .filter(|s| !s.is_empty())
            .ok_or(DecodeError::Missing {
                kind: self.kind,
                field,
            })
    }

    /// A time; an empty string (how some serialisers write an unset time) is none.
    fn time(
        &self,
        field: &'static str,
        v: Option<StringField>,
    ) -> Result<Option<Timestamp>, DecodeError> {
        self.string(field, v)?
            .filter(|s| !s.is_empty())
            .map(|s| {
                Timestamp::parse(&s).map_err(|_| DecodeError::Timestamp {
                    kind: self.kind,
                    field,
                })
            })
            .transpose()
    }

    fn object<T: Default>(
        &self,
        field: &'static str,
        v: Option<ObjectField<T>>,
    ) -> Result<T, DecodeError> {
        match v {
            None => Ok(T::default()),
            Some(ObjectField::Ok(t)) => Ok(t),
            Some(ObjectField::Wrong(found)) => Err(self.wrong(field, "an object", found)),
        }
    }

    fn wrong(&self, field: &'static str, expected: &'static str, found: JsonType) -> DecodeError {
        DecodeError::WrongType {
            kind: self.kind,
            field,
            expected,
            found,
        }
    }

    fn meta(&self, v: Option<ObjectField<RawMeta>>) -> Result<(Meta, WantedLabels), DecodeError> {
        let Some(m) = v else {
            return Err(DecodeError::Missing {
                kind: self.kind,
                field: "metadata",
            });
        };
        let m = self.object("metadata", Some(m))?;
        let labels = m.labels.unwrap_or_default();
        if let Some(found) = labels.wrong {
            return Err(self.wrong("metadata.labels", "an object", found));
        }
        Ok((
            Meta {
                uid: self.required("metadata.uid", m.uid)?,
                name: self.string("metadata.name", m.name)?,
                namespace: self.string("metadata.namespace", m.namespace)?,
                creation_timestamp: self
                    .time("metadata.creationTimestamp", m.creation_timestamp)?,
                deletion_timestamp: self
                    .time("metadata.deletionTimestamp", m.deletion_timestamp)?,
            },
            labels,
        ))
    }
}

impl RawObject<Items> {
    fn interpret_into(mut self, out: &mut Vec<Decoded>) {
        match self.items.take() {
            Some(Items::Ok(items)) => out.extend(items),
            Some(Items::Wrong(found)) => out.push(Decoded::Skipped(DecodeError::WrongType {
                kind: Kind::Other,
                field: "items",
                expected: "an array",
                found,
            })),
            None => out.push(match self.interpret() {
                Ok(Some(object)) => Decoded::Object(object),
                Ok(None) => Decoded::NoEvents,
                Err(e) => Decoded::Skipped(e),
            }),
        }
    }
}

impl<I> RawObject<I> {
    fn interpret(mut self) -> Result<Option<Object>, DecodeError> {
        let other = Reader { kind: Kind::Other };
        let api_version = other.required("apiVersion", self.api_version.take())?;
        let kind_name = other.required("kind", self.kind.take())?;
        let Some(kind) = Kind::of(&api_version, &kind_name) else {
            return Ok(None);
        };
        self.interpret_as(kind)
    }

    /// Reads the object as `kind`, whatever its `apiVersion` and `kind` say (list items of
    /// built-in types carry neither).
    fn interpret_as(self, kind: Kind) -> Result<Option<Object>, DecodeError> {
        let r = Reader { kind };
        let (meta, labels) = r.meta(self.metadata)?;
        Ok(Some(match kind {
            Kind::PipelineRun => {
                let status = r.object("status", self.status)?;
                let task_count = match status.child_references {
                    None => 0,
                    Some(CountField::Ok(n)) => n,
                    Some(CountField::Wrong(found)) => {
                        return Err(r.wrong("status.childReferences", "an array", found));
                    }
                };
                let succeeded = r.condition(Wanted::Succeeded, status.conditions)?;
                Object::PipelineRun(PipelineRun {
                    has_pipeline_label: labels.has_pipeline,
                    pipeline_type: r.sent("metadata.labels", labels.pipeline_type)?,
                    start_time: r.time("status.startTime", status.start_time)?,
                    completion_time: r.time("status.completionTime", status.completion_time)?,
                    task_count,
                    succeeded_reason: succeeded.and_then(|c| c.reason),
                    meta,
                })
            }
            Kind::Component => {
                let spec = r.object("spec", self.spec)?;
                Object::Component(Component {
                    application: r.string("spec.application", spec.application)?,
                    meta,
                })
            }
            Kind::Namespace => Object::Namespace(Namespace {
                is_tenant: r
                    .string("metadata.labels", labels.namespace_type)?
                    .as_deref()
                    == Some(TENANT),
                meta,
            }),
            Kind::Konflux => {
                let status = r.object("status", self.status)?;
                let ready = r
                    .condition(Wanted::Ready, status.conditions)?
                    .filter(|c| c.status.as_deref() == Some("True"))
                    .map(|c| -> Result<ReadyCondition, DecodeError> {
                        Ok(ReadyCondition {
                            reason: c.reason,
                            last_transition_time: r.time(
                                "status.conditions[Ready].lastTransitionTime",
                                c.last_transition_time,
                            )?,
                        })
                    })
                    .transpose()?;
                let spec = r.object("spec", self.spec)?;
                let telemetry = r.object("spec.telemetry", spec.telemetry)?;
                let telemetry_enabled = match telemetry.enabled {
                    None => None,
                    Some(BoolField::Ok(b)) => Some(b),
                    Some(BoolField::Wrong(found)) => {
                        return Err(r.wrong("spec.telemetry.enabled", "a boolean", found));
                    }
                };
                Object::Konflux(Konflux {
                    meta,
                    ready,
                    telemetry_enabled,
                })
            }
            // Only counted, never made into events.
            Kind::Application
            | Kind::IntegrationTestScenario
            | Kind::ReleasePlan
            | Kind::Release
            | Kind::Other => return Ok(None),
        }))
    }
}

/// The condition types events read ([`Conditions`] keeps the first of each).
#[derive(Clone, Copy)]
enum Wanted {
    Succeeded,
    Ready,
}

/// A condition with its strings checked; the time is left raw for the caller to parse.
struct Condition {
    status: Option<String>,
    reason: Option<String>,
    last_transition_time: Option<StringField>,
}

impl Reader {
    /// The first condition of type `wanted`, as Kubernetes' own helpers find it.
    fn condition(
        &self,
        wanted: Wanted,
        conditions: Option<Conditions>,
    ) -> Result<Option<Condition>, DecodeError> {
        let Some(mut conditions) = conditions else {
            return Ok(None);
        };
        if let Some(found) = conditions.wrong {
            return Err(self.wrong("status.conditions", "an array", found));
        }
        let found = match wanted {
            Wanted::Succeeded => conditions.succeeded.take(),
            Wanted::Ready => conditions.ready.take(),
        };
        let Some(c) = found else {
            return Ok(None);
        };
        Ok(Some(Condition {
            status: self.string("status.conditions[].status", c.status)?,
            reason: self.sent("status.conditions[].reason", c.reason)?,
            last_transition_time: c.last_transition_time,
        }))
    }
}

impl Object {
    /// Marks the object as being deleted now, unless it says when already. A Konflux CR
    /// deleted without finalizers never carries `deletionTimestamp`: the watch's last state
    /// and admission's DELETE request are the only sign, and the removal starts then.
    pub fn mark_deleted_now(&mut self) {
        if let Object::Konflux(k) = self
            && k.meta.deletion_timestamp.is_none()
        {
            k.meta.deletion_timestamp = Some(Timestamp::now());
        }
    }

    /// Whether the object is one that has events at all: a Namespace only when it is a
    /// tenant, the Konflux CR only when it is the one named `konflux` that the operator
    /// reconciles.
    pub fn counts(&self) -> bool {
        match self {
            Object::Namespace(ns) => ns.is_tenant,
            Object::Konflux(k) => k.meta.name.as_deref() == Some(KONFLUX_NAME),
            Object::PipelineRun(_) | Object::Component(_) => true,
        }
    }

    pub fn meta(&self) -> &Meta {
        match self {
            Object::PipelineRun(o) => &o.meta,
            Object::Component(o) => &o.meta,
            Object::Namespace(o) => &o.meta,
            Object::Konflux(o) => &o.meta,
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Object::PipelineRun(_) => Kind::PipelineRun,
            Object::Component(_) => Kind::Component,
            Object::Namespace(_) => Kind::Namespace,
            Object::Konflux(_) => Kind::Konflux,
        }
    }
}

#[cfg(test)]
mod watched_tests {
    use super::*;

    #[test]
    fn each_watched_kind_is_found_by_its_api_version_and_name() {
        for w in crate::events::object::watched() {
            let api_version = if w.group.is_empty() {
                w.version.to_owned()
            } else {
                format!("{}/{}", w.group, w.version)
            };
            assert_eq!(Kind::of(&api_version, w.name), Some(w.kind), "{w:?}");
            assert!(!w.events.is_empty(), "{w:?}");
        }
        assert_eq!(Kind::of("tekton.dev/v1", "TaskRun"), None);
    }

    fn watched_as(kind: Kind, json: serde_json::Value) -> Decoded {
        let w: Watched = serde_json::from_value(json).expect("JSON");
        w.decode_as(kind)
    }

    #[test]
    fn conditions_are_scanned_for_the_first_of_each_wanted_type() {
        let run = |conditions: serde_json::Value| {
            watched_as(
                Kind::PipelineRun,
                serde_json::json!({"metadata": {"uid": "u"}, "status": {"conditions": conditions}}),
            )
        };
        let reason = |d: Decoded| match d {
            Decoded::Object(Object::PipelineRun(r)) => r.succeeded_reason,
            other => panic!("{other:?}"),
        };
        let many = serde_json::json!([{"type": "Other", "reason": 5}, 5, null, {"reason": "x"},
            {"type": "Ready", "status": "True"}, {"type": "Succeeded", "reason": "First"},
            {"type": "Succeeded", "reason": "Second"}]);
        assert_eq!(reason(run(many)), Some("First".to_owned()));
        assert_eq!(reason(run(serde_json::json!([{}, {}]))), None);
        assert_eq!(reason(run(serde_json::json!(null))), None);
        assert!(matches!(
            run(serde_json::json!({"type": "Succeeded"})),
            Decoded::Skipped(DecodeError::WrongType {
                field: "status.conditions",
                ..
            })
        ));
        // the first Succeeded decides, even when malformed
        assert!(matches!(
            run(
                serde_json::json!([{"type": "Succeeded", "reason": 1}, {"type": "Succeeded", "reason": "ok"}])
            ),
            Decoded::Skipped(DecodeError::WrongType {
                field: "status.conditions[].reason",
                ..
            })
        ));
        let konflux = |conditions: serde_json::Value| match watched_as(
            Kind::Konflux,
            serde_json::json!({"metadata": {"uid": "k", "name": "konflux"}, "status": {"conditions": conditions}}),
        ) {
            Decoded::Object(Object::Konflux(k)) => k.ready.and_then(|r| r.reason),
            other => panic!("{other:?}"),
        };
        let c = serde_json::json!([{"type": "Succeeded"}, {"type": "Ready", "status": "True", "reason": "R"}]);
        assert_eq!(konflux(c), Some("R".to_owned()));
        let c = serde_json::json!([{"type": "Ready", "status": "False"}, {"type": "Ready", "status": "True"}]);
        assert_eq!(konflux(c), None);
    }

    #[test]
    fn one_object_skips_items_and_a_list_still_reads_them() {
        let c = serde_json::json!({"apiVersion": "appstudio.redhat.com/v1alpha1", "kind": "Component",
            "metadata": {"uid": "c", "namespace": "n"}, "spec": {"application": "a"}});
        let mut with_items = c.clone();
        with_items["items"] = serde_json::json!([{}, 5, {"items": [c.clone()]}]);
        assert_eq!(
            watched_as(Kind::Component, with_items.clone()),
            watched_as(Kind::Component, c.clone())
        );
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List",
            "items": [c.clone(), 5, {"items": [c.clone(), {}]}]});
        let decoded = decode(list.to_string().as_bytes()).expect("a List");
        assert_eq!(decoded.len(), 4, "{decoded:?}");
        assert!(matches!(decoded[0], Decoded::Object(Object::Component(_))));
        assert!(matches!(
            decoded[1],
            Decoded::Skipped(DecodeError::NotAnObject(JsonType::Number))
        ));
        assert!(matches!(decoded[2], Decoded::Object(Object::Component(_))));
        assert!(matches!(
            decoded[3],
            Decoded::Skipped(DecodeError::Missing { .. })
        ));
        let wrong = decode(br#"{"items": {"a": 1}}"#).expect("an object");
        assert!(matches!(
            wrong[..],
            [Decoded::Skipped(DecodeError::WrongType {
                field: "items",
                ..
            })]
        ));
    }
}
