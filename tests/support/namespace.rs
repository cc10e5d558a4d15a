//! A namespace per test, deleted with everything in it afterwards.
//!
//! The local control plane runs no kube-controller-manager, so no namespace
//! controller empties and finalizes a deleted namespace: it would stay
//! `Terminating` forever and its objects would stay in etcd, visible to every
//! cluster-wide list and watch of later tests. Cleanup therefore does the
//! namespace controller's work itself: delete every namespaced resource in it
//! (found by discovery), then clear the namespace's `kubernetes` finalizer
//! through the `finalize` subresource. On a cluster that does run the
//! controller (kind) this is merely redundant.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{ApiResource, Discovery, Scope, verbs};
use kube::{Client, Config, Resource};

use super::cluster::TestCluster;

/// Label on every namespace a test creates, to find leftovers:
/// `kubectl get ns -l konflux-telemetry.test/namespace`.
pub const TEST_NAMESPACE_LABEL: &str = "konflux-telemetry.test/namespace";

/// How long cleanup may take before it gives up (and says so).
const CLEANUP_DEADLINE: Duration = Duration::from_secs(60);

pub struct TestNamespace {
    name: String,
    client: Client,
    config: Config,
    cleaned: bool,
}

impl TestNamespace {
    pub(crate) async fn create(
        cluster: &TestCluster,
        prefix: &str,
        labels: &[(&str, &str)],
    ) -> Self {
        let name = unique_name(prefix);
        let mut all_labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all_labels.insert(TEST_NAMESPACE_LABEL.to_string(), "true".to_string());
        let mut ns = Namespace::default();
        ns.metadata.name = Some(name.clone());
        ns.metadata.labels = Some(all_labels);
        let api: Api<Namespace> = Api::all(cluster.client());
        if let Err(e) = api.create(&PostParams::default(), &ns).await {
            panic!("creating test namespace {name}: {e}");
        }
        TestNamespace {
            name,
            client: cluster.client(),
            config: cluster.config().clone(),
            cleaned: false,
        }
    }

    /// Creates the daemon's settings ConfigMap `settings` here with `data` (its live
    /// keys); returns `NAMESPACE/settings`, the value of `--config-map`.
    pub async fn settings(&self, data: serde_json::Value) -> String {
        let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "settings"}, "data": data}),
        )
        .expect("ConfigMap");
        self.api()
            .create(&PostParams::default(), &cm)
            .await
            .expect("settings ConfigMap");
        format!("{}/settings", self.name)
    }

    /// Replaces the data of the settings ConfigMap `settings` here with `data`, as an
    /// operator editing it would (the daemon reloads it live).
    pub async fn replace_settings(&self, data: serde_json::Value) {
        let api = self.api::<k8s_openapi::api::core::v1::ConfigMap>();
        let rv = api
            .get("settings")
            .await
            .expect("get settings")
            .metadata
            .resource_version;
        let cm = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "settings", "resourceVersion": rv}, "data": data
        }))
        .expect("ConfigMap");
        api.replace("settings", &PostParams::default(), &cm)
            .await
            .expect("replace settings");
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The namespace's uid (its `Namespace Created` event is `<uid>-namespace-created`).
    pub async fn uid(&self) -> String {
        Api::<Namespace>::all(self.client())
            .get(&self.name)
            .await
            .expect("namespace")
            .metadata
            .uid
            .expect("uid")
    }

    /// A typed API for this namespace, e.g. `ns.api::<ConfigMap>()`.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client(), &self.name)
    }

    /// A dynamic API for this namespace, e.g. for `crds::pipelinerun()`.
    pub fn dynamic_api(&self, ar: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(self.client(), &self.name, ar)
    }

    /// A client that authenticates as ServiceAccount `name` of this namespace
    /// (created if missing) with a token from the TokenRequest API, as a pod
    /// would. It has only what RBAC grants it: see [`TestNamespace::grant`].
    pub async fn service_account_client(&self, name: &str) -> Client {
        let accounts: Api<ServiceAccount> = self.api();
        let mut sa = ServiceAccount::default();
        sa.metadata.name = Some(name.to_string());
        match accounts.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            Err(e) if is_not_found_or_conflict(&e) => {}
            Err(e) => panic!("creating ServiceAccount {}/{name}: {e}", self.name),
        }
        let request: TokenRequest = serde_json::from_value(serde_json::json!({
            "spec": { "expirationSeconds": 3600 }
        }))
        .expect("a valid TokenRequest");
        let token = match accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
        {
            Ok(tr) => tr.status.map(|s| s.token).unwrap_or_default(),
            Err(e) => panic!("TokenRequest for ServiceAccount {}/{name}: {e}", self.name),
        };
        assert!(
            !token.is_empty(),
            "TokenRequest for {}/{name} returned no token",
            self.name
        );
        let mut config = self.config.clone();
        config.auth_info = serde_json::from_value(serde_json::json!({ "token": token }))
            .expect("an AuthInfo with a token");
        match Client::try_from(config) {
            Ok(c) => c,
            Err(e) => panic!(
                "building a client for ServiceAccount {}/{name}: {e}",
                self.name
            ),
        }
    }

    /// Grants ServiceAccount `service_account` of this namespace `rules` in
    /// this namespace (a Role and a RoleBinding, both named after it).
    pub async fn grant(&self, service_account: &str, rules: Vec<PolicyRule>) {
        let role_name = format!("{service_account}-test");
        let mut role = Role::default();
        role.metadata.name = Some(role_name.clone());
        role.rules = Some(rules);
        if let Err(e) = self
            .api::<Role>()
            .create(&PostParams::default(), &role)
            .await
        {
            panic!("creating Role {}/{role_name}: {e}", self.name);
        }
        let binding: RoleBinding = serde_json::from_value(serde_json::json!({
            "metadata": { "name": role_name },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name },
            "subjects": [{ "kind": "ServiceAccount", "name": service_account, "namespace": self.name }],
        }))
        .expect("a valid RoleBinding");
        if let Err(e) = self
            .api::<RoleBinding>()
            .create(&PostParams::default(), &binding)
            .await
        {
            panic!("creating RoleBinding {}/{role_name}: {e}", self.name);
        }
    }

    /// Deletes the namespace and everything in it, and waits until it is gone.
    /// Panics if that fails (leftovers would disturb later tests).
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        if let Err(e) = delete_namespace(&self.client, &self.name).await {
            panic!("cleaning up test namespace {}: {e}", self.name);
        }
    }
}

impl Drop for TestNamespace {
    /// Cleanup when the test did not call [`TestNamespace::cleanup`] (it
    /// panicked, or returned early). The client belongs to the test's runtime,
    /// which is blocked in this drop, so a thread with its own runtime and its
    /// own client does the work, and the drop waits for it (bounded).
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let name = self.name.clone();
        let config = self.config.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("cleanup-{name}"))
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|rt| {
                        rt.block_on(async {
                            let client = Client::try_from(config).map_err(|e| e.to_string())?;
                            delete_namespace(&client, &name).await
                        })
                    });
                let _ = tx.send(result);
            });
        let outcome = match spawned {
            Ok(_) => rx.recv_timeout(CLEANUP_DEADLINE + Duration::from_secs(5)),
            Err(e) => Ok(Err(format!("spawning the cleanup thread: {e}"))),
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: cleaning up test namespace {}: {e}", self.name),
            Err(_) => eprintln!(
                "warning: cleaning up test namespace {} timed out",
                self.name
            ),
        }
    }
}

/// `<prefix>-<8 hex digits>`, a valid DNS label, unique across processes and
/// runs (randomly keyed hash of pid, time and a counter).
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    let mut p: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    p.truncate(50);
    let p = p.trim_matches('-');
    let p = if p.is_empty() { "test" } else { p };
    format!("{p}-{:08x}", h.finish() as u32)
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn is_not_found_or_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 409)
}

/// Deletes namespace `name` with all its contents and waits until it is gone.
pub async fn delete_namespace(client: &Client, name: &str) -> Result<(), String> {
    tokio::time::timeout(CLEANUP_DEADLINE, delete_namespace_inner(client, name))
        .await
        .map_err(|_| format!("namespace {name} still there after {CLEANUP_DEADLINE:?}"))?
}

async fn delete_namespace_inner(client: &Client, name: &str) -> Result<(), String> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(format!("deleting namespace: {e}")),
    }

    // Empty it, as the namespace controller would.
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(|e| format!("discovery: {e}"))?;
    for group in discovery.groups() {
        // Every kind of the group, each at its most stable version: the group's preferred
        // version alone would leave out the kinds of its other versions (appstudio.redhat.com
        // serves IntegrationTestScenario at v1beta2, Component and Release at v1alpha1).
        for (ar, caps) in group.resources_by_stability() {
            if caps.scope != Scope::Namespaced || !caps.supports_operation(verbs::DELETE_COLLECTION)
            {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), name, &ar);
            let deleted = match api
                .delete_collection(&DeleteParams::background(), &ListParams::default())
                .await
            {
                Ok(either) => either.left().map(|l| l.items).unwrap_or_default(),
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(format!("deleting {} in {name}: {e}", ar.plural)),
            };
            // Objects held by finalizers that no controller here will remove.
            for obj in deleted {
                let held = obj
                    .metadata
                    .finalizers
                    .as_ref()
                    .is_some_and(|f| !f.is_empty());
                if let (true, Some(obj_name)) = (held, obj.metadata.name.as_deref()) {
                    let patch = serde_json::json!({ "metadata": { "finalizers": null } });
                    match api
                        .patch(obj_name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if is_not_found_or_conflict(&e) => {}
                        Err(e) => {
                            return Err(format!(
                                "removing finalizers of {} {obj_name}: {e}",
                                ar.kind
                            ));
                        }
                    }
                }
            }
        }
    }

    // Clear spec.finalizers (["kubernetes"]) through the finalize subresource.
    match namespaces.get(name).await {
        Ok(mut ns) => {
            if ns
                .spec
                .as_ref()
                .and_then(|s| s.finalizers.as_ref())
                .is_some_and(|f| !f.is_empty())
            {
                if let Some(spec) = ns.spec.as_mut() {
                    spec.finalizers = Some(Vec::new());
                }
                match namespaces
                    .replace_subresource("finalize", name, &PostParams::default(), &ns)
                    .await
                {
                    Ok(_) => {}
                    // Gone or changed meanwhile: a namespace controller is at work.
                    Err(e) if is_not_found_or_conflict(&e) => {}
                    Err(e) => return Err(format!("finalizing namespace: {e}")),
                }
            }
        }
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(format!("reading namespace: {e}")),
    }

    loop {
        match namespaces.get_opt(name).await {
            Ok(None) => return Ok(()),
            Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => return Err(format!("reading namespace: {e}")),
        }
    }
}
