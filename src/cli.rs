//! The flags of `konflux-telemetry run`, in groups, each flag with an environment
//! fallback (the old bridge's variable names work), and what each group builds.

use crate::capture::identity::Configured;
use crate::secret::Secret;
use crate::segment::credentials::{Credentials, Said};
use crate::segment::{self, Backoff, SenderConfig, WriteKey};
use crate::settings::{self, Settings};
use crate::sweep::{Override, Resolver, ResultsConfig, TokenSource};
use crate::{Error, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Kubeconfig to use; in-cluster config (or KUBECONFIG) when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub segment: SegmentArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Default flush interval (the ConfigMap's flushInterval wins).
    #[arg(long, env = "FLUSH_INTERVAL", value_parser = settings::parse_duration)]
    pub flush_interval: Option<Duration>,
    /// Default lookback (the ConfigMap's lookback wins).
    #[arg(long, env = "LOOKBACK", value_parser = settings::parse_duration)]
    pub lookback: Option<Duration>,
    /// How often konflux-public-info (cluster id, versions) is read again: one get, which
    /// Konflux allows every authenticated user.
    #[arg(long, env = "PUBLIC_INFO_INTERVAL", default_value = "5m", value_parser = settings::parse_duration)]
    pub public_info_interval: Duration,
    /// Opt in (true) or out (false) where the Konflux CR's spec.telemetry.enabled is unset
    /// (the ConfigMap's telemetryEnabled wins); unset: the platform decides (off on vanilla
    /// Kubernetes, the console's telemetry on OpenShift).
    #[arg(long, env = "TELEMETRY_ENABLED")]
    pub telemetry_enabled: Option<bool>,
    #[command(flatten)]
    pub http: HttpArgs,
    /// The live settings ConfigMap, as NAMESPACE/NAME.
    #[arg(
        long,
        env = "CONFIG_MAP",
        default_value = "segment-bridge/konflux-telemetry"
    )]
    pub config_map: String,
    /// Where the record of produced events is kept across restarts, as NAMESPACE/NAME of a
    /// ConfigMap; empty to keep nothing.
    #[arg(
        long,
        env = "STATE_CONFIG_MAP",
        default_value = "segment-bridge/konflux-telemetry-state"
    )]
    pub state_config_map: String,
    /// Longest the final flush may take on SIGTERM.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = settings::parse_duration)]
    pub shutdown_timeout: Duration,
    /// Logs as JSON lines.
    #[arg(long, env = "LOG_JSON")]
    pub log_json: bool,
    #[command(flatten)]
    pub results: ResultsArgs,
    #[command(flatten)]
    pub webhook: WebhookArgs,
    /// Timeouts and connection cap of the HTTP and webhook servers.
    #[command(flatten)]
    pub server: crate::http::server::ServerArgs,
}

/// Where events go.
#[derive(clap::Args, Clone, Debug)]
pub struct SegmentArgs {
    /// Segment API base URL, without /batch.
    #[arg(long, env = "SEGMENT_API_URL")]
    pub segment_api_url: Option<String>,
    /// The old bridge's full batch URL (with /batch); used when --segment-api-url is unset.
    #[arg(long, env = "SEGMENT_BATCH_API", hide = true)]
    pub segment_batch_api: Option<String>,
    /// Segment write key. Without one, events are captured and previewed but never sent.
    #[arg(long, env = "SEGMENT_WRITE_KEY", hide_env_values = true)]
    pub segment_write_key: Option<Secret>,
    /// A folder holding the Secret's keys as files (the Secret mounted as a volume):
    /// SEGMENT_WRITE_KEY, SEGMENT_API_URL, SEGMENT_BATCH_API, read again every
    /// --segment-secret-poll, so a changed Secret applies without a restart. A file present
    /// wins over the flag or variable of the same name.
    #[arg(long, env = "SEGMENT_SECRET_DIR", value_name = "DIR")]
    pub segment_secret_dir: Option<std::path::PathBuf>,
    /// How often the Secret's folder is read.
    #[arg(long, env = "SEGMENT_SECRET_POLL", default_value = "10s", value_parser = settings::parse_duration)]
    pub segment_secret_poll: std::time::Duration,
}

impl SegmentArgs {
    /// What the flags (or their variables) say, before the Secret's folder.
    pub fn said(&self) -> Said {
        Said {
            api_url: self.segment_api_url.clone(),
            batch_api: self.segment_batch_api.clone(),
            write_key: self
                .segment_write_key
                .as_ref()
                .map(|k| WriteKey::new(k.expose())),
        }
    }

    /// Where events go at start: the flags, with the Secret's folder over them when given
    /// (the rule: [`Said::credentials`]). A value that cannot be used stops the start.
    pub fn credentials(&self) -> Result<Credentials> {
        let said = self.said();
        let config = |e: &dyn std::fmt::Display| Error::Config {
            key: "segment-secret-dir".to_owned(),
            reason: e.to_string(),
        };
        let said = match &self.segment_secret_dir {
            Some(dir) => said.with_files_of(dir).map_err(|e| config(&e))?,
            None => said,
        };
        said.credentials().map_err(|source| Error::Segment {
            what: "the Segment API URL",
            source,
        })
    }
}

/// The sender's rate and retries from the live settings; its URL and key come from the
/// credentials ([`crate::segment::output::SegmentOutput`]).
pub fn sender_config(s: &Settings) -> SenderConfig {
    let mut cfg = SenderConfig::new(segment::DEFAULT_API_URL, WriteKey::new(""));
    cfg.requests_per_second = s.requests_per_second;
    cfg.backoff = Backoff {
        base: s.retry_base_delay,
        cap: s.retry_max_delay,
        deadline: s.retry_deadline,
    };
    cfg
}

/// What the events say about the cluster (`run` and `transform`).
#[derive(clap::Args, Clone, Debug)]
pub struct IdentityArgs {
    /// Cluster id, hashed before it leaves; `run` finds it in the cluster when unset. Its
    /// value salts the hashes: --help does not show it.
    #[arg(long, env = "CLUSTER_ID", hide_env_values = true)]
    pub cluster_id: Option<Secret>,
    /// Konflux version, sent as `konfluxVersion`; `run` reads konflux-public-info when unset.
    #[arg(long, env = "KONFLUX_VERSION", value_name = "VERSION")]
    pub konflux_version: Option<String>,
    /// Kubernetes version, sent as `kubernetesVersion`; `run` asks the API server when unset.
    #[arg(long, env = "KUBERNETES_VERSION", value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
}

impl IdentityArgs {
    /// What was configured, to win over what the cluster says.
    pub fn configured(&self) -> Configured {
        Configured {
            cluster_id: self.cluster_id.as_ref().map(|c| c.expose().to_owned()),
            konflux_version: self.konflux_version.clone(),
            kubernetes_version: self.kubernetes_version.clone(),
        }
    }
}

/// The plain HTTP endpoints.
#[derive(clap::Args, Clone, Debug)]
pub struct HttpArgs {
    /// Address of /healthz, /readyz, /metrics and /preview.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Serve /preview to any peer; by default only to loopback (kubectl port-forward).
    #[arg(long, env = "PREVIEW_ANY_PEER")]
    pub preview_any_peer: bool,
    /// Address of a listener that serves /healthz and /readyz only, for the kubelet's
    /// probes, with connections of its own (clients of --listen cannot starve it); none
    /// when unset.
    #[arg(long, env = "PROBE_LISTEN")]
    pub probe_listen: Option<SocketAddr>,
}

/// The reconciliation sweep over Tekton Results.
#[derive(clap::Args, Clone, Debug)]
pub struct ResultsArgs {
    /// Tekton Results API (`https://host:port`, or `host:port` meaning https); without
    /// it there is no sweep.
    #[arg(long, env = "TEKTON_RESULTS_API_ADDR")]
    pub tekton_results_api_addr: Option<String>,
    /// Records per Tekton Results page (the old bridge's TEKTON_LIMIT), clamped to what
    /// the Pod's memory allows (5 to 250).
    #[arg(long, env = "TEKTON_LIMIT")]
    pub tekton_limit: Option<u32>,
    /// Bearer token for the Results API; else the token file below is read (and re-read).
    #[arg(long, env = "TEKTON_RESULTS_TOKEN", hide_env_values = true)]
    pub tekton_results_token: Option<Secret>,
    /// Service account token file for the Results API.
    #[arg(long, env = "SA_TOKEN_PATH")]
    pub sa_token_path: Option<PathBuf>,
    /// PEM bundle of CAs trusted for the Results API (on OpenShift, the service CA).
    #[arg(long, env = "TEKTON_RESULTS_CA_FILE")]
    pub tekton_results_ca_file: Option<PathBuf>,
    /// Accept any certificate from the Results API. Off by default; not for production;
    /// with a token, for cluster service names only.
    #[arg(long, env = "TEKTON_RESULTS_INSECURE_SKIP_TLS_VERIFY")]
    pub tekton_results_insecure_skip_tls_verify: bool,
    /// Where the OpenShift service CA is looked for when no CA file is given (repeatable;
    /// default: the ConfigMap `openshift-service-ca.crt` as `deploy/` mounts it, and the
    /// service-account volume's `service-ca.crt`).
    #[arg(long, hide = true, value_name = "FILE")]
    pub tekton_results_service_ca_file: Vec<PathBuf>,
    /// Resolve HOST to IP when locating Tekton Results (`HOST=IP:PORT`: and connect to
    /// PORT), or `HOST=` for a name that does not resolve, like curl's --resolve
    /// (repeatable; tests).
    #[arg(long, hide = true, value_name = "HOST=IP[:PORT]")]
    pub tekton_results_resolve: Vec<Override>,
}

impl ResultsArgs {
    /// The Results client's configuration; `None` without an address (no sweep).
    pub fn config(&self) -> Option<ResultsConfig> {
        let addr = self
            .tekton_results_api_addr
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())?;
        let mut c = ResultsConfig::new(addr);
        if let Some(token) = self
            .tekton_results_token
            .as_ref()
            .map(|t| t.expose().trim())
            .filter(|t| !t.is_empty())
        {
            c.token = TokenSource::Fixed(token.to_owned());
        } else if let Some(path) = &self.sa_token_path {
            c.token = TokenSource::File(path.clone());
        }
        c.ca_file.clone_from(&self.tekton_results_ca_file);
        c.insecure_skip_tls_verify = self.tekton_results_insecure_skip_tls_verify;
        if !self.tekton_results_service_ca_file.is_empty() {
            c.service_ca_files
                .clone_from(&self.tekton_results_service_ca_file);
        }
        if let Some(limit) = self.tekton_limit {
            c.page_size = limit;
        }
        Some(c)
    }
}

impl ResultsArgs {
    /// How Results' candidate names resolve: `--tekton-results-resolve`, else the system.
    pub fn resolver(&self) -> Resolver {
        Resolver::with_overrides(self.tekton_results_resolve.clone())
    }
}

/// The admission webhook.
#[derive(clap::Args, Clone, Debug)]
pub struct WebhookArgs {
    /// Address of the admission webhook (HTTPS, `POST /validate`); no webhook when unset.
    #[arg(long, env = "WEBHOOK_LISTEN")]
    pub webhook_listen: Option<SocketAddr>,
    /// Directory with the webhook's tls.crt and tls.key, re-read when they change.
    #[arg(
        long,
        env = "WEBHOOK_CERT_DIR",
        default_value = "/etc/konflux-telemetry/webhook-certs"
    )]
    pub webhook_cert_dir: PathBuf,
    /// Largest AdmissionReview body the webhook reads, in bytes (larger: 413); at most
    /// 64 MiB.
    #[arg(long, env = "WEBHOOK_MAX_BODY_BYTES", default_value_t = crate::admission::MAX_BODY,
          value_parser = parse_webhook_body_bytes)]
    pub webhook_max_body_bytes: usize,
    /// Bytes of review bodies the webhook holds at once, all connections together
    /// (beyond: 503, which the API server's `failurePolicy: Ignore` lets through).
    #[arg(long, env = "WEBHOOK_MAX_BYTES_IN_FLIGHT", default_value_t = crate::admission::MAX_BYTES_IN_FLIGHT)]
    pub webhook_max_bytes_in_flight: usize,
}

/// `--webhook-max-body-bytes`: 1 KiB to [`crate::admission::MAX_BODY_LIMIT`].
fn parse_webhook_body_bytes(text: &str) -> std::result::Result<usize, String> {
    let n: usize = text
        .trim()
        .parse()
        .map_err(|e| format!("not a number of bytes: {e}"))?;
    let (low, high) = (1024, crate::admission::MAX_BODY_LIMIT);
    if !(low..=high).contains(&n) {
        return Err(format!("expected {low} to {high} bytes"));
    }
    Ok(n)
}

impl WebhookArgs {
    /// The webhook server's limits: `server`'s with these body caps. Refuses a budget of
    /// bytes in flight smaller than one body (every review that large would get 503).
    pub fn limits(
        &self,
        server: &crate::http::server::ServerArgs,
    ) -> Result<crate::http::server::Limits> {
        if self.webhook_max_bytes_in_flight < self.webhook_max_body_bytes {
            return Err(Error::Config {
                key: "webhook-max-bytes-in-flight".to_owned(),
                reason: format!(
                    "{} is below --webhook-max-body-bytes ({})",
                    self.webhook_max_bytes_in_flight, self.webhook_max_body_bytes
                ),
            });
        }
        Ok(server.limits(
            self.webhook_max_body_bytes,
            self.webhook_max_bytes_in_flight,
        ))
    }
}

impl RunArgs {
    /// The defaults with the flags that set a live setting's starting value.
    pub fn base_settings(&self) -> Settings {
        let mut base = Settings::default();
        if let Some(d) = self.flush_interval {
            base.flush_interval = d;
        }
        if let Some(d) = self.lookback {
            base.lookback = d;
        }
        if self.telemetry_enabled.is_some() {
            base.telemetry_enabled = self.telemetry_enabled;
        }
        base
    }
}

/// `NAMESPACE/NAME` split, for the flag `flag`.
pub fn namespaced_name(text: &str, flag: &'static str) -> Result<(String, String)> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(Error::Config {
            key: flag.to_owned(),
            reason: "expected NAMESPACE/NAME".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        webhook: WebhookArgs,
        #[command(flatten)]
        server: crate::http::server::ServerArgs,
    }

    fn parse(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
    }

    #[test]
    fn webhook_body_caps_are_bounded_at_start() {
        let cli = parse(&["--webhook-max-body-bytes=12582912"]).expect("12 MiB");
        let limits = cli.webhook.limits(&cli.server);
        // the default budget (32 MiB) holds a 12 MiB body
        assert_eq!(limits.map(|l| l.max_body_bytes).ok(), Some(12 << 20));
        for bad in ["67108865", "1000", "-1", "lots"] {
            let flag = format!("--webhook-max-body-bytes={bad}");
            assert!(parse(&[&flag]).is_err(), "{bad}");
        }
        let cli = parse(&[
            "--webhook-max-body-bytes=16777216",
            "--webhook-max-bytes-in-flight=8388608",
        ])
        .expect("parses");
        let err = cli
            .webhook
            .limits(&cli.server)
            .expect_err("budget below a body");
        assert!(
            err.to_string().contains("webhook-max-bytes-in-flight"),
            "{err}"
        );
    }
}
