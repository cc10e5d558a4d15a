//! Where a tenant Namespace becomes `Namespace Created`.

use super::object::Namespace;
use super::{ClusterIdentity, Event, EventName, Properties};

pub fn created_id(uid: &str) -> String {
    format!("{uid}-namespace-created")
}

/// A tenant namespace's creation (only tenants count: [`super::Object::counts`]).
pub fn events(ns: &Namespace, identity: &ClusterIdentity) -> Option<Event> {
    let created = ns.meta.creation_timestamp.clone()?;
    // A namespace's own name is its namespace.
    let properties = Properties::in_namespace(ns.meta.name.as_deref(), identity);
    let id = created_id(&ns.meta.uid);
    Some(Event::new(
        EventName::NamespaceCreated,
        id,
        created,
        identity,
        properties,
    ))
}
