//! Watching one named object: the daemon's own settings and `konflux-public-info`
//! (ConfigMaps), and the `konflux` CR's telemetry switch.

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
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
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let what = format!("ConfigMap {namespace}/{name}");
    watch_named(api, &what, name, stop, on_change, |_| {}).await;
}

/// [`watch_one`] for any kind: calls `on_change` with the object named `name` each time it
/// changes, and with `None` when it is absent (after a list) or deleted; `on_error` with
/// each error of the watch (retried with backoff), until `stop`. `what` names the object
/// in log lines.
pub async fn watch_named<K>(
    api: Api<K>,
    what: &str,
    name: &str,
    stop: CancellationToken,
    mut on_change: impl FnMut(Option<&K>),
    mut on_error: impl FnMut(&watcher::Error),
) where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut seen_in_list = false;
    let mut failing = false;
    loop {
        let item = tokio::select! {
            () = stop.cancelled() => return,
            item = stream.next() => item,
        };
        let Some(item) = item else { return };
        match item {
            Ok(event) => {
                if failing {
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
            Err(e) => {
                if !failing {
                    warn!("cannot watch {what} (retrying): {e}");
                    failing = true;
                }
                on_error(&e);
            }
        }
    }
}
