//! `Operator Upgrade Completed`: the Konflux version changed. Pure: the rule that says
//! whether a version seen is an upgrade, and the event.

use crate::events::{ClusterIdentity, Event, EventName, Properties, Timestamp, hash};

/// Segment's bound on a `messageId` (`shared/specs/segment-api.md`: under 100 characters).
const MAX_MESSAGE_ID_CHARS: usize = 99;

/// What the last version seen (kept in the state ConfigMap) and the version seen now
/// imply: an upgrade from one to the other, or nothing. The first version ever seen is no
/// upgrade (nothing to compare it with); an unknown version now changes nothing (the
/// ConfigMap may be missing for a while, the last version stays).
pub fn upgrade<'a>(last: Option<&'a str>, now: Option<&'a str>) -> Option<(&'a str, &'a str)> {
    match (last, now) {
        (Some(from), Some(to)) if from != to => Some((from, to)),
        _ => None,
    }
}

/// `<clusterIdHash>-upgrade-<from>-<to>` (`upgrade-<from>-<to>` without a cluster id):
/// deterministic, so a restart or a second replica that sees the same change gives the
/// same id. Should the versions make it 100 characters or more (a version is at most 63),
/// `h(from:to)` stands for the pair: still deterministic, and within Segment's bound.
pub fn message_id(identity: &ClusterIdentity, from: &str, to: &str) -> String {
    let id = |pair: &str| match identity.cluster_id_hash() {
        Some(hash) => format!("{hash}-upgrade-{pair}"),
        None => format!("upgrade-{pair}"),
    };
    let plain = id(&format!("{from}-{to}"));
    if plain.chars().count() <= MAX_MESSAGE_ID_CHARS {
        plain
    } else {
        id(&hash::short_hash(&[from, to]))
    }
}

/// The upgrade from `from` to `to`, seen at `seen` (whole seconds).
pub fn event(identity: &ClusterIdentity, from: &str, to: &str, seen: Timestamp) -> Event {
    let properties = Properties {
        from_version: Some(from.to_owned()),
        to_version: Some(to.to_owned()),
        ..Properties::common(identity)
    };
    let id = message_id(identity, from, to);
    Event::new(
        EventName::OperatorUpgradeCompleted,
        id,
        seen,
        identity,
        properties,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(cluster: Option<&str>) -> ClusterIdentity {
        ClusterIdentity::new(cluster.map(str::to_owned), Some("v0.5".into()), None)
    }

    #[test]
    fn only_a_change_between_two_known_versions_is_an_upgrade() {
        assert_eq!(upgrade(Some("v0.4"), Some("v0.5")), Some(("v0.4", "v0.5")));
        assert_eq!(upgrade(Some("v0.5"), Some("v0.4")), Some(("v0.5", "v0.4")));
        assert_eq!(upgrade(Some("v0.5"), Some("v0.5")), None);
        assert_eq!(upgrade(None, Some("v0.5")), None, "the first version seen");
        assert_eq!(upgrade(Some("v0.5"), None), None, "version unknown for now");
    }

    #[test]
    fn the_event_names_both_versions_and_its_id_is_deterministic() {
        let i = identity(Some("c"));
        let seen = Timestamp::from_unix_seconds(1_767_225_600).unwrap();
        let e = event(&i, "v0.4", "v0.5", seen.clone());
        let hash = i.cluster_id_hash().unwrap();
        assert_eq!(e.message_id, format!("{hash}-upgrade-v0.4-v0.5"));
        assert_eq!(e.name.as_str(), "Operator Upgrade Completed");
        assert_eq!(e.timestamp, seen);
        let json: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        let p = &json["properties"];
        assert_eq!(
            (p["fromVersion"].as_str(), p["toVersion"].as_str()),
            (Some("v0.4"), Some("v0.5"))
        );
        assert_eq!(p["konfluxVersion"], "v0.5");
        assert!(p.get("actorHash").is_none());
        let later = Timestamp::from_unix_seconds(1_767_229_200).unwrap();
        assert_eq!(event(&i, "v0.4", "v0.5", later).message_id, e.message_id);
        assert_eq!(
            event(&identity(None), "v0.4", "v0.5", seen).message_id,
            "upgrade-v0.4-v0.5"
        );
    }

    #[test]
    fn long_versions_keep_the_id_under_100_characters() {
        let i = identity(Some("c"));
        let (a, b) = ("a".repeat(63), "b".repeat(63));
        let id = message_id(&i, &a, &b);
        assert!(id.chars().count() < 100, "{id}");
        assert_ne!(id, message_id(&i, &b, &a));
        assert_eq!(id, message_id(&i, &a, &b));
    }
}
