//! The usage summary: `Usage Summary`, once per `summaryInterval` window. [`window`] the
//! windows and the `messageId`, [`activity`] what the pipeline observes in a window,
//! [`event`] the event (all pure); [`count`] the standing totals listed page by page at a
//! window's end; [`run`] the loop.
//!
//! Sent once per window whatever restarts or replicas do: the window is aligned to the
//! interval (its end is `floor(now / interval) * interval`), and the `messageId` is the
//! cluster hash and that end. A window whose summary was produced is in the record of
//! produced events (kept in the state ConfigMap): a restart does not produce it again,
//! and Segment drops what another replica sent.

pub mod activity;
pub mod count;
pub mod event;
pub mod listing;
pub mod window;

pub use window::Window;

use crate::events::{ClusterIdentity, Event};
use crate::settings::Settings;
use activity::WindowActivity;
use event::Totals;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long after a window's end its summary is made: room for the watch to deliver what
/// completed just before the end. A tenth of the interval, at most 30 s.
pub fn settle(interval: Duration) -> Duration {
    (interval / 10).min(Duration::from_secs(30))
}

/// How long the first summary waits at most for the watches to have listed every kind
/// (what happened in the window before the start is rebuilt from that listing).
pub const START_WAIT: Duration = Duration::from_secs(120);

/// What the loop needs of the rest of the daemon.
pub trait Summaries: Send + Sync {
    /// The clock: unix seconds now.
    fn now(&self) -> i64;
    fn identity(&self) -> Arc<ClusterIdentity>;
    /// Sets the window's length (`summaryInterval`, seconds) the pipeline counts in; a
    /// change starts its counts over.
    fn set_interval(&self, seconds: i64);
    /// What the pipeline saw in `window`.
    fn activity(&self, window: Window) -> WindowActivity;
    /// Whether every watch has listed its kind once.
    fn ready(&self) -> bool;
    /// The standing totals, counted now.
    fn totals(
        &self,
        window: Window,
        activity: &WindowActivity,
    ) -> impl Future<Output = Totals> + Send;
    fn produce(&self, event: Event);
}

/// Until `stop`: the summary of the last window that ended (at start, [`settle`] after
/// the watches have listed, or [`START_WAIT`] passed; the record of produced events drops it if a
/// previous run produced it), then of each window, [`settle`] after its end. A changed
/// `summaryInterval` takes effect at once; the loop is what tells the pipeline (the daemon
/// sets it once before, from the settings read at start).
pub async fn run(
    mut settings: watch::Receiver<Settings>,
    stop: CancellationToken,
    summaries: impl Summaries,
) {
    let started = tokio::time::Instant::now();
    while !summaries.ready() && started.elapsed() < START_WAIT {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    // What the watches listed may still wait in the core's queue: [`settle`] more.
    let first_settle = settle(settings.borrow().summary_interval);
    tokio::select! {
        () = stop.cancelled() => return,
        () = tokio::time::sleep(first_settle) => {}
    }
    let mut done: Option<Window> = None;
    loop {
        let interval = settings
            .borrow_and_update()
            .summary_interval
            .max(Duration::from_secs(1));
        let seconds = i64::try_from(interval.as_secs()).unwrap_or(i64::MAX);
        summaries.set_interval(seconds);
        let now = summaries.now();
        let last = Window::last_ended(now, seconds);
        if done != Some(last) {
            summarise(&summaries, last).await;
            done = Some(last);
        }
        let next_end = Window::containing(now, seconds).end;
        let wait =
            Duration::from_secs(u64::try_from(next_end - now).unwrap_or(0)) + settle(interval);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
            Ok(()) = settings.changed() => {}
        }
    }
}

async fn summarise(summaries: &impl Summaries, window: Window) {
    let activity = summaries.activity(window);
    let totals = summaries.totals(window, &activity).await;
    if let Some(e) = event::event(&summaries.identity(), window, &activity, &totals) {
        tracing::info!(message_id = %e.message_id, "usage summary produced");
        summaries.produce(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// 2026-01-01T00:00:00Z, a window start for every interval used here.
    const T0: i64 = 1_767_225_600;

    /// A clock that starts 10 s into a window and follows tokio's (paused) clock; the
    /// windows summarised.
    struct Fake {
        started: tokio::time::Instant,
        done: Arc<Mutex<Vec<(i64, i64)>>>,
    }

    impl Summaries for Fake {
        fn now(&self) -> i64 {
            T0 + 10 + self.started.elapsed().as_secs() as i64
        }
        fn identity(&self) -> Arc<ClusterIdentity> {
            Arc::new(ClusterIdentity::new(Some("c".into()), None, None))
        }
        fn set_interval(&self, _: i64) {}
        fn activity(&self, _: Window) -> WindowActivity {
            WindowActivity::default()
        }
        fn ready(&self) -> bool {
            true
        }
        async fn totals(&self, _: Window, _: &WindowActivity) -> Totals {
            Totals::default()
        }
        fn produce(&self, e: Event) {
            let end = e.timestamp.unix_seconds() - T0;
            let seconds = e.properties.usage.window_seconds.unwrap_or(0);
            self.done.lock().unwrap().push((end, seconds));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_window_at_start_then_each_window_after_its_end() {
        let settings = Settings {
            summary_interval: Duration::from_secs(60),
            ..Settings::default()
        };
        let (tx, rx) = watch::channel(settings);
        let done = Arc::new(Mutex::new(Vec::new()));
        let fake = Fake {
            started: tokio::time::Instant::now(),
            done: Arc::clone(&done),
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(rx, stop.clone(), fake));
        let begin = tokio::time::Instant::now();
        let at = |s: u64| tokio::time::sleep_until(begin + Duration::from_secs(s));
        // 6 s (a tenth of a minute) after start: the window that ended at T0.
        at(5).await;
        assert!(done.lock().unwrap().is_empty(), "not before the settle");
        at(7).await;
        assert_eq!(*done.lock().unwrap(), [(0, 60)]);
        // the next ends at T0 + 60 (50 s after start), made 6 s later
        at(55).await;
        assert_eq!(done.lock().unwrap().len(), 1);
        at(57).await;
        assert_eq!(*done.lock().unwrap(), [(0, 60), (60, 60)]);
        // another key changes: nothing is summarised again
        tx.send_modify(|s| s.flush_interval = Duration::from_secs(1));
        at(60).await;
        assert_eq!(done.lock().unwrap().len(), 2);
        at(117).await;
        assert_eq!(*done.lock().unwrap(), [(0, 60), (60, 60), (120, 60)]);
        stop.cancel();
        task.await.unwrap();
    }
}
