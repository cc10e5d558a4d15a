//! Finding (or starting) the API server the tests run against.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::namespace::TestNamespace;

/// Where the cluster came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSource {
    /// `$KUBECONFIG` was set: kind, or any cluster a person pointed us at.
    Kubeconfig,
    /// The local control plane of `e2e/control-plane/cluster-up.sh`,
    /// with this kubeconfig (`.cluster/kubeconfig`).
    Local(PathBuf),
}

/// A connection to the test cluster. Cheap to create: one per test.
#[derive(Clone)]
pub struct TestCluster {
    client: Client,
    config: Config,
    source: ClusterSource,
    etcd_endpoint: Option<String>,
}

impl TestCluster {
    /// A client for this test's runtime.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The configuration the client was built from (to build more clients,
    /// e.g. on another runtime or with other credentials).
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn source(&self) -> &ClusterSource {
        &self.source
    }

    /// The etcd client URL (plain HTTP, loopback), when the test can reach
    /// the cluster's etcd: `$ETCD_ENDPOINT`, else the local control plane's.
    /// `None` for kind and other clusters; tests needing etcd fail there, saying so.
    pub fn etcd_endpoint(&self) -> Option<&str> {
        self.etcd_endpoint.as_deref()
    }

    /// A new namespace with a unique name starting with `prefix`, deleted
    /// (with its contents) by [`TestNamespace::cleanup`] or on drop.
    pub async fn namespace(&self, prefix: &str) -> TestNamespace {
        TestNamespace::create(self, prefix, &[]).await
    }

    /// Like [`TestCluster::namespace`], with labels on the namespace.
    pub async fn namespace_with_labels(
        &self,
        prefix: &str,
        labels: &[(&str, &str)],
    ) -> TestNamespace {
        TestNamespace::create(self, prefix, labels).await
    }

    /// Like [`TestCluster::namespace`], labelled `konflux-ci.dev/type=tenant`: a Konflux
    /// tenant namespace, whose objects the daemon watches.
    pub async fn tenant(&self, prefix: &str) -> TestNamespace {
        self.namespace_with_labels(prefix, &[("konflux-ci.dev/type", "tenant")])
            .await
    }
}

/// The test cluster, started if need be. Panics with the reason when there is
/// none to be had: a test that needs a cluster cannot go on without one.
pub async fn cluster() -> TestCluster {
    match try_cluster().await {
        Ok(c) => c,
        Err(e) => panic!("no Kubernetes API server for the integration tests: {e}"),
    }
}

/// The test cluster, started if need be.
pub async fn try_cluster() -> Result<TestCluster, String> {
    let boot = tokio::task::spawn_blocking(|| BOOT.get_or_init(bootstrap).clone())
        .await
        .map_err(|e| format!("bootstrap task failed: {e}"))??;

    let config = match &boot.source {
        ClusterSource::Kubeconfig => Config::from_kubeconfig(&KubeConfigOptions::default())
            .await
            .map_err(|e| format!("reading $KUBECONFIG: {e}"))?,
        ClusterSource::Local(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("loading {}: {e}", path.display()))?
        }
    };
    let client = Client::try_from(config.clone()).map_err(|e| format!("building a client: {e}"))?;

    // Fail here, with the address, rather than in the middle of a test.
    match tokio::time::timeout(Duration::from_secs(30), client.apiserver_version()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            return Err(format!(
                "API server {} does not answer: {e}",
                config.cluster_url
            ));
        }
        Err(_) => {
            return Err(format!(
                "API server {} did not answer within 30s",
                config.cluster_url
            ));
        }
    }

    Ok(TestCluster {
        client,
        config,
        source: boot.source,
        etcd_endpoint: boot.etcd_endpoint,
    })
}

/// What is found (or started) once per test process. Clients are not shared:
/// each belongs to the runtime of the `#[tokio::test]` that made it.
#[derive(Clone)]
struct Boot {
    source: ClusterSource,
    etcd_endpoint: Option<String>,
}

static BOOT: OnceLock<Result<Boot, String>> = OnceLock::new();

/// The repository root (where `.cluster/` and `e2e/` are).
pub(crate) fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bootstrap() -> Result<Boot, String> {
    let env_etcd = std::env::var("ETCD_ENDPOINT")
        .ok()
        .filter(|s| !s.is_empty());
    if std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) {
        return Ok(Boot {
            source: ClusterSource::Kubeconfig,
            etcd_endpoint: env_etcd,
        });
    }

    // The local control plane. cluster-up.sh is idempotent and serialised by a
    // file lock: when the cluster is already up and healthy it only checks
    // that (a few milliseconds), otherwise it (builds and) starts it. So
    // parallel test processes can all call it.
    let root = repo_root();
    let script = root.join("e2e/control-plane/cluster-up.sh");
    eprintln!(
        "support: ensuring the local API server is up ({})",
        script.display()
    );
    let status = Command::new("bash")
        .arg(&script)
        .current_dir(root)
        .stdin(std::process::Stdio::null())
        // Its progress goes to the terminal: the first run builds for minutes.
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .status()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !status.success() {
        return Err(format!(
            "{} failed ({status}); see its output above and .cluster/logs/",
            script.display()
        ));
    }

    let state = root.join(".cluster");
    let kubeconfig = state.join("kubeconfig");
    if !kubeconfig.is_file() {
        return Err(format!(
            "{} succeeded but wrote no {}",
            script.display(),
            kubeconfig.display()
        ));
    }
    let etcd_endpoint = env_etcd.or_else(|| read_env_file(&state.join("env"), "ETCD_ENDPOINT"));
    Ok(Boot {
        source: ClusterSource::Local(kubeconfig),
        etcd_endpoint,
    })
}

/// The value of `export KEY=value` in a file written by cluster-up.sh.
fn read_env_file(path: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let prefix = format!("export {key}=");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}
