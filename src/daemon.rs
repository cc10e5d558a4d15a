//! `konflux-telemetry run`: wiring only. Each part lives in its own module: the flags in
//! [`crate::cli`], the capture paths in [`crate::capture`], [`crate::sweep`] and
//! [`crate::admission`], the pipeline in [`crate::pipeline`], the features with their loops
//! ([`crate::switch`], [`crate::settings`], [`crate::heartbeat`], [`crate::state`],
//! [`crate::flush`]), the outputs in [`crate::segment`] and [`crate::http`]. The metrics
//! each part declares are composed here ([`Metrics`]), handed to each part as its own set.
//! [`run_until`] reads as the daemon's life in order; each step is one method below it.

pub use crate::cli::RunArgs;

use crate::admission::AdmissionMetrics;
use crate::capture::identity::{self, ClusterFacts, Configured, PublicInfo};
use crate::capture::{guarded_watch::Readiness, watches};
use crate::cli::{self, namespaced_name};
use crate::events::Timestamp;
use crate::flush::flusher::Flusher;
use crate::http::{self, Endpoints};
use crate::logging::LogLevel;
use crate::pipeline::Core;
use crate::pipeline::metrics::CoreMetrics;
use crate::pipeline::observation::ObservationTx;
use crate::segment::SenderMetrics;
use crate::segment::credentials::Credentials;
use crate::segment::output::SegmentOutput;
use crate::settings::Settings;
use crate::settings::live::LiveSettings;
use crate::state::checkpoint::Checkpoint;
use crate::sweep::SweepMetrics;
use crate::sweep::{SweepSettings, SweepStart};
use crate::switch::inputs::SwitchMetrics;
use crate::switch::{Decision, KonfluxSays, PlatformSays};
use crate::{Error, Result, logging};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Observations waiting for the core: the watches, the sweep and the webhook wait when it
/// is full (the webhook drops, counted, rather than wait).
const OBSERVATION_QUEUE: usize = 1024;

/// Runs until SIGTERM or Ctrl-C, then flushes (within the shutdown timeout) and returns.
pub async fn run(args: RunArgs) -> Result<()> {
    let stop = CancellationToken::new();
    let signals = stop.clone();
    tokio::spawn(async move {
        crate::http::server::shutdown_signal().await;
        signals.cancel();
    });
    run_until(args, stop).await
}

/// How long the start waits for the settings ConfigMap to be read.
const SETTINGS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the start line waits for the telemetry switch to settle before it says
/// `pending`.
const START_LINE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where events go, for the start line: the Segment API's host (never the key, nor the
/// rest of the URL), or nowhere without a write key.
fn segment_host(api_url: &str, has_key: bool) -> String {
    if !has_key {
        return "nowhere (no Segment write key: /preview only)".to_owned();
    }
    url::Url::parse(api_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "the Segment API".to_owned())
}

/// The one line at start that says where events go, where to see them, whether telemetry
/// is on and who decided, and how to turn it off; logged once the switch has settled (or
/// after [`START_LINE_WAIT`], as pending).
async fn start_line(
    destination: String,
    http: std::net::SocketAddr,
    mut switch: watch::Receiver<Decision>,
    stop: CancellationToken,
) {
    let settled = tokio::time::timeout(
        START_LINE_WAIT,
        switch.wait_for(|d| d.switch != crate::switch::Switch::Pending),
    );
    tokio::select! {
        () = stop.cancelled() => return,
        _ = settled => {}
    }
    let d = *switch.borrow();
    info!(
        "konflux-telemetry {}: telemetry {} (decided by {}); events go to {destination}; \
         preview them at http://{http}/preview (loopback: kubectl port-forward); to turn \
         telemetry off, set spec.telemetry.enabled: false on the Konflux CR named konflux",
        crate::LIBRARY_VERSION,
        d.state(),
        d.by.as_str(),
    );
}

/// [`run`] with the stop signal given: tests and embedders cancel `stop`.
pub async fn run_until(args: RunArgs, stop: CancellationToken) -> Result<()> {
    let base = args.base_settings();
    let log_level = logging::init(&base.log_level, args.log_json);
    let config_map = namespaced_name(&args.config_map, "config-map")?;
    let state_at = match args.state_config_map.as_str() {
        "" => None,
        text => Some(namespaced_name(text, "state-config-map")?),
    };
    let credentials = args.segment.credentials()?;
    if credentials.write_key.is_none() {
        warn!("no Segment write key: events are captured and shown at /preview, never sent");
    }
    let (metrics, registry) = Metrics::new();
    let mut d = Daemon::start(args, &base, metrics, stop.clone()).await?;

    // What decides: the live settings, the cluster's identity, the telemetry switch.
    let checkpoint = d.checkpoint(state_at).await;
    let (settings, loaded) = d.live_settings(config_map, base, log_level);
    let switch = d.switch(&settings);
    d.upgrade(checkpoint.as_ref());
    // The summary's window before the watches start: what they list at start counts in
    // the windows of the configured `summaryInterval`.
    let _ = tokio::time::timeout(SETTINGS_WAIT, loaded.clone().wait_for(|l| *l)).await;
    d.core
        .set_summary_interval(summary_seconds(&settings.borrow()));

    // Capture, all feeding the core; the servers drain on stop rather than being aborted.
    let (tx, rx) = mpsc::channel(OBSERVATION_QUEUE);
    let readiness = d.watches(tx.clone(), switch.clone());
    d.summary(&settings, readiness.clone());
    d.sweep(tx.clone(), &settings, checkpoint.as_ref());
    let mut servers = JoinSet::new();
    d.webhook(tx, &mut servers).await?;
    let consumer = tokio::spawn(crate::pipeline::consume(Arc::clone(&d.core), rx));
    d.http(registry, readiness, switch.clone(), &mut servers)
        .await?;
    d.tasks.spawn(start_line(
        segment_host(&credentials.api_url, credentials.write_key.is_some()),
        d.args.http.listen,
        switch.clone(),
        stop.clone(),
    ));

    // The heartbeat and the flusher; at stop, the final flush after the capture ends.
    let beating = Arc::clone(&d.core);
    d.tasks.spawn(crate::heartbeat::run(
        settings.clone(),
        stop.clone(),
        move || {
            beating.heartbeat(Timestamp::now());
        },
    ));
    let credentials = d.follow_secret(credentials);
    let segment = d.metrics.segment.clone();
    let output_for = move |s: &Settings| -> Result<SegmentOutput> {
        SegmentOutput::new(credentials.clone(), cli::sender_config(s), segment.clone()).map_err(
            |source| Error::Segment {
                what: "the Segment sender",
                source,
            },
        )
    };
    let timeout = d.args.shutdown_timeout;
    let flusher = Flusher::new(d.core.clone(), settings, switch, output_for, timeout)?
        .run(stop)
        .await;
    servers.join_all().await;
    d.tasks.shutdown().await;
    let _ = consumer.await;
    flusher.finish().await;
    if let Some(c) = &checkpoint {
        c.release().await;
    }
    Ok(())
}

/// What the daemon's parts share while it is wired: the flags, the cluster client, the
/// core, the metrics, the background tasks and the stop signal.
struct Daemon {
    args: RunArgs,
    client: kube::Client,
    core: Arc<Core>,
    metrics: Metrics,
    tasks: JoinSet<()>,
    stop: CancellationToken,
    /// The configured identity and what the cluster said at start, combined again with
    /// `konflux-public-info` whenever it changes.
    identity: (Configured, ClusterFacts, PublicInfo),
    /// Reads `konflux-public-info` (logs a failure once); moved into its timer.
    public_info: identity::PublicInfoReader,
    /// The Konflux version the identity says, for the upgrade.
    konflux_version: watch::Sender<Option<String>>,
}

impl Daemon {
    /// Connects to the cluster, learns its identity and builds the core.
    async fn start(
        args: RunArgs,
        base: &Settings,
        metrics: Metrics,
        stop: CancellationToken,
    ) -> Result<Self> {
        let client = client(&args).await?;
        let configured = args.identity.configured();
        let facts = identity::cluster_facts(&client).await;
        let mut reader = identity::PublicInfoReader::default();
        let info = reader.read(&client).await.unwrap_or_default();
        let core = Arc::new(Core::new(
            identity::combine(&configured, &info, &facts),
            base.max_buffered_events,
            base.max_buffered_bytes,
            base.lookback.as_secs() as i64,
            metrics.core.clone(),
        ));
        info!(
            cluster_id_known = core.identity().has_cluster_id(),
            "konflux-telemetry {} starting",
            crate::LIBRARY_VERSION
        );
        let konflux_version =
            watch::Sender::new(core.identity().konflux_version().map(str::to_owned));
        Ok(Daemon {
            konflux_version,
            args,
            client,
            core,
            metrics,
            tasks: JoinSet::new(),
            stop,
            identity: (configured, facts, info),
            public_info: reader,
        })
    }

    /// The record of produced events, loaded from its ConfigMap and saved from now on.
    async fn checkpoint(&mut self, at: Option<(String, String)>) -> Option<Checkpoint> {
        let (ns, name) = at?;
        let core = Arc::clone(&self.core);
        let c = Checkpoint::load(self.client.clone(), ns, name, core).await;
        self.tasks.spawn(c.clone().run(self.stop.clone()));
        Some(c)
    }

    /// The live settings from their ConfigMap, applied to the core and the log level as
    /// they change; and the cluster's identity, combined again when `konflux-public-info`
    /// changes.
    fn live_settings(
        &mut self,
        (namespace, name): (String, String),
        base: Settings,
        log_level: LogLevel,
    ) -> (watch::Receiver<Settings>, watch::Receiver<bool>) {
        let at = format!("{namespace}/{name}");
        let (live_settings, settings) = LiveSettings::new(base, at, self.metrics.core.clone());
        let loaded = live_settings.loaded();
        let knobs = Arc::clone(&self.core);
        let apply = move |next: &Settings| {
            log_level.set(&next.log_level);
            knobs.set_lookback(next.lookback.as_secs() as i64);
            knobs.set_max_buffered(next.max_buffered_events, next.max_buffered_bytes);
        };
        let (client, stop) = (self.client.clone(), self.stop.clone());
        let running = live_settings.run(client.clone(), namespace, name, stop.clone(), apply);
        self.tasks.spawn(running);
        let (core, (configured, facts, first)) = (Arc::clone(&self.core), self.identity.clone());
        let every = self.args.public_info_interval;
        let version = self.konflux_version.clone();
        self.tasks.spawn(identity::reread_public_info(
            client,
            std::mem::take(&mut self.public_info),
            first,
            every,
            stop,
            move |info| {
                let combined = identity::combine(&configured, info, &facts);
                let seen = combined.konflux_version().map(str::to_owned);
                core.set_identity(combined);
                version.send_if_modified(|v| {
                    let changed = *v != seen;
                    *v = seen;
                    changed
                });
            },
        ));
        (settings, loaded)
    }

    /// The upgrade: the Konflux version followed from the identity, the last one kept in
    /// the state ConfigMap (in memory only without one).
    fn upgrade(&mut self, checkpoint: Option<&Checkpoint>) {
        let last = checkpoint.and_then(Checkpoint::konflux_version);
        let upgrades = DaemonUpgrades {
            core: Arc::clone(&self.core),
            checkpoint: checkpoint.cloned(),
        };
        let version = self.konflux_version.subscribe();
        let run = crate::upgrade::run(version, last, self.stop.clone(), upgrades);
        self.tasks.spawn(run);
    }

    /// The usage summary, once per `summaryInterval` window.
    fn summary(&mut self, settings: &watch::Receiver<Settings>, readiness: Readiness) {
        let summaries = DaemonSummaries {
            core: Arc::clone(&self.core),
            client: self.client.clone(),
            readiness,
            missing: tokio::sync::Mutex::default(),
        };
        let run = crate::summary::run(settings.clone(), self.stop.clone(), summaries);
        self.tasks.spawn(run);
    }

    /// The credentials the output sends with: `start`, then what the Secret's folder says
    /// whenever it changes (`--segment-secret-dir`).
    fn follow_secret(&mut self, start: Credentials) -> watch::Receiver<Credentials> {
        let (tx, rx) = watch::channel(start);
        let a = &self.args.segment;
        match &a.segment_secret_dir {
            Some(dir) => {
                self.tasks.spawn(crate::segment::credentials::follow(
                    dir.clone(),
                    a.said(),
                    a.segment_secret_poll,
                    tx,
                    self.metrics.segment.credential_reloads.clone(),
                    self.stop.clone(),
                ));
            }
            // Nothing changes them: the channel stays as it started.
            None => drop(tx),
        }
        rx
    }

    /// The telemetry switch: the Konflux CR, `telemetryEnabled` and the platform, decided
    /// and applied.
    fn switch(&mut self, settings: &watch::Receiver<Settings>) -> watch::Receiver<Decision> {
        let (cr_tx, cr_rx) = watch::channel(KonfluxSays::Pending);
        let (platform_tx, platform_rx) = watch::channel(PlatformSays::Pending);
        let (switch_tx, switch) = watch::channel(Decision::PENDING);
        let (client, core, stop) = (self.client.clone(), Arc::clone(&self.core), &self.stop);
        self.tasks.spawn(crate::switch::inputs::watch_cr(
            client.clone(),
            cr_tx,
            stop.clone(),
        ));
        self.tasks.spawn(crate::switch::inputs::watch_platform(
            client,
            platform_tx,
            stop.clone(),
        ));
        self.tasks.spawn(crate::switch::inputs::decide(
            move |on| core.set_enabled(on),
            cr_rx,
            settings.clone(),
            platform_rx,
            switch_tx,
            self.metrics.switch.clone(),
            stop.clone(),
        ));
        switch
    }

    /// A watch of every watched kind, started over when telemetry comes back on.
    fn watches(&mut self, tx: ObservationTx, switch: watch::Receiver<Decision>) -> Readiness {
        let readiness = Readiness::default();
        let sending =
            crate::settings::live::project(&switch, &self.stop, &mut self.tasks, |d| d.sending());
        self.tasks.spawn(watches::run(
            self.client.clone(),
            tx,
            self.metrics.core.clone(),
            readiness.clone(),
            sending,
            self.stop.clone(),
        ));
        readiness
    }

    /// The reconciliation sweep over Tekton Results, when an address is given: located
    /// (the configured host, else Konflux's service names) in its own task.
    fn sweep(
        &mut self,
        tx: ObservationTx,
        settings: &watch::Receiver<Settings>,
        checkpoint: Option<&Checkpoint>,
    ) {
        let Some(config) = self.args.results.config() else {
            return info!("no Tekton Results address: no reconciliation sweep");
        };
        let sweep_settings =
            crate::settings::live::project(settings, &self.stop, &mut self.tasks, |s| {
                SweepSettings {
                    interval: s.sweep_interval,
                    lookback: s.lookback,
                }
            });
        let start = SweepStart {
            config,
            resolver: self.args.results.resolver(),
            settings: sweep_settings,
            tx,
            metrics: self.metrics.sweep.clone(),
            watermark: checkpoint.map(Checkpoint::watermark),
        };
        self.tasks.spawn(start.run(self.stop.clone()));
    }

    /// The admission webhook, when `--webhook-listen` is given.
    async fn webhook(&self, tx: ObservationTx, servers: &mut JoinSet<()>) -> Result<()> {
        let a = &self.args.webhook;
        let Some(listen) = a.webhook_listen else {
            return Ok(());
        };
        let limits = a.limits(&self.args.server)?;
        let (core, metrics) = (Arc::clone(&self.core), self.metrics.admission.clone());
        let identity = move || core.identity();
        let webhook =
            crate::admission::Webhook::bind(listen, &a.webhook_cert_dir, tx, identity, metrics)
                .await?
                .with_limits(limits);
        servers.spawn(webhook.run(self.stop.clone()));
        Ok(())
    }

    /// `/healthz`, `/readyz`, `/metrics` and `/preview`.
    async fn http(
        &self,
        registry: Registry,
        readiness: Readiness,
        switch: watch::Receiver<Decision>,
        servers: &mut JoinSet<()>,
    ) -> Result<()> {
        let (listener, at) = bind(self.args.http.listen, "binding the HTTP listener").await?;
        info!("serving /healthz /readyz /metrics /preview on http://{at}");
        let endpoints = Arc::new(Endpoints {
            buffer: self.core.clone(),
            registry,
            ready: Box::new(move || readiness.settled()),
            preview: http::Preview::new(self.args.http.preview_any_peer),
            switch,
        });
        if let Some(probe_listen) = self.args.http.probe_listen {
            let (probes, at) = bind(probe_listen, "binding the probe listener").await?;
            info!("serving /healthz /readyz for probes on http://{at}");
            let limits = http::probe_limits(&self.args.server);
            let endpoints = Arc::clone(&endpoints);
            servers.spawn(http::serve_probes(
                probes,
                endpoints,
                limits,
                self.stop.clone(),
            ));
        }
        let limits = (self.args.server).limits(http::MAX_BODY, http::MAX_BYTES_IN_FLIGHT);
        servers.spawn(http::serve(listener, endpoints, limits, self.stop.clone()));
        Ok(())
    }
}

/// `summaryInterval` in whole seconds.
fn summary_seconds(s: &Settings) -> i64 {
    i64::try_from(s.summary_interval.as_secs()).unwrap_or(i64::MAX)
}

/// The usage summary's handles: the core, the cluster to count, the watches' readiness.
struct DaemonSummaries {
    core: Arc<Core>,
    client: kube::Client,
    readiness: Readiness,
    /// Kinds logged as not served, so each is logged once.
    missing: tokio::sync::Mutex<std::collections::HashSet<crate::events::Kind>>,
}

impl crate::summary::Summaries for DaemonSummaries {
    fn now(&self) -> i64 {
        Timestamp::now().unix_seconds()
    }

    fn identity(&self) -> Arc<crate::events::ClusterIdentity> {
        self.core.identity()
    }

    fn set_interval(&self, seconds: i64) {
        self.core.set_summary_interval(seconds);
    }

    fn activity(&self, window: crate::summary::Window) -> crate::summary::activity::WindowActivity {
        self.core.window_activity(window)
    }

    fn ready(&self) -> bool {
        self.readiness.settled()
    }

    async fn totals(
        &self,
        window: crate::summary::Window,
        activity: &crate::summary::activity::WindowActivity,
    ) -> crate::summary::event::Totals {
        let mut missing = self.missing.lock().await;
        crate::summary::count::totals(&self.client, window, activity, &mut missing).await
    }

    fn produce(&self, event: crate::events::Event) {
        self.core.produce(event, Timestamp::now().unix_seconds());
    }
}

/// The upgrade's handle on the core and the state ConfigMap.
struct DaemonUpgrades {
    core: Arc<Core>,
    checkpoint: Option<Checkpoint>,
}

impl crate::upgrade::Upgrades for DaemonUpgrades {
    fn produce(&self, from: &str, to: &str) -> String {
        let now = Timestamp::now();
        let at = now.unix_seconds();
        let event = crate::upgrade::event(&self.core.identity(), from, to, now);
        let id = event.message_id.clone();
        self.core.produce(event, at);
        id
    }

    fn waiting(&self, message_id: &str) -> bool {
        self.core.is_waiting(message_id)
    }

    async fn save(&self, version: &str) {
        if let Some(c) = &self.checkpoint {
            c.save_konflux_version(version).await;
        }
    }
}

async fn client(args: &RunArgs) -> Result<kube::Client> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// A listener on `addr`, and the address it got (the port, when `addr` asked for 0).
async fn bind(
    addr: std::net::SocketAddr,
    context: &'static str,
) -> Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Io { context, source })?;
    let at = listener.local_addr().unwrap_or(addr);
    Ok((listener, at))
}

/// Every component's metrics, registered in the one registry the daemon serves.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// `konflux_telemetry_*`.
    pub core: CoreMetrics,
    /// `konflux_telemetry_segment_*`.
    pub segment: SenderMetrics,
    /// `konflux_telemetry_sweep_*`.
    pub sweep: SweepMetrics,
    /// `konflux_telemetry_admission_*`.
    pub admission: AdmissionMetrics,
    /// `konflux_telemetry_decided_by`: the telemetry switch.
    pub switch: SwitchMetrics,
}

impl Metrics {
    /// Fresh metrics and the registry (prefix `konflux_telemetry`) that serves them: the
    /// core's at the root, each other component's in its sub-registry.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> (Self, Registry) {
        let mut registry = Registry::with_prefix("konflux_telemetry");
        let metrics = Self {
            core: CoreMetrics::default().register(&mut registry),
            segment: SenderMetrics::default()
                .register(registry.sub_registry_with_prefix("segment")),
            sweep: SweepMetrics::default().register(registry.sub_registry_with_prefix("sweep")),
            admission: AdmissionMetrics::default()
                .register(registry.sub_registry_with_prefix("admission")),
            switch: SwitchMetrics::default().register(&mut registry),
        };
        (metrics, registry)
    }
}
