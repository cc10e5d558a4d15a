//! The daemon with the reconciliation sweep, on the real API server and the real Tekton
//! Results API: runs that finished and were pruned while the daemon was down are
//! recovered from Results, exactly once; what the watch already sent is not sent again;
//! records older than the lookback are ignored; an unreachable Results API is survived.

mod support;

use support::at;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use std::path::Path;
use support::daemon::{DaemonProcess, sending_flags, sink_events, start_sink, wait_for_ids};
use support::results::{ResultsServer, results_server};
use support::{TestCluster, crds, set_status};

const KEY: &str = "wk-sweep-test";

/// The daemon of this test: flushes every 300 ms, sweeps `results` at start.
fn start(
    cluster: &TestCluster,
    sink: &str,
    home: &str,
    results: &ResultsServer,
    log: &Path,
) -> DaemonProcess {
    let mut args = sending_flags(sink, KEY, "sweep-test", home);
    args.extend(results.sweep_flags());
    DaemonProcess::start(cluster, &args, log.to_path_buf())
}

/// SIGTERM; the daemon must exit 0. Returns its log.
fn stop(daemon: DaemonProcess) -> String {
    let (ok, log) = daemon.terminate();
    assert!(ok, "daemon exit; log:\n{log}");
    log
}

fn count(out: &Path, id: &str) -> usize {
    support::daemon::count(&sink_events(out), id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_while_down_is_recovered_once() {
    let cluster = support::cluster().await;
    let results = results_server();
    let dir = std::env::temp_dir().join(format!("konflux-telemetry-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let out = dir.join("sink.ndjson");
    let sink = start_sink(KEY, &out).await;
    let sink_url = sink.api_url();
    let home = cluster.namespace("sweep-home").await;
    let tenant = cluster.namespace("sweep-tenant").await;
    let ns = tenant.name().to_owned();
    let runs = tenant.dynamic_api(&crds::pipelinerun());

    // 1. The daemon runs; a run starts and completes; the watch sends it; Results records it.
    let log1 = dir.join("d1.log");
    let d1 = start(&cluster, &sink_url, home.name(), &results, &log1);
    support::create_run(&runs, "seen").await.expect("run");
    let status = json!({"startTime": at(-120), "completionTime": at(-60), "childReferences": [{"name": "a"}],
                        "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]});
    let seen = set_status(&runs, "seen", status.clone())
        .await
        .expect("status");
    let seen_uid = seen.metadata.uid.clone().expect("uid");
    let seen_ids = [
        format!("{seen_uid}-started"),
        format!("{seen_uid}-completed"),
    ];
    wait_for_ids(&out, &seen_ids).await;
    results
        .record(
            &ns,
            &json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": "seen", "namespace": ns, "uid": seen_uid}, "status": status}),
        )
        .await;
    stop(d1);

    // 2. While it is down: a run completes, is recorded, and is pruned from the cluster;
    //    and an old record lies before the lookback.
    support::create_run(&runs, "missed").await.expect("run");
    let missed_status = json!({"startTime": at(-50), "completionTime": at(-10), "childReferences": [{"name": "a"}, {"name": "b"}],
                               "conditions": [{"type": "Succeeded", "status": "False", "reason": "Failed"}]});
    let missed = set_status(&runs, "missed", missed_status.clone())
        .await
        .expect("status");
    let missed_uid = missed.metadata.uid.clone().expect("uid");
    results.record(&ns, &json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": "missed", "namespace": ns, "uid": missed_uid}, "status": missed_status})).await;
    runs.delete("missed", &DeleteParams::default())
        .await
        .expect("prune");
    let ancient_uid = format!("ancient-{}", std::process::id());
    results
        .record(
            &ns,
            &json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": "ancient", "namespace": ns, "uid": ancient_uid},
        "status": {"startTime": at(-6 * 3600), "completionTime": at(-5 * 3600)}}),
        )
        .await;

    // 3. Restart: the sweep recovers exactly the missing events.
    let log2 = dir.join("d2.log");
    let d2 = start(&cluster, &sink_url, home.name(), &results, &log2);
    let missed_ids = [
        format!("{missed_uid}-started"),
        format!("{missed_uid}-completed"),
    ];
    wait_for_ids(&out, &missed_ids).await;
    let completed = sink_events(&out)
        .into_iter()
        .find(|e| e["messageId"] == missed_ids[1])
        .expect("completed");
    assert_eq!(completed["properties"]["status"], "Failed");
    assert_eq!(completed["properties"]["taskCount"], 2);
    // One more flush cycle passes with nothing new for these runs.
    wait_for_ids(&out, &[support::marker_run(&runs, "probe").await]).await;
    let log = stop(d2);
    for id in seen_ids.iter().chain(missed_ids.iter()) {
        assert_eq!(count(&out, id), 1, "{id}; log:\n{log}");
    }
    assert_eq!(count(&out, &format!("{ancient_uid}-started")), 0);
    assert_eq!(count(&out, &format!("{ancient_uid}-completed")), 0);

    // 4. An unreachable Results API costs the sweep only: the watch goes on.
    let log3 = dir.join("d3.log");
    let unreachable = ResultsServer {
        addr: "https://127.0.0.1:1".into(),
        ca: results.ca.clone(),
    };
    let d3 = start(&cluster, &sink_url, home.name(), &unreachable, &log3);
    let alive = support::create_run(&runs, "alive").await.expect("run");
    set_status(&runs, "alive", json!({"startTime": at(0)}))
        .await
        .expect("status");
    wait_for_ids(
        &out,
        &[format!("{}-started", alive.metadata.uid.expect("uid"))],
    )
    .await;
    let log = stop(d3);
    assert!(
        log.to_lowercase().contains("sweep"),
        "no sweep error logged:\n{log}"
    );
    assert!(!log.contains(&ns), "namespace in the log");

    sink.shutdown().await;
    tenant.cleanup().await;
    home.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Secret `segment-bridge-config` exactly as the Konflux operator writes it
/// (`operator/internal/controller/segmentbridge/`): the Results address as `host:port`
/// without a scheme, the batch URL, the write key (possibly empty), `TEKTON_LIMIT` at
/// the operator's default 1000.
fn operator_secret(results_host_port: &str, batch_api: &str, write_key: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("segment-bridge-config".into()),
            ..ObjectMeta::default()
        },
        string_data: Some(
            [
                ("TEKTON_RESULTS_API_ADDR", results_host_port),
                ("SEGMENT_BATCH_API", batch_api),
                ("SEGMENT_WRITE_KEY", write_key),
                ("TEKTON_LIMIT", "1000"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ),
        ..Secret::default()
    }
}

/// The environment a container gets from `envFrom: secretRef` of the Secret as stored.
async fn env_from(secrets: &Api<Secret>, name: &str) -> Vec<(String, String)> {
    let stored = secrets.get(name).await.expect("read the Secret back");
    stored
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).expect("UTF-8 value")))
        .collect()
}

/// One sample of a `/metrics` text; 0 when not served (yet).
fn metric(text: &str, series: &str) -> f64 {
    support::daemon::sample(text, series).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_secret_as_written_sweeps_over_https() {
    let cluster = support::cluster().await;
    let results = results_server();
    let dir = support::daemon::tempdir("operator-secret");
    let out = dir.join("sink.ndjson");
    let sink = start_sink(KEY, &out).await;
    let home = cluster.namespace("opsecret-home").await;
    // The runs' namespace exists in Results only.
    let ns = format!("opsecret-{}", std::process::id());
    let secrets: Api<Secret> = home.api();

    // The scheme-less form the operator writes, pointed at the local Results (https, its
    // own CA; `localhost` is in its certificate like the service name would be).
    let port = results
        .addr
        .rsplit(':')
        .next()
        .expect("the Results address has a port");
    let host_port = format!("localhost:{port}");
    assert!(!host_port.contains("://"));

    // A run recorded in Results only: the watch never saw it, the sweep must.
    let record = |name: &str| {
        let uid = format!(
            "{name}-{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        );
        let run = json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
            "metadata": {"name": name, "namespace": ns, "uid": uid},
            "status": {"startTime": at(-50), "completionTime": at(-10), "childReferences": [{"name": "a"}],
                       "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]}});
        (uid, run)
    };
    let (uid, run) = record("opsecret-sent");
    results.record(&ns, &run).await;

    secrets
        .create(
            &PostParams::default(),
            &operator_secret(&host_port, &format!("{}/batch", sink.api_url()), KEY),
        )
        .await
        .expect("create the Secret");
    let env = env_from(&secrets, "segment-bridge-config").await;
    assert!(
        env.iter()
            .any(|(k, v)| k == "TEKTON_RESULTS_API_ADDR" && *v == host_port)
    );

    let (settings, state) = (
        format!("{}/settings", home.name()),
        format!("{}/state", home.name()),
    );
    let ca = results.ca.to_string_lossy().into_owned();
    // What the Deployment adds to the Secret: the CA to trust (on OpenShift the service
    // CA), the state and settings ConfigMaps. No token: the local Results checks none.
    let args = [
        "--cluster-id",
        "operator-secret-test",
        "--flush-interval",
        "300ms",
        "--config-map",
        &settings,
        "--state-config-map",
        &state,
        "--tekton-results-ca-file",
        &ca,
    ];
    let log = dir.join("d1.log");
    let d1 = DaemonProcess::start_with_env(&cluster, &args, &env, log.clone());
    let ids = [format!("{uid}-started"), format!("{uid}-completed")];
    wait_for_ids(&out, &ids).await;
    let (_, metrics) = d1.get("/metrics").await.expect("metrics");
    assert!(
        metric(
            &metrics,
            r#"konflux_telemetry_sweep_completed_total{window="full"}"#
        ) >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            r#"konflux_telemetry_sweep_sweeps_total{outcome="error"}"#
        ),
        0.0
    );
    let log1 = stop(d1);
    assert!(!log1.contains("no reconciliation sweep"), "{log1}");
    let clamped: Vec<_> = log1
        .lines()
        .filter(|l| l.contains("TEKTON_LIMIT"))
        .collect();
    assert_eq!(clamped.len(), 1, "one line about the page size:\n{log1}");
    assert!(
        clamped[0].contains("requested=1000") && clamped[0].contains("page_size=250"),
        "{}",
        clamped[0]
    );
    assert!(!log1.contains(KEY), "the write key in the log");

    // The same Secret with an empty write key: capture and /preview, nothing sent.
    let (uid2, run2) = record("opsecret-kept");
    results.record(&ns, &run2).await;
    secrets
        .replace(
            "segment-bridge-config",
            &PostParams::default(),
            &operator_secret(&host_port, &format!("{}/batch", sink.api_url()), ""),
        )
        .await
        .expect("replace the Secret");
    let env = env_from(&secrets, "segment-bridge-config").await;
    assert!(
        env.iter()
            .any(|(k, v)| k == "SEGMENT_WRITE_KEY" && v.is_empty())
    );
    let d2 = DaemonProcess::start_with_env(&cluster, &args, &env, dir.join("d2.log"));
    let completed = format!("{uid2}-completed");
    support::eventually(
        "the swept run at /preview",
        support::daemon::WAIT,
        || async {
            d2.get("/preview")
                .await
                .filter(|(_, body)| body.contains(&completed))
                .map(|_| ())
        },
    )
    .await;
    let log2 = stop(d2);
    assert!(log2.contains("no Segment write key"), "{log2}");
    // Nothing of the second run ever reached the sink: without a key there is no sender.
    assert_eq!(count(&out, &completed), 0);

    sink.shutdown().await;
    home.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits until the daemon's `/metrics` has `series` at `at_least` or more; returns the text.
async fn metric_reaches(daemon: &DaemonProcess, series: &str, at_least: f64) -> String {
    support::eventually(
        &format!("{series} >= {at_least}"),
        support::daemon::WAIT,
        || async {
            let (_, text) = daemon.get("/metrics").await?;
            (metric(&text, series) >= at_least).then_some(text)
        },
    )
    .await
}

const FULL_OK: &str = r#"konflux_telemetry_sweep_completed_total{window="full"}"#;
const INCREMENTAL_OK: &str = r#"konflux_telemetry_sweep_completed_total{window="incremental"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_the_watermark_and_a_long_outage_reads_the_whole_lookback() {
    let cluster = support::cluster().await;
    let results = results_server();
    let dir = support::daemon::tempdir("sweep-watermark");
    let out = dir.join("sink.ndjson");
    let sink = start_sink(KEY, &out).await;
    let sink_url = sink.api_url();
    let home = cluster.namespace("watermark-home").await;
    let ns = format!("watermark-{}", std::process::id());
    let states: Api<ConfigMap> = home.api();
    let saved = || async {
        let cm = states.get("state").await.expect("the state ConfigMap");
        konflux_telemetry::state::coverage_from(&cm.data.unwrap_or_default())
    };

    // 1. No saved state: the first sweep reads the whole lookback, and its watermark is
    //    saved at shutdown.
    let before = jiff::Timestamp::now();
    let d1 = start(
        &cluster,
        &sink_url,
        home.name(),
        &results,
        &dir.join("d1.log"),
    );
    let text = metric_reaches(&d1, FULL_OK, 1.0).await;
    assert_eq!(metric(&text, INCREMENTAL_OK), 0.0, "{text}");
    stop(d1);
    let first = saved()
        .await
        .expect("a watermark saved with the produced record");
    assert!(first.to >= before, "{first:?} before {before}");
    assert!(first.from < first.to);

    // 2. A run recorded while the daemon is down; the restart reads from the watermark
    //    (minus the overlap) and recovers it.
    let uid = format!(
        "resumed-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    );
    results
        .record(
            &ns,
            &json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
            "metadata": {"name": "resumed", "namespace": ns, "uid": uid},
            "status": {"startTime": at(-30), "completionTime": at(-5)}}),
        )
        .await;
    let d2 = start(
        &cluster,
        &sink_url,
        home.name(),
        &results,
        &dir.join("d2.log"),
    );
    wait_for_ids(
        &out,
        &[format!("{uid}-started"), format!("{uid}-completed")],
    )
    .await;
    let text = metric_reaches(&d2, INCREMENTAL_OK, 1.0).await;
    assert_eq!(
        metric(&text, FULL_OK),
        0.0,
        "the restart read the whole lookback:\n{text}"
    );
    stop(d2);
    let second = saved().await.expect("the watermark after the restart");
    assert_eq!(
        second.from, first.from,
        "an incremental sweep extends the coverage"
    );
    assert!(second.to > first.to);

    // 3. A watermark older than the lookback (4 h): the whole lookback again.
    let old = konflux_telemetry::sweep::Coverage {
        from: jiff::Timestamp::now() - jiff::SignedDuration::from_hours(9),
        to: jiff::Timestamp::now() - jiff::SignedDuration::from_hours(5),
    };
    states
        .patch(
            "state",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": konflux_telemetry::state::coverage_data(Some(old))})),
        )
        .await
        .expect("age the watermark");
    let d3 = start(
        &cluster,
        &sink_url,
        home.name(),
        &results,
        &dir.join("d3.log"),
    );
    let text = metric_reaches(&d3, FULL_OK, 1.0).await;
    assert_eq!(metric(&text, INCREMENTAL_OK), 0.0, "{text}");
    let log = stop(d3);
    assert!(!log.contains(&ns), "namespace in the log");
    assert_eq!(count(&out, &format!("{uid}-completed")), 1);

    sink.shutdown().await;
    home.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Results service name in namespace `ns`.
fn service_name(ns: &str) -> String {
    format!("tekton-results-api-service.{ns}.svc.cluster.local")
}

/// `--tekton-results-resolve` for the three namespaces Konflux's UI proxy probes: each
/// `(namespace, resolves to loopback)`.
fn resolving(names: [(&str, bool); 3]) -> Vec<String> {
    names
        .iter()
        .flat_map(|(ns, resolves)| {
            let ip = if *resolves { "127.0.0.1" } else { "" };
            [
                "--tekton-results-resolve".to_owned(),
                format!("{}={ip}", service_name(ns)),
            ]
        })
        .collect()
}

/// Issue #22 §2: the operator writes the OpenShift service name; Results may be in any of
/// the three namespaces, or nowhere. The names are pointed at the local Results server
/// (its own CA, as off OpenShift, and no CA given: a cluster service name is not
/// verified) or made not to resolve, like curl's --resolve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_is_found_where_konflux_installs_it_or_said_missing_once() {
    let cluster = support::cluster().await;
    let results = results_server();
    let dir = support::daemon::tempdir("sweep-discovery");
    let out = dir.join("sink.ndjson");
    let sink = start_sink(KEY, &out).await;
    let sink_url = sink.api_url();
    let home = cluster.namespace("discovery-home").await;
    let tenant = cluster.namespace("discovery-tenant").await;
    let runs = tenant.dynamic_api(&crds::pipelinerun());
    let ns = format!("discovery-{}", std::process::id());
    let port = results.addr.rsplit(':').next().expect("a port").to_owned();
    let configured = format!("{}:{port}", service_name("openshift-pipelines"));
    let daemon = |names: [(&str, bool); 3], log: &str| {
        let mut args = sending_flags(&sink_url, KEY, "discovery-test", home.name());
        args.extend(
            [
                "--tekton-results-api-addr",
                &configured,
                "--tekton-results-token",
                "not-checked",
            ]
            .map(str::to_owned),
        );
        args.extend(resolving(names));
        DaemonProcess::start(&cluster, &args, dir.join(log))
    };
    let found = |f: &str| format!(r#"konflux_telemetry_sweep_results_address{{found="{f}"}}"#);
    let unverified = r#"konflux_telemetry_sweep_results_tls{policy="in_cluster_unverified"}"#;
    let record = |name: &str| {
        let uid = format!("{name}-{}", jiff::Timestamp::now().as_nanosecond());
        let run = json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
            "metadata": {"name": name, "namespace": ns, "uid": uid},
            "status": {"startTime": at(-50), "completionTime": at(-10)}});
        (uid, run)
    };

    for (names, expected, log) in [
        // The configured (OpenShift) name resolves.
        (
            [
                ("openshift-pipelines", true),
                ("tekton-pipelines", true),
                ("tekton-results", true),
            ],
            "configured",
            "configured.log",
        ),
        // It does not; the third name does (the production install of
        // redhat-appstudio/infra-deployments #13335).
        (
            [
                ("openshift-pipelines", false),
                ("tekton-pipelines", false),
                ("tekton-results", true),
            ],
            "discovered",
            "discovered.log",
        ),
    ] {
        let (uid, run) = record(expected);
        results.record(&ns, &run).await;
        let d = daemon(names, log);
        wait_for_ids(&out, &[format!("{uid}-completed")]).await;
        let text = metric_reaches(&d, &found(expected), 1.0).await;
        assert_eq!(metric(&text, unverified), 1.0, "{text}");
        for other in ["configured", "discovered", "none"]
            .iter()
            .filter(|f| **f != expected)
        {
            assert_eq!(metric(&text, &found(other)), 0.0, "{text}");
        }
        assert_eq!(
            metric(
                &text,
                r#"konflux_telemetry_sweep_sweeps_total{outcome="error"}"#
            ),
            0.0
        );
        let log = stop(d);
        let said: Vec<_> = log
            .lines()
            .filter(|l| l.contains("Tekton Results"))
            .collect();
        let where_line = if expected == "configured" {
            "Tekton Results at the configured address"
        } else {
            "in namespace tekton-results: the configured address does not resolve"
        };
        assert_eq!(
            said.iter().filter(|l| l.contains(where_line)).count(),
            1,
            "{log}"
        );
        assert_eq!(
            said.iter()
                .filter(|l| l.contains("Tekton Results TLS: certificate not verified"))
                .count(),
            1,
            "the TLS choice once:\n{log}"
        );
        // No address in the log (docs/privacy.md): the names are fixed labels.
        assert!(!log.contains(".svc.cluster.local"), "{log}");
    }

    // Nowhere: one line, ready, and the watch goes on.
    let d = daemon(
        [
            ("openshift-pipelines", false),
            ("tekton-pipelines", false),
            ("tekton-results", false),
        ],
        "none.log",
    );
    d.wait_ready().await;
    let marker = support::marker_run(&runs, "watched").await;
    wait_for_ids(&out, &[marker]).await;
    let text = metric_reaches(&d, &found("none"), 1.0).await;
    assert_eq!(metric(&text, unverified), 0.0, "no client: {text}");
    assert_eq!(
        metric(
            &text,
            r#"konflux_telemetry_sweep_sweeps_total{outcome="error"}"#
        ),
        0.0
    );
    let log = stop(d);
    let not_found: Vec<_> = log
        .lines()
        .filter(|l| l.contains("Tekton Results not found"))
        .collect();
    assert_eq!(not_found.len(), 1, "{log}");
    assert!(!log.contains("sweep failed"), "{log}");
    assert!(!log.contains(".svc.cluster.local"), "{log}");

    sink.shutdown().await;
    tenant.cleanup().await;
    home.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `shared/` beside the checkout, or `$SHARED`.
fn shared() -> std::path::PathBuf {
    std::env::var_os("SHARED")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// Issue #22 §1: the Secret `segment-bridge-config` exactly as the Konflux operator wrote
/// it (`shared/konflux-operator/objects/secret.yaml`, read here, not typed in), applied to
/// the API server and given to the daemon as `envFrom` gives it: its write key, its
/// `TEKTON_LIMIT`, and its Results address, the operator's service name and port, which
/// `--tekton-results-resolve` points at the local Results server (like curl's
/// `--connect-to`). The one thing changed is where events go: the test's sink stands in
/// for the Secret's Segment URL (`--segment-api-url` wins over `SEGMENT_BATCH_API`), whose
/// reading is checked on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_own_secret_runs_the_daemon_with_events_and_a_sweep() {
    let path = shared().join("konflux-operator/objects/secret.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "this test needs the Secret the Konflux operator wrote, {}: {e}; put shared/ beside \
             the checkout or set SHARED to it",
            path.display()
        )
    });
    let mut secret: Secret = serde_norway::from_str(&text).expect("a Secret");
    assert_eq!(
        secret.metadata.name.as_deref(),
        Some("segment-bridge-config")
    );
    let cluster = support::cluster().await;
    let results = results_server();
    let dir = support::daemon::tempdir("operator-own-secret");
    let out = dir.join("sink.ndjson");
    let home = cluster.namespace("own-secret-home").await;
    let tenant = cluster.namespace("own-secret-tenant").await;
    let runs = tenant.dynamic_api(&crds::pipelinerun());
    // Into the test's namespace (segment-bridge is tests/deploy.rs's); its owner, the
    // KonfluxSegmentBridge, is not on this API server (and the capture has no uid for it).
    secret.metadata.namespace = Some(home.name().to_owned());
    secret.metadata.owner_references = None;
    let secrets: Api<Secret> = home.api();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("apply the operator's Secret");
    let env = env_from(&secrets, "segment-bridge-config").await;
    let value = |key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{key} in the operator's Secret"))
    };
    let (key, addr, batch) = (
        value("SEGMENT_WRITE_KEY"),
        value("TEKTON_RESULTS_API_ADDR"),
        value("SEGMENT_BATCH_API"),
    );
    assert_eq!(value("TEKTON_LIMIT"), "50");
    // Its Segment URL as the daemon reads it: the batch URL without `/batch`.
    let said = konflux_telemetry::segment::credentials::Said {
        api_url: None,
        batch_api: Some(batch.clone()),
        write_key: None,
    };
    let api_url = said
        .credentials()
        .expect("the operator's SEGMENT_BATCH_API")
        .api_url;
    assert_eq!(format!("{api_url}/batch"), batch);

    // The operator's address: a service name without a scheme, on the service's port.
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    assert!(
        host.ends_with(".svc.cluster.local") && port == "8080",
        "{addr}"
    );
    let local_port = results.addr.rsplit(':').next().expect("a port");
    let ns = format!("own-secret-{}", std::process::id());
    let uid = format!("own-secret-{}", jiff::Timestamp::now().as_nanosecond());
    let run = json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": "recorded", "namespace": ns, "uid": uid},
        "status": {"startTime": at(-50), "completionTime": at(-10), "childReferences": [{"name": "a"}],
                   "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]}});
    results.record(&ns, &run).await;

    let sink = start_sink(&key, &out).await;
    let (settings, state) = (
        format!("{}/settings", home.name()),
        format!("{}/state", home.name()),
    );
    let args = [
        "--cluster-id".to_owned(),
        "operator-own-secret".to_owned(),
        "--flush-interval".to_owned(),
        "300ms".to_owned(),
        "--config-map".to_owned(),
        settings,
        "--state-config-map".to_owned(),
        state,
        "--segment-api-url".to_owned(),
        sink.api_url(),
        "--tekton-results-resolve".to_owned(),
        format!("{host}=127.0.0.1:{local_port}"),
    ];
    let d = DaemonProcess::start_with_env(&cluster, &args, &env, dir.join("d.log"));
    // The sweep: the run only Results holds.
    wait_for_ids(
        &out,
        &[format!("{uid}-started"), format!("{uid}-completed")],
    )
    .await;
    // The watch: a run started now.
    wait_for_ids(&out, &[support::marker_run(&runs, "watched").await]).await;
    let text = metric_reaches(&d, FULL_OK, 1.0).await;
    let configured = r#"konflux_telemetry_sweep_results_address{found="configured"}"#;
    assert_eq!(metric(&text, configured), 1.0, "{text}");
    assert_eq!(
        metric(
            &text,
            r#"konflux_telemetry_sweep_sweeps_total{outcome="error"}"#
        ),
        0.0
    );
    let log = stop(d);
    assert!(
        !log.contains("TEKTON_LIMIT"),
        "50 a page is not clamped:\n{log}"
    );
    assert!(!log.contains(&key), "the write key in the log");
    assert!(!log.contains(host), "the Results address in the log");

    sink.shutdown().await;
    tenant.cleanup().await;
    home.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}
