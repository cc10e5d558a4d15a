//! kube-runtime watchers that turn object changes into [`Observation`]s.
//!
//! No reflector stores: each object is decoded into only the fields the event model reads
//! ([`Watched`]) and handed on, so memory does not grow with the number of objects. A kind
//! whose CRD is missing, or that RBAC forbids, is logged once and retried with backoff; it
//! never stops the other kinds.
//!
//! The initial list is the watch-list stream (`sendInitialEvents`, Kubernetes 1.27 and
//! later with the `WatchList` feature, on by default from 1.32): one object at a time,
//! so its cost is that of the largest object, whatever their number. An API server that
//! refuses it (400 or 422: the feature is off, or the server predates it) gets paged
//! lists instead, [`WATCH_PAGE_SIZE`] objects a page, whose body is held whole while it
//! is decoded: at most [`WATCH_PAGE_SIZE`] times the largest object (etcd stores up to
//! 1.5 MB), `docs/performance.md`.

use super::retry::{Guarded, WatchItem, WatchRetry};
use crate::events::object::{self, WatchedKind};
use crate::events::{Decoded, Watched};
use crate::metrics::KindLabel;
use crate::pipeline::metrics::CoreMetrics;
use crate::pipeline::observation::{Observation, ObservationTx, Source};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Objects per page of the initial list when the API server does not offer the watch-list
/// stream. A page's body is held whole while it is decoded: real PipelineRuns are 10 to
/// 42 KB (a page near 0.4 MB), and objects of etcd's 1.5 MB limit make a page of 15 MB,
/// where 100 a page made 150 MB (251 MiB peak).
pub const WATCH_PAGE_SIZE: u32 = 10;

/// How the initial list of kind `spec` is read: the watch-list stream, or (`streaming`
/// false) pages of [`WATCH_PAGE_SIZE`] objects.
pub fn watcher_config(spec: &WatchedKind, streaming: bool) -> watcher::Config {
    let config = watcher::Config::default();
    let mut config = if streaming {
        config.streaming_lists()
    } else {
        config.page_size(WATCH_PAGE_SIZE)
    };
    if let Some(selector) = spec.selector {
        config = config.labels(selector);
    }
    config
}

/// The API server refused the watch-list stream (`sendInitialEvents`): 422 when its
/// `WatchList` feature is off or it predates it, 400 from some proxies.
pub fn watch_list_refused(e: &watcher::Error) -> bool {
    matches!(e, watcher::Error::WatchStartFailed(kube::Error::Api(s)) if matches!(s.code, 400 | 422))
}

/// One watched object as kube's watcher hands it over: its `resourceVersion` (all the
/// watcher needs) and the fields the event model reads, interpreted as the watched kind
/// once it arrives ([`Watched::decode_as`]). Its dynamic type is the kind's entry of the
/// one table of watched kinds ([`object::WATCHED`]), so every kind is this one type.
#[derive(Clone, Debug)]
pub struct WatchedObject {
    meta: ObjectMeta,
    watched: Watched,
}

impl<'de> Deserialize<'de> for WatchedObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut watched = Watched::deserialize(d)?;
        Ok(WatchedObject {
            meta: ObjectMeta {
                resource_version: watched.resource_version.take(),
                ..ObjectMeta::default()
            },
            watched,
        })
    }
}

impl WatchedObject {
    /// What the event model reads from it as an object of `spec`'s kind.
    pub fn decode_as(self, spec: &WatchedKind) -> Decoded {
        self.watched.decode_as(spec.kind)
    }
}

impl Resource for WatchedObject {
    type DynamicType = &'static WatchedKind;
    type Scope = kube::core::DynamicResourceScope;

    fn kind(spec: &Self::DynamicType) -> Cow<'_, str> {
        spec.name.into()
    }
    fn group(spec: &Self::DynamicType) -> Cow<'_, str> {
        spec.group.into()
    }
    fn version(spec: &Self::DynamicType) -> Cow<'_, str> {
        spec.version.into()
    }
    fn plural(spec: &Self::DynamicType) -> Cow<'_, str> {
        spec.plural.into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

/// Where one kind's watch stands, for `/readyz`.
#[derive(Debug, Default)]
pub struct WatchState(AtomicU8);

const LISTING: u8 = 0;
const LISTED: u8 = 1;
const UNAVAILABLE: u8 = 2;

impl WatchState {
    /// Listed once, or known not to be listable (CRD missing, forbidden): either way the
    /// daemon is not waiting on it.
    pub fn settled(&self) -> bool {
        self.0.load(Ordering::Relaxed) != LISTING
    }
    fn set(&self, v: u8) {
        self.0.store(v, Ordering::Relaxed);
    }
}

/// Where each watched kind's watch stands, in the order of [`object::WATCHED`]: `/readyz`
/// answers ready once all are settled. Cheap to clone: clones share the states.
#[derive(Clone, Debug)]
pub struct Readiness(Arc<[Arc<WatchState>]>);

impl Default for Readiness {
    fn default() -> Self {
        Readiness(object::watched().map(|_| Arc::default()).collect())
    }
}

impl Readiness {
    /// Every watch has listed once or is known to be unavailable.
    pub fn settled(&self) -> bool {
        self.0.iter().all(|s| s.settled())
    }
}

/// Every kind of [`object::WATCHED`], until `stop`: one [`run`] each, sending to `tx`.
pub async fn run_all(
    client: Client,
    tx: ObservationTx,
    metrics: CoreMetrics,
    readiness: Readiness,
    stop: CancellationToken,
) {
    let watches = object::watched()
        .zip(readiness.0.iter())
        .map(|(spec, state)| {
            let (client, tx, metrics) = (client.clone(), tx.clone(), metrics.clone());
            run(spec, client, tx, metrics, Arc::clone(state), stop.clone())
        });
    futures::future::join_all(watches).await;
}

/// Watches kind `spec` across the cluster until `stop`, sending what it sees to `tx`.
pub async fn run(
    spec: &'static WatchedKind,
    client: Client,
    tx: ObservationTx,
    metrics: CoreMetrics,
    state: Arc<WatchState>,
    stop: CancellationToken,
) {
    run_with(
        spec,
        client,
        tx,
        metrics,
        state,
        WatchRetry::default(),
        stop,
    )
    .await;
}

/// [`run`] with the caller's backoff after failures (tests).
pub async fn run_with(
    spec: &'static WatchedKind,
    client: Client,
    tx: ObservationTx,
    metrics: CoreMetrics,
    state: Arc<WatchState>,
    retry: WatchRetry,
    stop: CancellationToken,
) {
    let api: Api<WatchedObject> = Api::all_with(client, &spec);
    let mut streaming = true;
    let mut watch = Guarded::new(
        watcher::watcher(api.clone(), watcher_config(spec, streaming)).boxed(),
        retry,
        stop.clone(),
    );
    let kind = spec.kind;
    let mut failing: Option<String> = None;
    while let Some(next) = watch.next().await {
        match next {
            WatchItem::Event { event, recovered } => {
                if recovered && let Some(problem) = failing.take() {
                    info!(kind = kind.as_str(), "watch recovered after: {problem}");
                }
                let (lite, deleted) = match event {
                    Event::Apply(o) | Event::InitApply(o) => (o, false),
                    Event::Delete(o) => (o, true),
                    Event::Init => continue,
                    Event::InitDone => {
                        state.set(LISTED);
                        continue;
                    }
                };
                match lite.decode_as(spec) {
                    Decoded::Object(mut object) => {
                        if deleted {
                            object.mark_deleted_now();
                        }
                        let observation = Observation {
                            source: Source::Watch,
                            object,
                            actor: None,
                        };
                        if tx.send(observation).await.is_err() {
                            return; // the core has stopped
                        }
                    }
                    Decoded::NoEvents => {}
                    Decoded::Skipped(e) => {
                        metrics.skipped(kind, e.reason());
                        warn!(kind = kind.as_str(), "object skipped: {e}");
                    }
                }
            }
            WatchItem::Failed(e) if streaming && watch_list_refused(&e) => {
                streaming = false;
                info!(
                    kind = kind.as_str(),
                    page_size = WATCH_PAGE_SIZE,
                    "the API server does not offer the watch-list stream: initial lists in pages"
                );
                watch = Guarded::new(
                    watcher::watcher(api.clone(), watcher_config(spec, streaming)).boxed(),
                    retry,
                    stop.clone(),
                );
            }
            WatchItem::Failed(e) => {
                metrics
                    .watch_restarts
                    .get_or_create(&KindLabel {
                        kind: kind.as_str(),
                    })
                    .inc();
                let problem = describe(spec, &e);
                if let Some(p) = &problem.unavailable {
                    state.set(UNAVAILABLE);
                    if failing.as_deref() != Some(p.as_str()) {
                        warn!(
                            kind = kind.as_str(),
                            "{p}; retrying with backoff, other kinds go on"
                        );
                    }
                    failing = Some(p.clone());
                } else {
                    if failing.as_deref() != Some(problem.text.as_str()) {
                        warn!(
                            kind = kind.as_str(),
                            "watch failed, restarting: {}", problem.text
                        );
                    }
                    failing = Some(problem.text);
                }
            }
        }
    }
}

/// The HTTP status the API server answered a watch or list with, if it answered.
pub fn status_code(e: &watcher::Error) -> Option<u16> {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => Some(s.code),
        watcher::Error::WatchError(s) => Some(s.code),
        _ => None,
    }
}

struct Problem {
    text: String,
    /// Set when the kind cannot be listed at all: CRD not installed, or forbidden.
    unavailable: Option<String>,
}

fn describe(spec: &WatchedKind, e: &watcher::Error) -> Problem {
    let resource = if spec.group.is_empty() {
        spec.plural.to_owned()
    } else {
        format!("{}.{}", spec.plural, spec.group)
    };
    let unavailable = status_code(e).and_then(|code| match code {
        404 => Some(format!(
            "{resource} ({}/{}) is not served: is its CRD installed?",
            spec.group, spec.version
        )),
        403 => Some(format!(
            "forbidden to list/watch {resource} at cluster scope: the ServiceAccount needs \
             RBAC verbs get, list, watch on {resource}"
        )),
        _ => None,
    });
    Problem {
        // The API server's messages name the resource, not objects; kube's error text is
        // kept as is.
        text: e.to_string(),
        unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::InitialListStrategy;

    #[test]
    fn the_initial_list_is_the_watch_list_stream_else_small_pages() {
        let spec = object::WATCHED[0];
        let streaming = watcher_config(spec, true);
        assert_eq!(
            streaming.initial_list_strategy,
            InitialListStrategy::StreamingList
        );
        let paged = watcher_config(spec, false);
        assert_eq!(paged.initial_list_strategy, InitialListStrategy::ListWatch);
        assert_eq!(paged.page_size, Some(WATCH_PAGE_SIZE));
        // A page of objects at etcd's 1.5 MB limit stays under 16 MiB.
        assert!(u64::from(WATCH_PAGE_SIZE) * 1_572_864 <= 16 << 20);
        let refused = |code| {
            watcher::Error::WatchStartFailed(kube::Error::Api(
                kube::core::Status::failure("no", "Invalid")
                    .with_code(code)
                    .boxed(),
            ))
        };
        assert!(watch_list_refused(&refused(422)));
        assert!(watch_list_refused(&refused(400)));
        assert!(!watch_list_refused(&refused(403)));
        assert!(!watch_list_refused(&refused(500)));
    }
}
