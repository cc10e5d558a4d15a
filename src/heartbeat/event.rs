//! `Segment Bridge Heartbeat`: the daemon is alive, once every `heartbeatInterval`.

use crate::events::{ClusterIdentity, Event, EventName, Properties, Timestamp};

/// The heartbeat at `now` (whole seconds). Only the optional properties.
pub fn event(identity: &ClusterIdentity, now: Timestamp) -> Event {
    let message_id = match identity.cluster_id_hash() {
        Some(hash) => format!("{hash}-heartbeat-{now}"),
        None => format!("heartbeat-{now}"),
    };
    let properties = Properties::common(identity);
    Event::new(EventName::Heartbeat, message_id, now, identity, properties)
}
