//! The local Tekton Results API server (`e2e/tekton-results/`), for tests that sweep it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::{Value, json};

/// The `export KEY=value` lines of an env file (`.cluster/results/env`), if it is there.
pub fn read_env(path: &Path) -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

/// Where the server answers, and the CA its certificate is signed by.
pub struct ResultsServer {
    pub addr: String,
    pub ca: PathBuf,
}

/// Starts the server if it is not running (`results-up.sh` is idempotent and locked).
pub fn results_server() -> ResultsServer {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("bash")
        .arg(root.join("e2e/tekton-results/results-up.sh"))
        .current_dir(root)
        .status()
        .expect("run e2e/tekton-results/results-up.sh");
    assert!(status.success(), "results-up.sh failed ({status})");
    let env = read_env(&root.join(".cluster/results/env")).expect(".cluster/results/env");
    ResultsServer {
        addr: env["TEKTON_RESULTS_API_ADDR"].clone(),
        ca: PathBuf::from(&env["TEKTON_RESULTS_CA_FILE"]),
    }
}

impl ResultsServer {
    /// The flags that point a daemon's sweep at this server: its address, its CA, and a
    /// token (the local server checks none).
    pub fn sweep_flags(&self) -> Vec<String> {
        let ca = self.ca.to_string_lossy();
        [
            "--tekton-results-api-addr",
            &self.addr,
            "--tekton-results-token",
            "not-checked",
            "--tekton-results-ca-file",
            &ca,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// An HTTPS client of the server's REST API, trusting its CA.
    pub fn client(&self) -> reqwest::Client {
        super::crypto::install_provider();
        let pem = std::fs::read(&self.ca).expect("CA");
        reqwest::Client::builder()
            .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem).expect("PEM"))
            .no_proxy()
            .build()
            .expect("client")
    }

    /// Records a PipelineRun (its JSON, with `metadata.uid`) through the REST API, as
    /// Tekton's watcher would: a Result, then a Record under it.
    pub async fn record(&self, ns: &str, run: &Value) {
        let uid = run["metadata"]["uid"].as_str().expect("uid");
        self.record_value(ns, uid, run.to_string().as_bytes()).await;
    }

    /// Records `value` (any bytes: the server takes any JSON) as PipelineRun `id` of
    /// namespace `ns`: a Result `id`, then a Record `id` under it (see
    /// [`ResultsServer::record`]).
    pub async fn record_value(&self, ns: &str, id: &str, value: &[u8]) {
        let http = self.client();
        let base = format!(
            "{}/apis/results.tekton.dev/v1alpha2/parents/{ns}/results",
            self.addr
        );
        for (url, body) in [
            (base.clone(), json!({"name": format!("{ns}/results/{id}")})),
            (
                format!("{base}/{id}/records"),
                json!({"name": format!("{ns}/results/{id}/records/{id}"), "data": {
                    "type": "tekton.dev/v1.PipelineRun",
                    "value": base64::engine::general_purpose::STANDARD.encode(value),
                }}),
            ),
        ] {
            let r = http
                .post(&url)
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap_or_else(|e| panic!("POST {url}: {e}"));
            let status = r.status();
            assert!(
                status.is_success(),
                "POST {url}: {status}: {}",
                r.text().await.unwrap_or_default()
            );
        }
    }

    /// Records PipelineRun `name` of namespace `ns` with `uid` and `status` (see
    /// [`ResultsServer::record`]).
    pub async fn record_run(&self, ns: &str, name: &str, uid: &str, status: Value) {
        let run = json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
            "metadata": {"name": name, "namespace": ns, "uid": uid}, "status": status});
        self.record(ns, &run).await;
    }

    /// The PipelineRun records stored under namespace `ns`, as `(record name, decoded value)`,
    /// read through the REST API (a list of every record of every Result of `ns`).
    pub async fn records(&self, ns: &str) -> Vec<(String, Value)> {
        let http = self.client();
        let url = format!(
            "{}/apis/results.tekton.dev/v1alpha2/parents/{ns}/results/-/records",
            self.addr
        );
        let r = http.get(url).send().await.expect("GET records");
        assert!(r.status().is_success(), "listing records: {}", r.status());
        let page: Value =
            serde_json::from_str(&r.text().await.expect("a body")).expect("a JSON page of records");
        page["records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|rec| rec["data"]["type"] == "tekton.dev/v1.PipelineRun")
            .map(|rec| {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(rec["data"]["value"].as_str().expect("a base64 value"))
                    .expect("base64");
                let name = rec["name"].as_str().expect("a record name").to_owned();
                (name, serde_json::from_slice(&raw).expect("a JSON value"))
            })
            .collect()
    }
}
