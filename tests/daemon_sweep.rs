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
use support::daemon::{DaemonProcess, DaemonTest, daemon_flags, wait_for_ids};
use support::results::{ResultsServer, results_server};
use support::{crds, set_status};

const KEY: &str = "wk-sweep-test";

/// The daemon of this test: flushes every 300 ms, sweeps `results` at start.
fn start(test: &DaemonTest, results: &ResultsServer) -> DaemonProcess {
    let mut args = test.sending_flags("sweep-test");
    args.extend(results.sweep_flags());
    test.start(&args)
}

/// A test `name` of the sweep with the sink accepting `key`: its [`DaemonTest`], the local
/// Results server, and the namespace (`NAME-PID`) of the runs it records in Results only:
/// not one of the cluster's, so only the sweep can find them.
async fn sweep_test(name: &str, key: &str) -> (DaemonTest, ResultsServer, String) {
    let test = DaemonTest::new(name, key).await;
    (
        test,
        results_server(),
        format!("{name}-{}", std::process::id()),
    )
}

/// How many times event `id` reached the test's sink.
fn count(test: &DaemonTest, id: &str) -> usize {
    support::daemon::count(&test.sent(), id)
}

/// The sweep errors a daemon counted, in its `/metrics` text `text`: none.
fn assert_no_sweep_error(text: &str) {
    assert_eq!(
        metric(
            text,
            r#"konflux_telemetry_sweep_sweeps_total{outcome="error"}"#
        ),
        0.0,
        "{text}"
    );
}

/// The lines of `log` that contain `text`.
fn lines_with<'a>(log: &'a str, text: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(text)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_while_down_is_recovered_once() {
    let test = DaemonTest::new("sweep", KEY).await;
    let out = &test.out;
    let results = results_server();
    let tenant = test.cluster.namespace("sweep-tenant").await;
    let ns = tenant.name().to_owned();
    let runs = tenant.dynamic_api(&crds::pipelinerun());

    // 1. The daemon runs; a run starts and completes; the watch sends it; Results records it.
    let d1 = start(&test, &results);
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
    wait_for_ids(out, &seen_ids).await;
    results
        .record(
            &ns,
            &json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": "seen", "namespace": ns, "uid": seen_uid}, "status": status}),
        )
        .await;
    d1.stop();

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
    let d2 = start(&test, &results);
    let missed_ids = [
        format!("{missed_uid}-started"),
        format!("{missed_uid}-completed"),
    ];
    wait_for_ids(out, &missed_ids).await;
    let completed = test
        .sent()
        .into_iter()
        .find(|e| e["messageId"] == missed_ids[1])
        .expect("completed");
    assert_eq!(completed["properties"]["status"], "Failed");
    assert_eq!(completed["properties"]["taskCount"], 2);
    // One more flush cycle passes with nothing new for these runs.
    wait_for_ids(out, &[support::marker_run(&runs, "probe").await]).await;
    let log = d2.stop();
    for id in seen_ids.iter().chain(missed_ids.iter()) {
        assert_eq!(count(&test, id), 1, "{id}; log:\n{log}");
    }
    assert_eq!(count(&test, &format!("{ancient_uid}-started")), 0);
    assert_eq!(count(&test, &format!("{ancient_uid}-completed")), 0);

    // 4. An unreachable Results API costs the sweep only: the watch goes on.
    let unreachable = ResultsServer {
        addr: "https://127.0.0.1:1".into(),
        ca: results.ca.clone(),
    };
    let d3 = start(&test, &unreachable);
    let alive = support::create_run(&runs, "alive").await.expect("run");
    set_status(&runs, "alive", json!({"startTime": at(0)}))
        .await
        .expect("status");
    wait_for_ids(
        out,
        &[format!("{}-started", alive.metadata.uid.expect("uid"))],
    )
    .await;
    let log = d3.stop();
    assert!(
        log.to_lowercase().contains("sweep"),
        "no sweep error logged:\n{log}"
    );
    assert!(!log.contains(&ns), "namespace in the log");

    test.finish([tenant]).await;
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
    let (test, results, ns) = sweep_test("operator-secret", KEY).await;
    let secrets: Api<Secret> = test.home.api();
    let batch_url = format!("{}/batch", test.sink.api_url());

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
            &operator_secret(&host_port, &batch_url, KEY),
        )
        .await
        .expect("create the Secret");
    let env = env_from(&secrets, "segment-bridge-config").await;
    assert!(
        env.iter()
            .any(|(k, v)| k == "TEKTON_RESULTS_API_ADDR" && *v == host_port)
    );

    // What the Deployment adds to the Secret: the CA to trust (on OpenShift the service
    // CA), the state and settings ConfigMaps. No token: the local Results checks none.
    // The write key and the sink's URL come from the Secret, as environment variables.
    let mut args = daemon_flags("operator-secret-test", test.home.name());
    args.extend([
        "--tekton-results-ca-file".to_owned(),
        results.ca.to_string_lossy().into_owned(),
    ]);
    let d1 = test.start_with_env(&args, &env);
    let ids = [format!("{uid}-started"), format!("{uid}-completed")];
    wait_for_ids(&test.out, &ids).await;
    let (_, metrics) = d1.get("/metrics").await.expect("metrics");
    assert!(metric(&metrics, FULL_OK) >= 1.0, "{metrics}");
    assert_no_sweep_error(&metrics);
    let log1 = d1.stop();
    assert!(!log1.contains("no reconciliation sweep"), "{log1}");
    let clamped = lines_with(&log1, "TEKTON_LIMIT");
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
            &operator_secret(&host_port, &batch_url, ""),
        )
        .await
        .expect("replace the Secret");
    let env = env_from(&secrets, "segment-bridge-config").await;
    assert!(
        env.iter()
            .any(|(k, v)| k == "SEGMENT_WRITE_KEY" && v.is_empty())
    );
    let d2 = test.start_with_env(&args, &env);
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
    let log2 = d2.stop();
    assert!(log2.contains("no Segment write key"), "{log2}");
    // Nothing of the second run ever reached the sink: without a key there is no sender.
    assert_eq!(count(&test, &completed), 0);

    test.finish([]).await;
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
    let (test, results, ns) = sweep_test("sweep-watermark", KEY).await;
    let states: Api<ConfigMap> = test.home.api();
    let saved = || async {
        let cm = states.get("state").await.expect("the state ConfigMap");
        konflux_telemetry::state::coverage_from(&cm.data.unwrap_or_default())
    };

    // 1. No saved state: the first sweep reads the whole lookback, and its watermark is
    //    saved at shutdown.
    let before = jiff::Timestamp::now();
    let d1 = start(&test, &results);
    let text = metric_reaches(&d1, FULL_OK, 1.0).await;
    assert_eq!(metric(&text, INCREMENTAL_OK), 0.0, "{text}");
    d1.stop();
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
    let d2 = start(&test, &results);
    wait_for_ids(
        &test.out,
        &[format!("{uid}-started"), format!("{uid}-completed")],
    )
    .await;
    let text = metric_reaches(&d2, INCREMENTAL_OK, 1.0).await;
    assert_eq!(
        metric(&text, FULL_OK),
        0.0,
        "the restart read the whole lookback:\n{text}"
    );
    d2.stop();
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
    let d3 = start(&test, &results);
    let text = metric_reaches(&d3, FULL_OK, 1.0).await;
    assert_eq!(metric(&text, INCREMENTAL_OK), 0.0, "{text}");
    let log = d3.stop();
    assert!(!log.contains(&ns), "namespace in the log");
    assert_eq!(count(&test, &format!("{uid}-completed")), 1);

    test.finish([]).await;
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
    let (test, results, ns) = sweep_test("sweep-discovery", KEY).await;
    let tenant = test.cluster.namespace("discovery-tenant").await;
    let runs = tenant.dynamic_api(&crds::pipelinerun());
    let port = results.addr.rsplit(':').next().expect("a port").to_owned();
    let configured = format!("{}:{port}", service_name("openshift-pipelines"));
    let daemon = |names: [(&str, bool); 3]| {
        let mut args = test.sending_flags("discovery-test");
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
        test.start(&args)
    };
    let found = |f: &str| format!(r#"konflux_telemetry_sweep_results_address{{found="{f}"}}"#);
    // The daemon `d` found Results as `expected` (configured, discovered, none), and as
    // nothing else; `unverified` clients without a verified certificate; no sweep failed.
    // SIGTERM; no address in the log (docs/privacy.md: the names are fixed labels).
    let found_as = |d: DaemonProcess, expected: &'static str, unverified: f64| async move {
        let text = metric_reaches(&d, &found(expected), 1.0).await;
        let tls = r#"konflux_telemetry_sweep_results_tls{policy="in_cluster_unverified"}"#;
        assert_eq!(metric(&text, tls), unverified, "{text}");
        for other in ["configured", "discovered", "none"]
            .iter()
            .filter(|f| **f != expected)
        {
            assert_eq!(metric(&text, &found(other)), 0.0, "{text}");
        }
        assert_no_sweep_error(&text);
        let log = d.stop();
        assert!(!log.contains(".svc.cluster.local"), "{log}");
        log
    };
    let record = |name: &str| {
        let uid = format!("{name}-{}", jiff::Timestamp::now().as_nanosecond());
        let run = json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
            "metadata": {"name": name, "namespace": ns, "uid": uid},
            "status": {"startTime": at(-50), "completionTime": at(-10)}});
        (uid, run)
    };

    for (names, expected) in [
        // The configured (OpenShift) name resolves.
        (
            [
                ("openshift-pipelines", true),
                ("tekton-pipelines", true),
                ("tekton-results", true),
            ],
            "configured",
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
        ),
    ] {
        let (uid, run) = record(expected);
        results.record(&ns, &run).await;
        let d = daemon(names);
        wait_for_ids(&test.out, &[format!("{uid}-completed")]).await;
        let log = found_as(d, expected, 1.0).await;
        let said = lines_with(&log, "Tekton Results");
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
    }

    // Nowhere: one line, ready, and the watch goes on (no client: none unverified).
    let d = daemon([
        ("openshift-pipelines", false),
        ("tekton-pipelines", false),
        ("tekton-results", false),
    ]);
    d.wait_ready().await;
    let marker = support::marker_run(&runs, "watched").await;
    wait_for_ids(&test.out, &[marker]).await;
    let log = found_as(d, "none", 0.0).await;
    let not_found = lines_with(&log, "Tekton Results not found");
    assert_eq!(not_found.len(), 1, "{log}");
    assert!(!log.contains("sweep failed"), "{log}");

    test.finish([tenant]).await;
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
    // The write key it carries: the one the test's sink accepts.
    let key = secret
        .data
        .as_ref()
        .and_then(|data| data.get("SEGMENT_WRITE_KEY"))
        .map(|v| String::from_utf8(v.0.clone()).expect("UTF-8 write key"))
        .expect("SEGMENT_WRITE_KEY in the operator's Secret");
    let (test, results, ns) = sweep_test("operator-own-secret", &key).await;
    let tenant = test.cluster.namespace("own-secret-tenant").await;
    let runs = tenant.dynamic_api(&crds::pipelinerun());
    // Into the test's namespace (segment-bridge is tests/deploy.rs's); its owner, the
    // KonfluxSegmentBridge, is not on this API server (and the capture has no uid for it).
    secret.metadata.namespace = Some(test.home.name().to_owned());
    secret.metadata.owner_references = None;
    let secrets: Api<Secret> = test.home.api();
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
    let (addr, batch) = (value("TEKTON_RESULTS_API_ADDR"), value("SEGMENT_BATCH_API"));
    assert!(
        value("SEGMENT_WRITE_KEY") == key,
        "the write key as stored is the one the sink accepts"
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
    let uid = format!("own-secret-{}", jiff::Timestamp::now().as_nanosecond());
    let run = json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": "recorded", "namespace": ns, "uid": uid},
        "status": {"startTime": at(-50), "completionTime": at(-10), "childReferences": [{"name": "a"}],
                   "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]}});
    results.record(&ns, &run).await;

    // The write key from the Secret (an environment variable); the URL of the test's sink.
    let mut args = daemon_flags("operator-own-secret", test.home.name());
    args.extend([
        "--segment-api-url".to_owned(),
        test.sink.api_url(),
        "--tekton-results-resolve".to_owned(),
        format!("{host}=127.0.0.1:{local_port}"),
    ]);
    let d = test.start_with_env(&args, &env);
    // The sweep: the run only Results holds.
    wait_for_ids(
        &test.out,
        &[format!("{uid}-started"), format!("{uid}-completed")],
    )
    .await;
    // The watch: a run started now.
    wait_for_ids(&test.out, &[support::marker_run(&runs, "watched").await]).await;
    let text = metric_reaches(&d, FULL_OK, 1.0).await;
    let configured = r#"konflux_telemetry_sweep_results_address{found="configured"}"#;
    assert_eq!(metric(&text, configured), 1.0, "{text}");
    assert_no_sweep_error(&text);
    let log = d.stop();
    assert!(
        !log.contains("TEKTON_LIMIT"),
        "50 a page is not clamped:\n{log}"
    );
    assert!(!log.contains(&key), "the write key in the log");
    assert!(!log.contains(host), "the Results address in the log");

    test.finish([tenant]).await;
}
