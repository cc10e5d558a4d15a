//! The upgrade: `Operator Upgrade Completed`, the Konflux version changed. [`event`] is
//! the rule and the event (pure); [`run`] the loop that follows the version seen (from
//! `konflux-public-info`, through the cluster identity) and keeps the last version in the
//! state ConfigMap (key `lastKonfluxVersion`).
//!
//! Neither missed nor repeated across a restart: the last version is saved only once the
//! upgrade's event has left the buffer (sent, or let go). A restart before that finds the
//! old version saved and produces the same event again, with the same `messageId` (from
//! the cluster hash and the two versions): the record of produced events, or else Segment,
//! drops it if it was sent. While telemetry is off the event is dropped as every other
//! is, and the version moves on: an upgrade while off is not sent later.

pub mod event;

pub use event::{event, upgrade};

use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often the loop looks whether the upgrade's event has left the buffer.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What the loop needs of the rest of the daemon.
pub trait Upgrades {
    /// Produces the upgrade from `from` to `to`, seen now; returns its `messageId`.
    fn produce(&self, from: &str, to: &str) -> String;
    /// Whether the event `message_id` still waits in the buffer.
    fn waiting(&self, message_id: &str) -> bool;
    /// Keeps `version` as the last version seen (the state ConfigMap); failures are the
    /// implementation's to log: the loop goes on with it in memory.
    fn save(&self, version: &str) -> impl Future<Output = ()> + Send;
}

/// Follows `version` until `stop`, from `last` (what the state ConfigMap kept; `None`
/// when nothing was kept): the first version seen is only saved; each change after it is
/// an upgrade, produced, and saved once its event has left the buffer.
pub async fn run(
    mut version: watch::Receiver<Option<String>>,
    mut last: Option<String>,
    stop: CancellationToken,
    upgrades: impl Upgrades,
) {
    loop {
        let now = version.borrow_and_update().clone();
        if let Some(now) = now.filter(|v| last.as_deref() != Some(v.as_str())) {
            if let Some((from, to)) = upgrade(last.as_deref(), Some(&now)) {
                let id = upgrades.produce(from, to);
                tracing::info!(message_id = %id, "Konflux upgrade seen");
                while upgrades.waiting(&id) {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(CHECK_EVERY) => {}
                    }
                }
            }
            upgrades.save(&now).await;
            last = Some(now);
            // A change while the event waited is read at once.
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            changed = version.changed() => if changed.is_err() {
                // No one publishes versions any more: nothing left to follow.
                return stop.cancelled().await;
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records what the loop does; events wait until `sent` is set.
    #[derive(Clone, Default)]
    struct Fake {
        log: Arc<Mutex<Vec<String>>>,
        sent: Arc<Mutex<bool>>,
    }

    impl Upgrades for Fake {
        fn produce(&self, from: &str, to: &str) -> String {
            self.log.lock().unwrap().push(format!("event {from}->{to}"));
            format!("upgrade-{from}-{to}")
        }
        fn waiting(&self, _: &str) -> bool {
            !*self.sent.lock().unwrap()
        }
        async fn save(&self, version: &str) {
            self.log.lock().unwrap().push(format!("save {version}"));
        }
    }

    impl Fake {
        fn log(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_version_is_saved_a_change_is_an_upgrade_saved_once_sent() {
        let (tx, rx) = watch::channel(None);
        let fake = Fake::default();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(rx, None, stop.clone(), fake.clone()));
        settle().await;
        assert!(fake.log().is_empty(), "no version yet");
        tx.send_replace(Some("v0.4".into()));
        settle().await;
        assert_eq!(fake.log(), ["save v0.4"], "the first version is no upgrade");
        tx.send_replace(Some("v0.5".into()));
        settle().await;
        assert_eq!(
            fake.log(),
            ["save v0.4", "event v0.4->v0.5"],
            "not saved while waiting"
        );
        tx.send_replace(None);
        tokio::time::advance(CHECK_EVERY).await;
        settle().await;
        assert_eq!(fake.log().len(), 2);
        *fake.sent.lock().unwrap() = true;
        tokio::time::advance(CHECK_EVERY).await;
        settle().await;
        assert_eq!(fake.log(), ["save v0.4", "event v0.4->v0.5", "save v0.5"]);
        // the version unknown for a while, then the same again: nothing
        tx.send_replace(Some("v0.5".into()));
        settle().await;
        assert_eq!(fake.log().len(), 3);
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_with_the_old_version_saved_produces_the_upgrade_again() {
        let (_tx, rx) = watch::channel(Some("v0.5".to_owned()));
        let fake = Fake::default();
        *fake.sent.lock().unwrap() = true;
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(rx, Some("v0.4".into()), stop.clone(), fake.clone()));
        settle().await;
        assert_eq!(fake.log(), ["event v0.4->v0.5", "save v0.5"]);
        stop.cancel();
        task.await.unwrap();
    }
}
