//! The cluster identity events carry: cluster id and versions, resolved at start and again
//! when the `konflux-public-info` ConfigMap, read on a timer, has changed
//! (`shared/specs/events.md`).

use crate::events::ClusterIdentity;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde::Deserialize;
use tracing::{debug, info, warn};

pub const PUBLIC_INFO_NAMESPACE: &str = "konflux-info";
pub const PUBLIC_INFO_NAME: &str = "konflux-public-info";

/// What was configured (flags or environment); each wins over what the cluster says.
#[derive(Clone, Debug, Default)]
pub struct Configured {
    pub cluster_id: Option<String>,
    pub konflux_version: Option<String>,
    pub kubernetes_version: Option<String>,
}

/// What the cluster says, apart from `konflux-public-info`; read once at start.
#[derive(Clone, Debug, Default)]
pub struct ClusterFacts {
    pub openshift_cluster_id: Option<String>,
    pub kube_system_uid: Option<String>,
    pub server_version: Option<String>,
}

/// `info.json` of `konflux-public-info`; only the keys events use.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PublicInfo {
    pub cluster_id: Option<String>,
    pub konflux_version: Option<String>,
    pub kubernetes_version: Option<String>,
}

impl PublicInfo {
    /// From the ConfigMap; a missing or malformed `info.json` counts as empty (logged).
    pub fn from_config_map(cm: &ConfigMap) -> Self {
        let Some(text) = cm.data.as_ref().and_then(|d| d.get("info.json")) else {
            return Self::default();
        };
        serde_json::from_str(text).unwrap_or_else(|e| {
            warn!("{PUBLIC_INFO_NAMESPACE}/{PUBLIC_INFO_NAME}: info.json is not usable ({e}); ignoring it");
            Self::default()
        })
    }
}

/// The catalogue's order: configured, `info.json`, OpenShift's ClusterVersion, the
/// `kube-system` namespace's uid.
pub fn combine(
    configured: &Configured,
    info: &PublicInfo,
    facts: &ClusterFacts,
) -> ClusterIdentity {
    let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    ClusterIdentity::new(
        non_empty(&configured.cluster_id)
            .or_else(|| non_empty(&info.cluster_id))
            .or_else(|| non_empty(&facts.openshift_cluster_id))
            .or_else(|| non_empty(&facts.kube_system_uid)),
        non_empty(&configured.konflux_version).or_else(|| non_empty(&info.konflux_version)),
        non_empty(&configured.kubernetes_version)
            .or_else(|| non_empty(&info.kubernetes_version))
            .or_else(|| non_empty(&facts.server_version)),
    )
}

/// Reads the facts the daemon may need. Each one that cannot be read (not OpenShift, no
/// RBAC) is left out, with a debug line.
pub async fn cluster_facts(client: &Client) -> ClusterFacts {
    let mut facts = ClusterFacts::default();
    let gvk = GroupVersionKind::gvk("config.openshift.io", "v1", "ClusterVersion");
    let cv: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk));
    match cv.get_opt("version").await {
        Ok(Some(o)) => {
            facts.openshift_cluster_id = o.data["spec"]["clusterID"].as_str().map(str::to_owned);
        }
        Ok(None) => {}
        Err(e) => debug!("no ClusterVersion: {e}"),
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.get_opt("kube-system").await {
        Ok(Some(ns)) => facts.kube_system_uid = ns.metadata.uid,
        Ok(None) => {}
        Err(e) => warn!("cannot read namespace kube-system for the cluster id: {e}"),
    }
    match client.apiserver_version().await {
        Ok(v) => facts.server_version = Some(v.git_version),
        Err(e) => debug!("no server version: {e}"),
    }
    facts
}

/// `konflux-public-info` read with one `get`, which Konflux allows every authenticated
/// user (no Role of this daemon in `konflux-info`): empty when absent, the error when it
/// cannot be read (the caller keeps what it had).
pub async fn read_public_info(client: &Client) -> Result<PublicInfo, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), PUBLIC_INFO_NAMESPACE);
    Ok(api
        .get_opt(PUBLIC_INFO_NAME)
        .await?
        .map(|cm| PublicInfo::from_config_map(&cm))
        .unwrap_or_default())
}

/// Reads `konflux-public-info`, logging a failure once (a warning) until a read succeeds
/// again (an info line): forbidden or unreachable, the daemon keeps what it had and tries
/// again on the next tick.
#[derive(Debug, Default)]
pub struct PublicInfoReader {
    failing: bool,
}

impl PublicInfoReader {
    /// What the ConfigMap holds now, `None` when it cannot be read.
    pub async fn read(&mut self, client: &Client) -> Option<PublicInfo> {
        match read_public_info(client).await {
            Ok(info) => {
                if std::mem::take(&mut self.failing) {
                    info!("{PUBLIC_INFO_NAMESPACE}/{PUBLIC_INFO_NAME} can be read again");
                }
                Some(info)
            }
            Err(e) => {
                if !std::mem::replace(&mut self.failing, true) {
                    warn!(
                        "cannot read {PUBLIC_INFO_NAMESPACE}/{PUBLIC_INFO_NAME} ({}); the cluster \
                         identity goes without it until a later read succeeds",
                        read_error(&e)
                    );
                }
                None
            }
        }
    }
}

/// The status the API server answered with, else the kind of failure: not its message,
/// which names the ServiceAccount.
fn read_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => {
            "403 Forbidden: Konflux's Role konflux-public-info-view-role and its binding to \
             system:authenticated are missing"
                .to_owned()
        }
        kube::Error::Api(s) => format!("{} {}", s.code, s.reason),
        other => other.to_string(),
    }
}

/// Reads `konflux-public-info` every `every` (at least a second) until `stop`, calling
/// `changed` with what it holds each time that differs from the last answer (`first`,
/// what the caller started from). A failed read keeps the last answer.
pub async fn reread_public_info(
    client: Client,
    mut reader: PublicInfoReader,
    first: PublicInfo,
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
    mut changed: impl FnMut(&PublicInfo),
) {
    let every = every.max(std::time::Duration::from_secs(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = first;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Some(info) = reader.read(&client).await
            && info != last
        {
            changed(&info);
            last = info;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_of_precedence() {
        let facts = ClusterFacts {
            openshift_cluster_id: Some("ocp".into()),
            kube_system_uid: Some("uid".into()),
            server_version: Some("v1.34.4".into()),
        };
        let none = combine(&Configured::default(), &PublicInfo::default(), &facts);
        assert_eq!(none.salt(), "ocp");
        assert_eq!(none.kubernetes_version(), Some("v1.34.4"));
        let k8s = combine(
            &Configured::default(),
            &PublicInfo::default(),
            &ClusterFacts {
                openshift_cluster_id: None,
                ..facts.clone()
            },
        );
        assert_eq!(k8s.salt(), "uid");
        let info = PublicInfo {
            cluster_id: Some("info".into()),
            konflux_version: Some("v0.1".into()),
            kubernetes_version: Some("v1.33.1".into()),
        };
        let with_info = combine(&Configured::default(), &info, &facts);
        assert_eq!(
            (with_info.salt(), with_info.konflux_version()),
            ("info", Some("v0.1"))
        );
        assert_eq!(with_info.kubernetes_version(), Some("v1.33.1"));
        let configured = Configured {
            cluster_id: Some("cfg".into()),
            konflux_version: Some(String::new()),
            kubernetes_version: None,
        };
        let c = combine(&configured, &info, &facts);
        assert_eq!((c.salt(), c.konflux_version()), ("cfg", Some("v0.1")));
    }

    #[test]
    fn malformed_info_json_is_empty() {
        let cm = ConfigMap {
            data: Some([("info.json".to_owned(), "{not json".to_owned())].into()),
            ..ConfigMap::default()
        };
        assert_eq!(PublicInfo::from_config_map(&cm), PublicInfo::default());
    }
}
