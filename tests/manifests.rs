//! The one-file rendering of `deploy/base` that the Konflux operator would embed
//! (`make manifests`, docs/operator.md): it is up to date with `deploy/base`, the API server
//! accepts every object of it (server-side dry run), and it holds every object of every
//! file `deploy/base/kustomization.yaml` lists, no more.

mod support;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use support::kubectl::Kubectl;

const RENDERED: &str = "deploy/rendered/konflux-telemetry.yaml";

/// (apiVersion, kind, namespace, name) of each object in kubectl's `-o json` output (one
/// object, or a `List`).
fn identities(json_text: &str) -> BTreeSet<(String, String, String, String)> {
    let v: Value = serde_json::from_str(json_text).expect("kubectl -o json");
    let items = match v["kind"].as_str() {
        Some("List") => v["items"].as_array().cloned().unwrap_or_default(),
        _ => vec![v],
    };
    items
        .iter()
        .map(|o| {
            let s = |p: &str| {
                o.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            (
                s("/apiVersion"),
                s("/kind"),
                s("/metadata/namespace"),
                s("/metadata/name"),
            )
        })
        .collect()
}

/// The webhook is registered for exactly the admission requests of the table of watched
/// kinds, and the ClusterRole lets the daemon get, list and watch every watched kind: a
/// kind added to the table without its manifests fails here.
fn agrees_with_the_watched_kinds(applied_json: &str) {
    use konflux_telemetry::events::object::{Admitted, WATCHED};
    let v: Value = serde_json::from_str(applied_json).expect("kubectl -o json");
    let items = v["items"].as_array().cloned().unwrap_or_default();
    let of_kind = |kind: &str| -> Vec<Value> {
        items
            .iter()
            .filter(|o| o["kind"] == kind)
            .cloned()
            .collect()
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    // (operation, group, version, resource) of every webhook rule.
    let mut registered = BTreeSet::new();
    for config in of_kind("ValidatingWebhookConfiguration") {
        for webhook in config["webhooks"].as_array().into_iter().flatten() {
            for rule in webhook["rules"].as_array().into_iter().flatten() {
                for op in strings(&rule["operations"]) {
                    for group in strings(&rule["apiGroups"]) {
                        for version in strings(&rule["apiVersions"]) {
                            for resource in strings(&rule["resources"]) {
                                registered.insert((
                                    op.clone(),
                                    group.clone(),
                                    version.clone(),
                                    resource,
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    let expected: BTreeSet<(String, String, String, String)> = WATCHED
        .iter()
        .filter_map(|w| {
            let op = match w.admitted? {
                Admitted::Create => "CREATE",
                Admitted::Delete => "DELETE",
            };
            Some((op.into(), w.group.into(), w.version.into(), w.plural.into()))
        })
        .collect();
    assert_eq!(registered, expected, "the webhook's rules against WATCHED");
    // (group, resource) the ClusterRole may get, list and watch; and only list.
    let (mut readable, mut listable) = (BTreeSet::new(), BTreeSet::new());
    for role in of_kind("ClusterRole") {
        for rule in role["rules"].as_array().into_iter().flatten() {
            let verbs = strings(&rule["verbs"]);
            let all = ["get", "list", "watch"]
                .iter()
                .all(|v| verbs.iter().any(|x| x == v));
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    if all {
                        readable.insert((group.clone(), resource.clone()));
                    }
                    if verbs.iter().any(|x| x == "list") {
                        listable.insert((group.clone(), resource));
                    }
                }
            }
        }
    }
    for w in WATCHED {
        let at = (w.group.to_owned(), w.plural.to_owned());
        if w.watched {
            assert!(
                readable.contains(&at),
                "the ClusterRole does not let the daemon get, list and watch {}.{}",
                w.plural,
                w.group
            );
        } else {
            assert!(
                listable.contains(&at) && !readable.contains(&at),
                "the ClusterRole should let the daemon list {}.{}, and no more (it is only counted)",
                w.plural,
                w.group
            );
        }
    }
}

/// The files `resources:` of a kustomization lists (plain files, as deploy/base has).
fn resources(kustomization: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in kustomization.lines() {
        if line.starts_with("resources:") {
            inside = true;
        } else if inside {
            match line.trim().strip_prefix("- ") {
                Some(file) if line.starts_with("  ") => out.push(file.trim().to_owned()),
                _ if line.trim().is_empty() || line.trim_start().starts_with('#') => {}
                _ => inside = false,
            }
        }
    }
    out
}

/// The namespaces the namespaced objects of `deploy/` live in (a dry run creates none of
/// them). Created if missing and left, as tests/deploy.rs leaves konflux-info.
/// The namespaces the manifests use, and cert-manager's CRDs (the rendered file holds its
/// Issuer and Certificate; not installed by `make cluster-up`).
async fn ensure_namespaces(cluster: &support::TestCluster) {
    Kubectl::for_cluster(cluster).install_cert_manager_crds();
    for name in ["segment-bridge", "konflux-info"] {
        support::ensure_namespace(cluster, name).await;
    }
}

/// The objects of a kustomization as the API server would store them (server-side dry run).
fn dry_run_objects(kubectl: &Kubectl, dir: &str) -> Vec<Value> {
    let out = kubectl.must(
        &["apply", "--dry-run=server", "-k", dir, "-o", "json"],
        None,
    );
    let v: Value = serde_json::from_str(&out).expect("kubectl -o json");
    v["items"].as_array().cloned().unwrap_or_default()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str, dir: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("{dir}: no {kind}"))
}

/// The Secret's keys the daemon reads, and only those (issue 13: a key added to the
/// Secret must not turn anything on).
const SECRET_KEYS: [&str; 5] = [
    "SEGMENT_API_URL",
    "SEGMENT_BATCH_API",
    "SEGMENT_WRITE_KEY",
    "TEKTON_LIMIT",
    "TEKTON_RESULTS_API_ADDR",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pod_reads_only_its_secret_keys_and_admits_only_its_callers() {
    let cluster = support::cluster().await;
    let kubectl = Kubectl::for_cluster(&cluster);
    ensure_namespaces(&cluster).await;
    for dir in [
        "deploy/base",
        "deploy/overlays/openshift",
        "deploy/overlays/kind",
    ] {
        let objects = dry_run_objects(&kubectl, dir);
        let container =
            &of_kind(&objects, "Deployment", dir)["spec"]["template"]["spec"]["containers"][0];
        assert!(
            container.get("envFrom").is_none(),
            "{dir}: envFrom takes the whole Secret"
        );
        let mut keys = BTreeSet::new();
        for env in container["env"].as_array().expect("env") {
            let Some(r) = env.pointer("/valueFrom/secretKeyRef") else {
                continue;
            };
            assert_eq!(r["name"], "segment-bridge-config", "{dir}: {env}");
            assert_eq!(r["optional"], true, "{dir}: the daemon runs without {env}");
            assert_eq!(env["name"], r["key"], "{dir}: {env}");
            keys.insert(r["key"].as_str().unwrap_or("").to_owned());
        }
        // The Segment keys come as files of the Secret mounted whole (no subPath, so the
        // kubelet rewrites them when it changes), in the folder --segment-secret-dir names.
        let pod_spec = &of_kind(&objects, "Deployment", dir)["spec"]["template"]["spec"];
        let volume = pod_spec["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v.pointer("/secret/secretName") == Some(&json!("segment-bridge-config")))
            .unwrap_or_else(|| panic!("{dir}: the Secret is not mounted"));
        assert_eq!(
            volume["secret"]["optional"], true,
            "{dir}: the daemon runs without it"
        );
        for item in volume["secret"]["items"]
            .as_array()
            .expect("items: only the keys read")
        {
            assert_eq!(item["key"], item["path"], "{dir}: {item}");
            keys.insert(item["key"].as_str().unwrap_or("").to_owned());
        }
        let mount = container["volumeMounts"]
            .as_array()
            .expect("volumeMounts")
            .iter()
            .find(|m| m["name"] == volume["name"])
            .unwrap_or_else(|| panic!("{dir}: the Secret's volume is not mounted"));
        assert!(
            mount.get("subPath").is_none(),
            "{dir}: a subPath never updates"
        );
        let mount_path = mount["mountPath"].as_str().unwrap_or("");
        let arg = format!("--segment-secret-dir={mount_path}");
        assert!(
            container["args"]
                .as_array()
                .expect("args")
                .contains(&json!(arg)),
            "{dir}: {arg}"
        );
        let expected: BTreeSet<String> = SECRET_KEYS.iter().map(|k| k.to_string()).collect();
        assert_eq!(keys, expected, "{dir}: the Secret's keys read");

        // One file for every platform: no fixed UID or GID (OpenShift's restricted-v2
        // refuses them; the image's numeric USER serves elsewhere), and the restricted
        // profile as Konflux's operands set it.
        let pod = &of_kind(&objects, "Deployment", dir)["spec"]["template"]["spec"];
        for (what, sc) in [
            ("pod", &pod["securityContext"]),
            ("container", &container["securityContext"]),
        ] {
            for fixed in ["runAsUser", "runAsGroup"] {
                assert!(sc.get(fixed).is_none(), "{dir}: {what} sets {fixed}: {sc}");
            }
            assert_eq!(sc["runAsNonRoot"], true, "{dir}: {what}");
        }
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let c = &container["securityContext"];
        assert_eq!(c["allowPrivilegeEscalation"], false, "{dir}");
        assert_eq!(c["readOnlyRootFilesystem"], true, "{dir}");
        assert_eq!(c["capabilities"]["drop"], json!(["ALL"]), "{dir}");

        let np = &of_kind(&objects, "NetworkPolicy", dir)["spec"];
        assert_eq!(np["policyTypes"], json!(["Ingress"]), "{dir}");
        assert_eq!(
            np["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
            "konflux-telemetry"
        );
        let rules = np["ingress"].as_array().expect("ingress rules");
        let rule_for = |port: &str| {
            let matching: Vec<&Value> = rules
                .iter()
                .filter(|r| {
                    r["ports"]
                        .as_array()
                        .is_some_and(|p| p.iter().any(|p| p["port"] == port))
                })
                .collect();
            assert_eq!(matching.len(), 1, "{dir}: one rule for port {port}");
            matching[0]
        };
        // Every rule names its port: nothing admits every port.
        assert!(
            rules
                .iter()
                .all(|r| r["ports"].as_array().is_some_and(|p| !p.is_empty()))
        );
        assert_eq!(rules.len(), 2, "{dir}: http and webhook only");
        let metrics_from =
            rule_for("http")["from"][0]["namespaceSelector"]["matchExpressions"][0].clone();
        assert_eq!(metrics_from["key"], "kubernetes.io/metadata.name", "{dir}");
        assert!(
            metrics_from["values"]
                .as_array()
                .is_some_and(|v| v.contains(&json!("monitoring"))
                    && v.contains(&json!("openshift-user-workload-monitoring"))),
            "{dir}: {metrics_from}"
        );
        let webhook_from = &rule_for("webhook")["from"];
        if dir.ends_with("openshift") {
            assert_eq!(
                webhook_from,
                &json!([{"namespaceSelector": {"matchLabels":
                    {"policy-group.network.openshift.io/host-network": ""}}}]),
                "{dir}: the webhook port from the host network only"
            );
        } else {
            // The API server is on the host network: no selector can name it (see the file).
            assert!(webhook_from.is_null(), "{dir}: {webhook_from}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_manifest_is_current_valid_and_complete() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cluster = support::cluster().await;
    let kubectl = Kubectl::for_cluster(&cluster);

    // Up to date: the file is exactly `kubectl kustomize deploy/base` after its header.
    let rendered = std::fs::read_to_string(repo.join(RENDERED))
        .unwrap_or_else(|e| panic!("{RENDERED}: {e}: run `make manifests`"));
    let body: String = rendered
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let fresh = kubectl.must(&["kustomize", "deploy/base"], None);
    assert!(
        body == fresh,
        "{RENDERED} is not what deploy/base renders today: run `make manifests`"
    );

    ensure_namespaces(&cluster).await;

    // The API server accepts all of it, as the operator would apply it.
    let applied = kubectl.must(
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager=konflux-operator",
            "-f",
            RENDERED,
            "-o",
            "json",
        ],
        None,
    );
    let in_rendered = identities(&applied);
    agrees_with_the_watched_kinds(&applied);

    // Every object of every file of deploy/base, and nothing else.
    let files = resources(
        &std::fs::read_to_string(repo.join("deploy/base/kustomization.yaml"))
            .expect("kustomization"),
    );
    assert!(files.len() >= 7, "resources of deploy/base: {files:?}");
    let mut in_base = BTreeSet::new();
    for file in &files {
        let path = format!("deploy/base/{file}");
        let objects = identities(&kubectl.must(
            &["apply", "--dry-run=server", "-f", &path, "-o", "json"],
            None,
        ));
        assert!(!objects.is_empty(), "{path}: no objects");
        for o in objects {
            assert!(in_rendered.contains(&o), "{RENDERED} lacks {o:?} of {path}");
            in_base.insert(o);
        }
    }
    let extra: Vec<_> = in_rendered.difference(&in_base).collect();
    assert!(
        extra.is_empty(),
        "{RENDERED} has objects not in deploy/base: {extra:?}"
    );
    eprintln!(
        "{RENDERED}: {} objects from {} files of deploy/base",
        in_rendered.len(),
        files.len()
    );
    for kind in [
        "Deployment",
        "ClusterRole",
        "ValidatingWebhookConfiguration",
        "Service",
    ] {
        assert!(
            in_rendered.iter().any(|(_, k, _, _)| k == kind),
            "no {kind} in {RENDERED}"
        );
    }
    // The webhook's certificate from cert-manager: the Certificate names the Service,
    // writes the Secret the Deployment mounts, and is the one whose CA is injected.
    let objects: Vec<Value> = serde_json::from_str::<Value>(&applied).expect("json")["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let certificate = of_kind(&objects, "Certificate", RENDERED);
    let service = of_kind(&objects, "Service", RENDERED);
    let (svc, svc_ns) = (
        service["metadata"]["name"].as_str().expect("name"),
        service["metadata"]["namespace"]
            .as_str()
            .expect("namespace"),
    );
    let dns: Vec<&str> = certificate["spec"]["dnsNames"]
        .as_array()
        .expect("dnsNames")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        dns.contains(&format!("{svc}.{svc_ns}.svc").as_str()),
        "{dns:?}"
    );
    let issuer = of_kind(&objects, "Issuer", RENDERED);
    assert_eq!(
        certificate["spec"]["issuerRef"]["name"],
        issuer["metadata"]["name"]
    );
    assert!(issuer["spec"]["selfSigned"].is_object(), "{issuer}");
    let volumes = &of_kind(&objects, "Deployment", RENDERED)["spec"]["template"]["spec"]["volumes"];
    assert!(
        volumes
            .as_array()
            .expect("volumes")
            .iter()
            .any(|v| v["secret"]["secretName"] == certificate["spec"]["secretName"]),
        "the Deployment does not mount the Certificate's Secret: {volumes}"
    );
    let webhook = of_kind(&objects, "ValidatingWebhookConfiguration", RENDERED);
    assert_eq!(
        webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        format!(
            "{}/{}",
            certificate["metadata"]["namespace"]
                .as_str()
                .expect("namespace"),
            certificate["metadata"]["name"].as_str().expect("name")
        )
    );
    assert_eq!(
        webhook["webhooks"][0]["clientConfig"]["service"]["name"],
        svc
    );

    // The service CA overlay: no cert-manager object or annotation, the service CA's.
    let service_ca = "deploy/overlays/openshift-service-ca";
    let objects = dry_run_objects(&kubectl, service_ca);
    for kind in ["Certificate", "Issuer"] {
        assert!(
            !objects.iter().any(|o| o["kind"] == kind),
            "{service_ca}: a {kind}"
        );
    }
    let annotations =
        &of_kind(&objects, "ValidatingWebhookConfiguration", service_ca)["metadata"]["annotations"];
    assert_eq!(
        annotations["service.beta.openshift.io/inject-cabundle"],
        "true"
    );
    assert!(
        annotations.get("cert-manager.io/inject-ca-from").is_none(),
        "{annotations}"
    );
    assert_eq!(
        of_kind(&objects, "Service", service_ca)["metadata"]["annotations"]["service.beta.openshift.io/serving-cert-secret-name"],
        certificate["spec"]["secretName"]
    );

    // No ConfigMap: the live settings are the user's (deploy/examples/settings.yaml), and
    // the operator's forced apply would revert their edits; the state is the daemon's.
    let config_maps: Vec<_> = in_rendered
        .iter()
        .filter(|(_, k, _, _)| k == "ConfigMap")
        .collect();
    assert!(config_maps.is_empty(), "{RENDERED} holds {config_maps:?}");
}
