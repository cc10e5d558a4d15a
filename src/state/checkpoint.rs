//! The state ConfigMap at run time: the record of produced events and the sweep's
//! watermark saved at most every [`SAVE_EVERY`] when either changed, and once more at
//! stop; the holder annotation renewed, so a second instance warns.

use crate::pipeline::ProducedRecord;
use crate::state;
use crate::sweep::Watermark;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The record of produced events is saved at most this often (and at stop): a SIGKILL
/// costs at most this much of re-sent events, which Segment drops by `messageId`.
pub const SAVE_EVERY: Duration = Duration::from_secs(30);
/// How often a change is looked for (an atomic and a lock: cheap).
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Where the state lives, and what is saved there.
#[derive(Clone)]
pub struct Checkpoint {
    client: kube::Client,
    namespace: String,
    name: String,
    produced: Arc<dyn ProducedRecord>,
    watermark: Watermark,
    /// This instance's identity in the holder annotation.
    holder: String,
    /// The last Konflux version a previous run saw.
    konflux_version: Option<String>,
}

impl Checkpoint {
    /// Loads what a previous run saved in ConfigMap `namespace/name` into `produced` and the
    /// returned watermark.
    pub async fn load(
        client: kube::Client,
        namespace: String,
        name: String,
        produced: Arc<dyn ProducedRecord>,
    ) -> Self {
        let saved = state::load(&client, &namespace, &name).await;
        let entries = saved.produced.map(|bytes| produced.import_produced(&bytes));
        info!(
            entries = entries.unwrap_or(0),
            sweep_watermark = saved.sweep.is_some(),
            "record of produced events loaded"
        );
        Self {
            client,
            namespace,
            name,
            produced,
            watermark: Watermark::new(saved.sweep),
            holder: state::instance_identity(),
            konflux_version: saved.konflux_version,
        }
    }

    /// The last Konflux version a previous run saw (`None`: none was kept).
    pub fn konflux_version(&self) -> Option<String> {
        self.konflux_version.clone()
    }

    /// Keeps `version` as the last Konflux version seen; a failure is logged (a restart
    /// then produces the upgrade again, with the same `messageId`).
    pub async fn save_konflux_version(&self, version: &str) {
        let (ns, name) = (&self.namespace, &self.name);
        if let Err(e) = state::save_konflux_version(&self.client, ns, name, version).await {
            warn!(
                "cannot keep the last Konflux version in ConfigMap {ns}/{name} (a restart may produce the upgrade again; Segment drops it): {e}"
            );
        }
    }

    /// The sweep's watermark, shared with the sweeper.
    pub fn watermark(&self) -> Watermark {
        self.watermark.clone()
    }

    /// Saves the record of produced events and the watermark now.
    pub async fn save(&self) {
        let bytes = self.produced.export_produced(state::MAX_ENTRIES);
        let (ns, name) = (&self.namespace, &self.name);
        if let Err(e) = state::save(&self.client, ns, name, bytes, self.watermark.get()).await {
            warn!(
                "cannot keep the record of produced events in ConfigMap {ns}/{name} (a restart may resend some; Segment drops those): {e}"
            );
        }
    }

    /// Until `stop`: holds the state (a second instance is warned of) and saves it every
    /// [`SAVE_EVERY`] when a flush recorded events or the watermark moved.
    pub async fn run(self, stop: CancellationToken) {
        let hold = state::hold(
            self.client.clone(),
            self.namespace.clone(),
            self.name.clone(),
            self.holder.clone(),
            stop.clone(),
        );
        let save = async {
            // What was saved, and when: the first change is saved within a second, the
            // next ones at most every SAVE_EVERY.
            let mut saved = (0, None);
            let mut last_save: Option<tokio::time::Instant> = None;
            let mut tick = tokio::time::interval(CHECK_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let now = (self.produced.recorded(), self.watermark.get());
                if now != saved && last_save.is_none_or(|t| t.elapsed() >= SAVE_EVERY) {
                    self.save().await;
                    saved = now;
                    last_save = Some(tokio::time::Instant::now());
                }
            }
        };
        tokio::join!(hold, save);
    }

    /// At stop, after the final flush: saves, and releases the state so the next Pod of a
    /// rollout (`Recreate`) starts without a warning.
    pub async fn release(&self) {
        self.save().await;
        let (ns, name) = (&self.namespace, &self.name);
        if let Err(e) = state::claim(&self.client, ns, name, &self.holder, None).await {
            warn!("cannot release the state in ConfigMap {ns}/{name}: {e}");
        }
    }
}
