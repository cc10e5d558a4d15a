//! The event model: Segment `track` events, exactly as `shared/specs/events.md` defines them.
//!
//! Pure functions, no I/O: an object decoded by [`decode::decode`] plus a
//! [`ClusterIdentity`] gives its events through [`events_of`]. One file per source:
//! [`pipelinerun`], [`component`], [`namespace`], [`konflux`]; the heartbeat in [`crate::heartbeat`], the upgrade in [`crate::upgrade`].

pub mod component;
pub mod hash;

pub mod decode;
pub mod identity;
pub mod konflux;
pub(crate) mod lenient;
pub mod namespace;
pub mod object;
pub mod pipelinerun;
pub mod time;
pub mod usage;

pub use decode::{Decoded, Watched, decode, decode_one};
pub use identity::ClusterIdentity;
pub use lenient::JsonType;
pub use object::{DecodeError, Kind, Object};
pub use time::Timestamp;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// The events an object implies now: none for an object that does not count
/// ([`Object::counts`]). Events whose time is not known yet (a run still going, a Konflux
/// not yet Ready) are left out: they come when the object gets that time.
pub fn events_of(object: &Object, identity: &ClusterIdentity) -> Vec<Event> {
    if !object.counts() {
        return Vec::new();
    }
    match object {
        Object::PipelineRun(run) => pipelinerun::events(run, identity),
        Object::Component(c) => component::events(c, identity).into_iter().collect(),
        Object::Namespace(ns) => namespace::events(ns, identity).into_iter().collect(),
        Object::Konflux(k) => konflux::events(k, identity),
    }
}

/// Every event name of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventName {
    PipelineRunStarted,
    PipelineRunCompleted,
    ComponentCreated,
    NamespaceCreated,
    OperatorDeploymentStarted,
    OperatorDeploymentCompleted,
    OperatorRemovalStarted,
    OperatorUpgradeCompleted,
    UsageSummary,
    Heartbeat,
}

impl EventName {
    pub const ALL: [EventName; 10] = [
        EventName::PipelineRunStarted,
        EventName::PipelineRunCompleted,
        EventName::ComponentCreated,
        EventName::NamespaceCreated,
        EventName::OperatorDeploymentStarted,
        EventName::OperatorDeploymentCompleted,
        EventName::OperatorRemovalStarted,
        EventName::OperatorUpgradeCompleted,
        EventName::UsageSummary,
        EventName::Heartbeat,
    ];

    /// Whether the user admission saw act goes on the event: the creation of the object,
    /// a run's own events, and the Konflux CR's removal; not a deployment the deleting
    /// user did not start, nor what the daemon's clock makes (the heartbeat, an upgrade
    /// seen).
    pub fn takes_actor(self) -> bool {
        !matches!(
            self,
            EventName::OperatorDeploymentStarted
                | EventName::OperatorDeploymentCompleted
                | EventName::OperatorUpgradeCompleted
                | EventName::UsageSummary
                | EventName::Heartbeat
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventName::PipelineRunStarted => "PipelineRun Started",
            EventName::PipelineRunCompleted => "PipelineRun Completed",
            EventName::ComponentCreated => "Component Created",
            EventName::NamespaceCreated => "Namespace Created",
            EventName::OperatorDeploymentStarted => "Operator Deployment Started",
            EventName::OperatorDeploymentCompleted => "Operator Deployment Completed",
            EventName::OperatorRemovalStarted => "Operator Removal Started",
            EventName::OperatorUpgradeCompleted => "Operator Upgrade Completed",
            EventName::UsageSummary => "Usage Summary",
            EventName::Heartbeat => "Segment Bridge Heartbeat",
        }
    }
}

/// The version of `schema/events.json` that every event validates against, sent as the
/// property `schemaVersion` of every event (`tests/schema.rs` checks the two agree).
pub const SCHEMA_VERSION: &str = "1.0.0";

/// Who acted, where admission saw it: the hashed user and what kind of user it was. It
/// travels as the properties `actorHash` and `actorType`, never as Segment's `userId`:
/// Amplitude would give the cluster's whole history (its device) to that one user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// `h(username + ":" + C)`.
    pub user_hash: String,
    pub kind: ActorType,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorType {
    User,
    #[serde(rename = "serviceaccount")]
    ServiceAccount,
    System,
}

impl ActorType {
    /// `system:serviceaccount:*` is a service account, any other `system:` user the
    /// system, anyone else a person.
    pub fn of_username(username: &str) -> Self {
        if username.starts_with("system:serviceaccount:") {
            ActorType::ServiceAccount
        } else if username.starts_with("system:") {
            ActorType::System
        } else {
            ActorType::User
        }
    }
}

impl Actor {
    pub fn new(username: &str, identity: &ClusterIdentity) -> Self {
        Self {
            user_hash: identity.user_hash(username),
            kind: ActorType::of_username(username),
        }
    }
}

/// A Segment `track` event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub name: EventName,
    pub message_id: String,
    pub timestamp: Timestamp,
    /// `context.device.id`: the cluster hash, when a cluster id is known.
    pub device_id: Option<String>,
    pub actor: Option<Actor>,
    pub properties: Properties,
}

/// Every property any event has; each event sets the ones the catalogue lists for it.
/// `None` leaves a property out; `Some(None)` sends JSON `null`.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Properties {
    /// On every event: the cluster, hashed, and the versions it runs.
    pub cluster_id_hash: Option<String>,
    pub konflux_version: Option<String>,
    pub kubernetes_version: Option<String>,
    /// The object's place, each name hashed with the cluster's salt.
    pub namespace_hash: Option<String>,
    pub component_hash: Option<String>,
    pub application_hash: Option<String>,
    /// PipelineRuns: what ran, how, and how it ended.
    pub task_count: Option<usize>,
    pub has_pipeline_label: Option<bool>,
    pub pipeline_type: Option<Option<String>>,
    pub start_time: Option<Option<String>>,
    pub completion_time: Option<String>,
    pub duration_seconds: Option<Option<i64>>,
    pub status: Option<String>,
    /// `Operator Upgrade Completed`: the Konflux version before and after.
    pub from_version: Option<String>,
    pub to_version: Option<String>,
    /// `Usage Summary`'s counts (all absent on other events).
    #[serde(flatten)]
    pub usage: usage::Usage,
}

impl Properties {
    /// The optional properties every event carries: cluster hash and versions, when known.
    pub fn common(identity: &ClusterIdentity) -> Self {
        Self {
            cluster_id_hash: identity.cluster_id_hash().map(str::to_owned),
            konflux_version: identity.konflux_version().map(str::to_owned),
            kubernetes_version: identity.kubernetes_version().map(str::to_owned),
            ..Self::default()
        }
    }
}

impl Properties {
    /// The common properties and the hash of the namespace an object is in (`None`: the
    /// hash of `unknown`, as for cluster-scoped objects).
    pub fn in_namespace(namespace: Option<&str>, identity: &ClusterIdentity) -> Self {
        Self {
            namespace_hash: Some(identity.namespace_hash(namespace)),
            ..Self::common(identity)
        }
    }

    /// These properties and the four of a completion: when it started (`null` when not
    /// known) and completed, how long it took in whole seconds, and how it ended (`Unknown`
    /// when it does not say).
    pub fn completed(
        self,
        start: Option<&Timestamp>,
        done: &Timestamp,
        status: Option<&str>,
    ) -> Self {
        Self {
            start_time: Some(start.map(|t| t.as_str().to_owned())),
            completion_time: Some(done.as_str().to_owned()),
            duration_seconds: Some(start.map(|s| s.whole_seconds_until(done))),
            status: Some(status.unwrap_or("Unknown").to_owned()),
            ..self
        }
    }
}

impl Event {
    /// An event of the cluster `identity` with these properties (built on
    /// [`Properties::common`]).
    pub fn new(
        name: EventName,
        message_id: String,
        timestamp: Timestamp,
        identity: &ClusterIdentity,
        properties: Properties,
    ) -> Self {
        Self {
            name,
            message_id,
            timestamp,
            device_id: identity.cluster_id_hash().map(str::to_owned),
            actor: None,
            properties,
        }
    }

    /// Sets who acted (from admission): the properties `actorHash` and `actorType`.
    pub fn with_actor(mut self, actor: Option<Actor>) -> Self {
        self.set_actor(actor);
        self
    }

    pub fn set_actor(&mut self, actor: Option<Actor>) {
        self.actor = actor;
    }

    /// The event as one line of JSON, as Segment receives it.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: every key is a string, every value plain.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Library {
            name: &'static str,
            version: &'static str,
        }
        #[derive(Serialize)]
        struct Device<'a> {
            id: &'a str,
        }
        #[derive(Serialize)]
        struct Context<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            device: Option<Device<'a>>,
            library: Library,
        }
        /// An event's properties: the schema's version, the event's own, and the actor
        /// where admission saw it.
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct AllProperties<'a> {
            schema_version: &'static str,
            #[serde(flatten)]
            properties: &'a Properties,
            #[serde(skip_serializing_if = "Option::is_none")]
            actor_hash: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            actor_type: Option<ActorType>,
        }
        // No `userId`, ever: the cluster is Amplitude's device, the actor is a property.
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", "track")?;
        m.serialize_entry("anonymousId", "anonymous")?;
        m.serialize_entry("messageId", &self.message_id)?;
        m.serialize_entry("timestamp", self.timestamp.as_str())?;
        m.serialize_entry("event", self.name.as_str())?;
        m.serialize_entry(
            "context",
            &Context {
                device: self.device_id.as_deref().map(|id| Device { id }),
                library: Library {
                    name: crate::LIBRARY_NAME,
                    version: crate::LIBRARY_VERSION,
                },
            },
        )?;
        m.serialize_entry(
            "properties",
            &AllProperties {
                schema_version: SCHEMA_VERSION,
                properties: &self.properties,
                actor_hash: self.actor.as_ref().map(|a| a.user_hash.as_str()),
                actor_type: self.actor.as_ref().map(|a| a.kind),
            },
        )?;
        m.end()
    }
}
