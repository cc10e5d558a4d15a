//! The record of produced events, kept in a ConfigMap across restarts so that a restart
//! within the lookback produces nothing twice. Losing it costs only duplicates, which
//! Segment drops by `messageId`.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};

/// 12 bytes an entry; a ConfigMap holds 1 MiB, base64 makes 4 of 3.
pub const MAX_ENTRIES: usize = 60_000;
const KEY: &str = "produced";

pub async fn load(client: &Client, namespace: &str, name: &str) -> Option<Vec<u8>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(cm) => cm?.binary_data?.remove(KEY).map(|b| b.0),
        Err(e) => {
            tracing::warn!(
                "cannot read the record of produced events from ConfigMap {namespace}/{name}: {e}"
            );
            None
        }
    }
}

pub async fn save(
    client: &Client,
    namespace: &str,
    name: &str,
    bytes: Vec<u8>,
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
