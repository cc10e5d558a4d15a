//! The heartbeat loop: `Segment Bridge Heartbeat` at start, then every
//! `heartbeatInterval`, read live from the settings.

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

    fn counting() -> (Arc<AtomicUsize>, impl FnMut() + Send + 'static) {
        let beats = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&beats);
        (beats, move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
    }

    /// Lets the spawned loop run until it waits on a timer again.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn beats_at_start_then_every_interval_and_follows_a_changed_interval() {
        let (tx, rx) = watch::channel(Settings::default());
        let (beats, beat) = counting();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(rx, stop.clone(), beat));
        settle().await;
        assert_eq!(beats.load(Ordering::SeqCst), 1, "one beat at start");

        tokio::time::advance(HOUR - Duration::from_secs(1)).await;
        settle().await;
        assert_eq!(beats.load(Ordering::SeqCst), 1, "not before the interval");
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        assert_eq!(beats.load(Ordering::SeqCst), 2, "one beat an interval");

        // Another key changes: the beat does not move.
        tx.send_modify(|s| s.flush_interval = Duration::from_secs(1));
        settle().await;
        assert_eq!(beats.load(Ordering::SeqCst), 2);

        // 10 minutes after the last beat the interval drops to 5 minutes: due at once.
        tokio::time::advance(Duration::from_secs(600)).await;
        tx.send_modify(|s| s.heartbeat_interval = Duration::from_secs(300));
        settle().await;
        assert_eq!(beats.load(Ordering::SeqCst), 3);
        tokio::time::advance(Duration::from_secs(300)).await;
        settle().await;
        assert_eq!(beats.load(Ordering::SeqCst), 4);

        stop.cancel();
        task.await.expect("the loop ends on stop");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_settings_sender_does_not_spin_the_loop() {
        let (tx, rx) = watch::channel(Settings::default());
        let (beats, beat) = counting();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(rx, stop.clone(), beat));
        settle().await;
        drop(tx);
        settle().await;
        assert_eq!(beats.load(Ordering::SeqCst), 1);
        tokio::time::advance(HOUR).await;
        settle().await;
        assert_eq!(beats.load(Ordering::SeqCst), 2);
        stop.cancel();
        task.await.expect("the loop ends on stop");
    }
}
