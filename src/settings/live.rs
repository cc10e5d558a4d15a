//! The live settings: the daemon's ConfigMap, read into [`Settings`] by the one table of
//! keys ([`crate::settings::KEYS`]) and published through a `tokio::sync::watch` channel
//! that the flusher, the heartbeat, the sweep and the core's knobs read.

use crate::capture::config_maps;
use crate::metrics::OutcomeLabel;
use crate::pipeline::metrics::CoreMetrics;
use crate::settings::Settings;
use std::collections::BTreeMap;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The settings as the ConfigMap last said, with the last good value of each key.
pub struct LiveSettings {
    /// The defaults with the command line's flags: what a missing key means.
    base: Settings,
    tx: watch::Sender<Settings>,
    /// `NAMESPACE/NAME` of the ConfigMap, for log lines.
    source: String,
    metrics: CoreMetrics,
    /// True once the ConfigMap (or its absence) has been read.
    loaded: watch::Sender<bool>,
}

impl LiveSettings {
    /// Settings at `base` until the ConfigMap `source` says otherwise, and their channel.
    pub fn new(
        base: Settings,
        source: String,
        metrics: CoreMetrics,
    ) -> (Self, watch::Receiver<Settings>) {
        let (tx, rx) = watch::channel(base.clone());
        (
            Self {
                base,
                tx,
                source,
                metrics,
                loaded: watch::Sender::new(false),
            },
            rx,
        )
    }

    /// Turns true once the ConfigMap (or its absence) has been read by [`Self::run`].
    pub fn loaded(&self) -> watch::Receiver<bool> {
        self.loaded.subscribe()
    }

    /// Reads the ConfigMap's `data` (`None`: no ConfigMap, every key at its default): each
    /// rejected key is logged and keeps its last good value, the reload is counted, and
    /// changed settings are published. Returns them when they changed.
    pub fn update(&self, data: Option<&BTreeMap<String, String>>) -> Option<Settings> {
        let empty = BTreeMap::new();
        let last = self.tx.borrow().clone();
        let (next, rejected) = Settings::apply(&self.base, &last, data.unwrap_or(&empty));
        for r in &rejected {
            warn!(
                key = %r.key,
                "ConfigMap {}: {} rejected: {}; keeping the last good value",
                self.source,
                r.key,
                r.reason
            );
        }
        let outcome = if rejected.is_empty() {
            "applied"
        } else {
            "rejected"
        };
        self.metrics
            .config_reloads
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        if next == last {
            return None;
        }
        info!("settings changed: {}", next.describe());
        self.tx.send_replace(next.clone());
        Some(next)
    }

    /// Watches the ConfigMap `namespace/name` until `stop`, calling `on_change` with each
    /// change after it is published.
    pub async fn run(
        self,
        client: kube::Client,
        namespace: String,
        name: String,
        stop: CancellationToken,
        mut on_change: impl FnMut(&Settings),
    ) {
        config_maps::watch_one(client, &namespace, &name, stop, |cm| {
            if let Some(next) = self.update(cm.and_then(|c| c.data.as_ref())) {
                on_change(&next);
            }
            self.loaded.send_replace(true);
        })
        .await;
    }
}

/// A channel of `f(settings)`, republished (when it changes) by a task in `tasks` until
/// `stop`: how a component reads its part of the live settings.
pub fn project<T, U>(
    from: &watch::Receiver<T>,
    stop: &CancellationToken,
    tasks: &mut JoinSet<()>,
    f: impl Fn(&T) -> U + Send + 'static,
) -> watch::Receiver<U>
where
    T: Send + Sync + 'static,
    U: PartialEq + Send + Sync + 'static,
{
    let mut from = from.clone();
    let (tx, rx) = watch::channel(f(&from.borrow_and_update()));
    let stop = stop.clone();
    tasks.spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                changed = from.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let next = f(&from.borrow_and_update());
                    tx.send_if_modified(|cur| {
                        let changed = *cur != next;
                        if changed {
                            *cur = next;
                        }
                        changed
                    });
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::data;
    use std::time::Duration;

    fn reloads(m: &CoreMetrics, outcome: &'static str) -> u64 {
        m.config_reloads
            .get_or_create(&OutcomeLabel { outcome })
            .get()
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_is_published_once_and_a_bad_value_keeps_the_last_good_one() {
        let metrics = CoreMetrics::default();
        let base = Settings {
            lookback: Duration::from_secs(600),
            ..Settings::default()
        };
        let (live, mut rx) = LiveSettings::new(base.clone(), "ns/cm".into(), metrics.clone());
        assert!(!rx.has_changed().unwrap_or(true));

        // No ConfigMap: the base, nothing published.
        assert_eq!(live.update(None), None);
        assert!(!rx.has_changed().unwrap_or(true));

        let next = live.update(Some(&data(&[("flushInterval", "5s")])));
        assert_eq!(next.map(|s| s.flush_interval), Some(Duration::from_secs(5)));
        assert!(rx.has_changed().unwrap_or(false));
        assert_eq!(
            rx.borrow_and_update().flush_interval,
            Duration::from_secs(5)
        );
        assert_eq!(
            rx.borrow().lookback,
            base.lookback,
            "the flag's value stays"
        );

        // A bad value keeps the last good one: nothing changes, nothing is published.
        assert_eq!(live.update(Some(&data(&[("flushInterval", "soon")]))), None);
        assert!(!rx.has_changed().unwrap_or(true));
        assert_eq!(rx.borrow().flush_interval, Duration::from_secs(5));
        assert_eq!(reloads(&metrics, "rejected"), 1);
        assert_eq!(reloads(&metrics, "applied"), 2);

        // The key removed: back to the base.
        let next = live.update(Some(&data(&[])));
        assert_eq!(next.map(|s| s.flush_interval), Some(base.flush_interval));
    }

    #[tokio::test(start_paused = true)]
    async fn the_heartbeat_reads_a_change_published_here() {
        let (live, rx) =
            LiveSettings::new(Settings::default(), "ns/cm".into(), CoreMetrics::default());
        let beats = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = std::sync::Arc::clone(&beats);
        let stop = CancellationToken::new();
        let task = tokio::spawn(crate::heartbeat::run(rx, stop.clone(), move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        tokio::task::yield_now().await;
        live.update(Some(&data(&[("heartbeatInterval", "1m")])));
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(beats.load(std::sync::atomic::Ordering::SeqCst), 2);
        stop.cancel();
        task.await.expect("the loop ends on stop");
    }
}
