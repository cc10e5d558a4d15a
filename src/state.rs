//! The record of produced events, kept in a ConfigMap across restarts so that a restart
//! within the lookback produces nothing twice. Losing it costs only duplicates, which
//! Segment drops by `messageId`.
//!
//! Beside it, the sweep's watermark ([`Coverage`]: `sweepCoveredFrom`, `sweepCoveredTo`,
//! RFC 3339), saved at the same moments, so a restart resumes incremental sweeps. Losing
//! it (or a value that does not parse) costs one sweep of the whole lookback.

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

/// What a previous run left.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Saved {
    pub produced: Option<Vec<u8>>,
    pub sweep: Option<Coverage>,
}

pub async fn load(client: &Client, namespace: &str, name: &str) -> Saved {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(Some(cm)) => Saved {
            sweep: cm.data.as_ref().and_then(coverage_from),
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
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(
                [(
                    "app.kubernetes.io/name".to_owned(),
                    "konflux-telemetry".to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        binary_data: Some([(KEY.to_owned(), ByteString(bytes))].into()),
        data: Some(coverage_data(sweep)),
        ..ConfigMap::default()
    };
    api.patch(
        name,
        &PatchParams::apply("konflux-telemetry").force(),
        &Patch::Apply(&cm),
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

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
