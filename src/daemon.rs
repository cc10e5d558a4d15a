//! `konflux-telemetry run`: wiring only. Each part lives in its own module: the flags in
//! [`crate::runtime::args`], the loops in [`crate::runtime`], the capture paths in
//! [`crate::capture`], [`crate::sweep`] and [`crate::admission`], the pipeline in
//! [`crate::pipeline`], the outputs in [`crate::segment`] and [`crate::flush`].

pub use crate::runtime::args::RunArgs;

use crate::capture::identity::{self, PublicInfo};
use crate::capture::{config_maps, watch::Readiness};
use crate::events::Timestamp;
use crate::flush::Discard;
use crate::http::{self, Endpoints};
use crate::metrics::Metrics;
use crate::pipeline::Core;
use crate::runtime::args::{self, namespaced_name};
use crate::runtime::checkpoint::Checkpoint;
use crate::runtime::flusher::Flusher;
use crate::runtime::live::LiveSettings;
use crate::runtime::output::SegmentOutput;
use crate::runtime::{self, heartbeat};
use crate::settings::Settings;
use crate::sweep::{ResultsClient, SweepSettings, Sweeper};
use crate::switch::{CrSays, Decision};
use crate::{Error, Result, telemetry};
use std::sync::Arc;
use tokio::sync::watch as live;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

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
    let base = args.base_settings();
    let log_level = telemetry::init(&base.log_level, args.log_json);
    let (cm_namespace, cm_name) = namespaced_name(&args.config_map, "config-map")?;
    let state_at = match args.state_config_map.as_str() {
        "" => None,
        text => Some(namespaced_name(text, "state-config-map")?),
    };
    let api_url = args.segment.api_url()?;
    let write_key = args.segment.write_key();
    if write_key.is_none() {
        warn!("no Segment write key: events are captured and shown at /preview, never sent");
    }
    let client = client(&args).await?;

    // The pipeline.
    let configured = args.identity.configured();
    let facts = identity::cluster_facts(&client).await;
    let info = identity::public_info(&client).await;
    let (metrics, registry) = Metrics::new();
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
    let mut tasks = JoinSet::new();
    let checkpoint = match state_at {
        Some((ns, name)) => {
            let c = Checkpoint::load(client.clone(), ns, name, Arc::clone(&core)).await;
            tasks.spawn(c.clone().run(stop.clone()));
            Some(c)
        }
        None => None,
    };

    // Live settings, the cluster's public info, the telemetry switch.
    let (live_settings, settings) = LiveSettings::new(
        base.clone(),
        format!("{cm_namespace}/{cm_name}"),
        metrics.core.clone(),
    );
    let knobs = Arc::clone(&core);
    tasks.spawn(live_settings.run(
        client.clone(),
        cm_namespace,
        cm_name,
        stop.clone(),
        move |next: &Settings| {
            log_level.set(&next.log_level);
            knobs.set_lookback(next.lookback.as_secs() as i64);
            knobs.set_max_buffered(next.max_buffered_events, next.max_buffered_bytes);
        },
    ));
    let (c, s, id) = (client.clone(), stop.clone(), Arc::clone(&core));
    tasks.spawn(async move {
        config_maps::watch_one(
            c,
            identity::PUBLIC_INFO_NAMESPACE,
            identity::PUBLIC_INFO_NAME,
            s,
            |cm| {
                let info = cm.map(PublicInfo::from_config_map).unwrap_or_default();
                id.set_identity(identity::combine(&configured, &info, &facts));
            },
        )
        .await;
    });
    let (cr_tx, cr_rx) = live::channel(CrSays::Pending);
    let (switch_tx, switch) = live::channel(Decision::PENDING);
    tasks.spawn(runtime::switch::watch_cr(
        client.clone(),
        cr_tx,
        stop.clone(),
    ));
    tasks.spawn(runtime::switch::decide(
        Arc::clone(&core),
        cr_rx,
        settings.clone(),
        switch_tx,
        stop.clone(),
    ));

    // Capture: the watches, the sweep, the webhook, all feeding the core.
    let (obs_tx, obs_rx) = tokio::sync::mpsc::channel(1024);
    let readiness = Readiness::default();
    tasks.spawn(runtime::watches::run(
        client.clone(),
        obs_tx.clone(),
        metrics.core.clone(),
        readiness.clone(),
        switch.clone(),
        stop.clone(),
    ));
    match args.results.config().map(|c| ResultsClient::new(&c)) {
        None => info!("no Tekton Results address: no reconciliation sweep"),
        Some(Err(e)) => warn!("no reconciliation sweep: {e}"),
        Some(Ok(results)) => {
            if args.results.tekton_results_insecure_skip_tls_verify {
                warn!(
                    "Tekton Results TLS verification is off (--tekton-results-insecure-skip-tls-verify)"
                );
            }
            let sweep_settings =
                runtime::project(&settings, &stop, &mut tasks, |s| SweepSettings {
                    interval: s.sweep_interval,
                    lookback: s.lookback,
                });
            let mut sweeper = Sweeper::new(
                results,
                sweep_settings,
                obs_tx.clone(),
                metrics.sweep.clone(),
            );
            if let Some(c) = &checkpoint {
                sweeper = sweeper.with_watermark(c.watermark());
            }
            tasks.spawn(sweeper.run(stop.clone().cancelled_owned()));
        }
    }
    // Servers drain on stop (in-flight requests finish) rather than being aborted.
    let mut servers = JoinSet::new();
    if let Some(listen) = args.webhook.webhook_listen {
        let limits = args.server.limits(
            args.webhook.webhook_max_body_bytes,
            args.webhook.webhook_max_bytes_in_flight,
        );
        let webhook = crate::admission::Webhook::bind(
            listen,
            &args.webhook.webhook_cert_dir,
            obs_tx.clone(),
            Arc::clone(&core),
            metrics.admission.clone(),
        )
        .await?
        .with_limits(limits);
        servers.spawn(webhook.run(stop.clone()));
    }
    drop(obs_tx);
    let consumer = tokio::spawn(runtime::consume(Arc::clone(&core), obs_rx));

    // HTTP.
    let listener = tokio::net::TcpListener::bind(args.http.listen)
        .await
        .map_err(|source| Error::Io {
            context: "binding the HTTP listener",
            source,
        })?;
    info!(
        "serving /healthz /readyz /metrics /preview on http://{}",
        listener.local_addr().unwrap_or(args.http.listen)
    );
    let endpoints = Arc::new(Endpoints {
        core: Arc::clone(&core),
        registry,
        ready: Box::new(move || readiness.settled()),
        preview: http::Preview::new(args.http.preview_any_peer),
    });
    let http_limits = args
        .server
        .limits(http::MAX_BODY, http::MAX_BYTES_IN_FLIGHT);
    servers.spawn(http::serve(listener, endpoints, http_limits, stop.clone()));

    // The heartbeat and the flusher; at stop, the final flush after the capture ends.
    let beating = Arc::clone(&core);
    tasks.spawn(heartbeat::run(settings.clone(), stop.clone(), move || {
        beating.heartbeat(Timestamp::now());
    }));
    let output_for = move |s: &Settings| -> Result<SegmentOutput> {
        Ok(match &write_key {
            Some(key) => SegmentOutput::Segment(args::sender(&api_url, key, s, &metrics.segment)?),
            None => SegmentOutput::Discard(Discard),
        })
    };
    let flusher = Flusher::new(
        Arc::clone(&core),
        settings,
        switch,
        output_for,
        args.shutdown_timeout,
    )?
    .run(stop.clone())
    .await;
    servers.join_all().await;
    tasks.shutdown().await;
    let _ = consumer.await;
    flusher.finish().await;
    if let Some(c) = &checkpoint {
        c.release().await;
    }
    Ok(())
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
