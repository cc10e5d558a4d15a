//! `Usage Summary` on the real API server: the counts of a window for a known set of
//! objects and runs the test creates (every property checked, and the ReleasePlan CRD
//! absent, so its count is left out), and the window across a restart (sent once).

mod support;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use support::daemon::{DaemonProcess, DaemonTest, WAIT, count, wait_for_ids};
use support::{TestCluster, crds, eventually, object, set_status};

const KEY: &str = "wk-summary-test";
const CLUSTER_ID: &str = "summary-test";
/// The test's `summaryInterval`, seconds: short, so a window ends while it runs.
const INTERVAL: i64 = 20;

/// This file's test `name`, holding the lock that serialises this file's tests: each
/// counts the whole cluster.
async fn summary_test(name: &str) -> DaemonTest {
    DaemonTest::locked(name, KEY, "summary").await
}

fn start_daemon(test: &DaemonTest) -> DaemonProcess {
    test.start(&test.sending_flags(CLUSTER_ID))
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn iso(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .expect("time")
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The start of a window that begins now: nothing made before the test has a time in it.
async fn fresh_window() -> i64 {
    let before = now().div_euclid(INTERVAL);
    eventually("a new summary window", WAIT, || async {
        let w = now().div_euclid(INTERVAL);
        (w > before).then_some(w * INTERVAL)
    })
    .await
}

/// How many objects of `ar` the cluster holds (matching `selector`).
async fn how_many(cluster: &TestCluster, ar: &ApiResource, selector: Option<&str>) -> u64 {
    let api: Api<DynamicObject> = Api::all_with(cluster.client(), ar);
    let lp = match selector {
        Some(s) => ListParams::default().labels(s),
        None => ListParams::default(),
    };
    api.list_metadata(&lp).await.expect("list").items.len() as u64
}

fn namespaces() -> ApiResource {
    ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&())
}

/// A PipelineRun of type `kind` (`None`: no type label) that started at `start` and,
/// with `done`, completed at `done.0` for reason `done.1`.
async fn run(
    runs: &Api<DynamicObject>,
    name: &str,
    kind: Option<&str>,
    start: i64,
    done: Option<(i64, &str)>,
) {
    let mut o = object(&crds::pipelinerun(), name, json!({}));
    if let Some(k) = kind {
        o.metadata.labels = Some(
            [(
                "pipelines.appstudio.openshift.io/type".to_owned(),
                k.to_owned(),
            )]
            .into(),
        );
    }
    runs.create(&PostParams::default(), &o).await.expect("run");
    let mut status = json!({"startTime": iso(start)});
    if let Some((at, reason)) = done {
        status["completionTime"] = iso(at).into();
        status["conditions"] = json!([{"type": "Succeeded", "status": "True", "reason": reason}]);
    }
    set_status(runs, name, status).await.expect("run status");
}

/// Creates the object `name` of `ar` in `api`, with an empty spec.
async fn create(api: &Api<DynamicObject>, ar: &ApiResource, name: &str) {
    api.create(&PostParams::default(), &object(ar, name, json!({})))
        .await
        .unwrap_or_else(|e| panic!("creating {} {name}: {e}", ar.kind));
}

async fn release(api: &Api<DynamicObject>, name: &str, done: i64, reason: &str) {
    create(api, &crds::release(), name).await;
    let status = json!({"completionTime": iso(done), "conditions": [
        {"type": "Released", "status": if reason == "Succeeded" {"True"} else {"False"}, "reason": reason}
    ]});
    set_status(api, name, status).await.expect("release status");
}

/// Deletes the ReleasePlan CRD (no other test uses it; `make cluster-up` installs it
/// again) and waits until it is gone.
async fn without_release_plans(cluster: &TestCluster) {
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client());
    let name = "releaseplans.appstudio.redhat.com";
    let _ = crds.delete(name, &DeleteParams::default()).await;
    eventually("the ReleasePlan CRD gone", WAIT, || async {
        matches!(crds.get_opt(name).await, Ok(None)).then_some(())
    })
    .await;
}

fn summary_id(window_end: i64) -> String {
    let hash = konflux_telemetry::events::hash::short_hash(&[CLUSTER_ID]);
    format!("{hash}-usage-summary-{}", iso(window_end))
}

fn find<'a>(events: &'a [Value], id: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["messageId"] == id)
        .expect("the summary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_counts_a_known_window_and_leaves_an_uninstalled_kind_out() {
    let test = summary_test("summary-counts").await;
    let (cluster, out) = (&test.cluster, &test.out);
    test.home
        .settings(json!({"summaryInterval": format!("{INTERVAL}s"), "heartbeatInterval": "1h"}))
        .await;
    without_release_plans(cluster).await;
    let tenant = [("konflux-ci.dev/type", "tenant")];
    // What the cluster holds before: the totals are that plus what the test makes.
    let before_tenants = how_many(cluster, &namespaces(), Some("konflux-ci.dev/type=tenant")).await;
    let before_components = how_many(cluster, &crds::component(), None).await;
    let before_apps = how_many(cluster, &crds::application(), None).await;
    let before_scenarios = how_many(cluster, &crds::integration_test_scenario(), None).await;

    let start = fresh_window().await;
    let t1 = cluster.namespace_with_labels("summary-t1", &tenant).await;
    let t2 = cluster.namespace_with_labels("summary-t2", &tenant).await;
    let plain = cluster.namespace("summary-plain").await;
    let idle = cluster.namespace_with_labels("summary-idle", &tenant).await;
    let (runs1, runs2, runs_plain) = (
        t1.dynamic_api(&crds::pipelinerun()),
        t2.dynamic_api(&crds::pipelinerun()),
        plain.dynamic_api(&crds::pipelinerun()),
    );
    // (where, name, type, started, completed with a reason): seconds into the window.
    #[rustfmt::skip]
    let made = [
        // build: 2 s succeeded, 5 s failed, 9 s succeeded (in a namespace no tenant's)
        (&runs1, "b1", Some("build"), 1, Some((3, "Succeeded"))),
        (&runs1, "b2", Some("build"), 1, Some((6, "Failed"))),
        (&runs_plain, "b3", Some("build"), 0, Some((9, "Completed"))),
        (&runs1, "t", Some("test"), 2, Some((9, "Succeeded"))),
        (&runs1, "going", Some("build"), 2, None),
        // an hour ago: not in this window
        (&runs1, "old", Some("build"), -3_600, Some((-3_590, "Succeeded"))),
        (&runs2, "n", None, 1, Some((5, "Cancelled"))),
        (&runs2, "x", Some("a-tenant-s-own-type"), 1, Some((2, "PipelineRunTimeout"))),
    ];
    for (runs, name, kind, started, done) in made {
        let done = done.map(|(at, reason)| (start + at, reason));
        run(runs, name, kind, start + started, done).await;
    }
    let components = t1.dynamic_api(&crds::component());
    support::create_component(&components, "c1").await;
    support::create_component(&components, "c2").await;
    let (app, scenario) = (crds::application(), crds::integration_test_scenario());
    create(&t1.dynamic_api(&app), &app, "a").await;
    create(&t2.dynamic_api(&scenario), &scenario, "its").await;
    let releases = t1.dynamic_api(&crds::release());
    release(&releases, "r1", start + 4, "Succeeded").await;
    release(&releases, "r2", start + 5, "Failed").await;
    release(&releases, "r3", start - 3_600, "Succeeded").await;
    let end = start + INTERVAL;
    assert!(now() < end, "the test made its objects within the window");

    let daemon = start_daemon(&test);
    daemon.wait_ready().await;
    let id = summary_id(end);
    let events = wait_for_ids(out, std::slice::from_ref(&id)).await;
    let summary = find(&events, &id);
    assert_eq!(summary["event"], "Usage Summary");
    assert_eq!(summary["timestamp"], iso(end));
    let p = &summary["properties"];
    assert_eq!(p["windowStart"], iso(start));
    assert_eq!(p["windowSeconds"], INTERVAL);
    assert_eq!(p["tenantNamespaces"], before_tenants + 3);
    assert_eq!(p["components"], before_components + 2);
    assert_eq!(p["applications"], before_apps + 1);
    assert_eq!(p["integrationTestScenarios"], before_scenarios + 1);
    assert!(
        p.get("releasePlans").is_none(),
        "no CRD: left out, not 0: {p}"
    );
    assert_eq!(
        p["pipelineRuns"],
        json!({
            "build": {"succeeded": 2, "failed": 1},
            "test": {"succeeded": 1},
            "none": {"cancelled": 1},
            "other": {"timeout": 1}
        })
    );
    assert_eq!(
        p["pipelineRunDurationSeconds"],
        json!({
            "build": {"p50": 5, "p95": 9},
            "test": {"p50": 7, "p95": 7},
            "none": {"p50": 4, "p95": 4},
            "other": {"p50": 1, "p95": 1}
        })
    );
    assert_eq!(
        p["activeTenantNamespaces"], 2,
        "t1 and t2; not idle, not plain"
    );
    assert_eq!(p["componentsCreated"], 2);
    assert_eq!(p["releases"], json!({"succeeded": 1, "failed": 1}));
    for own in ["eventsProduced", "eventsSent", "eventsDropped"] {
        assert!(p[own].is_u64(), "{own}: {p}");
    }
    let keys: Vec<&String> = p.as_object().expect("properties").keys().collect();
    assert_eq!(
        keys.len(),
        17,
        "the summary's 14 and the common 3: {keys:?}"
    );
    let log = daemon.stop();
    assert_eq!(
        log.matches("releaseplans.appstudio.redhat.com is not served")
            .count(),
        1,
        "logged once: {log}"
    );
    for secret in ["summary-t1", "summary-plain", "a-tenant-s-own-type"] {
        assert!(!log.contains(secret), "{secret} in the log");
        assert!(
            !summary.to_string().contains(secret),
            "{secret} in the summary"
        );
    }

    test.finish([t1, t2, plain, idle]).await;
}

/// The summary of a window is sent once, whatever restarts happen after it: a restart in
/// the next window finds it in the record of produced events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_is_summarised_once_across_a_restart() {
    let test = summary_test("summary-restart").await;
    let out = &test.out;
    test.home
        .settings(json!({"summaryInterval": format!("{INTERVAL}s"), "heartbeatInterval": "1h"}))
        .await;
    let runs = test.home.dynamic_api(&crds::pipelinerun());

    let daemon = start_daemon(&test);
    daemon.wait_ready().await;
    // The first window that ends while it runs.
    let first = (now().div_euclid(INTERVAL) + 1) * INTERVAL;
    wait_for_ids(out, &[summary_id(first)]).await;
    daemon.stop();

    // Restarted within the window after: that window's summary is the last ended, and
    // was sent; the next one is sent once too.
    let daemon = start_daemon(&test);
    daemon.wait_ready().await;
    let restarted = now();
    let next = (restarted.div_euclid(INTERVAL) + 1) * INTERVAL;
    let marker = support::marker_run(&runs, "after-restart").await;
    let events = wait_for_ids(out, &[summary_id(next), marker]).await;
    assert_eq!(count(&events, &summary_id(first)), 1, "sent once");
    assert_eq!(count(&events, &summary_id(next)), 1);
    // Every window between has exactly one summary, none twice.
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for e in events.iter().filter(|e| e["event"] == "Usage Summary") {
        *by_id
            .entry(e["messageId"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    assert!(by_id.values().all(|n| *n == 1), "{by_id:?}");
    daemon.stop();
    test.finish([]).await;
}

/// A summary that is due waits in `/preview` until the flush: with `flushInterval` an
/// hour, the first window that ends while the daemon runs shows there as a `Usage
/// Summary`, and has not reached the sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_summary_waits_in_the_preview() {
    let test = summary_test("summary-preview").await;
    test.home
        .settings(json!({
            "summaryInterval": format!("{INTERVAL}s"),
            "flushInterval": "1h",
            "heartbeatInterval": "1h",
        }))
        .await;

    let daemon = start_daemon(&test);
    daemon.wait_ready().await;
    let due = summary_id((now().div_euclid(INTERVAL) + 1) * INTERVAL);
    let preview = eventually("the due summary in /preview", WAIT, || async {
        let (_, preview) = daemon.get("/preview").await?;
        preview.contains(&due).then_some(preview)
    })
    .await;
    let batch: Value = serde_json::from_str(&preview).expect("/preview is JSON");
    let waiting = batch["batch"].as_array().expect("a batch");
    let summary = find(waiting, &due);
    assert_eq!(summary["event"], "Usage Summary", "{summary}");
    assert_eq!(
        summary["properties"]["windowSeconds"], INTERVAL,
        "{summary}"
    );
    assert_eq!(count(&test.sent(), &due), 0, "not sent before the flush");

    daemon.stop();
    test.finish([]).await;
}
