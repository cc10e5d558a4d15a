//! The admission webhook on the real API server: `konflux-telemetry run --webhook-listen`
//! registered with a `ValidatingWebhookConfiguration` (`clientConfig.url` on loopback, the
//! `caBundle` of `webhook-certs/make-certs.sh`), sending to the project's sink.
//!
//! Each test has its own daemon, certificates, sink and webhook configuration, whose
//! selectors match only objects carrying this test's own label value, so tests (and other
//! test binaries) on the same cluster do not see each other's requests.

mod support;

use support::daemon::{DaemonProcess, WAIT, free_port, konflux_lock, sink_events, start_sink};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding};
use konflux_telemetry::events::ClusterIdentity;
use konflux_telemetry_sink::Sink;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::webhook::{https_client, make_certs};
use support::{TestCluster, TestNamespace, crds, eventually, set_status};

const KEY: &str = "wk-admission-test-secret";
const CLUSTER_ID: &str = "admission-test";
/// Objects (and namespaces) labelled with this test's value go to this test's webhook.
const LABEL: &str = "konflux-telemetry.test/admission";
/// The local control plane's admin (client certificate CN): a person, as far as events say.
const ADMIN: &str = "konflux-telemetry-admin";

fn user_hash(user: &str) -> String {
    ClusterIdentity::new(Some(CLUSTER_ID.to_owned()), None, None).user_hash(user)
}

/// A label value unique to this test run.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{name}-{}-{:x}", std::process::id(), nanos as u32)
}

/// What the daemon's home namespace is: its name starts with the prefix given.
enum Home {
    /// A plain namespace.
    Plain(&'static str),
    /// A tenant namespace (`konflux-ci.dev/type=tenant`), not seen by this test's webhook.
    Tenant(&'static str),
    /// A tenant namespace labelled `LABEL=id`: its creations go to this test's webhook.
    Watched(&'static str),
}

/// One test's world: a scratch directory, the sink, a label value unique to it, the
/// daemon's home namespace with its settings (flushes every 500 ms), a webhook port.
struct Test {
    cluster: TestCluster,
    dir: PathBuf,
    out: PathBuf,
    sink: Sink,
    id: String,
    home: TestNamespace,
    port: u16,
}

impl Test {
    async fn new(name: &str, home: Home) -> Test {
        let cluster = support::cluster().await;
        let dir = support::daemon::tempdir(&format!("admission-{name}"));
        let out = dir.join("sink.ndjson");
        let sink = start_sink(KEY, &out).await;
        let id = unique(name);
        let home = match home {
            Home::Plain(prefix) => cluster.namespace(prefix).await,
            Home::Tenant(prefix) => cluster.tenant(prefix).await,
            Home::Watched(prefix) => {
                cluster
                    .namespace_with_labels(
                        prefix,
                        &[("konflux-ci.dev/type", "tenant"), (LABEL, &id)],
                    )
                    .await
            }
        };
        home.settings(json!({"flushInterval": "500ms", "heartbeatInterval": "1h"}))
            .await;
        Test {
            cluster,
            dir,
            out,
            sink,
            id,
            home,
            port: free_port(),
        }
    }

    /// The daemon with its settings in the home namespace, its webhook on the test's port
    /// with the certificates of `cert_dir`, and no state ConfigMap.
    fn start_daemon(&self, cert_dir: &Path) -> Daemon {
        let settings = format!("{}/settings", self.home.name());
        let sink_url = self.sink.api_url();
        let webhook_listen = format!("127.0.0.1:{}", self.port);
        let args = [
            "--segment-api-url".as_ref(),
            sink_url.as_ref(),
            "--segment-write-key".as_ref(),
            KEY.as_ref(),
            "--cluster-id".as_ref(),
            CLUSTER_ID.as_ref(),
            "--config-map".as_ref(),
            settings.as_ref(),
            "--state-config-map".as_ref(),
            "".as_ref(),
            "--webhook-listen".as_ref(),
            webhook_listen.as_ref(),
            "--webhook-cert-dir".as_ref(),
            cert_dir.as_os_str(),
        ];
        let log = self.dir.join(format!("daemon-{}.log", self.port));
        Daemon {
            process: DaemonProcess::start(&self.cluster, &args, log),
            webhook: format!("https://127.0.0.1:{}", self.port),
        }
    }

    /// Registers this test's webhook on its port (see [`register_webhook`]).
    async fn register_webhook(&self, ca_bundle: &str) -> Api<ValidatingWebhookConfiguration> {
        register_webhook(&self.cluster, &self.id, &self.id, self.port, ca_bundle).await
    }

    /// The sink's events, each checked against `schema/events.json`.
    fn sent(&self) -> Vec<Value> {
        sink_events(&self.out)
    }

    /// Deletes this test's webhook configuration, stops the sink, removes the home.
    async fn finish(self, webhooks: Option<Api<ValidatingWebhookConfiguration>>) {
        if let Some(webhooks) = webhooks {
            webhooks
                .delete(&self.id, &DeleteParams::default())
                .await
                .expect("delete the webhook configuration");
        }
        self.sink.shutdown().await;
        self.home.cleanup().await;
    }
}

/// The daemon, and where its webhook answers (`https://127.0.0.1:PORT`).
struct Daemon {
    process: DaemonProcess,
    webhook: String,
}

impl std::ops::Deref for Daemon {
    type Target = DaemonProcess;
    fn deref(&self) -> &DaemonProcess {
        &self.process
    }
}

impl Daemon {
    /// SIGTERM, then the exit status and the whole log.
    fn terminate(self) -> (bool, String) {
        self.process.terminate()
    }
}

const REQUESTS: &str = "konflux_telemetry_admission_requests_total";

/// Waits until every id is at the sink; returns those events, in the order of `ids`.
async fn wait_for_ids(out: &Path, ids: &[String], within: Duration) -> Vec<Value> {
    eventually(&format!("events {ids:?} at the sink"), within, || async {
        let events = sink_events(out);
        ids.iter()
            .map(|id| events.iter().find(|e| e["messageId"] == **id).cloned())
            .collect::<Option<Vec<_>>>()
    })
    .await
}

/// No actor: neither a `userId` nor an `actorHash`.
fn assert_no_actor(event: &Value) {
    assert!(event.get("userId").is_none(), "{event}");
    assert!(event["properties"].get("actorHash").is_none(), "{event}");
}

/// The actor as properties only: no `userId`, the cluster stays Amplitude's device.
fn assert_actor(event: &Value, user: &str, kind: &str) {
    assert!(event.get("userId").is_none(), "{event}");
    assert_eq!(event["properties"]["actorHash"], user_hash(user), "{event}");
    assert_eq!(event["properties"]["actorType"], kind, "{event}");
    assert_eq!(event["anonymousId"], "anonymous");
    let cluster_hash = ClusterIdentity::new(Some(CLUSTER_ID.to_owned()), None, None)
        .cluster_id_hash()
        .map(str::to_owned);
    assert_eq!(
        event["context"]["device"]["id"].as_str().map(str::to_owned),
        cluster_hash
    );
}

/// Registers this test's webhook: CREATE of PipelineRuns and Components in namespaces
/// labelled `LABEL=id`, and CREATE of Namespaces and DELETE of Konflux CRs labelled so.
async fn register_webhook(
    cluster: &TestCluster,
    name: &str,
    id: &str,
    port: u16,
    ca_bundle: &str,
) -> Api<ValidatingWebhookConfiguration> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(cluster.client());
    let config = webhook_config(name, id, port, ca_bundle);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(config).expect("webhook configuration"),
    )
    .await
    .expect("create the ValidatingWebhookConfiguration");
    api
}

fn webhook_config(name: &str, id: &str, port: u16, ca_bundle: &str) -> Value {
    let common = |webhook: &str| {
        json!({
            "name": format!("{webhook}.{name}.konflux-telemetry.test"),
            "admissionReviewVersions": ["v1"],
            "sideEffects": "NoneOnDryRun",
            "failurePolicy": "Ignore",
            "timeoutSeconds": 2,
            "clientConfig": {
                "url": format!("https://127.0.0.1:{port}/validate"),
                "caBundle": ca_bundle,
            },
        })
    };
    let mut namespaced = common("namespaced");
    namespaced["rules"] = json!([
        {"operations": ["CREATE"], "apiGroups": ["tekton.dev"], "apiVersions": ["*"],
         "resources": ["pipelineruns"], "scope": "Namespaced"},
        {"operations": ["CREATE"], "apiGroups": ["appstudio.redhat.com"], "apiVersions": ["*"],
         "resources": ["components"], "scope": "Namespaced"},
    ]);
    namespaced["namespaceSelector"] = json!({"matchLabels": {LABEL: id}});
    let mut cluster = common("cluster");
    cluster["rules"] = json!([
        {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
         "resources": ["namespaces"]},
        {"operations": ["DELETE"], "apiGroups": ["konflux.konflux-ci.dev"], "apiVersions": ["*"],
         "resources": ["konfluxes"], "scope": "Cluster"},
    ]);
    cluster["objectSelector"] = json!({"matchLabels": {LABEL: id}});
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [namespaced, cluster],
    })
}

/// Dry-run creations of a Namespace with this test's label until the daemon counts one:
/// the API server has the (current) configuration and reaches the webhook.
async fn wait_webhook_active(cluster: &TestCluster, daemon: &Daemon, id: &str) {
    let namespaces: Api<Namespace> = Api::all(cluster.client());
    let before = daemon.metric_sum(REQUESTS, &["outcome=\"dry_run\""]).await;
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let probe: Namespace = serde_json::from_value(json!({
        "metadata": {"name": format!("probe-{}", unique("ns")), "labels": {LABEL: id}}
    }))
    .expect("namespace");
    eventually("the API server to call the webhook", WAIT, || async {
        namespaces.create(&dry, &probe).await.ok()?;
        let now = daemon.metric_sum(REQUESTS, &["outcome=\"dry_run\""]).await;
        if now > before {
            Some(())
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            None
        }
    })
    .await;
}

/// A client acting as `user` (the admin impersonates it), with `groups` if given.
fn impersonating(cluster: &TestCluster, user: &str, groups: Option<Vec<String>>) -> kube::Client {
    let mut config = cluster.config().clone();
    config.auth_info.impersonate = Some(user.to_owned());
    config.auth_info.impersonate_groups = groups;
    kube::Client::try_from(config).expect("impersonating client")
}

/// Lets user `user` create, get and delete Components and PipelineRuns in `ns`.
async fn grant_user(ns: &TestNamespace, user: &str) {
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": format!("{user}-admission")},
        "rules": [{"apiGroups": ["appstudio.redhat.com", "tekton.dev"],
                   "resources": ["components", "pipelineruns"],
                   "verbs": ["create", "get", "delete"]}],
    }))
    .expect("role");
    ns.api::<Role>()
        .create(&PostParams::default(), &role)
        .await
        .expect("role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("{user}-admission")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("{user}-admission")},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))
    .expect("binding");
    ns.api::<RoleBinding>()
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn uid(o: &DynamicObject) -> String {
    o.metadata.uid.clone().expect("uid")
}

/// Components, PipelineRuns (by a person and by a service account) and a tenant Namespace
/// created through the webhook: their events carry the hashed actor and nothing else of
/// the user; a Component deleted again at once still has its event; a dry run has none.
/// The daemon's real path (webhook sighting, confirmed by the watch): a run's Started and
/// Completed carry `actorHash` and `actorType` as properties, and no `userId`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creations_carry_the_hashed_actor() {
    let test = Test::new("actors", Home::Watched("secret-adm-tenant")).await;
    let (cluster, dir, tenant, id) = (&test.cluster, &test.dir, &test.home, &test.id);
    let ca_bundle = make_certs(&dir.join("certs"));
    let daemon = test.start_daemon(&dir.join("certs"));
    let webhooks = test.register_webhook(&ca_bundle).await;
    daemon.wait_ready().await;
    wait_webhook_active(cluster, &daemon, id).await;

    grant_user(tenant, "alice").await;
    let alice = impersonating(cluster, "alice", None);
    let alice_components: Api<DynamicObject> =
        Api::namespaced_with(alice.clone(), tenant.name(), &crds::component());
    let alice_runs: Api<DynamicObject> =
        Api::namespaced_with(alice, tenant.name(), &crds::pipelinerun());

    // A dry run first: it must leave no event, while everything after it does.
    let dry_runs_before = daemon.metric_sum(REQUESTS, &["outcome=\"dry_run\""]).await;
    let dry = alice_components
        .create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            &support::component("secret-dry", "secret-app"),
        )
        .await
        .expect("dry-run create");
    let dry_id = format!("{}-component-created", uid(&dry));

    let component =
        support::new_component(&alice_components, "secret-component", "secret-app").await;
    // Created and deleted again at once.
    let brief = support::new_component(&alice_components, "secret-brief", "secret-app").await;
    alice_components
        .delete("secret-brief", &DeleteParams::default())
        .await
        .expect("delete the brief component");

    // PipelineRuns by alice and by a service account; the admin moves them along.
    let by_alice = support::create_run(&alice_runs, "secret-run-alice")
        .await
        .expect("alice's run");
    let sa_client = tenant.service_account_client("secret-builder").await;
    tenant
        .grant(
            "secret-builder",
            vec![PolicyRule {
                api_groups: Some(vec!["tekton.dev".to_owned()]),
                resources: Some(vec!["pipelineruns".to_owned()]),
                verbs: vec!["create".to_owned(), "get".to_owned()],
                ..PolicyRule::default()
            }],
        )
        .await;
    let sa_runs: Api<DynamicObject> =
        Api::namespaced_with(sa_client, tenant.name(), &crds::pipelinerun());
    let by_sa = eventually("the service account to be allowed", WAIT, || async {
        support::create_run(&sa_runs, "secret-run-sa").await.ok()
    })
    .await;
    // A forged review naming alice's (real) run, sent straight to the webhook port: the
    // first actor seen for a uid stays.
    let forger = https_client(&dir.join("certs"));
    let forged = forged_review(
        "CREATE",
        ("tekton.dev", "v1", "PipelineRun"),
        json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
               "metadata": {"name": "secret-run-alice", "namespace": tenant.name(), "uid": uid(&by_alice),
                            "creationTimestamp": now_rfc3339()}}),
    );
    post_review(&forger, &daemon, &forged).await;
    let runs = tenant.dynamic_api(&crds::pipelinerun());
    let start = now_rfc3339();
    for name in ["secret-run-alice", "secret-run-sa"] {
        set_status(
            &runs,
            name,
            json!({"startTime": start, "childReferences": [{"name": "t"}]}),
        )
        .await
        .expect("start");
    }
    // Started goes out before the run completes: the actor is remembered, not carried by
    // a waiting event.
    let started = [
        format!("{}-started", uid(&by_alice)),
        format!("{}-started", uid(&by_sa)),
    ];
    wait_for_ids(&test.out, &started, WAIT).await;
    let done = now_rfc3339();
    for name in ["secret-run-alice", "secret-run-sa"] {
        set_status(
            &runs,
            name,
            json!({"startTime": start, "completionTime": done, "childReferences": [{"name": "t"}],
                   "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]}),
        )
        .await
        .expect("complete");
    }

    // A tenant Namespace created by the admin (a person, as far as the catalogue goes).
    let new_tenant = cluster
        .namespace_with_labels(
            "secret-adm-new",
            &[("konflux-ci.dev/type", "tenant"), (LABEL, id)],
        )
        .await;
    let new_tenant_uid = new_tenant.uid().await;

    let ids = vec![
        format!("{}-component-created", uid(&component)),
        format!("{}-component-created", uid(&brief)),
        started[0].clone(),
        format!("{}-completed", uid(&by_alice)),
        started[1].clone(),
        format!("{}-completed", uid(&by_sa)),
        format!("{new_tenant_uid}-namespace-created"),
    ];
    let events = wait_for_ids(&test.out, &ids, WAIT).await;
    assert_actor(&events[0], "alice", "user");
    assert_eq!(events[0]["event"], "Component Created");
    assert_actor(&events[1], "alice", "user");
    assert_actor(&events[2], "alice", "user");
    assert_eq!(events[2]["event"], "PipelineRun Started");
    assert_actor(&events[3], "alice", "user");
    assert_eq!(events[3]["event"], "PipelineRun Completed");
    assert_eq!(events[3]["properties"]["status"], "Succeeded");
    let sa = format!("system:serviceaccount:{}:secret-builder", tenant.name());
    assert_actor(&events[4], &sa, "serviceaccount");
    assert_actor(&events[5], &sa, "serviceaccount");
    assert_actor(&events[6], ADMIN, "user");
    assert_eq!(events[6]["event"], "Namespace Created");

    // The dry run: counted, never an event (flushes have gone by since).
    assert!(daemon.metric_sum(REQUESTS, &["outcome=\"dry_run\""]).await > dry_runs_before);
    assert!(
        !test.sent().iter().any(|e| e["messageId"] == dry_id),
        "a dry run produced an event"
    );
    for id in &ids {
        let n = test
            .sent()
            .iter()
            .filter(|e| e["messageId"] == **id)
            .count();
        assert_eq!(n, 1, "{id} sent {n} times");
    }
    // Admission's word alone produces nothing: every event came from the watch, which
    // confirmed what admission saw.
    let produced = daemon
        .metric_sum(
            "konflux_telemetry_events_produced_total",
            &["source=\"admission\""],
        )
        .await;
    assert_eq!(produced, 0.0, "events produced from admission alone");

    let (_, preview) = daemon.get("/preview").await.expect("preview");
    let (_, metrics) = daemon.get("/metrics").await.expect("metrics");
    let (ok, log) = daemon.terminate();
    assert!(ok, "daemon exit; log:\n{log}");
    // Privacy: no user name, object or namespace name anywhere the daemon wrote.
    let sent = std::fs::read_to_string(&test.out).unwrap_or_default();
    for (what, text) in [
        ("sink", &sent),
        ("log", &log),
        ("preview", &preview),
        ("metrics", &metrics),
    ] {
        for secret in [
            "alice",
            "secret-",
            "system:serviceaccount",
            ADMIN,
            tenant.name(),
            new_tenant.name(),
            KEY,
        ] {
            assert!(!text.contains(secret), "{secret} leaked in the {what}");
        }
    }

    new_tenant.cleanup().await;
    test.finish(Some(webhooks)).await;
}

/// An AdmissionReview as a caller of the webhook port chooses it (user `mallory`).
fn forged_review(operation: &str, gvk: (&str, &str, &str), object: Value) -> Value {
    let (group, version, kind) = gvk;
    let field = if operation == "DELETE" {
        "oldObject"
    } else {
        "object"
    };
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": unique("forged-request"), "operation": operation,
                    "kind": {"group": group, "version": version, "kind": kind},
                    "userInfo": {"username": "mallory"}, field: object}
    })
}

/// POSTs `review` to the daemon's webhook port, as any Pod could; it is allowed.
async fn post_review(client: &reqwest::Client, daemon: &Daemon, review: &Value) {
    let url = format!("{}/validate", daemon.webhook);
    let r = eventually("the webhook to answer", WAIT, || async {
        client.post(&url).body(review.to_string()).send().await.ok()
    })
    .await;
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = serde_json::from_str(&r.text().await.expect("body")).expect("JSON");
    assert_eq!(v["response"]["allowed"], true);
}

/// Reviews sent straight to the webhook port (not by the API server) with invented uids
/// and user: they are allowed, and produce no `Component Created`, `PipelineRun Started`
/// or `Completed`, `Namespace Created` or `Operator Removal Started`, with or without
/// actor. A Component then created through the API server (the marker, sent after
/// them) has its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_reviews_produce_no_event() {
    let test = Test::new("forged", Home::Tenant("adm-forged")).await;
    let tenant = &test.home;
    let certs = test.dir.join("certs");
    make_certs(&certs);
    let daemon = test.start_daemon(&certs);
    daemon.wait_ready().await;
    let client = https_client(&certs);

    let now = now_rfc3339();
    let forged_uids = [
        "forged-component",
        "forged-run",
        "forged-namespace",
        "forged-konflux",
    ];
    let reviews = [
        forged_review(
            "CREATE",
            ("appstudio.redhat.com", "v1alpha1", "Component"),
            json!({"apiVersion": "appstudio.redhat.com/v1alpha1", "kind": "Component",
                   "metadata": {"name": "c", "namespace": tenant.name(), "uid": forged_uids[0], "creationTimestamp": now},
                   "spec": {"application": "a"}}),
        ),
        forged_review(
            "CREATE",
            ("tekton.dev", "v1", "PipelineRun"),
            json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
                   "metadata": {"name": "r", "namespace": tenant.name(), "uid": forged_uids[1], "creationTimestamp": now},
                   "status": {"startTime": now, "completionTime": now,
                              "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]}}),
        ),
        forged_review(
            "CREATE",
            ("", "v1", "Namespace"),
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "n", "uid": forged_uids[2], "creationTimestamp": now,
                                "labels": {"konflux-ci.dev/type": "tenant"}}}),
        ),
        forged_review(
            "DELETE",
            ("konflux.konflux-ci.dev", "v1alpha1", "Konflux"),
            json!({"apiVersion": "konflux.konflux-ci.dev/v1alpha1", "kind": "Konflux",
                   "metadata": {"name": "konflux", "uid": forged_uids[3], "creationTimestamp": now}}),
        ),
    ];
    for review in &reviews {
        post_review(&client, &daemon, review).await;
    }
    assert_eq!(
        daemon.metric_sum(REQUESTS, &["outcome=\"observed\""]).await,
        4.0
    );

    // The marker: a real creation, seen by the watch after the forged reviews were taken.
    let marker = tenant
        .dynamic_api(&crds::component())
        .create(&PostParams::default(), &support::component("marker", "a"))
        .await
        .expect("marker component");
    let marker_id = format!("{}-component-created", uid(&marker));
    let events = wait_for_ids(&test.out, std::slice::from_ref(&marker_id), WAIT).await;
    assert_no_actor(&events[0]);
    let (_, preview) = daemon.get("/preview").await.expect("preview");
    let sent = std::fs::read_to_string(&test.out).unwrap_or_default();
    for forged in forged_uids {
        assert!(!sent.contains(forged), "{forged} reached the sink:\n{sent}");
        assert!(
            !preview.contains(forged),
            "{forged} waits in /preview: {preview}"
        );
    }
    assert!(
        !sent.contains(&user_hash("mallory")),
        "mallory's hash was sent"
    );
    assert_eq!(
        daemon
            .metric_sum(
                "konflux_telemetry_events_produced_total",
                &["source=\"admission\""],
            )
            .await,
        0.0
    );

    let (ok, log) = daemon.terminate();
    assert!(ok, "daemon exit; log:\n{log}");
    assert!(!log.contains("mallory"));
    test.finish(None).await;
}

/// Deleting the Konflux CR gives `Operator Removal Started` with the deleting user at
/// once: the watch alone never sees a deletion timestamp when no finalizer holds the CR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn konflux_removal_is_seen_at_once() {
    let test = Test::new("removal", Home::Plain("adm-removal-home")).await;
    let (cluster, id) = (&test.cluster, &test.id);
    let ca_bundle = make_certs(&test.dir.join("certs"));
    let daemon = test.start_daemon(&test.dir.join("certs"));
    let webhooks = test.register_webhook(&ca_bundle).await;
    daemon.wait_ready().await;
    wait_webhook_active(cluster, &daemon, id).await;

    let _lock = tokio::task::spawn_blocking(konflux_lock)
        .await
        .expect("lock");
    let konfluxes: Api<DynamicObject> = Api::all_with(cluster.client(), &crds::konflux());
    // A CR left by another run: this test needs its own (with its label).
    let _ = konfluxes.delete("konflux", &DeleteParams::default()).await;
    eventually("no Konflux CR", WAIT, || async {
        matches!(konfluxes.get_opt("konflux").await, Ok(None)).then_some(())
    })
    .await;
    let mut cr = support::object(&crds::konflux(), "konflux", json!({}));
    cr.metadata.labels = Some([(LABEL.to_owned(), id.clone())].into());
    let k = konfluxes
        .create(&PostParams::default(), &cr)
        .await
        .expect("konflux CR");
    let k_uid = uid(&k);
    let started_id = format!("{k_uid}-started");
    let first = wait_for_ids(&test.out, std::slice::from_ref(&started_id), WAIT).await;
    assert_no_actor(&first[0]);

    let bob: Api<DynamicObject> = Api::all_with(
        impersonating(cluster, "bob", Some(vec!["system:masters".to_owned()])),
        &crds::konflux(),
    );
    let deleted_at = Instant::now();
    bob.delete("konflux", &DeleteParams::default())
        .await
        .expect("delete the Konflux CR as bob");
    let removal_id = format!("{k_uid}-removal-started");
    let events = wait_for_ids(
        &test.out,
        std::slice::from_ref(&removal_id),
        Duration::from_secs(15),
    )
    .await;
    let took = deleted_at.elapsed();
    let removal = &events[0];
    assert_eq!(removal["event"], "Operator Removal Started");
    assert_actor(removal, "bob", "user");
    let at: jiff::Timestamp = removal["timestamp"]
        .as_str()
        .expect("timestamp")
        .parse()
        .expect("RFC 3339");
    assert!(
        (jiff::Timestamp::now().as_second() - at.as_second()).abs() < 30,
        "{removal}"
    );
    eprintln!("Operator Removal Started at the sink {took:?} after the delete");

    let (ok, log) = daemon.terminate();
    assert!(ok, "daemon exit; log:\n{log}");
    assert!(!log.contains("bob"), "the user name in the log");
    assert!(
        !std::fs::read_to_string(&test.out)
            .unwrap_or_default()
            .contains("bob")
    );
    test.finish(Some(webhooks)).await;
}

/// With the daemon down, creations still succeed (failurePolicy Ignore); the watch fills
/// the event in when it comes back, without an actor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_down_creations_succeed_and_the_watch_fills_in() {
    let test = Test::new("down", Home::Watched("adm-down")).await;
    let (cluster, tenant) = (&test.cluster, &test.home);
    let ca_bundle = make_certs(&test.dir.join("certs"));
    let webhooks = test.register_webhook(&ca_bundle).await;
    // Give the API server time to take the configuration, so the webhook is really tried.
    tokio::time::sleep(Duration::from_secs(2)).await;

    grant_user(tenant, "alice").await;
    let alice: Api<DynamicObject> = Api::namespaced_with(
        impersonating(cluster, "alice", None),
        tenant.name(),
        &crds::component(),
    );
    let t = Instant::now();
    let component = alice
        .create(
            &PostParams::default(),
            &support::component("while-down", "a"),
        )
        .await
        .expect("a creation with the webhook down succeeds");
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "creation took {took:?}");

    let daemon = test.start_daemon(&test.dir.join("certs"));
    daemon.wait_ready().await;
    let created = format!("{}-component-created", uid(&component));
    let events = wait_for_ids(&test.out, std::slice::from_ref(&created), WAIT).await;
    assert_no_actor(&events[0]);
    assert!(events[0]["properties"].get("actorType").is_none());

    let (ok, log) = daemon.terminate();
    assert!(ok, "daemon exit; log:\n{log}");
    test.finish(Some(webhooks)).await;
}

/// Swaps a Secret-volume-like directory (`..data` symlink) as the kubelet does.
fn swap_secret_dir(dir: &Path, generation: &str, cert: &[u8], key: &[u8]) {
    let target = dir.join(format!("..{generation}"));
    std::fs::create_dir_all(&target).expect("generation dir");
    std::fs::write(target.join("tls.crt"), cert).expect("tls.crt");
    std::fs::write(target.join("tls.key"), key).expect("tls.key");
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..{generation}"), &tmp).expect("symlink");
    std::fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
    for name in ["tls.crt", "tls.key"] {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).expect("file link");
        }
    }
}

/// A certificate rotated in its Secret volume is served without a restart, a broken one
/// is refused while the good one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_picked_up_without_restart() {
    let test = Test::new("rotation", Home::Watched("adm-rotation")).await;
    let (cluster, dir, tenant, id) = (&test.cluster, &test.dir, &test.home, &test.id);
    let (ca_a, ca_b) = (dir.join("ca-a"), dir.join("ca-b"));
    let bundle_a = make_certs(&ca_a);
    make_certs(&ca_b);
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).expect("cert file");
    let volume = dir.join("volume");
    std::fs::create_dir_all(&volume).expect("volume");
    swap_secret_dir(
        &volume,
        "gen-a",
        &read(&ca_a, "tls.crt"),
        &read(&ca_a, "tls.key"),
    );

    let daemon = test.start_daemon(&volume);
    let pid = daemon.pid();
    let webhooks = test.register_webhook(&bundle_a).await;
    daemon.wait_ready().await;
    wait_webhook_active(cluster, &daemon, id).await;
    let trusts_a = https_client(&ca_a);
    let trusts_b = https_client(&ca_b);
    let healthz = format!("{}/healthz", daemon.webhook);
    assert!(trusts_a.get(&healthz).send().await.is_ok());
    assert!(
        trusts_b.get(&healthz).send().await.is_err(),
        "B's CA trusted before the rotation"
    );

    // Rotation: a new CA and certificate, swapped in as the kubelet swaps a Secret volume.
    swap_secret_dir(
        &volume,
        "gen-b",
        &read(&ca_b, "tls.crt"),
        &read(&ca_b, "tls.key"),
    );
    let t = Instant::now();
    eventually(
        "the new certificate to be served",
        Duration::from_secs(20),
        || async { trusts_b.get(&healthz).send().await.ok().map(|_| ()) },
    )
    .await;
    eprintln!(
        "rotated certificate served {:?} after the swap",
        t.elapsed()
    );
    // A fresh client: one that handshook before could resume its TLS session, which
    // checks no certificate.
    assert!(
        https_client(&ca_a).get(&healthz).send().await.is_err(),
        "the old certificate still served"
    );
    let reloads = daemon
        .metric_sum(
            "konflux_telemetry_admission_certificate_reloads_total",
            &["outcome=\"applied\""],
        )
        .await;
    assert_eq!(reloads, 2.0);

    // The API server follows with the new caBundle, and the webhook works again.
    let mut config = webhooks.get(id).await.expect("webhook configuration");
    for w in config.webhooks.iter_mut().flatten() {
        w.client_config.ca_bundle = Some(k8s_openapi::ByteString(
            std::fs::read(ca_b.join("ca.crt")).expect("ca.crt"),
        ));
    }
    webhooks
        .replace(id, &PostParams::default(), &config)
        .await
        .expect("update the caBundle");
    wait_webhook_active(cluster, &daemon, id).await;
    grant_user(tenant, "alice").await;
    let alice: Api<DynamicObject> = Api::namespaced_with(
        impersonating(cluster, "alice", None),
        tenant.name(),
        &crds::component(),
    );
    let component = support::new_component(&alice, "after-rotation", "a").await;
    let created = format!("{}-component-created", uid(&component));
    let events = wait_for_ids(&test.out, std::slice::from_ref(&created), WAIT).await;
    assert_actor(&events[0], "alice", "user");

    // A broken certificate is refused; the current one stays.
    let rejected = daemon
        .metric_sum(
            "konflux_telemetry_admission_certificate_reloads_total",
            &["outcome=\"rejected\""],
        )
        .await;
    swap_secret_dir(&volume, "gen-c", b"not a certificate", b"not a key");
    eventually(
        "the broken files to be rejected",
        Duration::from_secs(20),
        || async {
            let n = daemon
                .metric_sum(
                    "konflux_telemetry_admission_certificate_reloads_total",
                    &["outcome=\"rejected\""],
                )
                .await;
            (n > rejected).then_some(())
        },
    )
    .await;
    assert!(
        trusts_b.get(&healthz).send().await.is_ok(),
        "the good certificate was dropped"
    );

    assert_eq!(daemon.pid(), pid);
    let (ok, log) = daemon.terminate();
    assert!(ok, "daemon exit; log:\n{log}");
    assert!(
        log.contains("webhook serving certificate reloaded"),
        "{log}"
    );
    assert!(log.contains("still serving the previous one"), "{log}");
    test.finish(Some(webhooks)).await;
}

/// Bodies that are not AdmissionReviews get a clear 400, unexpected reviews an allow with
/// their uid; nothing crashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_clear_answers() {
    let test = Test::new("malformed", Home::Plain("adm-malformed-home")).await;
    let certs = test.dir.join("certs");
    make_certs(&certs);
    let daemon = test.start_daemon(&certs);
    daemon.wait_ready().await;
    let client = https_client(&certs);
    let url = format!("{}/validate", daemon.webhook);
    eventually("the webhook to answer", WAIT, || async {
        client
            .get(format!("{}/healthz", daemon.webhook))
            .send()
            .await
            .ok()
            .map(|_| ())
    })
    .await;

    for body in [
        "not json".to_owned(),
        "{".to_owned(),
        "[]".to_owned(),
        "{}".to_owned(),
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).to_string(),
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"operation": "CREATE"}}).to_string(),
    ] {
        let r = client.post(&url).body(body.clone()).send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 400, "{body}");
        let text = r.text().await.expect("text");
        assert!(text.starts_with("not an AdmissionReview: "), "{body}: {text}");
    }
    let r = client.get(&url).send().await.expect("answer");
    assert_eq!(r.status().as_u16(), 405);
    let r = client
        .post(format!("{}/mutate", daemon.webhook))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 404);

    // Well-formed but unexpected, or with an object that cannot be read: allowed.
    for (operation, kind, object) in [
        (
            "UPDATE",
            json!({"group": "appstudio.redhat.com", "version": "v1alpha1", "kind": "Component"}),
            json!({}),
        ),
        (
            "CREATE",
            json!({"group": "apps", "version": "v1", "kind": "Deployment"}),
            json!({}),
        ),
        (
            "CREATE",
            json!({"group": "tekton.dev", "version": "v1", "kind": "PipelineRun"}),
            json!({"metadata": {"uid": 5}}),
        ),
    ] {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "req-1", "kind": kind, "operation": operation,
                        "userInfo": {"username": "mallory"}, "object": object}
        });
        let r = client
            .post(&url)
            .body(review.to_string())
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = serde_json::from_str(&r.text().await.expect("body")).expect("JSON");
        assert_eq!(v["response"]["uid"], "req-1");
        assert_eq!(v["response"]["allowed"], true);
        assert_eq!(v["kind"], "AdmissionReview");
    }

    assert_eq!(daemon.get("/healthz").await.map(|r| r.0), Some(200));
    let bad = daemon
        .metric_sum(REQUESTS, &["outcome=\"bad_request\""])
        .await;
    assert_eq!(bad, 6.0);
    assert_eq!(
        daemon
            .metric_sum(REQUESTS, &["outcome=\"unexpected\""])
            .await,
        2.0
    );
    assert_eq!(
        daemon
            .metric_sum(REQUESTS, &["outcome=\"undecodable\""])
            .await,
        1.0
    );
    let (ok, log) = daemon.terminate();
    assert!(ok, "daemon exit; log:\n{log}");
    assert!(log.contains("not an AdmissionReview"), "{log}");
    assert!(!log.contains("mallory"));
    test.finish(None).await;
}
