//! What the capture paths (watch, sweep, admission) hand to the daemon's core: an object as
//! seen, by whom it was seen, and (from admission) who acted on it.

use crate::events::{Actor, Object};

/// Which capture path saw an object. A metric label, so a fixed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// kube-runtime watchers on the API server.
    Watch,
    /// The reconciliation sweep over Tekton Results.
    Sweep,
    /// The admission webhook.
    Admission,
    /// The daemon's own clock: heartbeats.
    Clock,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Watch => "watch",
            Source::Sweep => "sweep",
            Source::Admission => "admission",
            Source::Clock => "clock",
        }
    }
}

/// One sighting of an object.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub source: Source,
    pub object: Object,
    /// Who created the object (or deleted the Konflux CR), when admission saw it.
    pub actor: Option<Actor>,
}

/// Where capture paths send what they see. Bounded: a full channel slows the capture path,
/// it never grows memory.
pub type ObservationTx = tokio::sync::mpsc::Sender<Observation>;
pub type ObservationRx = tokio::sync::mpsc::Receiver<Observation>;
