//! `konflux-telemetry run`: wiring only. Each part lives in its own module: the flags in
//! [`crate::runtime::args`], the loops in [`crate::runtime`], the capture paths in
//! [`crate::capture`], [`crate::sweep`] and [`crate::admission`], the pipeline in
//! [`crate::pipeline`], the outputs in [`crate::segment`] and [`crate::flush`].
//! [`run_until`] reads as the daemon's life in order; each step is one method below it.

pub use crate::runtime::args::RunArgs;

use crate::capture::identity::{self, ClusterFacts, Configured, PublicInfo};
use crate::capture::{config_maps, watch::Readiness};
use crate::events::Timestamp;
use crate::flush::Discard;
use crate::http::{self, Endpoints};
use crate::metrics::Metrics;
use crate::observation::ObservationTx;
use crate::pipeline::Core;
use crate::runtime::args::{self, namespaced_name};
use crate::runtime::checkpoint::Checkpoint;
use crate::runtime::flusher::Flusher;
use crate::runtime::live::LiveSettings;
use crate::runtime::output::SegmentOutput;
use crate::runtime::{self, heartbeat};
use crate::settings::Settings;
use crate::sweep::{SweepSettings, SweepStart};
use crate::switch::{CrSays, Decision, PlatformSays};
use crate::telemetry::LogLevel;
use crate::{Error, Result, telemetry};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio::sync::{mpsc, watch as live};
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
        crate::server::shutdown_signal().await;
        signals.cancel();
    });
    run_until(args, stop).await
}

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
    mut switch: live::Receiver<Decision>,
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
    let log_level = telemetry::init(&base.log_level, args.log_json);
    let config_map = namespaced_name(&args.config_map, "config-map")?;
    let state_at = match args.state_config_map.as_str() {
        "" => None,
        text => Some(namespaced_name(text, "state-config-map")?),
    };
    let api_url = args.segment.api_url()?;
    let write_key = args.segment.write_key();
    if write_key.is_none() {
        warn!("no Segment write key: events are captured and shown at /preview, never sent");
    }
    let (metrics, registry) = Metrics::new();
    let mut d = Daemon::start(args, &base, metrics, stop.clone()).await?;

    // What decides: the live settings, the cluster's identity, the telemetry switch.
    let checkpoint = d.checkpoint(state_at).await;
    let settings = d.live_settings(config_map, base, log_level);
    let switch = d.switch(&settings);

    // Capture, all feeding the core; the servers drain on stop rather than being aborted.
    let (tx, rx) = mpsc::channel(OBSERVATION_QUEUE);
    let readiness = d.watches(tx.clone(), switch.clone());
    d.sweep(tx.clone(), &settings, checkpoint.as_ref());
    let mut servers = JoinSet::new();
    d.webhook(tx, &mut servers).await?;
    let consumer = tokio::spawn(runtime::consume(Arc::clone(&d.core), rx));
    d.http(registry, readiness, switch.clone(), &mut servers)
        .await?;
    d.tasks.spawn(start_line(
        segment_host(&api_url, write_key.is_some()),
        d.args.http.listen,
        switch.clone(),
        stop.clone(),
    ));

    // The heartbeat and the flusher; at stop, the final flush after the capture ends.
    let beating = Arc::clone(&d.core);
    d.tasks
        .spawn(heartbeat::run(settings.clone(), stop.clone(), move || {
            beating.heartbeat(Timestamp::now());
        }));
    let segment = d.metrics.segment.clone();
    let output_for = move |s: &Settings| -> Result<SegmentOutput> {
        Ok(match &write_key {
            Some(key) => SegmentOutput::Segment(args::sender(&api_url, key, s, &segment)?),
            None => SegmentOutput::Discard(Discard),
        })
    };
    let timeout = d.args.shutdown_timeout;
    let flusher = Flusher::new(Arc::clone(&d.core), settings, switch, output_for, timeout)?
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
    identity: (Configured, ClusterFacts),
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
        let info = identity::public_info(&client).await;
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
        Ok(Daemon {
            args,
            client,
            core,
            metrics,
            tasks: JoinSet::new(),
            stop,
            identity: (configured, facts),
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
    ) -> live::Receiver<Settings> {
        let at = format!("{namespace}/{name}");
        let (live_settings, settings) = LiveSettings::new(base, at, self.metrics.core.clone());
        let knobs = Arc::clone(&self.core);
        let apply = move |next: &Settings| {
            log_level.set(&next.log_level);
            knobs.set_lookback(next.lookback.as_secs() as i64);
            knobs.set_max_buffered(next.max_buffered_events, next.max_buffered_bytes);
        };
        let (client, stop) = (self.client.clone(), self.stop.clone());
        let running = live_settings.run(client.clone(), namespace, name, stop.clone(), apply);
        self.tasks.spawn(running);
        let (core, (configured, facts)) = (Arc::clone(&self.core), self.identity.clone());
        self.tasks.spawn(async move {
            let (namespace, name) = (identity::PUBLIC_INFO_NAMESPACE, identity::PUBLIC_INFO_NAME);
            config_maps::watch_one(client, namespace, name, stop, |cm| {
                let info = cm.map(PublicInfo::from_config_map).unwrap_or_default();
                core.set_identity(identity::combine(&configured, &info, &facts));
            })
            .await;
        });
        settings
    }

    /// The telemetry switch: the Konflux CR, `telemetryEnabled` and the platform, decided
    /// and applied.
    fn switch(&mut self, settings: &live::Receiver<Settings>) -> live::Receiver<Decision> {
        let (cr_tx, cr_rx) = live::channel(CrSays::Pending);
        let (platform_tx, platform_rx) = live::channel(PlatformSays::Pending);
        let (switch_tx, switch) = live::channel(Decision::PENDING);
        let (client, core, stop) = (self.client.clone(), Arc::clone(&self.core), &self.stop);
        self.tasks.spawn(runtime::switch::watch_cr(
            client.clone(),
            cr_tx,
            stop.clone(),
        ));
        self.tasks.spawn(runtime::switch::watch_platform(
            client,
            platform_tx,
            stop.clone(),
        ));
        self.tasks.spawn(runtime::switch::decide(
            core,
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
    fn watches(&mut self, tx: ObservationTx, switch: live::Receiver<Decision>) -> Readiness {
        let readiness = Readiness::default();
        self.tasks.spawn(runtime::watches::run(
            self.client.clone(),
            tx,
            self.metrics.core.clone(),
            readiness.clone(),
            switch,
            self.stop.clone(),
        ));
        readiness
    }

    /// The reconciliation sweep over Tekton Results, when an address is given: located
    /// (the configured host, else Konflux's service names) in its own task.
    fn sweep(
        &mut self,
        tx: ObservationTx,
        settings: &live::Receiver<Settings>,
        checkpoint: Option<&Checkpoint>,
    ) {
        let Some(config) = self.args.results.config() else {
            return info!("no Tekton Results address: no reconciliation sweep");
        };
        let sweep_settings =
            runtime::project(settings, &self.stop, &mut self.tasks, |s| SweepSettings {
                interval: s.sweep_interval,
                lookback: s.lookback,
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
        let webhook =
            crate::admission::Webhook::bind(listen, &a.webhook_cert_dir, tx, core, metrics)
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
        switch: live::Receiver<Decision>,
        servers: &mut JoinSet<()>,
    ) -> Result<()> {
        let listen = self.args.http.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| Error::Io {
                context: "binding the HTTP listener",
                source,
            })?;
        let at = listener.local_addr().unwrap_or(listen);
        info!("serving /healthz /readyz /metrics /preview on http://{at}");
        let endpoints = Arc::new(Endpoints {
            core: Arc::clone(&self.core),
            registry,
            ready: Box::new(move || readiness.settled()),
            preview: http::Preview::new(self.args.http.preview_any_peer),
            switch,
        });
        if let Some(probe_listen) = self.args.http.probe_listen {
            let probes = tokio::net::TcpListener::bind(probe_listen)
                .await
                .map_err(|source| Error::Io {
                    context: "binding the probe listener",
                    source,
                })?;
            let at = probes.local_addr().unwrap_or(probe_listen);
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
