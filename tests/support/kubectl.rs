//! kubectl (built from source by e2e/control-plane, kustomize included) against the test
//! cluster, for the tests of `deploy/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{ClusterSource, TestCluster};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// kubectl (with kustomize built in) and the admin kubeconfig: the local control plane's,
/// or `$KUBECONFIG`'s (then kubectl from PATH).
#[derive(Clone)]
pub struct Kubectl {
    pub bin: PathBuf,
    pub kubeconfig: Option<PathBuf>,
}

impl Kubectl {
    pub fn for_cluster(cluster: &TestCluster) -> Self {
        match cluster.source() {
            ClusterSource::Local(path) => Kubectl {
                bin: repo().join(".cluster/bin/kubectl"),
                kubeconfig: Some(path.clone()),
            },
            ClusterSource::Kubeconfig => Kubectl {
                bin: PathBuf::from("kubectl"),
                kubeconfig: None,
            },
        }
    }

    /// Runs kubectl; (success, stdout, stderr).
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = Command::new(&self.bin);
        if let Some(k) = &self.kubeconfig {
            cmd.arg("--kubeconfig").arg(k);
        }
        cmd.args(args)
            .current_dir(repo())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin.display()));
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("writing to kubectl");
        }
        let out = child.wait_with_output().expect("kubectl output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn must(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = self.run(args, stdin);
        assert!(ok, "kubectl {args:?} failed:\n{err}\n{out}");
        out
    }

    /// Applies the CRDs in `path` (a file or a folder) server-side, taking over fields
    /// another manager set (as `make cluster-up` does for large CRDs), then
    /// [`Kubectl::wait_established`].
    pub fn install_crds(&self, path: &str) {
        self.must(
            &["apply", "--server-side", "--force-conflicts", "-f", path],
            None,
        );
        self.wait_established(path);
    }

    /// cert-manager's CRDs, of the version `make kind-e2e` runs, for deploy/'s Issuer and
    /// Certificate (no cert-manager runs against the local API server: the Secret it would
    /// write is not needed). Read from cert-manager's Go module (e2e/kind/cert-manager/crds.sh),
    /// not copied into this repository.
    pub fn install_cert_manager_crds(&self) {
        let out = Command::new("bash")
            .arg("e2e/kind/cert-manager/crds.sh")
            .current_dir(repo())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("running e2e/kind/cert-manager/crds.sh: {e}"));
        assert!(
            out.status.success(),
            "e2e/kind/cert-manager/crds.sh failed (its reason is above)"
        );
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        self.install_crds(&dir);
    }

    /// Waits (a minute at most) until the CRDs in `path` are Established: served.
    pub fn wait_established(&self, path: &str) {
        self.must(
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "-f",
                path,
            ],
            None,
        );
    }
}

/// The YAML documents of a rendered kustomization.
pub fn documents(yaml: &str) -> Vec<String> {
    yaml.split("\n---\n")
        .map(|d| d.trim_start_matches("---\n").to_owned())
        .filter(|d| !d.trim().is_empty())
        .collect()
}

pub fn is_kind(doc: &str, kind: &str) -> bool {
    doc.lines().any(|l| l == format!("kind: {kind}"))
}
