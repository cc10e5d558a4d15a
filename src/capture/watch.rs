//! kube-runtime watchers that turn object changes into [`Observation`]s.
//!
//! No reflector stores: each object is decoded into only the fields the event model reads
//! ([`Watched`]) and handed on, so memory does not grow with the number of objects. A kind
//! whose CRD is missing, or that RBAC forbids, is logged once and retried with backoff; it
//! never stops the other kinds.

use super::retry::{Guarded, Next, WatchRetry};
use crate::events::{Decoded, Watched, object};
use crate::metrics::{CoreMetrics, KindLabel};
use crate::observation::{Observation, ObservationTx, Source};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Objects per page of the initial list. Real PipelineRuns are 10 to 42 KB and a page's
/// body is held whole while it is decoded: 100 keeps that near 4 MB.
pub const WATCH_PAGE_SIZE: u32 = 100;

/// A kind the daemon watches, as a type for kube's watcher: its entry of the one table of
/// watched kinds ([`crate::events::object::WATCHED`]).
pub trait WatchedKind: Clone + Debug + Send + Sync + 'static {
    const SPEC: &'static object::WatchedKind;
}

macro_rules! watched_kind {
    ($name:ident, $spec:expr) => {
        #[derive(Clone, Debug)]
        pub struct $name;
        impl WatchedKind for $name {
            const SPEC: &'static object::WatchedKind = &$spec;
        }
    };
}

watched_kind!(PipelineRuns, object::PIPELINE_RUN);
watched_kind!(Components, object::COMPONENT);
watched_kind!(TenantNamespaces, object::TENANT_NAMESPACE);
watched_kind!(Konfluxes, object::KONFLUX);

/// One watched object: its `resourceVersion` (all the watcher needs) and what the event
/// model read from it.
#[derive(Clone, Debug)]
pub struct Lite<K> {
    meta: ObjectMeta,
    pub decoded: Decoded,
    _kind: PhantomData<K>,
}

impl<'de, K: WatchedKind> Deserialize<'de> for Lite<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Watched::deserialize_as(d, K::SPEC.kind)?;
        Ok(Lite {
            meta: ObjectMeta {
                resource_version: w.resource_version,
                ..ObjectMeta::default()
            },
            decoded: w.decoded,
            _kind: PhantomData,
        })
    }
}

impl<K: WatchedKind> Resource for Lite<K> {
    type DynamicType = ();
    type Scope = kube::core::DynamicResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        K::SPEC.name.into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        K::SPEC.group.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        K::SPEC.version.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        K::SPEC.plural.into()
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

/// Where each watched kind's watch stands: `/readyz` answers ready once all are settled.
/// Cheap to clone: clones share the states.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    pipeline_runs: Arc<WatchState>,
    components: Arc<WatchState>,
    tenant_namespaces: Arc<WatchState>,
    konfluxes: Arc<WatchState>,
}

impl Readiness {
    /// Every watch has listed once or is known to be unavailable.
    pub fn settled(&self) -> bool {
        [
            &self.pipeline_runs,
            &self.components,
            &self.tenant_namespaces,
            &self.konfluxes,
        ]
        .iter()
        .all(|s| s.settled())
    }
}

/// Every watched kind, until `stop`: one [`run`] each, sending to `tx`. Adding a kind is
/// its [`WatchedKind`] entry above, a [`Readiness`] field and one line here.
pub async fn run_all(
    client: Client,
    tx: ObservationTx,
    metrics: CoreMetrics,
    readiness: Readiness,
    stop: CancellationToken,
) {
    let mut watches = tokio::task::JoinSet::new();
    let mut spawn = |state: &Arc<WatchState>, watch: Watch| {
        let (client, tx, metrics, stop) =
            (client.clone(), tx.clone(), metrics.clone(), stop.clone());
        watches.spawn(watch(client, tx, metrics, Arc::clone(state), stop));
    };
    spawn(&readiness.pipeline_runs, boxed::<PipelineRuns>);
    spawn(&readiness.components, boxed::<Components>);
    spawn(&readiness.tenant_namespaces, boxed::<TenantNamespaces>);
    spawn(&readiness.konfluxes, boxed::<Konfluxes>);
    watches.join_all().await;
}

/// [`run`] for one kind, as a function of one type for every kind.
type Watch = fn(
    Client,
    ObservationTx,
    CoreMetrics,
    Arc<WatchState>,
    CancellationToken,
) -> futures::future::BoxFuture<'static, ()>;

fn boxed<K: WatchedKind>(
    client: Client,
    tx: ObservationTx,
    metrics: CoreMetrics,
    state: Arc<WatchState>,
    stop: CancellationToken,
) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(run::<K>(client, tx, metrics, state, stop))
}

/// Watches kind `K` across the cluster until `stop`, sending what it sees to `tx`.
pub async fn run<K: WatchedKind>(
    client: Client,
    tx: ObservationTx,
    metrics: CoreMetrics,
    state: Arc<WatchState>,
    stop: CancellationToken,
) {
    run_with::<K>(client, tx, metrics, state, WatchRetry::default(), stop).await;
}

/// [`run`] with the caller's backoff after failures (tests).
pub async fn run_with<K: WatchedKind>(
    client: Client,
    tx: ObservationTx,
    metrics: CoreMetrics,
    state: Arc<WatchState>,
    retry: WatchRetry,
    stop: CancellationToken,
) {
    let api: Api<Lite<K>> = Api::all(client);
    let mut config = watcher::Config::default().page_size(WATCH_PAGE_SIZE);
    if let Some(selector) = K::SPEC.selector {
        config = config.labels(selector);
    }
    let mut watch = Guarded::new(watcher::watcher(api, config).boxed(), retry, stop);
    let kind = K::SPEC.kind;
    let mut failing: Option<String> = None;
    while let Some(next) = watch.next().await {
        match next {
            Next::Event { event, recovered } => {
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
                match lite.decoded {
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
            Next::Failed(e) => {
                metrics
                    .watch_restarts
                    .get_or_create(&KindLabel {
                        kind: kind.as_str(),
                    })
                    .inc();
                let problem = describe::<K>(&e);
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

fn describe<K: WatchedKind>(e: &watcher::Error) -> Problem {
    let spec = K::SPEC;
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
