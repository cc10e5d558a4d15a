//! The objects the event model reads, with only the fields it reads, and the one table of
//! watched kinds ([`WATCHED`]); reading them from JSON is [`mod@super::decode`]. The domain types
//! ([`PipelineRun`], [`Component`], [`Namespace`], [`Konflux`]) have nothing of Kubernetes'
//! client types in them, so the mapping to events is tested with plain data.

use super::EventName;
use super::lenient::JsonType;
use super::time::Timestamp;
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
    /// Only counted ([`Counted`]), never watched.
    Application,
    IntegrationTestScenario,
    ReleasePlan,
    Release,
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
            Kind::Application => "Application",
            Kind::IntegrationTestScenario => "IntegrationTestScenario",
            Kind::ReleasePlan => "ReleasePlan",
            Kind::Release => "Release",
            Kind::Other => "object",
        }
    }

    /// Its entry of [`WATCHED`].
    pub fn watched(self) -> Option<&'static WatchedKind> {
        WATCHED.iter().copied().find(|w| w.kind == self)
    }

    /// The kind an `apiVersion` and `kind` name, if it has events (a watched entry of
    /// [`WATCHED`]).
    pub fn of(api_version: &str, kind: &str) -> Option<Kind> {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        watched()
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
    /// Watched (its events, RBAC get, list, watch); else only counted (RBAC list).
    pub watched: bool,
    /// How the `Usage Summary` counts it, if it does.
    pub counted: Option<Counted>,
}

/// How the `Usage Summary` counts a kind, at each window's end, page by page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// The objects there are (that match the selector): metadata only.
    Total,
    /// The objects completed in the window, by outcome: the objects themselves, as their
    /// status says how they ended.
    CompletedByOutcome,
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
            watched: true,
            counted: None,
        }
    }

    /// A kind only counted, never watched.
    const fn counted_only(mut self, counted: Counted) -> Self {
        self.watched = false;
        self.counted = Some(counted);
        self
    }

    const fn counted(mut self, counted: Counted) -> Self {
        self.counted = Some(counted);
        self
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
        .admitted(Admitted::Create)
        .counted(Counted::Total);

#[rustfmt::skip]
pub const TENANT_NAMESPACE: WatchedKind =
    WatchedKind::new(Kind::Namespace, "", "v1", "namespaces")
        .selector("konflux-ci.dev/type=tenant")
        .events(&[EventName::NamespaceCreated])
        .admitted(Admitted::Create)
        .counted(Counted::Total);

#[rustfmt::skip]
pub const KONFLUX: WatchedKind =
    WatchedKind::new(Kind::Konflux, "konflux.konflux-ci.dev", "v1alpha1", "konfluxes")
        .events(&[
            EventName::OperatorDeploymentStarted,
            EventName::OperatorDeploymentCompleted,
            EventName::OperatorRemovalStarted,
        ])
        .admitted(Admitted::Delete);

/// A kind of `appstudio.redhat.com` that is only counted, for the `Usage Summary`.
const fn appstudio_counted(
    kind: Kind,
    version: &'static str,
    plural: &'static str,
    counted: Counted,
) -> WatchedKind {
    WatchedKind::new(kind, "appstudio.redhat.com", version, plural).counted_only(counted)
}

#[rustfmt::skip]
pub const APPLICATION: WatchedKind =
    appstudio_counted(Kind::Application, "v1alpha1", "applications", Counted::Total);
#[rustfmt::skip]
pub const INTEGRATION_TEST_SCENARIO: WatchedKind =
    appstudio_counted(Kind::IntegrationTestScenario, "v1beta2", "integrationtestscenarios", Counted::Total);
#[rustfmt::skip]
pub const RELEASE_PLAN: WatchedKind =
    appstudio_counted(Kind::ReleasePlan, "v1alpha1", "releaseplans", Counted::Total);
#[rustfmt::skip]
pub const RELEASE: WatchedKind =
    appstudio_counted(Kind::Release, "v1alpha1", "releases", Counted::CompletedByOutcome);

/// Every kind the daemon reads: the watched ones (events), then the ones only counted
/// (the `Usage Summary`).
pub const WATCHED: [&WatchedKind; 8] = [
    &PIPELINE_RUN,
    &COMPONENT,
    &TENANT_NAMESPACE,
    &KONFLUX,
    &APPLICATION,
    &INTEGRATION_TEST_SCENARIO,
    &RELEASE_PLAN,
    &RELEASE,
];

/// The kinds of [`WATCHED`] that are watched (they have events).
pub fn watched() -> impl Iterator<Item = &'static WatchedKind> {
    WATCHED.iter().copied().filter(|w| w.watched)
}

/// The kinds of [`WATCHED`] the `Usage Summary` counts.
pub fn counted() -> impl Iterator<Item = (&'static WatchedKind, Counted)> {
    WATCHED
        .iter()
        .copied()
        .filter_map(|w| Some((w, w.counted?)))
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
