//! Watching one named object: the daemon's own settings and `konflux-public-info`
//! (ConfigMaps), and the `konflux` CR's telemetry switch.

use super::retry::{Guarded, WatchItem, WatchRetry};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Calls `on_change` with the ConfigMap each time it changes, and with `None` when it is
/// absent (after the first list) or deleted, until `stop`.
pub async fn watch_one(
    client: Client,
    namespace: &str,
    name: &str,
    stop: CancellationToken,
    on_change: impl FnMut(Option<&ConfigMap>),
) {
    watch_one_with(
        client,
        namespace,
        name,
        WatchRetry::default(),
        stop,
        on_change,
    )
    .await;
}

/// [`watch_one`] with the caller's backoff after failures (tests).
pub async fn watch_one_with(
    client: Client,
    namespace: &str,
    name: &str,
    retry: WatchRetry,
    stop: CancellationToken,
    on_change: impl FnMut(Option<&ConfigMap>),
) {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let what = format!("ConfigMap {namespace}/{name}");
    watch_named(api, &what, name, retry, stop, on_change, |_| {}).await;
}

/// [`watch_one`] for any kind: calls `on_change` with the object named `name` each time it
/// changes, and with `None` when it is absent (after a list) or deleted; `on_error` with
/// each error of the watch (retried after `retry`'s backoff), until `stop`. `what` names
/// the object in log lines.
pub async fn watch_named<K>(
    api: Api<K>,
    what: &str,
    name: &str,
    retry: WatchRetry,
    stop: CancellationToken,
    mut on_change: impl FnMut(Option<&K>),
    mut on_error: impl FnMut(&watcher::Error),
) where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut watch = Guarded::new(watcher::watcher(api, config).boxed(), retry, stop);
    let mut seen_in_list = false;
    let mut failing = false;
    while let Some(next) = watch.next().await {
        match next {
            WatchItem::Event { event, recovered } => {
                if recovered && failing {
                    info!("watch of {what} recovered");
                    failing = false;
                }
                match event {
                    Event::Init => seen_in_list = false,
                    Event::InitApply(o) => {
                        seen_in_list = true;
                        on_change(Some(&o));
                    }
                    Event::InitDone if !seen_in_list => on_change(None),
                    Event::InitDone => {}
                    Event::Apply(o) => on_change(Some(&o)),
                    Event::Delete(_) => on_change(None),
                }
            }
            WatchItem::Failed(e) => {
                if !failing {
                    warn!("cannot watch {what} (retrying with backoff): {e}");
                    failing = true;
                }
                on_error(&e);
            }
        }
    }
}
