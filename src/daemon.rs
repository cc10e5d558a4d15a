//! `konflux-telemetry run`: wires the capture paths, the core, the flusher, the heartbeat
//! and the HTTP endpoints, and drains on SIGTERM.

use crate::capture::identity::{self, ClusterFacts, Configured, PublicInfo};
use crate::capture::{config_maps, watch};
use crate::core::Core;
use crate::events::Timestamp;
use crate::http::{self, Endpoints};
use crate::metrics::{self, CoreMetrics, OutcomeLabel};
use crate::observation::ObservationRx;
use crate::secret::Secret;
use crate::segment::{self, Backoff, Sender, SenderConfig, SenderMetrics, WriteKey};
use crate::settings::{self, Settings};
use crate::sweep::{
    ResultsClient, ResultsConfig, SweepMetrics, SweepSettings, Sweeper, TokenSource, Watermark,
};
use crate::switch::{self, CrSays, Decision};
use crate::{Error, Result, state, telemetry};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch as live;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// The record of produced events is saved at most this often (and at shutdown): a SIGKILL
/// costs at most this much of re-sent events, which Segment drops by `messageId`.
const STATE_SAVE_EVERY: Duration = Duration::from_secs(30);

/// Flags of `run`, each with an environment fallback; the old bridge's variable names work.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Kubeconfig to use; in-cluster config (or KUBECONFIG) when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Segment API base URL, without /batch.
    #[arg(long, env = "SEGMENT_API_URL")]
    pub segment_api_url: Option<String>,
    /// The old bridge's full batch URL (with /batch); used when --segment-api-url is unset.
    #[arg(long, env = "SEGMENT_BATCH_API", hide = true)]
    pub segment_batch_api: Option<String>,
    /// Segment write key. Without one, events are captured and previewed but never sent.
    #[arg(long, env = "SEGMENT_WRITE_KEY", hide_env_values = true)]
    pub segment_write_key: Option<Secret>,
    /// Cluster id (hashed before it leaves); found in the cluster when unset. Its value
    /// salts the hashes: --help does not show it.
    #[arg(long, env = "CLUSTER_ID", hide_env_values = true)]
    pub cluster_id: Option<Secret>,
    #[arg(long, env = "KONFLUX_VERSION")]
    pub konflux_version: Option<String>,
    #[arg(long, env = "KUBERNETES_VERSION")]
    pub kubernetes_version: Option<String>,
    /// Default flush interval (the ConfigMap's flushInterval wins).
    #[arg(long, env = "FLUSH_INTERVAL", value_parser = settings::parse_duration)]
    pub flush_interval: Option<Duration>,
    /// Default lookback (the ConfigMap's lookback wins).
    #[arg(long, env = "LOOKBACK", value_parser = settings::parse_duration)]
    pub lookback: Option<Duration>,
    /// Address of /healthz, /readyz, /metrics and /preview.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Serve /preview to any peer; by default only to loopback (kubectl port-forward).
    #[arg(long, env = "PREVIEW_ANY_PEER")]
    pub preview_any_peer: bool,
    /// The live settings ConfigMap, as NAMESPACE/NAME.
    #[arg(
        long,
        env = "CONFIG_MAP",
        default_value = "segment-bridge/konflux-telemetry"
    )]
    pub config_map: String,
    /// Where the record of produced events is kept across restarts, as NAMESPACE/NAME of a
    /// ConfigMap; empty to keep nothing.
    #[arg(
        long,
        env = "STATE_CONFIG_MAP",
        default_value = "segment-bridge/konflux-telemetry-state"
    )]
    pub state_config_map: String,
    /// Longest the final flush may take on SIGTERM.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = settings::parse_duration)]
    pub shutdown_timeout: Duration,
    /// Logs as JSON lines.
    #[arg(long, env = "LOG_JSON")]
    pub log_json: bool,
    /// Tekton Results API (`https://host:port`, or `host:port` meaning https); without
    /// it there is no sweep.
    #[arg(long, env = "TEKTON_RESULTS_API_ADDR")]
    pub tekton_results_api_addr: Option<String>,
    /// Records per Tekton Results page (the old bridge's TEKTON_LIMIT), clamped to what
    /// the Pod's memory allows (5 to 250).
    #[arg(long, env = "TEKTON_LIMIT")]
    pub tekton_limit: Option<u32>,
    /// Bearer token for the Results API; else the token file below is read (and re-read).
    #[arg(long, env = "TEKTON_RESULTS_TOKEN", hide_env_values = true)]
    pub tekton_results_token: Option<Secret>,
    /// Service account token file for the Results API.
    #[arg(long, env = "SA_TOKEN_PATH")]
    pub sa_token_path: Option<PathBuf>,
    /// PEM bundle of CAs trusted for the Results API (on OpenShift, the service CA).
    #[arg(long, env = "TEKTON_RESULTS_CA_FILE")]
    pub tekton_results_ca_file: Option<PathBuf>,
    /// Accept any certificate from the Results API. Off by default; not for production.
    #[arg(long, env = "TEKTON_RESULTS_INSECURE_SKIP_TLS_VERIFY")]
    pub tekton_results_insecure_skip_tls_verify: bool,
    /// Address of the admission webhook (HTTPS, `POST /validate`); no webhook when unset.
    #[arg(long, env = "WEBHOOK_LISTEN")]
    pub webhook_listen: Option<SocketAddr>,
    /// Directory with the webhook's tls.crt and tls.key, re-read when they change.
    #[arg(
        long,
        env = "WEBHOOK_CERT_DIR",
        default_value = "/etc/konflux-telemetry/webhook-certs"
    )]
    pub webhook_cert_dir: PathBuf,
    /// Largest AdmissionReview body the webhook reads, in bytes (larger: 413).
    #[arg(long, env = "WEBHOOK_MAX_BODY_BYTES", default_value_t = crate::admission::MAX_BODY)]
    pub webhook_max_body_bytes: usize,
    /// Bytes of review bodies the webhook holds at once, all connections together
    /// (beyond: 503, which the API server's `failurePolicy: Ignore` lets through).
    #[arg(long, env = "WEBHOOK_MAX_BYTES_IN_FLIGHT", default_value_t = crate::admission::MAX_BYTES_IN_FLIGHT)]
    pub webhook_max_bytes_in_flight: usize,
    /// Timeouts and connection cap of the HTTP and webhook servers.
    #[command(flatten)]
    pub server: crate::server::ServerArgs,
}

fn results_config(args: &RunArgs) -> Option<ResultsConfig> {
    let addr = args
        .tekton_results_api_addr
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())?;
    let mut c = ResultsConfig::new(addr);
    if let Some(token) = args
        .tekton_results_token
        .as_ref()
        .map(|t| t.expose().trim())
        .filter(|t| !t.is_empty())
    {
        c.token = TokenSource::Fixed(token.to_owned());
    } else if let Some(path) = &args.sa_token_path {
        c.token = TokenSource::File(path.clone());
    }
    c.ca_file.clone_from(&args.tekton_results_ca_file);
    c.insecure_skip_tls_verify = args.tekton_results_insecure_skip_tls_verify;
    if let Some(limit) = args.tekton_limit {
        c.page_size = limit;
    }
    Some(c)
}

fn split_name(text: &str, flag: &str) -> Result<(String, String)> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(Error::Config {
            key: flag.to_owned(),
            reason: "expected NAMESPACE/NAME".to_owned(),
        }),
    }
}

async fn client(args: &RunArgs) -> Result<kube::Client> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| Error::Kube(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| Error::Kube(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| Error::Kube(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(|e| Error::Kube(e.to_string()))
}

fn sender_for(
    api_url: &str,
    key: &WriteKey,
    s: &Settings,
    metrics: &SenderMetrics,
) -> Result<Sender> {
    let mut cfg = SenderConfig::new(api_url, key.clone());
    cfg.requests_per_second = s.requests_per_second;
    cfg.backoff = Backoff {
        base: s.retry_base_delay,
        cap: s.retry_max_delay,
        deadline: s.retry_deadline,
    };
    Sender::new(cfg, metrics.clone()).map_err(|e| Error::Config {
        key: "segment-api-url".to_owned(),
        reason: e.to_string(),
    })
}

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

/// [`run`] with the stop signal given: tests and embedders cancel `stop`.
pub async fn run_until(args: RunArgs, stop: CancellationToken) -> Result<()> {
    let mut base = Settings::default();
    if let Some(d) = args.flush_interval {
        base.flush_interval = d;
    }
    if let Some(d) = args.lookback {
        base.lookback = d;
    }
    let log_level = telemetry::init(&base.log_level, args.log_json);
    let (cm_namespace, cm_name) = split_name(&args.config_map, "config-map")?;
    let state_store = if args.state_config_map.is_empty() {
        None
    } else {
        let (ns, name) = split_name(&args.state_config_map, "state-config-map")?;
        Some((ns, name))
    };

    let api_url = match (&args.segment_api_url, &args.segment_batch_api) {
        (Some(url), _) => segment::normalize_api_url(url),
        (None, Some(batch)) => segment::normalize_api_url(batch),
        (None, None) => Ok(segment::DEFAULT_API_URL.to_owned()),
    }
    .map_err(|e| Error::Config {
        key: "segment-api-url".to_owned(),
        reason: e.to_string(),
    })?;
    let write_key = args
        .segment_write_key
        .as_ref()
        .map(|k| k.expose().trim())
        .filter(|k| !k.is_empty())
        .map(WriteKey::new);
    if write_key.is_none() {
        warn!("no Segment write key: events are captured and shown at /preview, never sent");
    }

    let client = client(&args).await?;
    let configured = Configured {
        cluster_id: args.cluster_id.as_ref().map(|c| c.expose().to_owned()),
        konflux_version: args.konflux_version.clone(),
        kubernetes_version: args.kubernetes_version.clone(),
    };
    let facts: ClusterFacts = identity::cluster_facts(&client).await;
    let info = identity::public_info(&client).await;
    let core_metrics = CoreMetrics::default();
    let sender_metrics = SenderMetrics::new();
    let core = Arc::new(Core::new(
        identity::combine(&configured, &info, &facts),
        base.max_buffered_events,
        base.max_buffered_bytes,
        base.lookback.as_secs() as i64,
        core_metrics.clone(),
    ));
    info!(
        cluster_id_known = core.identity().has_cluster_id(),
        "konflux-telemetry {} starting",
        crate::LIBRARY_VERSION
    );
    let watermark = Watermark::default();
    if let Some((ns, name)) = &state_store {
        let saved = state::load(&client, ns, name).await;
        let n = saved.produced.map(|bytes| core.import_produced(&bytes));
        info!(
            entries = n.unwrap_or(0),
            sweep_watermark = saved.sweep.is_some(),
            "record of produced events loaded"
        );
        watermark.set(saved.sweep);
    }

    // Live settings.
    let (settings_tx, settings_rx) = live::channel(base.clone());
    let mut tasks = tokio::task::JoinSet::new();
    // One replica, checked: warn if another running instance holds the state.
    let holder = state::instance_identity();
    if let Some((ns, name)) = &state_store {
        tasks.spawn(state::hold(
            client.clone(),
            ns.clone(),
            name.clone(),
            holder.clone(),
            stop.clone(),
        ));
    }
    {
        let client = client.clone();
        let stop = stop.clone();
        let metrics = core_metrics.clone();
        let core = Arc::clone(&core);
        let base = base.clone();
        let log_level = log_level.clone();
        tasks.spawn(async move {
            let last_good = Mutex::new(base.clone());
            config_maps::watch_one(client, &cm_namespace, &cm_name, stop, |cm| {
                let empty = BTreeMap::new();
                let data = cm.and_then(|c| c.data.as_ref()).unwrap_or(&empty);
                let mut last = last_good.lock().unwrap_or_else(PoisonError::into_inner);
                let (next, rejected) = Settings::apply(&base, &last, data);
                for r in &rejected {
                    warn!(key = %r.key, "ConfigMap {cm_namespace}/{cm_name}: {} rejected: {}; keeping the last good value", r.key, r.reason);
                }
                let outcome = if rejected.is_empty() { "applied" } else { "rejected" };
                metrics.config_reloads.get_or_create(&OutcomeLabel { outcome }).inc();
                if next != *last {
                    info!("settings changed: {}", describe(&next));
                    log_level.set(&next.log_level);
                    core.set_lookback(next.lookback.as_secs() as i64);
                    core.set_max_buffered(next.max_buffered_events, next.max_buffered_bytes);
                    *last = next.clone();
                    settings_tx.send_replace(next);
                }
            })
            .await;
        });
    }
    {
        let client = client.clone();
        let stop = stop.clone();
        let core = Arc::clone(&core);
        tasks.spawn(async move {
            config_maps::watch_one(
                client,
                identity::PUBLIC_INFO_NAMESPACE,
                identity::PUBLIC_INFO_NAME,
                stop,
                |cm| {
                    let info = cm.map(PublicInfo::from_config_map).unwrap_or_default();
                    core.set_identity(identity::combine(&configured, &info, &facts));
                },
            )
            .await;
        });
    }

    // Capture.
    let (obs_tx, obs_rx) = tokio::sync::mpsc::channel(1024);
    let states: Vec<Arc<watch::WatchState>> = (0..4).map(|_| Arc::default()).collect();
    // The telemetry switch (Konflux CR + telemetryEnabled), decided in one place.
    let switch_rx = spawn_switch(&mut tasks, &client, &core, &settings_rx, &stop);
    tasks.spawn(watches(
        client.clone(),
        obs_tx.clone(),
        core_metrics.clone(),
        states.clone(),
        switch_rx.clone(),
        stop.clone(),
    ));
    // The sweep over Tekton Results, feeding the same core.
    let sweep_metrics = SweepMetrics::new();
    match results_config(&args).map(|c| ResultsClient::new(&c)) {
        None => info!("no Tekton Results address: no reconciliation sweep"),
        Some(Err(e)) => warn!("no reconciliation sweep: {e}"),
        Some(Ok(results)) => {
            if args.tekton_results_insecure_skip_tls_verify {
                warn!(
                    "Tekton Results TLS verification is off (--tekton-results-insecure-skip-tls-verify)"
                );
            }
            let to_sweep = |s: &Settings| SweepSettings {
                interval: s.sweep_interval,
                lookback: s.lookback,
            };
            let (sweep_tx, sweep_rx) = live::channel(to_sweep(&base));
            let mut settings = settings_rx.clone();
            let stop_relay = stop.clone();
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        () = stop_relay.cancelled() => return,
                        changed = settings.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            let next = to_sweep(&settings.borrow_and_update());
                            sweep_tx.send_if_modified(|cur| std::mem::replace(cur, next) != next);
                        }
                    }
                }
            });
            let sweeper = Sweeper::new(results, sweep_rx, obs_tx.clone(), sweep_metrics.clone())
                .with_watermark(watermark.clone());
            tasks.spawn(sweeper.run(stop.clone().cancelled_owned()));
        }
    }
    // Servers drain on stop (in-flight requests finish) rather than being aborted.
    let mut servers = tokio::task::JoinSet::new();
    // The admission webhook (optional), feeding the same core.
    let admission_metrics = crate::admission::AdmissionMetrics::default();
    if let Some(listen) = args.webhook_listen {
        let webhook = crate::admission::Webhook::bind(
            listen,
            &args.webhook_cert_dir,
            obs_tx.clone(),
            Arc::clone(&core),
            admission_metrics.clone(),
        )
        .await?
        .with_limits(args.server.limits(
            args.webhook_max_body_bytes,
            args.webhook_max_bytes_in_flight,
        ));
        servers.spawn(webhook.run(stop.clone()));
    }
    drop(obs_tx);
    let consumer = tokio::spawn(consume(Arc::clone(&core), obs_rx));

    // HTTP.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| Error::Io {
            context: "binding the HTTP listener",
            source,
        })?;
    info!(
        "serving /healthz /readyz /metrics /preview on http://{}",
        listener.local_addr().unwrap_or(args.listen)
    );
    let ready_states = states.clone();
    let mut registry = metrics::registry(&core_metrics, &sender_metrics, &sweep_metrics);
    admission_metrics.register(registry.sub_registry_with_prefix("admission"));
    let endpoints = Arc::new(Endpoints {
        core: Arc::clone(&core),
        registry,
        ready: Box::new(move || ready_states.iter().all(|s| s.settled())),
        preview: http::Preview::new(args.preview_any_peer),
    });
    let http_limits = args
        .server
        .limits(http::MAX_BODY, http::MAX_BYTES_IN_FLIGHT);
    servers.spawn(http::serve(listener, endpoints, http_limits, stop.clone()));

    // Heartbeat.
    {
        let core = Arc::clone(&core);
        let mut settings = settings_rx.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            loop {
                core.heartbeat(Timestamp::now());
                let every = settings.borrow_and_update().heartbeat_interval;
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                    Ok(()) = settings.changed() => {}
                }
            }
        });
    }

    // Flush until stopped, then once more within the deadline.
    let mut settings = settings_rx.clone();
    let mut current = settings.borrow_and_update().clone();
    let mut sender = match &write_key {
        Some(key) => Some(sender_for(&api_url, key, &current, &sender_metrics)?),
        None => None,
    };
    let mut next_flush = tokio::time::Instant::now() + current.flush_interval;
    let mut last_save = tokio::time::Instant::now() - STATE_SAVE_EVERY;
    let mut saved_watermark = watermark.get();
    let mut switch = switch_rx.clone();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep_until(next_flush) => {}
            () = core.full.notified() => {}
            Ok(()) = switch.changed() => {
                // The gauge says what this loop does: set here, once it acts on the change.
                let now = *switch.borrow_and_update();
                core_metrics.enabled.set(i64::from(now.is_on()));
                if now.is_off()
                    && let Some(key) = &write_key
                {
                    // A new client: the old one's idle connections to Segment close with it.
                    match sender_for(&api_url, key, &current, &sender_metrics) {
                        Ok(s) => sender = Some(s),
                        Err(e) => error!("keeping the previous sender: {e}"),
                    }
                }
                continue;
            }
            Ok(()) = settings.changed() => {
                let next = settings.borrow_and_update().clone();
                if let Some(key) = &write_key
                    && (next.requests_per_second, next.retry_base_delay, next.retry_max_delay, next.retry_deadline)
                        != (current.requests_per_second, current.retry_base_delay, current.retry_max_delay, current.retry_deadline)
                {
                    match sender_for(&api_url, key, &next, &sender_metrics) {
                        Ok(s) => sender = Some(s),
                        Err(e) => error!("keeping the previous sender settings: {e}"),
                    }
                }
                if next.flush_interval != current.flush_interval {
                    next_flush = tokio::time::Instant::now() + next.flush_interval;
                }
                current = next;
                continue;
            }
        }
        let now = *switch.borrow();
        if !now.is_on() {
            next_flush = tokio::time::Instant::now() + current.flush_interval;
            let outcome = if now.is_off() {
                "telemetry_off"
            } else {
                "telemetry_pending"
            };
            core_metrics
                .flushes
                .get_or_create(&OutcomeLabel { outcome })
                .inc();
            continue;
        }
        // A flush stuck in retries must not hold up SIGTERM: the final flush below takes
        // over what this one did not mark as sent. Telemetry turned off mid-flush ends it
        // at once: the request in flight is dropped with its connection.
        let flushed = tokio::select! {
            flushed = core.flush(sender.as_ref()) => flushed,
            () = stop.cancelled() => break,
            // A clone, so that the change is still new to `switch` above.
            _ = async { switch.clone().wait_for(|d| !d.is_on()).await.map(|_| ()) } => {
                next_flush = tokio::time::Instant::now() + current.flush_interval;
                continue;
            }
        };
        if flushed.sent > 0 {
            info!(sent = flushed.sent, unsent = flushed.unsent, "flushed");
        }
        // Also when only the sweep's watermark moved, so a restart resumes from it.
        if (flushed.sent > 0 || watermark.get() != saved_watermark)
            && let Some((ns, name)) = &state_store
            && last_save.elapsed() >= STATE_SAVE_EVERY
        {
            saved_watermark = watermark.get();
            save_state(&client, ns, name, &core, saved_watermark).await;
            last_save = tokio::time::Instant::now();
        }
        core.expire(Timestamp::now().unix_seconds());
        next_flush = tokio::time::Instant::now() + current.flush_interval;
    }

    info!("stopping: flushing what is buffered");
    servers.join_all().await;
    tasks.shutdown().await;
    let _ = consumer.await;
    if !switch_rx.borrow().is_on() {
        info!(
            buffered = core.buffered(),
            "telemetry is not on: no final flush"
        );
    } else {
        match tokio::time::timeout(args.shutdown_timeout, core.flush(sender.as_ref())).await {
            Ok(f) => info!(sent = f.sent, unsent = f.unsent, "final flush done"),
            Err(_) => warn!(
                buffered = core.buffered(),
                "final flush did not finish within the shutdown timeout; events lost"
            ),
        }
    }
    if let Some((ns, name)) = &state_store {
        save_state(&client, ns, name, &core, watermark.get()).await;
        // Released: the next Pod of a rollout (Recreate) starts without a warning.
        if let Err(e) = state::claim(&client, ns, name, &holder, None).await {
            warn!("cannot release the state in ConfigMap {ns}/{name}: {e}");
        }
    }
    Ok(())
}

/// Watches the `konflux` CR and decides, from it and the `telemetryEnabled` setting, whether
/// telemetry is on ([`switch::decide`]); applies each new decision to the core (off drops
/// the buffer) and publishes it (the flush loop sets the `enabled` gauge).
fn spawn_switch(
    tasks: &mut tokio::task::JoinSet<()>,
    client: &kube::Client,
    core: &Arc<Core>,
    settings: &live::Receiver<Settings>,
    stop: &CancellationToken,
) -> live::Receiver<Decision> {
    let (cr_tx, mut cr_rx) = live::channel(CrSays::Pending);
    let api: kube::Api<watch::Lite<watch::Konfluxes>> = kube::Api::all(client.clone());
    let watch_stop = stop.clone();
    tasks.spawn(async move {
        config_maps::watch_named(
            api,
            "the Konflux CR (for spec.telemetry.enabled)",
            crate::events::object::KONFLUX_NAME,
            crate::capture::retry::WatchRetry::default(),
            watch_stop,
            |cr| match CrSays::of(cr.map(|c| &c.decoded)) {
                Some(says) => {
                    cr_tx.send_replace(says);
                }
                None => {
                    warn!("the Konflux CR cannot be read: the telemetry switch stays as it was")
                }
            },
            // No Konflux CRD: no CR to say anything. Forbidden: unknown, nothing is sent.
            |e| {
                if watch::status_code(e) == Some(404) {
                    cr_tx.send_replace(CrSays::Absent);
                }
            },
        )
        .await;
    });
    let (tx, rx) = live::channel(Decision::PENDING);
    let (core, mut settings, stop) = (Arc::clone(core), settings.clone(), stop.clone());
    tasks.spawn(async move {
        let mut last = Decision::PENDING;
        loop {
            let cr = *cr_rx.borrow_and_update();
            let d = switch::decide(cr, settings.borrow_and_update().telemetry_enabled);
            if d != last {
                let dropped = core.set_enabled(!d.is_off());
                let state = match d.switch {
                    switch::Switch::On => "on",
                    switch::Switch::Off => "off: nothing is buffered or sent",
                    switch::Switch::Pending => "held until the Konflux CR is read",
                };
                info!(dropped, "telemetry {state} (decided by {})", d.by.as_str());
                tx.send_replace(d);
                last = d;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                r = cr_rx.changed() => if r.is_err() { return },
                r = settings.changed() => if r.is_err() { return },
            }
        }
    });
    rx
}

/// The four watches. When telemetry comes back on after being off they start over: their
/// relist produces what lies within the lookback and was not sent (the catch-up).
async fn watches(
    client: kube::Client,
    tx: crate::observation::ObservationTx,
    metrics: CoreMetrics,
    states: Vec<Arc<watch::WatchState>>,
    mut switch: live::Receiver<Decision>,
    stop: CancellationToken,
) {
    loop {
        let generation = stop.child_token();
        let mut running = tokio::task::JoinSet::new();
        macro_rules! spawn_watch {
            ($kind:ty, $i:expr) => {{
                let (client, tx, m, s, stop) = (
                    client.clone(),
                    tx.clone(),
                    metrics.clone(),
                    Arc::clone(&states[$i]),
                    generation.clone(),
                );
                running.spawn(async move { watch::run::<$kind>(client, tx, m, s, stop).await });
            }};
        }
        spawn_watch!(watch::PipelineRuns, 0);
        spawn_watch!(watch::Components, 1);
        spawn_watch!(watch::TenantNamespaces, 2);
        spawn_watch!(watch::Konfluxes, 3);
        let resumed = async {
            switch.wait_for(|d| d.is_off()).await?;
            switch.wait_for(|d| d.is_on()).await.map(|_| ())
        };
        tokio::select! {
            () = stop.cancelled() => return,
            r = resumed => if r.is_err() { return },
        }
        info!("telemetry back on: the watches relist to catch up within the lookback");
        generation.cancel();
        running.shutdown().await;
    }
}

async fn consume(core: Arc<Core>, mut rx: ObservationRx) {
    while let Some(obs) = rx.recv().await {
        core.observe(obs, Timestamp::now().unix_seconds());
    }
}

async fn save_state(
    client: &kube::Client,
    ns: &str,
    name: &str,
    core: &Core,
    sweep: Option<crate::sweep::Coverage>,
) {
    let bytes = core.export_produced(state::MAX_ENTRIES);
    if let Err(e) = state::save(client, ns, name, bytes, sweep).await {
        warn!(
            "cannot keep the record of produced events in ConfigMap {ns}/{name} (a restart may resend some; Segment drops those): {e}"
        );
    }
}

fn describe(s: &Settings) -> String {
    format!(
        "flushInterval={:?} heartbeatInterval={:?} lookback={:?} maxBufferedEvents={} maxBufferedBytes={} requestsPerSecond={} logLevel={} sweepInterval={:?}",
        s.flush_interval,
        s.heartbeat_interval,
        s.lookback,
        s.max_buffered_events,
        s.max_buffered_bytes,
        s.requests_per_second,
        s.log_level,
        s.sweep_interval
    )
}
