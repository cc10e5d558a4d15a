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

/// Until `stop`: the summary of the last window that ended (at start, once the watches
/// have listed, or [`START_WAIT`] passed; the record of produced events drops it if a
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
