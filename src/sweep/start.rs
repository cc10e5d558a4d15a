//! The sweep as the daemon starts it: Tekton Results located (the configured address, else
//! the service names Konflux's UI proxy probes), the client built, where it is and what
//! its TLS trusts said once in the log and in the metrics, then [`Sweeper::run`].
//!
//! While no name resolves, one log line says so and the search is repeated every sweep
//! interval without another line; the rest of the daemon (the watch, `/readyz`) does not
//! wait for it.

use super::results::{self, Found, Located, Resolver, ResultsClient, ResultsConfig};
use super::{MIN_INTERVAL, SweepMetrics, SweepSettings, Sweeper, Watermark};
use crate::pipeline::observation::ObservationTx;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the sweep needs to start.
pub struct SweepStart {
    pub config: ResultsConfig,
    pub resolver: Resolver,
    pub settings: watch::Receiver<SweepSettings>,
    pub tx: ObservationTx,
    pub metrics: SweepMetrics,
    /// The watermark loaded from saved state, if any.
    pub watermark: Option<Watermark>,
}

impl SweepStart {
    /// Locates Results, builds the client and sweeps until `stop`. Never fails: what
    /// stops the sweep is logged once.
    pub async fn run(self, stop: CancellationToken) {
        let Some(client) = self.client(&stop).await else {
            return;
        };
        let mut sweeper = Sweeper::new(client, self.settings, self.tx, self.metrics);
        if let Some(w) = self.watermark {
            sweeper = sweeper.with_watermark(w);
        }
        sweeper.run(stop.cancelled_owned()).await;
    }

    /// The client of the first address that resolves, once one does; `None` at stop, or
    /// when the client cannot be built.
    async fn client(&self, stop: &CancellationToken) -> Option<ResultsClient> {
        let configured = match results::parse_addr(&self.config.addr) {
            Ok(url) => url,
            Err(e) => {
                tracing::warn!("no reconciliation sweep: {e}");
                return None;
            }
        };
        let located = self.locate(&configured, stop).await?;
        let mut config = self.config.clone();
        config.addr = located.candidate.url.to_string();
        config.resolve_to.clone_from(&located.pinned);
        let client = match ResultsClient::new(&config) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("no reconciliation sweep: {e}");
                return None;
            }
        };
        let tls = client.tls_policy();
        self.metrics.set_results_tls(tls);
        if tls.verifies() || *tls == results::TlsPolicy::PlainHttp {
            tracing::info!(tls = tls.as_str(), "Tekton Results TLS: {}", tls.describe());
        } else {
            tracing::warn!(tls = tls.as_str(), "Tekton Results TLS: {}", tls.describe());
        }
        Some(client)
    }

    /// Where Results is: looked for at once, then every sweep interval until found.
    async fn locate(&self, configured: &reqwest::Url, stop: &CancellationToken) -> Option<Located> {
        let mut said_none = false;
        loop {
            let found = tokio::select! {
                () = stop.cancelled() => return None,
                found = results::discovery::locate_results(configured, &self.resolver) => found,
            };
            if let Some(at) = found {
                self.metrics.set_results_address(at.found);
                let which = at.candidate.which.as_str();
                match at.found {
                    Found::Discovered => tracing::info!(
                        found = at.found.as_str(),
                        candidate = which,
                        "Tekton Results found at its service name in namespace {which}: the configured address does not resolve"
                    ),
                    _ => tracing::info!(
                        found = at.found.as_str(),
                        "Tekton Results at the configured address"
                    ),
                }
                return Some(at);
            }
            self.metrics.set_results_address(Found::None);
            if !said_none {
                said_none = true;
                tracing::warn!(
                    found = Found::None.as_str(),
                    "Tekton Results not found: neither the configured address nor {} in namespace {} resolves; no reconciliation sweep until one does (looked for again every sweep interval; the watch goes on)",
                    results::address::SERVICE,
                    results::address::NAMESPACES.join(", "),
                );
            }
            let interval = self.settings.borrow().interval.max(MIN_INTERVAL);
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}
