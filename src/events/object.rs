//! The objects the event model reads, with only the fields it reads.
//!
//! [`decode`] reads one JSON document (a `kubectl get -o json` object, or a `List` of them)
//! in a single pass; every field that no event needs (a PipelineRun's spec, results,
//! provenance... most of its 10 to 42 KB) is skipped without being stored. The domain types
//! ([`PipelineRun`], [`Component`], [`Namespace`], [`Konflux`]) have nothing of Kubernetes'
//! client types in them, so the mapping to events is tested with plain data.

use super::EventName;
use super::lenient::{Count, Flag, JsonType, Obj, Str, lenient, wrong_types};
use super::time::Timestamp;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess};
use std::fmt;

/// Label whose presence is `hasPipelineLabel`.
pub const PIPELINE_LABEL: &str = "tekton.dev/pipeline";
/// Label whose value is `pipelineType`.
pub const PIPELINE_TYPE_LABEL: &str = "pipelines.appstudio.openshift.io/type";
/// Label (with value [`TENANT`]) that makes a Namespace a Konflux tenant.
pub const NAMESPACE_TYPE_LABEL: &str = "konflux-ci.dev/type";
pub const TENANT: &str = "tenant";
/// The one Konflux CR that the operator reconciles.
pub const KONFLUX_NAME: &str = "konflux";

/// An object the event model has events for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    PipelineRun(PipelineRun),
    Component(Component),
    Namespace(Namespace),
    Konflux(Konflux),
}

/// What every object carries. Names stay in memory only as long as it takes to hash them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub uid: String,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub creation_timestamp: Option<Timestamp>,
    pub deletion_timestamp: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineRun {
    pub meta: Meta,
    pub has_pipeline_label: bool,
    pub pipeline_type: Option<String>,
    pub start_time: Option<Timestamp>,
    pub completion_time: Option<Timestamp>,
    /// Entries in `status.childReferences`.
    pub task_count: usize,
    /// `reason` of the condition of type `Succeeded`.
    pub succeeded_reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    pub meta: Meta,
    /// `spec.application`.
    pub application: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    pub meta: Meta,
    /// Labelled `konflux-ci.dev/type=tenant`.
    pub is_tenant: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Konflux {
    pub meta: Meta,
    /// The condition `Ready` when its status is `True`.
    pub ready: Option<ReadyCondition>,
    /// `spec.telemetry.enabled`: the user's telemetry choice, `None` when unset.
    pub telemetry_enabled: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadyCondition {
    pub reason: Option<String>,
    pub last_transition_time: Option<Timestamp>,
}

/// Why an object was skipped. Says which field and what was wrong with it, never the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not JSON: {0}")]
    Syntax(String),
    #[error("not a JSON object (found {})", .0.name())]
    NotAnObject(JsonType),
    #[error("{kind}: missing {field}")]
    Missing { kind: Kind, field: &'static str },
    #[error("{kind}: {field} should be {expected}, found {}", .found.name())]
    WrongType {
        kind: Kind,
        field: &'static str,
        expected: &'static str,
        found: JsonType,
    },
    #[error("{kind}: {field} is not an RFC 3339 timestamp")]
    Timestamp { kind: Kind, field: &'static str },
    #[error("{kind}: {field} is longer than {MAX_FIELD_CHARS} characters")]
    TooLong { kind: Kind, field: &'static str },
}

/// The longest string an object may put into an event as it is (`metadata.uid` in the
/// messageId, the `pipelineType` label value, a condition's reason in `status`): 63
/// characters, the Kubernetes limit of a label value. Longer is malformed. Names that are
/// only hashed are not capped: their hash has a fixed length.
pub const MAX_FIELD_CHARS: usize = 63;

impl DecodeError {
    /// A short, fixed label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Syntax(_) => "not_json",
            DecodeError::NotAnObject(_) => "not_object",
            DecodeError::Missing { .. } => "missing_field",
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::Timestamp { .. } => "bad_timestamp",
            DecodeError::TooLong { .. } => "too_long",
        }
    }
}

/// The kinds that have events, for messages and metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    PipelineRun,
    Component,
    Namespace,
    Konflux,
    /// A `List` or an object of unknown kind.
    Other,
}

impl Kind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::PipelineRun => "PipelineRun",
            Kind::Component => "Component",
            Kind::Namespace => "Namespace",
            Kind::Konflux => "Konflux",
            Kind::Other => "object",
        }
    }

    /// Its entry of [`WATCHED`].
    pub fn watched(self) -> Option<&'static WatchedKind> {
        WATCHED.iter().copied().find(|w| w.kind == self)
    }

    /// The kind an `apiVersion` and `kind` name, if it has events ([`WATCHED`]).
    pub fn of(api_version: &str, kind: &str) -> Option<Kind> {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        WATCHED
            .iter()
            .find(|w| w.group == group && w.name == kind)
            .map(|w| w.kind)
    }
}

/// A kind that has events: where it lives in the Kubernetes API, which objects count, how
/// Tekton Results types its records, and the events it makes. The watch, admission and
/// the sweep read this table ([`WATCHED`]); adding a kind is an entry here, its event
/// mapping beside `pipelinerun.rs`, and its docs.
#[derive(Debug, PartialEq, Eq)]
pub struct WatchedKind {
    pub kind: Kind,
    /// API group (`""` for the core group).
    pub group: &'static str,
    pub version: &'static str,
    /// The kind's name in the API (`PipelineRun`).
    pub name: &'static str,
    pub plural: &'static str,
    /// Only objects with this label selector count.
    pub selector: Option<&'static str>,
    /// The `data.type` of its Tekton Results records (the newest first); empty for a kind
    /// the sweep does not read.
    pub results_data_types: &'static [&'static str],
    /// The events its objects make.
    pub events: &'static [EventName],
    /// The admission request that announces one of its objects, with the user who made
    /// it; `None` for a kind the webhook does not see.
    pub admitted: Option<Admitted>,
}

/// An admission request the webhook takes for a kind (the webhook configuration in
/// `deploy/` registers these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admitted {
    /// `CREATE`: the object is read from `request.object`.
    Create,
    /// `DELETE`: the object is read from `request.oldObject`; its removal starts now.
    Delete,
}

impl WatchedKind {
    /// The `kind` (plural `plural`) of API `group` (`""` for the core group) and
    /// `version`: every object counts, no Tekton Results records, no events until
    /// [`Self::events`] names them.
    const fn new(
        kind: Kind,
        group: &'static str,
        version: &'static str,
        plural: &'static str,
    ) -> Self {
        WatchedKind {
            kind,
            group,
            version,
            name: kind.as_str(),
            plural,
            selector: None,
            results_data_types: &[],
            events: &[],
            admitted: None,
        }
    }

    const fn admitted(mut self, admitted: Admitted) -> Self {
        self.admitted = Some(admitted);
        self
    }

    const fn selector(mut self, selector: &'static str) -> Self {
        self.selector = Some(selector);
        self
    }

    const fn results(mut self, data_types: &'static [&'static str]) -> Self {
        self.results_data_types = data_types;
        self
    }

    const fn events(mut self, events: &'static [EventName]) -> Self {
        self.events = events;
        self
    }
}

#[rustfmt::skip]
pub const PIPELINE_RUN: WatchedKind =
    WatchedKind::new(Kind::PipelineRun, "tekton.dev", "v1", "pipelineruns")
        // tekton.dev/v1 from current Results watchers; v1beta1 from older ones.
        .results(&["tekton.dev/v1.PipelineRun", "tekton.dev/v1beta1.PipelineRun"])
        .events(&[EventName::PipelineRunStarted, EventName::PipelineRunCompleted])
        .admitted(Admitted::Create);

#[rustfmt::skip]
pub const COMPONENT: WatchedKind =
    WatchedKind::new(Kind::Component, "appstudio.redhat.com", "v1alpha1", "components")
        .events(&[EventName::ComponentCreated])
        .admitted(Admitted::Create);

#[rustfmt::skip]
pub const TENANT_NAMESPACE: WatchedKind =
    WatchedKind::new(Kind::Namespace, "", "v1", "namespaces")
        .selector("konflux-ci.dev/type=tenant")
        .events(&[EventName::NamespaceCreated])
        .admitted(Admitted::Create);

#[rustfmt::skip]
pub const KONFLUX: WatchedKind =
    WatchedKind::new(Kind::Konflux, "konflux.konflux-ci.dev", "v1alpha1", "konfluxes")
        .events(&[
            EventName::OperatorDeploymentStarted,
            EventName::OperatorDeploymentCompleted,
            EventName::OperatorRemovalStarted,
        ])
        .admitted(Admitted::Delete);

/// Every kind that has events.
pub const WATCHED: [&WatchedKind; 4] = [&PIPELINE_RUN, &COMPONENT, &TENANT_NAMESPACE, &KONFLUX];

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    let doc: Obj<Wire<Items>> =
        serde_json::from_slice(json).map_err(|e| DecodeError::Syntax(redact(&e)))?;
    match doc {
        Obj::Wrong(found) => Err(DecodeError::NotAnObject(found)),
        Obj::Ok(wire) => {
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
    wire: Obj<Wire>,
}

impl<'de> Deserialize<'de> for Watched {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut wire: Obj<Wire> = Deserialize::deserialize(d)?;
        let resource_version = match &mut wire {
            Obj::Ok(Wire {
                metadata: Some(Obj::Ok(m)),
                ..
            }) => match m.resource_version.take() {
                Some(Str::Ok(rv)) => Some(rv),
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
            Obj::Wrong(found) => Decoded::Skipped(DecodeError::NotAnObject(found)),
            Obj::Ok(wire) => match wire.interpret_as(kind) {
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
fn redact(e: &serde_json::Error) -> String {
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
struct Wire<I = IgnoredAny> {
    api_version: Option<Str>,
    kind: Option<Str>,
    metadata: Option<Obj<WireMeta>>,
    spec: Option<Obj<WireSpec>>,
    status: Option<Obj<WireStatus>>,
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
        while let Some(item) = seq.next_element::<Obj<Wire<Items>>>()? {
            match item {
                Obj::Ok(wire) => wire.interpret_into(&mut out),
                Obj::Wrong(found) => out.push(Decoded::Skipped(DecodeError::NotAnObject(found))),
            }
        }
        Ok(Items::Ok(out))
    }
);

#[derive(Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireMeta {
    uid: Option<Str>,
    name: Option<Str>,
    namespace: Option<Str>,
    creation_timestamp: Option<Str>,
    deletion_timestamp: Option<Str>,
    resource_version: Option<Str>,
    labels: Option<WantedLabels>,
}

#[derive(Clone, Deserialize, Default)]
struct WireSpec {
    application: Option<Str>,
    telemetry: Option<Obj<WireTelemetry>>,
}

#[derive(Clone, Deserialize, Default)]
struct WireTelemetry {
    enabled: Option<Flag>,
}

#[derive(Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireStatus {
    start_time: Option<Str>,
    completion_time: Option<Str>,
    child_references: Option<Count>,
    conditions: Option<Conditions>,
}

/// `status.conditions`, scanned for the conditions events read: the first of type
/// `Succeeded` (a PipelineRun's) and the first of type `Ready` (the Konflux CR's). The
/// others are read one at a time and dropped, so a long list costs no more than one of
/// its entries.
#[derive(Clone, Default)]
struct Conditions {
    succeeded: Option<WireCondition>,
    ready: Option<WireCondition>,
    wrong: Option<JsonType>,
}

lenient!(Conditions, wrong_conditions, wrong: [bool, number, string, null, object],
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Conditions, A::Error> {
        let mut out = Conditions::default();
        while let Some(c) = seq.next_element::<Obj<WireCondition>>()? {
            // A condition that is not an object, or has no string type, is not one sought.
            let Obj::Ok(c) = c else { continue };
            let slot = match &c.type_ {
                Some(Str::Ok(t)) if t == "Succeeded" => &mut out.succeeded,
                Some(Str::Ok(t)) if t == "Ready" => &mut out.ready,
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
struct WireCondition {
    #[serde(rename = "type")]
    type_: Option<Str>,
    status: Option<Str>,
    reason: Option<Str>,
    last_transition_time: Option<Str>,
}

/// The three labels events read; every other label is skipped unread, however large.
#[derive(Clone, Default)]
struct WantedLabels {
    has_pipeline: bool,
    pipeline_type: Option<Str>,
    namespace_type: Option<Str>,
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
    fn string(&self, field: &'static str, v: Option<Str>) -> Result<Option<String>, DecodeError> {
        match v {
            None => Ok(None),
            Some(Str::Ok(s)) => Ok(Some(s)),
            Some(Str::Wrong(found)) => Err(self.wrong(field, "a string", found)),
        }
    }

    /// A string that reaches events as it is: at most [`MAX_FIELD_CHARS`] characters.
    fn sent(&self, field: &'static str, v: Option<Str>) -> Result<Option<String>, DecodeError> {
        match self.string(field, v)? {
            Some(s) if s.chars().count() > MAX_FIELD_CHARS => Err(DecodeError::TooLong {
                kind: self.kind,
                field,
            }),
            other => Ok(other),
        }
    }

    fn required(&self, field: &'static str, v: Option<Str>) -> Result<String, DecodeError> {
        self.sent(field, v)?
            .filter(|s| !s.is_empty())
            .ok_or(DecodeError::Missing {
                kind: self.kind,
                field,
            })
    }

    fn time(&self, field: &'static str, v: Option<Str>) -> Result<Option<Timestamp>, DecodeError> {
        match self.string(field, v)? {
            None => Ok(None),
            // An empty string is how some serialisers write an unset time.
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => Timestamp::parse(&s)
                .map(Some)
                .map_err(|_| DecodeError::Timestamp {
                    kind: self.kind,
                    field,
                }),
        }
    }

    fn object<T: Default>(&self, field: &'static str, v: Option<Obj<T>>) -> Result<T, DecodeError> {
        match v {
            None => Ok(T::default()),
            Some(Obj::Ok(t)) => Ok(t),
            Some(Obj::Wrong(found)) => Err(self.wrong(field, "an object", found)),
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

    fn meta(&self, v: Option<Obj<WireMeta>>) -> Result<(Meta, WantedLabels), DecodeError> {
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

impl Wire<Items> {
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

impl<I> Wire<I> {
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
                    Some(Count::Ok(n)) => n,
                    Some(Count::Wrong(found)) => {
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
                    Some(Flag::Ok(b)) => Some(b),
                    Some(Flag::Wrong(found)) => {
                        return Err(r.wrong("spec.telemetry.enabled", "a boolean", found));
                    }
                };
                Object::Konflux(Konflux {
                    meta,
                    ready,
                    telemetry_enabled,
                })
            }
            Kind::Other => return Ok(None),
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
    last_transition_time: Option<Str>,
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
        for w in WATCHED {
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
