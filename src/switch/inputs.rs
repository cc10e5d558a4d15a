//! The telemetry switch at run time: the Konflux CR and the platform watched, the rule
//! ([`crate::switch::decide`]) applied to them and to the live `telemetryEnabled`, each new
//! decision applied to the core (off drops the buffer), counted in
//! `konflux_telemetry_decided_by`, logged with who decided, and published to the flusher
//! and the watches.

use crate::capture::config_maps;
use crate::capture::guarded_watch::{self, WatchedObject};
use crate::capture::retry::WatchRetry;
use crate::events::object::{KONFLUX, KONFLUX_NAME};
use crate::metrics::{family_with, label_sets, metric_set};
use crate::settings::Settings;
use crate::switch::{self, ConsoleSays, DecidedBy, Decision, KonfluxSays, PlatformSays, Switch};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::BTreeMap;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

label_sets! {
    DecidedByLabel { by }
}

metric_set! {
    /// The switch's metrics, at the registry's root.
    pub struct SwitchMetrics {
        decided_by: Family<DecidedByLabel, Gauge> = family_with(
            DecidedBy::ALL.map(|by| DecidedByLabel { by: by.label() })
        ) => "1 for who decides the telemetry switch now (Konflux CR, telemetryEnabled, the platform's default), 0 for the others",
    }
}

impl SwitchMetrics {
    fn decided(&self, by: DecidedBy) {
        for other in DecidedBy::ALL {
            let label = DecidedByLabel { by: other.label() };
            self.decided_by
                .get_or_create(&label)
                .set(i64::from(other == by));
        }
    }
}

/// Watches the `konflux` CR until `stop`, publishing what it says about telemetry.
pub async fn watch_cr(
    client: kube::Client,
    says: watch::Sender<KonfluxSays>,
    stop: CancellationToken,
) {
    let api: kube::Api<WatchedObject> = kube::Api::all_with(client, &&KONFLUX);
    config_maps::watch_named(
        api,
        "the Konflux CR (for spec.telemetry.enabled)",
        KONFLUX_NAME,
        WatchRetry::default(),
        stop,
        |cr| match KonfluxSays::of(cr.map(|c| c.clone().decode_as(&KONFLUX)).as_ref()) {
            Some(s) => {
                says.send_replace(s);
            }
            None => warn!("the Konflux CR cannot be read: the telemetry switch stays as it was"),
        },
        // No Konflux CRD: no CR to say anything. Forbidden: unknown, nothing is sent.
        |e| {
            if guarded_watch::status_code(e) == Some(404) {
                says.send_replace(KonfluxSays::Absent);
            }
        },
    )
    .await;
}

/// OpenShift's `ClusterVersion` named `version`: where it exists, the cluster is OpenShift.
pub const CLUSTER_VERSION: (&str, &str, &str, &str) =
    ("config.openshift.io", "v1", "ClusterVersion", "version");
/// The console operator's config, whose annotations carry the console's telemetry state.
pub const CONSOLE_OPERATOR: (&str, &str, &str, &str) =
    ("operator.openshift.io", "v1", "Console", "cluster");
/// The cluster's monitoring config, where a cluster opts out of its telemetry.
pub const MONITORING_CONFIG: (&str, &str) = ("openshift-monitoring", "cluster-monitoring-config");

fn cluster_scoped(
    client: &kube::Client,
    (group, version, kind, _): (&str, &str, &str, &str),
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk))
}

/// Watches what the platform says until `stop`: whether the cluster is OpenShift (the
/// `ClusterVersion` named `version`, watched), and there the console's telemetry state (the
/// console operator's annotations and the cluster's monitoring config, watched once the
/// cluster is known to be OpenShift).
pub async fn watch_platform(
    client: kube::Client,
    says: watch::Sender<PlatformSays>,
    stop: CancellationToken,
) {
    // None: not read yet.
    let (openshift_tx, mut openshift) = watch::channel(None::<bool>);
    let (console_tx, mut console) = watch::channel(None::<Option<BTreeMap<String, String>>>);
    let (opted_out_tx, mut opted_out) = watch::channel(None::<bool>);
    let cluster_version = config_maps::watch_named(
        cluster_scoped(&client, CLUSTER_VERSION),
        "the ClusterVersion (is this OpenShift?)",
        CLUSTER_VERSION.3,
        WatchRetry::default(),
        stop.clone(),
        |cv| {
            openshift_tx.send_replace(Some(cv.is_some()));
        },
        // No ClusterVersion kind: not OpenShift. Forbidden: unknown, nothing is decided.
        |e| {
            if guarded_watch::status_code(e) == Some(404) {
                openshift_tx.send_replace(Some(false));
            }
        },
    );
    let mut cluster_version = std::pin::pin!(cluster_version);
    let mut openshift_watches: Option<tokio::task::JoinSet<()>> = None;
    loop {
        let is_openshift = *openshift.borrow_and_update();
        if is_openshift == Some(true) && openshift_watches.is_none() {
            let mut tasks = tokio::task::JoinSet::new();
            tasks.spawn(watch_console(
                client.clone(),
                console_tx.clone(),
                stop.clone(),
            ));
            tasks.spawn(watch_monitoring(
                client.clone(),
                opted_out_tx.clone(),
                stop.clone(),
            ));
            openshift_watches = Some(tasks);
        }
        let platform = match is_openshift {
            None => PlatformSays::Pending,
            Some(false) => PlatformSays::Kubernetes,
            Some(true) => {
                match (
                    &*console.borrow_and_update(),
                    *opted_out.borrow_and_update(),
                ) {
                    (Some(annotations), Some(out)) => {
                        PlatformSays::OpenShift(ConsoleSays::of(annotations.as_ref(), out))
                    }
                    _ => PlatformSays::Pending,
                }
            }
        };
        says.send_if_modified(|cur| std::mem::replace(cur, platform) != platform);
        tokio::select! {
            () = stop.cancelled() => return,
            () = &mut cluster_version => return,
            r = openshift.changed() => if r.is_err() { return },
            r = console.changed() => if r.is_err() { return },
            r = opted_out.changed() => if r.is_err() { return },
        }
    }
}

/// The console operator's config's annotations, `Some(None)` where it does not exist.
async fn watch_console(
    client: kube::Client,
    says: watch::Sender<Option<Option<BTreeMap<String, String>>>>,
    stop: CancellationToken,
) {
    config_maps::watch_named(
        cluster_scoped(&client, CONSOLE_OPERATOR),
        "the OpenShift console operator's config (for its telemetry state)",
        CONSOLE_OPERATOR.3,
        WatchRetry::default(),
        stop,
        |console| {
            let annotations = console.map(|c| c.metadata.annotations.clone().unwrap_or_default());
            says.send_replace(Some(annotations));
        },
        // No Console kind (the console capability is off): no console to say anything.
        |e| {
            if guarded_watch::status_code(e) == Some(404) {
                says.send_replace(Some(None));
            }
        },
    )
    .await;
}

/// Whether the cluster opted out of its telemetry in `cluster-monitoring-config`. A
/// `config.yaml` that cannot be read keeps the last answer, and says why.
async fn watch_monitoring(
    client: kube::Client,
    says: watch::Sender<Option<bool>>,
    stop: CancellationToken,
) {
    let (namespace, name) = MONITORING_CONFIG;
    config_maps::watch_one(client, namespace, name, stop, |cm: Option<&ConfigMap>| {
        let yaml = cm
            .and_then(|cm| cm.data.as_ref())
            .and_then(|d| d.get("config.yaml"))
            .map_or("", String::as_str);
        match switch::monitoring_opts_out(yaml) {
            Ok(out) => {
                says.send_replace(Some(out));
            }
            Err(e) => warn!(
                "{namespace}/{name}: config.yaml cannot be read ({e}); the telemetry opt-out stays as it was"
            ),
        }
    })
    .await;
}

/// Decides from what the CR says, the settings' `telemetryEnabled` and what the platform
/// says, until `stop`: each new decision is applied (`apply(on)`, which returns how many
/// buffered events off dropped), counted, logged with who decided, and published on
/// `decisions`.
pub async fn decide(
    apply: impl Fn(bool) -> usize + Send,
    mut cr: watch::Receiver<KonfluxSays>,
    mut settings: watch::Receiver<Settings>,
    mut platform: watch::Receiver<PlatformSays>,
    decisions: watch::Sender<Decision>,
    metrics: SwitchMetrics,
    stop: CancellationToken,
) {
    let mut last = *decisions.borrow();
    metrics.decided(last.by);
    loop {
        let said = *cr.borrow_and_update();
        let configured = settings.borrow_and_update().telemetry_enabled;
        let d = switch::decide(said, configured, *platform.borrow_and_update());
        if d != last {
            let dropped = apply(!d.is_off());
            let state = match d.switch {
                Switch::On => "on",
                Switch::Off => "off: nothing is buffered or sent",
                Switch::Pending => "held until the Konflux CR and the platform are read",
            };
            info!(dropped, "telemetry {state} (decided by {})", d.by.as_str());
            metrics.decided(d.by);
            decisions.send_replace(d);
            last = d;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            r = cr.changed() => if r.is_err() { return },
            r = settings.changed() => if r.is_err() { return },
            r = platform.changed() => if r.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ClusterIdentity, Timestamp};
    use crate::pipeline::Core;
    use crate::pipeline::metrics::CoreMetrics;
    use std::sync::Arc;

    fn decided_by(metrics: &SwitchMetrics, by: DecidedBy) -> i64 {
        metrics
            .decided_by
            .get_or_create(&DecidedByLabel { by: by.label() })
            .get()
    }

    #[tokio::test(start_paused = true)]
    async fn the_cr_the_setting_and_the_platform_decide_and_off_drops_the_buffer() {
        let core = Arc::new(Core::new(
            ClusterIdentity::new(None, None, None),
            1000,
            1 << 20,
            3600,
            CoreMetrics::default(),
        ));
        let (cr_tx, cr_rx) = watch::channel(KonfluxSays::Pending);
        let (settings_tx, settings_rx) = watch::channel(Settings::default());
        let (platform_tx, platform_rx) = watch::channel(PlatformSays::Pending);
        let (tx, mut rx) = watch::channel(Decision::PENDING);
        let metrics = SwitchMetrics::default();
        let stop = CancellationToken::new();
        let applied = Arc::clone(&core);
        let task = tokio::spawn(decide(
            move |on| applied.set_enabled(on),
            cr_rx,
            settings_rx,
            platform_rx,
            tx,
            metrics.clone(),
            stop.clone(),
        ));
        core.heartbeat(Timestamp::from_unix_seconds(1_767_225_600).expect("a time"));
        assert_eq!(core.buffered(), 1);

        // No CR and no setting: pending while the platform is not known, then off on
        // vanilla Kubernetes.
        cr_tx.send_replace(KonfluxSays::Absent);
        tokio::task::yield_now().await;
        assert_eq!(*rx.borrow_and_update(), Decision::PENDING);
        assert_eq!(core.buffered(), 1, "pending keeps the buffer");
        platform_tx.send_replace(PlatformSays::Kubernetes);
        rx.changed().await.expect("a decision");
        let d = *rx.borrow_and_update();
        assert!(d.is_off(), "off by default on Kubernetes");
        assert_eq!(d.by, DecidedBy::KubernetesDefault);
        assert_eq!(core.buffered(), 0, "off drops the buffer");
        assert_eq!(decided_by(&metrics, DecidedBy::KubernetesDefault), 1);

        // An explicit telemetryEnabled opts in.
        settings_tx.send_modify(|s| s.telemetry_enabled = Some(true));
        rx.changed().await.expect("a decision");
        let d = *rx.borrow_and_update();
        assert_eq!((d.is_on(), d.by), (true, DecidedBy::Config));
        assert!(core.enabled());
        assert_eq!(decided_by(&metrics, DecidedBy::Config), 1);
        assert_eq!(decided_by(&metrics, DecidedBy::KubernetesDefault), 0);

        settings_tx.send_modify(|s| s.telemetry_enabled = Some(false));
        rx.changed().await.expect("a decision");
        assert!(rx.borrow_and_update().is_off());
        assert!(!core.enabled());

        // The CR's field wins over the setting.
        cr_tx.send_replace(KonfluxSays::Set(true));
        rx.changed().await.expect("a decision");
        let d = *rx.borrow_and_update();
        assert!(d.is_on());
        assert_eq!(d.by, DecidedBy::KonfluxCr);
        assert!(core.enabled());

        stop.cancel();
        task.await.expect("the loop ends on stop");
    }
}
