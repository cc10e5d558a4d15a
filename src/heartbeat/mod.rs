//! The heartbeat: `Segment Bridge Heartbeat`, the daemon is alive. [`event`] is the
//! event (pure); [`run`] the loop that produces it at start, then every
//! `heartbeatInterval`, read live from the settings.

pub mod event;

pub use event::event;

use crate::settings::Settings;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Calls `beat` now and then every `heartbeatInterval` until `stop`. A changed interval
/// counts from the last beat: shortened past it, the next beat comes at once; a change of
/// another setting does not move it.
pub async fn run(
    mut settings: watch::Receiver<Settings>,
    stop: CancellationToken,
    mut beat: impl FnMut(),
) {
    loop {
        beat();
        let last = Instant::now();
        loop {
            let due = last + settings.borrow_and_update().heartbeat_interval;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(due) => break,
                Ok(()) = settings.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    const HOUR: Duration = Duration::from_secs(3600);

    /// The heartbeat loop started on default settings, beating into a counter.
    struct Started {
        settings: watch::Sender<Settings>,
        beats: Arc<AtomicUsize>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    impl Started {
        async fn new() -> Self {
            let (settings, rx) = watch::channel(Settings::default());
            let beats = Arc::new(AtomicUsize::new(0));
            let counter = Arc::clone(&beats);
            let stop = CancellationToken::new();
            let beat = move || {
                counter.fetch_add(1, Ordering::SeqCst);
            };
            let task = tokio::spawn(run(rx, stop.clone(), beat));
            settle().await;
            Started {
                settings,
                beats,
                stop,
                task,
            }
        }

        fn beats(&self) -> usize {
            self.beats.load(Ordering::SeqCst)
        }

        /// The beats so far, once the clock has moved on by `by`.
        async fn after(&self, by: Duration) -> usize {
            tokio::time::advance(by).await;
            settle().await;
            self.beats()
        }

        /// The beats so far, once the loop has seen `change` to the settings.
        async fn after_change(&self, change: impl FnOnce(&mut Settings)) -> usize {
            self.settings.send_modify(change);
            settle().await;
            self.beats()
        }

        async fn stop(self) {
            self.stop.cancel();
            self.task.await.expect("the loop ends on stop");
        }
    }

    /// Lets the spawned loop run until it waits on a timer again.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn beats_at_start_then_every_interval_and_follows_a_changed_interval() {
        let loop_ = Started::new().await;
        assert_eq!(loop_.beats(), 1, "one beat at start");
        let second = Duration::from_secs(1);
        assert_eq!(
            loop_.after(HOUR - second).await,
            1,
            "not before the interval"
        );
        assert_eq!(loop_.after(second).await, 2, "one beat an interval");

        // Another key changes: the beat does not move.
        let flush_interval = |s: &mut Settings| s.flush_interval = second;
        assert_eq!(loop_.after_change(flush_interval).await, 2);

        // 10 minutes after the last beat the interval drops to 5 minutes: due at once.
        let five_minutes = Duration::from_secs(300);
        assert_eq!(loop_.after(2 * five_minutes).await, 2);
        let heartbeat_interval = |s: &mut Settings| s.heartbeat_interval = five_minutes;
        assert_eq!(loop_.after_change(heartbeat_interval).await, 3);
        assert_eq!(loop_.after(five_minutes).await, 4);

        loop_.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_settings_sender_does_not_spin_the_loop() {
        let mut loop_ = Started::new().await;
        // The loop's only sender goes; the one left in its place is not the loop's.
        drop(std::mem::replace(
            &mut loop_.settings,
            watch::channel(Settings::default()).0,
        ));
        settle().await;
        assert_eq!(loop_.beats(), 1);
        assert_eq!(loop_.after(HOUR).await, 2);
        loop_.stop().await;
    }
}
