//! kube-runtime watchers that turn object changes into [`Observation`]s.
//!
//! No reflector stores: each object is decoded into only the fields the event model reads
//! ([`Watched`]) and handed on, so memory does not grow with the number of objects. A kind
//! whose CRD is missing, or that RBAC forbids, is logged once and retried with backoff; it
//! never stops the other kinds.

use super::retry::{Guarded, Next, WatchRetry};
use crate::events::object::{self, WatchedKind};
use crate::events::{Decoded, Watched};
use crate::metrics::{CoreMetrics, KindLabel};
use crate::observation::{Observation, ObservationTx, Source};
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

/// Objects per page of the initial list. Real PipelineRuns are 10 to 42 KB and a page's
/// body is held whole while it is decoded: 100 keeps that near 4 MB.
pub const WATCH_PAGE_SIZE: u32 = 100;

/// One watched object as kube's watcher hands it over: its `resourceVersion` (all the
/// watcher needs) and the fields the event model reads, interpreted as the watched kind
/// once it arrives ([`Watched::decode_as`]). Its dynamic type is the kind's entry of the
/// one table of watched kinds ([`object::WATCHED`]), so every kind is this one type.
#[derive(Clone, Debug)]
pub struct Lite {
    meta: ObjectMeta,
    watched: Watched,
}

impl<'de> Deserialize<'de> for Lite {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut watched = Watched::deserialize(d)?;
        Ok(Lite {
            meta: ObjectMeta {
                resource_version: watched.resource_version.take(),
                ..ObjectMeta::default()
            },
            watched,
        })
    }
}

impl Lite {
    /// What the event model reads from it as an object of `spec`'s kind.
    pub fn decode_as(self, spec: &WatchedKind) -> Decoded {
        self.watched.decode_as(spec.kind)
    }
}

impl Resource for Lite {
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
        Readiness(object::WATCHED.iter().map(|_| Arc::default()).collect())
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
    let watches = object::WATCHED
        .iter()
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
    let api: Api<Lite> = Api::all_with(client, &spec);
    let mut config = watcher::Config::default().page_size(WATCH_PAGE_SIZE);
    if let Some(selector) = spec.selector {
        config = config.labels(selector);
    }
    let mut watch = Guarded::new(watcher::watcher(api, config).boxed(), retry, stop);
    let kind = spec.kind;
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
            Next::Failed(e) => {
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
