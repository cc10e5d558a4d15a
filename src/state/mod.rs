//! The record of produced events, kept in a ConfigMap across restarts so that a restart
//! within the lookback produces nothing twice. Losing it costs only duplicates, which
//! Segment drops by `messageId`.
//!
//! Beside it, the sweep's watermark ([`Coverage`]: `sweepCoveredFrom`, `sweepCoveredTo`,
//! RFC 3339), saved at the same moments, so a restart resumes incremental sweeps. Losing
//! it (or a value that does not parse) costs one sweep of the whole lookback.

pub mod checkpoint;

use crate::sweep::Coverage;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};

/// 12 bytes an entry; a ConfigMap holds 1 MiB, base64 makes 4 of 3.
pub const MAX_ENTRIES: usize = 60_000;
const KEY: &str = "produced";
const COVERED_FROM: &str = "sweepCoveredFrom";
const COVERED_TO: &str = "sweepCoveredTo";
/// The last Konflux version seen ([`crate::upgrade`]), written by [`save_konflux_version`].
pub const LAST_KONFLUX_VERSION: &str = "lastKonfluxVersion";
/// Its field manager: not the record's, so that applying one leaves the other alone.
const VERSION_MANAGER: &str = "konflux-telemetry-upgrade";

/// What a previous run left.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Saved {
    pub produced: Option<Vec<u8>>,
    pub sweep: Option<Coverage>,
    /// The last Konflux version seen.
    pub konflux_version: Option<String>,
}

pub async fn load(client: &Client, namespace: &str, name: &str) -> Saved {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(Some(cm)) => Saved {
            sweep: cm.data.as_ref().and_then(coverage_from),
            konflux_version: cm
                .data
                .as_ref()
                .and_then(|d| d.get(LAST_KONFLUX_VERSION))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty()),
            produced: cm.binary_data.and_then(|mut b| b.remove(KEY)).map(|b| b.0),
        },
        Ok(None) => Saved::default(),
        Err(e) => {
            tracing::warn!(
                "cannot read the record of produced events from ConfigMap {namespace}/{name}: {e}"
            );
            Saved::default()
        }
    }
}

/// The watermark in a state ConfigMap's `data`; `None` when absent or unreadable.
pub fn coverage_from(data: &std::collections::BTreeMap<String, String>) -> Option<Coverage> {
    let at = |k: &str| data.get(k)?.trim().parse::<jiff::Timestamp>().ok();
    let (from, to) = (at(COVERED_FROM), at(COVERED_TO));
    match (from, to) {
        (Some(from), Some(to)) if from <= to => Some(Coverage { from, to }),
        (None, None) => None,
        _ => {
            tracing::warn!(
                "the saved sweep watermark is unreadable; the next sweep reads the whole lookback"
            );
            None
        }
    }
}

/// The `data` that keeps `coverage`.
pub fn coverage_data(coverage: Option<Coverage>) -> std::collections::BTreeMap<String, String> {
    coverage
        .map(|c| {
            [
                (COVERED_FROM.to_owned(), c.from.to_string()),
                (COVERED_TO.to_owned(), c.to.to_string()),
            ]
            .into()
        })
        .unwrap_or_default()
}

pub async fn save(
    client: &Client,
    namespace: &str,
    name: &str,
    bytes: Vec<u8>,
    sweep: Option<Coverage>,
) -> Result<(), kube::Error> {
    let labels = [(
        "app.kubernetes.io/name".to_owned(),
        "konflux-telemetry".to_owned(),
    )];
    let cm = ConfigMap {
        metadata: ObjectMeta {
            labels: Some(labels.into()),
            ..ObjectMeta::default()
        },
        binary_data: Some([(KEY.to_owned(), ByteString(bytes))].into()),
        data: Some(coverage_data(sweep)),
        ..ConfigMap::default()
    };
    apply(client, namespace, name, "konflux-telemetry", cm).await
}

/// Server-side applies `cm` as `namespace/name` for field manager `manager`, taking the
/// fields it sets (its name and namespace filled in here).
async fn apply(
    client: &Client,
    namespace: &str,
    name: &str,
    manager: &str,
    mut cm: ConfigMap,
) -> Result<(), kube::Error> {
    cm.metadata.name = Some(name.to_owned());
    cm.metadata.namespace = Some(namespace.to_owned());
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    api.patch(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&cm),
    )
    .await
    .map(|_| ())
}

/// Keeps `version` as the last Konflux version seen, under its own field manager (the
/// record's saves leave it alone).
pub async fn save_konflux_version(
    client: &Client,
    namespace: &str,
    name: &str,
    version: &str,
) -> Result<(), kube::Error> {
    let cm = ConfigMap {
        data: Some([(LAST_KONFLUX_VERSION.to_owned(), version.to_owned())].into()),
        ..ConfigMap::default()
    };
    apply(client, namespace, name, VERSION_MANAGER, cm).await
}

/// Who holds the state: the running instance's identity (the Pod's name, then a
/// process-unique suffix), written by [`claim`].
pub const HOLDER_ANNOTATION: &str = "konflux-telemetry.konflux-ci.dev/holder";
/// When the holder last renewed its claim (RFC 3339); removed by [`release`].
pub const RENEWED_ANNOTATION: &str = "konflux-telemetry.konflux-ci.dev/renewed";
/// How often the holder renews its claim.
pub const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// A claim renewed within this many seconds belongs to a running instance.
pub const HOLD_SECONDS: i64 = 90;
/// The field manager of the claim: not the record's, so that applying one leaves the
/// other alone.
const HOLDER_MANAGER: &str = "konflux-telemetry-holder";

/// This process's identity as a holder: `HOSTNAME` (a Pod's name), the process id and
/// its start time, so two processes on one host differ too.
pub fn instance_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{host}/{}-{nanos:08x}", std::process::id())
}

/// Another running instance that holds the state, as its annotations say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherHolder {
    pub identity: String,
    /// Seconds since it renewed its claim.
    pub age_seconds: i64,
}

/// Pure: whether `annotations` name a holder other than `me` that renewed its claim
/// within [`HOLD_SECONDS`] of `now` (unix seconds). A claim released at shutdown (no
/// renew time), stale, or unreadable is no holder.
pub fn other_holder(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
    me: &str,
    now: i64,
) -> Option<OtherHolder> {
    let annotations = annotations?;
    let identity = annotations.get(HOLDER_ANNOTATION)?;
    if identity == me {
        return None;
    }
    let renewed = crate::events::Timestamp::parse(annotations.get(RENEWED_ANNOTATION)?).ok()?;
    let age_seconds = now - renewed.unix_seconds();
    (age_seconds <= HOLD_SECONDS).then(|| OtherHolder {
        identity: identity.clone(),
        age_seconds,
    })
}

/// The state ConfigMap's annotations (`None` when it does not exist).
pub async fn annotations(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<std::collections::BTreeMap<String, String>>, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .get_opt(name)
        .await?
        .map(|cm| cm.metadata.annotations.unwrap_or_default()))
}

/// Claims (or renews) the state for `me` at `now`; with `now` `None`, releases it (the
/// renew time is removed, the holder's name stays for the record).
pub async fn claim(
    client: &Client,
    namespace: &str,
    name: &str,
    me: &str,
    now: Option<&crate::events::Timestamp>,
) -> Result<(), kube::Error> {
    let mut annotations =
        std::collections::BTreeMap::from([(HOLDER_ANNOTATION.to_owned(), me.to_owned())]);
    if let Some(now) = now {
        annotations.insert(RENEWED_ANNOTATION.to_owned(), now.as_str().to_owned());
    }
    let cm = ConfigMap {
        metadata: ObjectMeta {
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    };
    apply(client, namespace, name, HOLDER_MANAGER, cm).await
}

/// Holds the state until `stop`: at start and at each renewal, warns if another running
/// instance holds it (two replicas), then claims it for `me`.
pub async fn hold(
    client: Client,
    namespace: String,
    name: String,
    me: String,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut warned: Option<String> = None;
    loop {
        let now = crate::events::Timestamp::now();
        match annotations(&client, &namespace, &name).await {
            Ok(a) => match other_holder(a.as_ref(), &me, now.unix_seconds()) {
                Some(other) if warned.as_deref() != Some(other.identity.as_str()) => {
                    tracing::warn!(
                        holder = %other.identity,
                        renewed_seconds_ago = other.age_seconds,
                        "another instance holds the state in ConfigMap {namespace}/{name}: konflux-telemetry must run as one replica (docs/deploy.md); two send duplicate heartbeats and overwrite each other's record of produced events"
                    );
                    warned = Some(other.identity);
                }
                _ => {}
            },
            Err(e) => tracing::debug!("cannot read the state holder: {e}"),
        }
        if let Err(e) = claim(&client, &namespace, &name, &me, Some(&now)).await {
            tracing::debug!("cannot renew the state holder: {e}");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RENEW_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn held(by: &str, renewed: Option<&str>) -> BTreeMap<String, String> {
        let mut a = BTreeMap::from([(HOLDER_ANNOTATION.to_owned(), by.to_owned())]);
        if let Some(r) = renewed {
            a.insert(RENEWED_ANNOTATION.to_owned(), r.to_owned());
        }
        a
    }

    const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    #[test]
    fn another_live_holder_is_reported_a_stale_released_or_own_claim_is_not() {
        let live = held("pod-a/1-0", Some("2025-12-31T23:59:00Z"));
        assert_eq!(
            other_holder(Some(&live), "pod-b/2-0", NOW),
            Some(OtherHolder {
                identity: "pod-a/1-0".to_owned(),
                age_seconds: 60
            })
        );
        assert_eq!(other_holder(Some(&live), "pod-a/1-0", NOW), None);
        let stale = held("pod-a/1-0", Some("2025-12-31T23:58:29Z"));
        assert_eq!(other_holder(Some(&stale), "pod-b/2-0", NOW), None);
        let released = held("pod-a/1-0", None);
        assert_eq!(other_holder(Some(&released), "pod-b/2-0", NOW), None);
        let garbled = held("pod-a/1-0", Some("yesterday"));
        assert_eq!(other_holder(Some(&garbled), "pod-b/2-0", NOW), None);
        assert_eq!(other_holder(None, "pod-b/2-0", NOW), None);
        assert_eq!(other_holder(Some(&BTreeMap::new()), "pod-b/2-0", NOW), None);
    }

    #[test]
    fn identities_differ_between_processes_on_one_host() {
        let id = instance_identity();
        assert!(id.contains(&format!("/{}-", std::process::id())), "{id}");
    }

    #[test]
    fn the_watermark_round_trips_and_bad_values_are_none() {
        let c = Coverage {
            from: "2026-01-01T08:00:00.25Z".parse().unwrap(),
            to: "2026-01-01T12:00:00Z".parse().unwrap(),
        };
        let data = coverage_data(Some(c));
        assert_eq!(coverage_from(&data), Some(c));
        assert!(coverage_data(None).is_empty());
        assert_eq!(coverage_from(&coverage_data(None)), None);
        let mut bad = data.clone();
        bad.insert(COVERED_TO.into(), "yesterday".into());
        assert_eq!(coverage_from(&bad), None);
        let mut reversed = data;
        reversed.insert(COVERED_FROM.into(), "2026-01-02T00:00:00Z".into());
        assert_eq!(coverage_from(&reversed), None);
    }
}
