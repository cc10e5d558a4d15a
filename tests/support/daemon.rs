//! The `konflux-telemetry` binary as a process, and what integration tests read back from
//! it and from the sink.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::Value;

use super::cluster::{ClusterSource, TestCluster};
use super::eventually;
use super::namespace::TestNamespace;

/// How long a test waits for the daemon or an event before it fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// A running `konflux-telemetry run`, its log in a file, its HTTP endpoints on loopback.
/// Dropped without [`DaemonProcess::terminate`] (a test that panicked), it is killed.
pub struct DaemonProcess {
    child: Child,
    log: PathBuf,
    /// `http://127.0.0.1:PORT`, where /healthz, /readyz, /metrics and /preview are.
    pub http: String,
}

/// A port free on loopback now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One sample of a Prometheus text exposition: `series` is the name with its labels, as
/// printed (`konflux_telemetry_flushes_total{outcome="ok"}`).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The sum of every series of metric `name`, whatever their labels.
pub fn sample_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The sum of the samples of metric `name` (exactly that name) whose labels contain every
/// one of `labels` (`outcome="ok"`); 0 when there is none.
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        + 0.0
}

/// The environment variables of the daemon's flags: a daemon of the tests reads none
/// from the test's environment, only what `args` and `env` give it.
const FLAG_VARIABLES: &[&str] = &[
    "SEGMENT_WRITE_KEY",
    "CLUSTER_ID",
    "WEBHOOK_LISTEN",
    "WEBHOOK_CERT_DIR",
    "TEKTON_RESULTS_API_ADDR",
];

impl DaemonProcess {
    /// Starts `konflux-telemetry run ARGS --listen 127.0.0.1:PORT` (and `--kubeconfig` of the
    /// local cluster), with stderr in `log`. The write key comes from `args` only.
    pub fn start(cluster: &TestCluster, args: &[impl AsRef<OsStr>], log: PathBuf) -> Self {
        Self::start_with_env(cluster, args, &[], log)
    }

    /// [`DaemonProcess::start`] with environment variables set, as a Pod's `envFrom` a
    /// Secret would (the write key may come from them); an empty value unsets one.
    pub fn start_with_env(
        cluster: &TestCluster,
        args: &[impl AsRef<OsStr>],
        env: &[(String, String)],
        log: PathBuf,
    ) -> Self {
        let kubeconfig = match cluster.source() {
            ClusterSource::Local(kubeconfig) => Some(kubeconfig.as_path()),
            _ => None,
        };
        Self::spawn(kubeconfig, args, env, log)
    }

    /// [`DaemonProcess::start_with_env`] with `--kubeconfig KUBECONFIG` when given (else
    /// the daemon finds its cluster as kube-rs does: `$KUBECONFIG`, in-cluster).
    pub fn spawn(
        kubeconfig: Option<&Path>,
        args: &[impl AsRef<OsStr>],
        env: &[(String, String)],
        log: PathBuf,
    ) -> Self {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_konflux-telemetry"));
        cmd.arg("run")
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            // The local cluster is vanilla Kubernetes, where telemetry is off unless opted
            // in: every daemon of the tests opts in, but a test of the default, which
            // passes TELEMETRY_ENABLED empty (unset here).
            .env("TELEMETRY_ENABLED", "true")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("daemon log file"));
        for k in FLAG_VARIABLES {
            cmd.env_remove(k);
        }
        for (k, v) in env {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        if let Some(kubeconfig) = kubeconfig {
            cmd.arg("--kubeconfig").arg(kubeconfig);
        }
        DaemonProcess {
            child: cmd.spawn().expect("start the daemon"),
            log,
            http: format!("http://127.0.0.1:{port}"),
        }
    }

    /// One sample of its `/metrics` (see [`sample`]); 0 when not served (yet).
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get("/metrics").await.unwrap_or_default();
        sample(&text, series).unwrap_or(0.0)
    }

    /// The sum of the samples of `name` whose labels contain each of `labels` (see
    /// [`metric_sum`]); 0 when not served (yet).
    pub async fn metric_sum(&self, name: &str, labels: &[&str]) -> f64 {
        let (_, text) = self.get("/metrics").await.unwrap_or_default();
        metric_sum(&text, name, labels)
    }

    /// GET an endpoint: its status and body, or `None` while the daemon does not answer.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let r = reqwest::get(format!("{}{path}", self.http)).await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().await.ok()?))
    }

    pub async fn wait_ready(&self) {
        eventually("the daemon to be ready", WAIT, || async {
            self.get("/readyz")
                .await
                .filter(|(s, _)| *s == 200)
                .map(|_| ())
        })
        .await;
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then whether it exited 0, and its whole log.
    pub fn terminate(mut self) -> (bool, String) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().expect("wait for the daemon");
        (status.success(), self.log())
    }

    /// SIGTERM; asserts that it exited 0; its whole log.
    pub fn stop(self) -> String {
        let (ok, log) = self.terminate();
        assert!(ok, "daemon exit; log:\n{log}");
        log
    }

    /// SIGKILL (nothing flushed, nothing saved); its whole log.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        // A test that panicked leaves no daemon behind (terminate has waited already).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The events the sink accepted, from its output file; each must pass
/// `schema/events.json` (so every integration test checks every event it receives).
pub fn sink_events(out: &Path) -> Vec<Value> {
    let events: Vec<Value> = std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    super::schema::assert_all_valid(&events);
    events
}

/// How many of `events` have `messageId` `id`.
pub fn count(events: &[Value], id: &str) -> usize {
    events.iter().filter(|e| e["messageId"] == id).count()
}

/// The event of `events` with `messageId` `id`; panics when there is none.
pub fn by_id<'a>(events: &'a [Value], id: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["messageId"] == id)
        .unwrap_or_else(|| panic!("no event {id}"))
}

/// Waits until every id is at the sink; returns all the sink's events then.
pub async fn wait_for_ids(out: &Path, ids: &[String]) -> Vec<Value> {
    eventually(&format!("events {ids:?} at the sink"), WAIT, || async {
        let events = sink_events(out);
        ids.iter()
            .all(|id| count(&events, id) > 0)
            .then_some(events)
    })
    .await
}

/// An exclusive lock on the file `.cluster/NAME.lock`, held until the file is dropped:
/// serialises the tests (of every test binary) that take the lock `name`.
pub fn file_lock(name: &str) -> std::fs::File {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cluster");
    std::fs::create_dir_all(&dir).expect(".cluster");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{name}.lock")))
        .expect("lock file");
    file.lock()
        .unwrap_or_else(|e| panic!("taking the lock {name}: {e}"));
    file
}

/// The lock of the tests that create the one cluster-scoped `konflux` CR (or its CRD), or
/// change `konflux-public-info`.
pub const KONFLUX_CR_LOCK: &str = "konflux-cr";

/// Serialises the tests that create the one cluster-scoped `konflux` CR (or its CRD).
pub fn konflux_lock() -> std::fs::File {
    file_lock(KONFLUX_CR_LOCK)
}

/// The ConfigMaps of namespace `konflux-info`, where Konflux publishes
/// `konflux-public-info`. The namespace is created if missing and never deleted: tests
/// running in parallel use it too.
pub async fn konflux_info(cluster: &TestCluster) -> Api<ConfigMap> {
    super::ensure_namespace(cluster, KONFLUX_INFO).await;
    Api::namespaced(cluster.client(), KONFLUX_INFO)
}

/// Where Konflux publishes `konflux-public-info`.
pub const KONFLUX_INFO: &str = "konflux-info";

/// The flags of a daemon that sends to the sink at `sink_url` with `key`, as cluster
/// `cluster_id`, flushes every 300 ms, and keeps its settings and state in the ConfigMaps
/// `settings` and `state` of namespace `home`: [`destination_flags`] and [`daemon_flags`].
pub fn sending_flags(sink_url: &str, key: &str, cluster_id: &str, home: &str) -> Vec<String> {
    let mut flags = destination_flags(sink_url, key);
    flags.extend(daemon_flags(cluster_id, home));
    flags
}

/// Where a daemon sends: the sink at `sink_url`, with the write key `key`.
pub fn destination_flags(sink_url: &str, key: &str) -> Vec<String> {
    ["--segment-api-url", sink_url, "--segment-write-key", key]
        .map(str::to_owned)
        .to_vec()
}

/// The rest of a test daemon's flags, whatever it sends to: cluster `cluster_id`, a flush
/// every 300 ms, its settings and state in the ConfigMaps `settings` and `state` of
/// namespace `home`.
pub fn daemon_flags(cluster_id: &str, home: &str) -> Vec<String> {
    let (settings, state) = (format!("{home}/settings"), format!("{home}/state"));
    [
        "--cluster-id",
        cluster_id,
        "--flush-interval",
        "300ms",
        "--config-map",
        &settings,
        "--state-config-map",
        &state,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A fresh (empty) directory for a test's logs and sink output, unique to this process.
pub fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("konflux-telemetry-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A fresh [`tempdir`] `name`, and in it `sink.ndjson`, where a [`start_sink`] accepting
/// `key` writes: the directory, that file and the sink.
pub async fn sink_in(name: &str, key: &str) -> (PathBuf, PathBuf, konflux_telemetry_sink::Sink) {
    let dir = tempdir(name);
    let out = dir.join("sink.ndjson");
    let sink = start_sink(key, &out).await;
    (dir, out, sink)
}

/// The project's Segment-compatible sink on a free loopback port, accepting `key`,
/// writing what it accepts to `out`. `sink.api_url()` is the daemon's `--segment-api-url`.
pub async fn start_sink(key: &str, out: &Path) -> konflux_telemetry_sink::Sink {
    let (_, sink) = konflux_telemetry_sink::Sink::start(
        "127.0.0.1:0".parse().expect("loopback address"),
        konflux_telemetry::segment::WriteKey::new(key),
        out.to_path_buf(),
    )
    .await
    .expect("start the sink");
    sink
}

/// What a daemon test starts from: the cluster, a fresh directory for the daemons' logs,
/// the sink (accepting the test's key) writing to `sink.ndjson` in it, and the daemon's
/// own namespace (segment-bridge in a real cluster), which holds its ConfigMaps; and,
/// from before any of it was made, the file lock the test asked for.
/// [`DaemonTest::finish`] is how a test that passed ends.
pub struct DaemonTest {
    pub cluster: TestCluster,
    pub dir: PathBuf,
    /// Where the sink writes the events it accepted (see [`sink_events`]).
    pub out: PathBuf,
    pub sink: konflux_telemetry_sink::Sink,
    pub home: TestNamespace,
    /// The write key the sink accepts.
    pub key: String,
    /// How many daemons [`DaemonTest::start`] started.
    started: AtomicUsize,
    /// Dropped last: the lock outlives the cleanup.
    _lock: Option<std::fs::File>,
}

impl DaemonTest {
    /// Test `name`'s: the directory [`tempdir`] `name`, a sink accepting `key`, the home
    /// namespace `NAME-home`.
    pub async fn new(name: &str, key: &str) -> Self {
        let cluster = super::cluster().await;
        Self::make(cluster, name, key, None).await
    }

    /// [`DaemonTest::new`], holding the [`file_lock`] `lock` until the test ends.
    pub async fn locked(name: &str, key: &str, lock: &str) -> Self {
        let cluster = super::cluster().await;
        let lock = file_lock(lock);
        Self::make(cluster, name, key, Some(lock)).await
    }

    async fn make(
        cluster: TestCluster,
        name: &str,
        key: &str,
        lock: Option<std::fs::File>,
    ) -> Self {
        let (dir, out, sink) = sink_in(name, key).await;
        let home = cluster.namespace(&format!("{name}-home")).await;
        DaemonTest {
            cluster,
            dir,
            out,
            sink,
            home,
            key: key.to_owned(),
            started: AtomicUsize::new(0),
            _lock: lock,
        }
    }

    /// The [`sending_flags`] of a daemon of this test: to its sink with its key, as
    /// `cluster_id`, its ConfigMaps in the home namespace.
    pub fn sending_flags(&self, cluster_id: &str) -> Vec<String> {
        sending_flags(
            &self.sink.api_url(),
            &self.key,
            cluster_id,
            self.home.name(),
        )
    }

    /// [`DaemonProcess::start`] with `args`, logging to `daemon-N.log` in the directory
    /// (`N` counting the daemons of the test from 1).
    pub fn start(&self, args: &[impl AsRef<OsStr>]) -> DaemonProcess {
        self.start_with_env(args, &[])
    }

    /// [`DaemonProcess::start_with_env`], logging as [`DaemonTest::start`] does.
    pub fn start_with_env(
        &self,
        args: &[impl AsRef<OsStr>],
        env: &[(String, String)],
    ) -> DaemonProcess {
        let n = 1 + self.started.fetch_add(1, Ordering::Relaxed);
        let log = self.dir.join(format!("daemon-{n}.log"));
        DaemonProcess::start_with_env(&self.cluster, args, env, log)
    }

    /// The events the sink accepted so far (see [`sink_events`]).
    pub fn sent(&self) -> Vec<Value> {
        sink_events(&self.out)
    }

    /// The end of a test: the sink stopped, the test's other `namespaces` deleted, then
    /// the home namespace and the directory; the lock released.
    pub async fn finish(self, namespaces: impl IntoIterator<Item = TestNamespace>) {
        self.sink.shutdown().await;
        for ns in namespaces {
            ns.cleanup().await;
        }
        self.home.cleanup().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
