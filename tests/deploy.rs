//! `deploy/` on a real API server: every kustomization passes server-side validation, and
//! the daemon, run with a token of the ServiceAccount `deploy/` creates and nothing more,
//! captures every kind, keeps its state and is refused nothing; without one rule it names
//! the missing permission and the other kinds go on.
//!
//! The local API server runs no kubelet, so the Deployment is applied but never runs: the
//! daemon runs here as a process with the ServiceAccount's credentials, which is what
//! RBAC sees of a Pod. The ValidatingWebhookConfiguration is validated with
//! `--dry-run=server` only: applied for real, it would route every CREATE of the other
//! tests running in parallel to a Service no Pod backs.

mod support;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::daemon::{DaemonProcess, WAIT, sink_events, start_sink, tempdir, wait_for_ids};
use support::kubectl::{Kubectl, documents, is_kind};
use support::{crds, eventually, set_status};

const HOME: &str = "segment-bridge";
const SA: &str = "konflux-telemetry";
const PUBLIC_INFO_NS: &str = "konflux-info";
const STATE_CM: &str = "konflux-telemetry-state";
const KEY: &str = "wk-deploy-test";
const FORBIDDEN_COMPONENTS: &str = "forbidden to list/watch components.appstudio.redhat.com at \
     cluster scope: the ServiceAccount needs RBAC verbs get, list, watch on \
     components.appstudio.redhat.com";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Everything the test applied, removed again (also when it panics). Namespaces it created
/// are finalized by hand: the local control plane has no namespace controller.
struct Applied {
    kubectl: Kubectl,
    /// The rendered objects, Namespace documents left out.
    objects: String,
    created_namespaces: Vec<String>,
    done: bool,
}

impl Applied {
    fn remove(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let k = &self.kubectl;
        let (ok, _, err) = k.run(
            &["delete", "--ignore-not-found", "--wait=false", "-f", "-"],
            Some(&self.objects),
        );
        if !ok {
            eprintln!("deploy test cleanup: {err}");
        }
        k.run(
            &[
                "delete",
                "configmap",
                STATE_CM,
                "-n",
                HOME,
                "--ignore-not-found",
            ],
            None,
        );
        for ns in &self.created_namespaces {
            k.run(&["delete", "namespace", ns, "--wait=false"], None);
            let (_, body, _) = k.run(&["get", "namespace", ns, "-o", "json"], None);
            if let Ok(mut obj) = serde_json::from_str::<Value>(&body) {
                obj["spec"]["finalizers"] = json!([]);
                k.run(
                    &[
                        "replace",
                        "--raw",
                        &format!("/api/v1/namespaces/{ns}/finalize"),
                        "-f",
                        "-",
                    ],
                    Some(&obj.to_string()),
                );
            }
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                let (exists, _, _) = k.run(&["get", "namespace", ns], None);
                if !exists {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

impl Drop for Applied {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The daemon as the ServiceAccount of `kubeconfig` (nothing from `$KUBECONFIG`), sending
/// to `sink_url`, with the settings and state ConfigMaps `deploy/` names; logs to
/// `daemon-N.log` in `dir`.
fn start_daemon(kubeconfig: &Path, sink_url: &str, dir: &Path, n: u32) -> DaemonProcess {
    let args = [
        "--cluster-id",
        "x",
        "--segment-api-url",
        sink_url,
        "--segment-write-key",
        KEY,
        "--flush-interval",
        "500ms",
        "--config-map",
        &format!("{HOME}/konflux-telemetry"),
        "--state-config-map",
        &format!("{HOME}/{STATE_CM}"),
    ];
    DaemonProcess::spawn(
        Some(kubeconfig),
        &args,
        &[("KUBECONFIG".to_owned(), String::new())],
        dir.join(format!("daemon-{n}.log")),
    )
}

/// A kubeconfig for the same server as the admin's, authenticating with `token` only.
fn service_account_kubeconfig(kubectl: &Kubectl, token: &str, path: &Path) {
    let admin = match &kubectl.kubeconfig {
        Some(p) => Kubeconfig::read_from(p).expect("admin kubeconfig"),
        None => Kubeconfig::read().expect("$KUBECONFIG"),
    };
    let context_name = admin.current_context.clone().expect("a current context");
    let cluster_name = admin
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .expect("the current context");
    let cluster = admin
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .expect("the current cluster");
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [serde_json::to_value(cluster).expect("cluster")],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": cluster_name, "user": "sa"}}],
        "current-context": "sa",
    });
    std::fs::write(path, kubeconfig.to_string()).expect("write the kubeconfig");
}

async fn client_from(path: &Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

/// The HTTP status of a call: 200 when it worked, else the API server's code.
fn code<T>(r: kube::Result<T>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("not an API answer: {e}"),
    }
}

async fn can(
    client: &kube::Client,
    verb: &str,
    group: &str,
    resource: &str,
    ns: Option<&str>,
) -> bool {
    let review: SelfSubjectAccessReview = serde_json::from_value(json!({
        "spec": {"resourceAttributes": {
            "verb": verb, "group": group, "resource": resource, "namespace": ns.unwrap_or("")
        }}
    }))
    .expect("review");
    Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SelfSubjectAccessReview")
        .status
        .map(|s| s.allowed)
        .unwrap_or(false)
}

/// Metric names a scrape of /metrics shows, as PromQL sees them (counters with `_total`).
fn served_metric_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let (name, kind) = (parts.next()?, parts.next()?);
            Some(match kind {
                "counter" if !name.ends_with("_total") => format!("{name}_total"),
                _ => name.to_owned(),
            })
        })
        .collect()
}

/// Base names of the `konflux_telemetry_*` metrics a text refers to.
fn referenced_metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("konflux_telemetry_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let mut name = &tail[..end];
        for suffix in ["_bucket", "_sum", "_count"] {
            name = name.strip_suffix(suffix).unwrap_or(name);
        }
        names.insert(name.to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_manifests_and_least_privilege() {
    let started = Instant::now();
    let cluster = support::cluster().await;
    let kubectl = Kubectl::for_cluster(&cluster);
    let admin = cluster.client();
    let dir = tempdir("deploy");
    let namespaces: Api<Namespace> = Api::all(admin.clone());

    // What the kustomizations need to exist: their namespace, and the Prometheus Operator's
    // CRDs for monitoring. konflux-info, where Konflux publishes konflux-public-info and
    // lets every authenticated user `get` it (its Role konflux-public-info-view-role), is
    // made here as Konflux would; created if missing but never deleted: tests/daemon.rs,
    // running in parallel, uses it too (and leaves it, empty).
    let mut created_namespaces = Vec::new();
    if namespaces.get_opt(HOME).await.expect("namespace").is_none() {
        created_namespaces.push(HOME.to_owned());
    }
    // e2e/kind/konflux-info.yaml: the namespace, Role and RoleBinding konflux-ci's operator
    // applies (make kind-e2e applies the same file). Once more if tests/daemon.rs created
    // the namespace between apply's get and create.
    let konflux_info = ["apply", "-f", "e2e/kind/konflux-info.yaml"];
    if !kubectl.run(&konflux_info, None).0 {
        kubectl.must(&konflux_info, None);
    }
    kubectl.must(&["apply", "-f", "e2e/crds/monitoring/"], None);
    // cert-manager's, for deploy/base's Issuer and Certificate.
    kubectl.install_cert_manager_crds();
    kubectl.wait_established("e2e/crds/monitoring/");

    // The kind overlay for real, all but the webhook configuration.
    let rendered = kubectl.must(&["kustomize", "deploy/overlays/kind"], None);
    let docs = documents(&rendered);
    let webhooks = docs
        .iter()
        .filter(|d| is_kind(d, "ValidatingWebhookConfiguration"))
        .count();
    assert_eq!(
        webhooks, 1,
        "one ValidatingWebhookConfiguration in the overlay"
    );
    let apply: Vec<&str> = docs
        .iter()
        .filter(|d| !is_kind(d, "ValidatingWebhookConfiguration"))
        .map(String::as_str)
        .collect();
    let objects: Vec<&str> = apply
        .iter()
        .copied()
        .filter(|d| !is_kind(d, "Namespace"))
        .collect();
    let mut applied = Applied {
        kubectl: kubectl.clone(),
        objects: objects.join("\n---\n"),
        created_namespaces,
        done: false,
    };
    kubectl.must(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=deploy-test",
            "-f",
            "-",
        ],
        Some(&apply.join("\n---\n")),
    );

    // Every kustomization passes the API server's validation (and admission).
    for dir in [
        "deploy/base",
        "deploy/overlays/kind",
        "deploy/overlays/openshift",
        "deploy/overlays/openshift-service-ca",
        "deploy/monitoring",
    ] {
        let (ok, out, err) = kubectl.run(&["apply", "--dry-run=server", "-k", dir], None);
        assert!(ok, "kubectl apply --dry-run=server -k {dir}:\n{err}\n{out}");
        eprintln!("dry-run=server -k {dir}: {} objects", out.lines().count());
    }

    // Every flag of the Deployment's args is one the binary knows.
    let help = Command::new(env!("CARGO_BIN_EXE_konflux-telemetry"))
        .args(["run", "--help"])
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    for overlay in [
        "deploy/overlays/kind",
        "deploy/overlays/openshift",
        "deploy/overlays/openshift-service-ca",
    ] {
        let text = kubectl.must(&["kustomize", overlay], None);
        let deployment = documents(&text)
            .into_iter()
            .find(|d| is_kind(d, "Deployment"))
            .expect("a Deployment");
        for flag in deployment
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- --"))
            .map(|f| f.split('=').next().unwrap_or(f))
        {
            assert!(
                help.contains(&format!("--{flag}")),
                "{overlay}: the Deployment passes --{flag}, which `run` does not know"
            );
        }
    }

    // No state yet.
    let home_cms: Api<ConfigMap> = Api::namespaced(admin.clone(), HOME);
    let _ = home_cms.delete(STATE_CM, &Default::default()).await;

    // A token of the deployed ServiceAccount, as its Pod would have.
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"expirationSeconds": 3600}})).expect("request");
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), HOME)
        .create_token_request(SA, &PostParams::default(), &request)
        .await
        .expect("TokenRequest")
        .status
        .expect("token")
        .token;
    let sa_kubeconfig = dir.join("sa.kubeconfig");
    service_account_kubeconfig(&kubectl, &token, &sa_kubeconfig);
    let sa = client_from(&sa_kubeconfig).await;

    // Each call the daemon makes is allowed, and little else.
    let all = |ar| Api::<DynamicObject>::all_with(sa.clone(), &ar);
    let lp = ListParams::default().limit(1);
    for ar in [crds::pipelinerun(), crds::component(), crds::konflux()] {
        assert_eq!(code(all(ar.clone()).list(&lp).await), 200, "{}", ar.plural);
    }
    let sa_ns: Api<Namespace> = Api::all(sa.clone());
    let tenants = ListParams::default().labels("konflux-ci.dev/type=tenant");
    assert_eq!(code(sa_ns.list(&tenants).await), 200);
    assert_eq!(code(sa_ns.get("kube-system").await), 200);
    assert!(
        [200, 404].contains(&code(all(crds::cluster_version()).get("version").await)),
        "get clusterversions/version"
    );
    let public_info: Api<ConfigMap> = Api::namespaced(sa.clone(), PUBLIC_INFO_NS);
    // konflux-public-info: the one get Konflux grants every authenticated user, and no more
    // (the daemon holds no Role in konflux-info).
    assert!([200, 404].contains(&code(public_info.get("konflux-public-info").await)));
    let by_name = |n: &str| ListParams::default().fields(&format!("metadata.name={n}"));
    assert_eq!(
        code(public_info.list(&by_name("konflux-public-info")).await),
        403
    );
    let own: Api<ConfigMap> = Api::namespaced(sa.clone(), HOME);
    assert_eq!(code(own.get("konflux-telemetry").await), 200);
    assert_eq!(code(own.list(&by_name("konflux-telemetry")).await), 200);
    sa.apiserver_version().await.expect("/version");
    for resource in ["results", "records"] {
        for verb in ["get", "list"] {
            assert!(
                can(&sa, verb, "results.tekton.dev", resource, None).await,
                "{verb} {resource}.results.tekton.dev"
            );
        }
    }
    // Denied: other ConfigMaps, listing them all, Secrets, writing settings, writing objects.
    assert_eq!(code(own.list(&ListParams::default()).await), 403);
    assert_eq!(code(public_info.list(&ListParams::default()).await), 403);
    assert_eq!(
        code(
            Api::<ConfigMap>::namespaced(sa.clone(), "kube-system")
                .get("x")
                .await
        ),
        403
    );
    assert_eq!(
        code(
            Api::<Secret>::namespaced(sa.clone(), HOME)
                .get("segment-bridge-config")
                .await
        ),
        403
    );
    assert_eq!(
        code(
            own.patch(
                "konflux-telemetry",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"logLevel": "debug"}}))
            )
            .await
        ),
        403
    );
    let other_state: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "not-the-state"}})).expect("cm");
    assert_eq!(
        code(
            own.patch(
                "not-the-state",
                &PatchParams::apply("konflux-telemetry").force(),
                &Patch::Apply(&other_state)
            )
            .await
        ),
        403,
        "server-side apply of another ConfigMap"
    );
    for (verb, group, resource) in [
        ("create", "tekton.dev", "pipelineruns"),
        ("delete", "appstudio.redhat.com", "components"),
        ("update", "", "namespaces"),
        ("list", "", "secrets"),
        ("list", "", "pods"),
    ] {
        assert!(
            !can(&sa, verb, group, resource, None).await,
            "{verb} {resource} must be denied"
        );
    }

    // No settings ConfigMap, as the rendered file leaves it (the kind overlay's is removed):
    // the daemon runs on its defaults and flags until one is created.
    home_cms
        .delete("konflux-telemetry", &Default::default())
        .await
        .expect("delete the kind overlay's settings");
    eventually("the settings ConfigMap gone", WAIT, || async {
        matches!(home_cms.get_opt("konflux-telemetry").await, Ok(None)).then_some(())
    })
    .await;

    // The daemon with exactly that ServiceAccount, sending to a sink here.
    let out = dir.join("sink.ndjson");
    let sink = start_sink(KEY, &out).await;
    let sink_url = sink.api_url();
    let daemon = start_daemon(&sa_kubeconfig, &sink_url, &dir, 1);
    daemon.wait_ready().await;

    let tenant = cluster
        .namespace_with_labels("deploy-tenant", &[("konflux-ci.dev/type", "tenant")])
        .await;
    let ns_uid = namespaces
        .get(tenant.name())
        .await
        .expect("tenant")
        .metadata
        .uid
        .expect("uid");
    let component = tenant
        .dynamic_api(&crds::component())
        .create(&PostParams::default(), &support::component("c", "a"))
        .await
        .expect("component");
    let runs = tenant.dynamic_api(&crds::pipelinerun());
    let run_uid = run_pipeline(&runs, "run-1").await;
    let ids = vec![
        format!("{ns_uid}-namespace-created"),
        format!("{}-component-created", component.metadata.uid.expect("uid")),
        format!("{run_uid}-started"),
        format!("{run_uid}-completed"),
    ];
    wait_for_ids(&out, &ids).await;

    // The settings ConfigMap created while the daemon runs is taken without a restart: a
    // heartbeat every second instead of the default hour (which allows one, at start).
    let heartbeats = || {
        sink_events(&out)
            .iter()
            .filter(|e| e["event"] == "Segment Bridge Heartbeat")
            .count()
    };
    let before = heartbeats();
    assert!(
        before <= 1,
        "{before} heartbeats on the default hourly interval"
    );
    home_cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "konflux-telemetry", "namespace": HOME},
                "data": {"heartbeatInterval": "1s"},
            }))
            .expect("settings"),
        )
        .await
        .expect("create the settings ConfigMap");
    eventually(
        "heartbeats every second once the settings ConfigMap exists",
        WAIT,
        || async { (heartbeats() >= before + 2).then_some(()) },
    )
    .await;

    // The record of produced events was written by the ServiceAccount (create + patch).
    let managers = |cm: &ConfigMap| -> Vec<String> {
        cm.metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|m| m.manager.clone())
            .collect()
    };
    let state = eventually("the state ConfigMap saved", WAIT, || async {
        let cm = home_cms.get_opt(STATE_CM).await.ok().flatten()?;
        managers(&cm)
            .iter()
            .any(|m| m == "konflux-telemetry")
            .then_some(cm)
    })
    .await;
    assert!(
        managers(&state).iter().any(|m| m == "konflux-telemetry"),
        "{:?}",
        managers(&state)
    );

    // Every metric the daemon serves has a dashboard panel; alerts use served names.
    let (_, metrics) = daemon.get("/metrics").await.expect("/metrics");
    let served = served_metric_names(&metrics);
    let dashboard =
        std::fs::read_to_string(repo().join("deploy/monitoring/dashboard.json")).expect("json");
    let _: Value = serde_json::from_str(&dashboard).expect("dashboard.json is JSON");
    let charted = referenced_metric_names(&dashboard);
    let missing: Vec<&String> = served.iter().filter(|n| !charted.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "metrics served at /metrics with no panel in deploy/monitoring/dashboard.json: {missing:?}"
    );
    let rules = std::fs::read_to_string(repo().join("deploy/monitoring/prometheusrule.yaml"))
        .expect("rules");
    let rules: String = rules
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    for name in referenced_metric_names(&rules) {
        assert!(
            charted.contains(&name),
            "alert metric {name} is not a metric of the dashboard"
        );
    }
    eprintln!("metrics served: {}", served.len());

    let (ok, log) = daemon.terminate();
    assert!(ok, "the daemon exits 0 on SIGTERM:\n{log}");
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the daemon was refused something:\n{log}"
    );
    assert!(
        !log.contains("cannot keep the record"),
        "state not saved:\n{log}"
    );

    // Without the components rule: a clear line naming it, and PipelineRuns still flow.
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let role = roles.get(SA).await.expect("ClusterRole");
    let full_rules = role.rules.clone().unwrap_or_default();
    let reduced: Vec<_> = full_rules
        .iter()
        .filter(|r| {
            !r.resources
                .as_ref()
                .is_some_and(|rs| rs.iter().any(|x| x == "components"))
        })
        .cloned()
        .collect();
    assert_eq!(reduced.len() + 1, full_rules.len());
    set_rules(&roles, serde_json::to_value(&reduced).expect("rules")).await;
    let components_all = all(crds::component());
    eventually("components to be forbidden", WAIT, || async {
        (code(components_all.list(&lp).await) == 403).then_some(())
    })
    .await;

    let daemon = start_daemon(&sa_kubeconfig, &sink_url, &dir, 2);
    eventually("the missing permission in the log", WAIT, || async {
        daemon.log().contains(FORBIDDEN_COMPONENTS).then_some(())
    })
    .await;
    daemon.wait_ready().await;
    let unseen = tenant
        .dynamic_api(&crds::component())
        .create(&PostParams::default(), &support::component("c2", "a"))
        .await
        .expect("component 2");
    let run2 = run_pipeline(&runs, "run-2").await;
    let events = wait_for_ids(
        &out,
        &[format!("{run2}-started"), format!("{run2}-completed")],
    )
    .await;
    let unseen_id = format!("{}-component-created", unseen.metadata.uid.expect("uid"));
    assert!(!events.iter().any(|e| e["messageId"] == unseen_id));
    let (ok, log) = daemon.terminate();
    assert!(ok, "{log}");
    let line = log
        .lines()
        .find(|l| l.contains(FORBIDDEN_COMPONENTS))
        .expect("the line");
    eprintln!("with the components rule removed, the daemon logs:\n  {line}");

    // Restore the rule; clean up.
    set_rules(&roles, serde_json::to_value(&full_rules).expect("rules")).await;
    eventually("components to be allowed again", WAIT, || async {
        (code(components_all.list(&lp).await) == 200).then_some(())
    })
    .await;
    tenant.cleanup().await;
    applied.remove();
    eprintln!("deploy test done in {:?}", started.elapsed());
}

async fn set_rules(roles: &Api<ClusterRole>, rules: Value) {
    roles
        .patch(
            SA,
            &PatchParams::default(),
            &Patch::Merge(json!({"rules": rules})),
        )
        .await
        .expect("ClusterRole rules");
}

/// Creates a PipelineRun and moves it to started, then completed, as Tekton would; its uid.
async fn run_pipeline(runs: &Api<DynamicObject>, name: &str) -> String {
    let mut run = support::object(
        &crds::pipelinerun(),
        name,
        json!({"pipelineRef": {"name": "p"}}),
    );
    run.metadata.labels = Some(BTreeMap::from([(
        "pipelines.appstudio.openshift.io/type".to_owned(),
        "build".to_owned(),
    )]));
    let run = runs
        .create(&PostParams::default(), &run)
        .await
        .expect("PipelineRun");
    let now = || {
        jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let start = now();
    set_status(
        runs,
        name,
        json!({"startTime": start, "childReferences": [{"name": "a"}]}),
    )
    .await
    .expect("started");
    set_status(
        runs,
        name,
        json!({
            "startTime": start, "completionTime": now(),
            "childReferences": [{"name": "a"}],
            "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]
        }),
    )
    .await
    .expect("completed");
    run.metadata.uid.expect("uid")
}
