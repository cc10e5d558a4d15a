//! Where a Component becomes `Component Created`.

use super::hash::short_hash;
use super::object::Component;
use super::{ClusterIdentity, Event, EventName, Properties};

pub fn created_id(uid: &str) -> String {
    format!("{uid}-component-created")
}

pub fn events(c: &Component, identity: &ClusterIdentity) -> Option<Event> {
    let created = c.meta.creation_timestamp.clone()?;
    let namespace = c.meta.namespace.as_deref().unwrap_or("unknown");
    let name = c.meta.name.as_deref().unwrap_or("");
    let salt = identity.salt();
    let properties = Properties {
        component_hash: Some(short_hash(&[name, namespace, salt])),
        application_hash: Some(short_hash(&[
            c.application.as_deref().unwrap_or(""),
            namespace,
            salt,
        ])),
        ..Properties::in_namespace(c.meta.namespace.as_deref(), identity)
    };
    let id = created_id(&c.meta.uid);
    Some(Event::new(
        EventName::ComponentCreated,
        id,
        created,
        identity,
        properties,
    ))
}
