//! Who the cluster is, as far as events say: a hashed cluster id and optional versions.

use super::hash::short_hash;
use super::object::MAX_FIELD_CHARS;

fn sendable(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= MAX_FIELD_CHARS
}

/// The salt of every hash when no cluster id is known, as the old bridge did.
pub const ANONYMOUS_CLUSTER: &str = "anonymous";

/// The cluster identity every event carries. Built once (and again when the
/// `konflux-public-info` ConfigMap changes); cheap to clone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterIdentity {
    cluster_id: Option<String>,
    cluster_id_hash: Option<String>,
    konflux_version: Option<String>,
    kubernetes_version: Option<String>,
}

impl ClusterIdentity {
    /// Empty strings count as unknown, as the old bridge's `${VAR:-}` did; so do versions
    /// longer than [`MAX_FIELD_CHARS`] (they are sent as they are; the cluster id is only
    /// hashed).
    pub fn new(
        cluster_id: Option<String>,
        konflux_version: Option<String>,
        kubernetes_version: Option<String>,
    ) -> Self {
        let cluster_id = cluster_id.filter(|s| !s.is_empty());
        Self {
            cluster_id_hash: cluster_id.as_deref().map(|c| short_hash(&[c])),
            cluster_id,
            konflux_version: konflux_version.filter(|s| sendable(s)),
            kubernetes_version: kubernetes_version.filter(|s| sendable(s)),
        }
    }

    /// `C` of the catalogue's hashes.
    pub fn salt(&self) -> &str {
        self.cluster_id.as_deref().unwrap_or(ANONYMOUS_CLUSTER)
    }

    pub fn cluster_id_hash(&self) -> Option<&str> {
        self.cluster_id_hash.as_deref()
    }

    pub fn konflux_version(&self) -> Option<&str> {
        self.konflux_version.as_deref()
    }

    pub fn kubernetes_version(&self) -> Option<&str> {
        self.kubernetes_version.as_deref()
    }

    pub fn has_cluster_id(&self) -> bool {
        self.cluster_id.is_some()
    }

    /// `h(namespace + ":" + C)`, with `unknown` for a missing namespace.
    pub fn namespace_hash(&self, namespace: Option<&str>) -> String {
        short_hash(&[namespace.unwrap_or("unknown"), self.salt()])
    }

    /// `h(username + ":" + C)`: the `actorHash` of an event whose actor is known.
    pub fn user_hash(&self, username: &str) -> String {
        short_hash(&[username, self.salt()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_overlong_versions_are_unknown() {
        let long = "v".repeat(MAX_FIELD_CHARS + 1);
        let i = ClusterIdentity::new(Some("c".into()), Some(String::new()), Some(long));
        assert_eq!((i.konflux_version(), i.kubernetes_version()), (None, None));
        let ok = "v".repeat(MAX_FIELD_CHARS);
        let i = ClusterIdentity::new(None, Some(ok.clone()), Some("v1.34".into()));
        assert_eq!(i.konflux_version(), Some(ok.as_str()));
        assert_eq!(i.kubernetes_version(), Some("v1.34"));
    }
}
