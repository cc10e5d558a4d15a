//! The daemon's output: Segment with the credentials the Secret gives now
//! ([`super::credentials`]), or nothing while there is no write key (capture and preview
//! only). A change of credentials applies at the next flush: the sender is built again
//! for them; a flush under way finishes with the ones it started with.

use super::credentials::Credentials;
use super::{Sender, SenderConfig, SenderMetrics};
use crate::flush::{Batch, Delivery, Discard, Dropped, Limits, Output};
use std::sync::{Mutex, PoisonError};
use tokio::sync::watch;
use tracing::error;

/// The output the flusher is given, built for one version of the settings (its `config`:
/// rate, retries) and following the credentials.
pub struct SegmentOutput {
    credentials: watch::Receiver<Credentials>,
    config: SenderConfig,
    metrics: SenderMetrics,
    /// The sender for the credentials last seen; `None` without a write key.
    current: Mutex<(Credentials, Option<Sender>)>,
}

impl SegmentOutput {
    /// An output with `config`'s rate and retries (its URL and key are replaced by the
    /// credentials'), following `credentials`.
    pub fn new(
        mut credentials: watch::Receiver<Credentials>,
        config: SenderConfig,
        metrics: SenderMetrics,
    ) -> Result<Self, super::ConfigError> {
        let now = credentials.borrow_and_update().clone();
        let sender = Self::sender_for(&config, &metrics, &now)?;
        Ok(Self {
            credentials,
            config,
            metrics,
            current: Mutex::new((now, sender)),
        })
    }

    fn sender_for(
        config: &SenderConfig,
        metrics: &SenderMetrics,
        credentials: &Credentials,
    ) -> Result<Option<Sender>, super::ConfigError> {
        let Some(key) = &credentials.write_key else {
            return Ok(None);
        };
        let mut config = config.clone();
        config.api_url = credentials.api_url.clone();
        config.write_key = key.clone();
        Sender::new(config, metrics.clone()).map(Some)
    }

    /// The sender for the credentials as they are now (built again if they changed; if
    /// that fails, the previous one stays and the failure is logged).
    fn sender(&self) -> Option<Sender> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.credentials.borrow().clone();
        if now != current.0 {
            match Self::sender_for(&self.config, &self.metrics, &now) {
                Ok(sender) => *current = (now, sender),
                Err(e) => error!("keeping the previous Segment sender: {e}"),
            }
        }
        current.1.clone()
    }
}

impl Output for SegmentOutput {
    fn limits(&self) -> Limits {
        self.config.limits
    }

    async fn deliver(&self, batches: &[Batch]) -> Delivery {
        match self.sender() {
            Some(s) => s.deliver(batches).await,
            None => Discard.deliver(batches).await,
        }
    }

    fn reaches_receiver(&self) -> bool {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.1.is_some()
    }

    fn report_unsendable(&self, dropped: &[Dropped]) {
        match self.sender() {
            Some(s) => s.report_unsendable(dropped),
            None => Discard.report_unsendable(dropped),
        }
    }
}
