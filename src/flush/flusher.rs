//! The flush loop: when to flush, and to which output.
//!
//! A flush runs every `flushInterval` (read live), early when the buffer holds a full
//! batch, and once more at stop within the shutdown timeout. After a flush that left
//! events unsent (a wrong write key, Segment unreachable) a full buffer does not flush
//! early: the next try waits for the interval, and the failure is logged once, not at
//! every try, until a flush succeeds again. It runs only while the
//! telemetry switch is on: off or pending, the flush time passes with a count
//! (`telemetry_off`, `telemetry_pending`), and a flush under way when the switch turns off
//! is dropped with its request. The output is built by the caller's `output_for` from the
//! settings, again when the sending settings change (rate, retries), and again when
//! telemetry turns off, so that the old output's idle connections close with it.

use crate::events::Timestamp;
use crate::flush::{Buffer, FlushOutcome, Flushed, Output, flush_once};
use crate::settings::Settings;
use crate::switch::Decision;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// The settings an output is built from: a change to one of these builds a new output.
fn sending(s: &Settings) -> (std::num::NonZeroU32, Duration, Duration, Duration) {
    (
        s.requests_per_second,
        s.retry_base_delay,
        s.retry_max_delay,
        s.retry_deadline,
    )
}

pub struct Flusher<O, F> {
    buffer: Arc<dyn Buffer>,
    settings: watch::Receiver<Settings>,
    switch: watch::Receiver<Decision>,
    output_for: F,
    output: O,
    shutdown_timeout: Duration,
}

impl<O, F, E> Flusher<O, F>
where
    O: Output,
    F: FnMut(&Settings) -> Result<O, E>,
    E: std::fmt::Display,
{
    /// A flusher of `buffer` to the output `output_for` builds from the current
    /// settings; the final flush at stop takes at most `shutdown_timeout`.
    pub fn new(
        buffer: Arc<dyn Buffer>,
        mut settings: watch::Receiver<Settings>,
        switch: watch::Receiver<Decision>,
        mut output_for: F,
        shutdown_timeout: Duration,
    ) -> Result<Self, E> {
        let output = output_for(&settings.borrow_and_update())?;
        Ok(Self {
            buffer,
            settings,
            switch,
            output_for,
            output,
            shutdown_timeout,
        })
    }

    /// A new output for `settings`; on failure the old one stays.
    fn rebuild(&mut self, settings: &Settings, why: &str) {
        match (self.output_for)(settings) {
            Ok(o) => self.output = o,
            Err(e) => error!("keeping the previous output ({why}): {e}"),
        }
    }

    /// Flushes until `stop`. The caller then stops what feeds the core and calls
    /// [`Flusher::finish`], so that the last flush holds every event.
    pub async fn run(mut self, stop: CancellationToken) -> Self {
        let mut current = self.settings.borrow_and_update().clone();
        let mut next = Instant::now() + current.flush_interval;
        // The last flush left events unsent: no early flush until the interval's.
        let mut failing = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep_until(next) => {}
                () = self.buffer.full().notified(), if !failing => {}
                Ok(()) = self.switch.changed() => {
                    let now = *self.switch.borrow_and_update();
                    self.buffer.set_sending(now.is_on());
                    if now.is_off() {
                        self.rebuild(&current, "telemetry off");
                    }
                    continue;
                }
                Ok(()) = self.settings.changed() => {
                    let changed = self.settings.borrow_and_update().clone();
                    if sending(&changed) != sending(&current) {
                        self.rebuild(&changed, "new sending settings");
                    }
                    if changed.flush_interval != current.flush_interval {
                        next = Instant::now() + changed.flush_interval;
                    }
                    current = changed;
                    continue;
                }
            }
            next = Instant::now() + current.flush_interval;
            let switch = *self.switch.borrow();
            if !switch.is_on() {
                self.buffer.count_flush(if switch.is_off() {
                    FlushOutcome::TelemetryOff
                } else {
                    FlushOutcome::TelemetryPending
                });
                continue;
            }
            // A flush stuck in retries must not hold up stop: the final flush takes over
            // what this one did not record as sent. Telemetry turned off mid-flush ends it
            // at once: the request in flight is dropped with its connection.
            let mut turned_off = self.switch.clone();
            let flushed = tokio::select! {
                flushed = flush_once(&*self.buffer, &self.output) => flushed,
                () = stop.cancelled() => break,
                Ok(()) = async { turned_off.wait_for(|d| !d.is_on()).await.map(|_| ()) } => continue,
            };
            if flushed.sent > 0 {
                info!(sent = flushed.sent, unsent = flushed.unsent, "flushed");
            }
            failing = self.failed(failing, flushed, current.flush_interval);
            self.buffer.expire(Timestamp::now().unix_seconds());
            next = Instant::now() + current.flush_interval;
        }
        self
    }

    /// Whether the flush that just ended leaves the flusher failing (see the module's
    /// documentation); logs the change from succeeding to failing and back, once each.
    fn failed(&self, was_failing: bool, flushed: Flushed, interval: Duration) -> bool {
        let failing = !flushed.outcome.succeeded();
        match (was_failing, failing) {
            (false, true) => warn!(
                outcome = flushed.outcome.as_str(),
                unsent = flushed.unsent,
                buffered = self.buffer.buffered(),
                next_try_seconds = interval.as_secs(),
                "flush failed: the events stay buffered and the next try waits for the flush interval, however full the buffer; said once until a flush succeeds"
            ),
            (true, true) => debug!(
                outcome = flushed.outcome.as_str(),
                unsent = flushed.unsent,
                "flush failed again"
            ),
            (true, false) => info!(sent = flushed.sent, "flushes succeed again"),
            (false, false) => {}
        }
        failing
    }

    /// The final flush, within the shutdown timeout, if telemetry is on.
    pub async fn finish(self) {
        if !self.switch.borrow().is_on() {
            info!(
                buffered = self.buffer.buffered(),
                "telemetry is not on: no final flush"
            );
            return;
        }
        info!("stopping: flushing what is buffered");
        match tokio::time::timeout(
            self.shutdown_timeout,
            flush_once(&*self.buffer, &self.output),
        )
        .await
        {
            Ok(f) => info!(sent = f.sent, unsent = f.unsent, "final flush done"),
            Err(_) => warn!(
                buffered = self.buffer.buffered(),
                "final flush did not finish within the shutdown timeout; events lost"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ClusterIdentity;
    use crate::flush::Delivery;
    use crate::flush::{Batch, Limits};
    use crate::pipeline::metrics::CoreMetrics;
    use crate::pipeline::{Core, FULL_BATCH};
    use crate::switch::{KonfluxSays, PlatformSays, decide};
    use std::convert::Infallible;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    /// An output that records what it was given; `hang` makes a delivery never end,
    /// `refuse` makes every delivery fail (as a wrong write key does). `tries` counts
    /// deliveries.
    #[derive(Clone, Default)]
    struct Recording {
        delivered: Arc<Mutex<Vec<String>>>,
        hang: bool,
        refuse: bool,
        tries: Arc<AtomicUsize>,
    }

    impl Output for Recording {
        fn limits(&self) -> Limits {
            Limits::default()
        }
        async fn deliver(&self, batches: &[Batch]) -> Delivery {
            if self.hang {
                std::future::pending::<()>().await;
            }
            self.tries.fetch_add(1, Ordering::SeqCst);
            let ids = batches.iter().flat_map(|b| b.message_ids().iter().cloned());
            if self.refuse {
                return Delivery {
                    unsent: ids.collect(),
                    ..Delivery::default()
                };
            }
            let sent: Vec<String> = batches
                .iter()
                .flat_map(|b| b.message_ids().iter().cloned())
                .collect();
            self.delivered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(sent.iter().cloned());
            Delivery {
                sent,
                ..Delivery::default()
            }
        }
    }

    impl Recording {
        fn count(&self) -> usize {
            self.delivered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len()
        }
    }

    type OutputFor = Box<dyn FnMut(&Settings) -> Result<Recording, Infallible> + Send>;

    struct Rig {
        core: Arc<Core>,
        settings: watch::Sender<Settings>,
        switch: watch::Sender<Decision>,
        output: Recording,
        built: Arc<AtomicUsize>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<Flusher<Recording, OutputFor>>,
    }

    fn rig(output: Recording, on: bool) -> Rig {
        let core = Arc::new(Core::new(
            ClusterIdentity::new(None, None, None),
            100_000,
            64 * 1024 * 1024,
            10 * 365 * 24 * 3600,
            CoreMetrics::default(),
        ));
        let (settings, settings_rx) = watch::channel(Settings::default());
        let first = if on {
            decide(KonfluxSays::Absent, Some(true), PlatformSays::Kubernetes)
        } else {
            Decision::PENDING
        };
        let (switch, switch_rx) = watch::channel(first);
        let built = Arc::new(AtomicUsize::new(0));
        let (o, b) = (output.clone(), Arc::clone(&built));
        let output_for: OutputFor = Box::new(move |_: &Settings| {
            b.fetch_add(1, Ordering::SeqCst);
            Ok(o.clone())
        });
        let flusher = Flusher::new(
            core.clone(),
            settings_rx,
            switch_rx,
            output_for,
            Duration::from_secs(25),
        )
        .unwrap_or_else(|e: Infallible| match e {});
        let stop = CancellationToken::new();
        let task = tokio::spawn(flusher.run(stop.clone()));
        Rig {
            core,
            settings,
            switch,
            output,
            built,
            stop,
            task,
        }
    }

    impl Rig {
        fn beats(&self, from: i64, n: usize) {
            for i in 0..n {
                let at = Timestamp::from_unix_seconds(from + i as i64).expect("a time");
                self.core.heartbeat(at);
            }
        }
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn flushes_every_interval_early_when_full_and_once_more_at_stop() {
        let r = rig(Recording::default(), true);
        r.beats(T0, 3);
        settle().await;
        assert_eq!(r.output.count(), 0, "nothing before the interval");
        tokio::time::advance(HOUR).await;
        settle().await;
        assert_eq!(r.output.count(), 3, "the interval's flush");
        assert_eq!(r.core.buffered(), 0);

        // A full batch does not wait for the interval.
        r.beats(T0 + 10, FULL_BATCH);
        settle().await;
        assert_eq!(r.output.count(), 3 + FULL_BATCH);

        // What arrives after the last flush goes out at stop, after `finish`.
        r.beats(T0 + 100_000, 2);
        r.stop.cancel();
        let flusher = r.task.await.expect("the loop ends on stop");
        assert_eq!(r.output.count(), 3 + FULL_BATCH);
        flusher.finish().await;
        assert_eq!(r.output.count(), 5 + FULL_BATCH);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_interval_applies_at_once_and_new_sending_settings_build_a_new_output() {
        let r = rig(Recording::default(), true);
        r.beats(T0, 1);
        tokio::time::advance(Duration::from_secs(60)).await;
        r.settings
            .send_modify(|s| s.flush_interval = Duration::from_secs(10));
        settle().await;
        tokio::time::advance(Duration::from_secs(10)).await;
        settle().await;
        assert_eq!(
            r.output.count(),
            1,
            "flushed 10 s after the change, not at 1 h"
        );
        assert_eq!(r.built.load(Ordering::SeqCst), 1);
        r.settings
            .send_modify(|s| s.requests_per_second = std::num::NonZeroU32::MIN);
        settle().await;
        assert_eq!(r.built.load(Ordering::SeqCst), 2);
        r.settings.send_modify(|s| s.heartbeat_interval = HOUR * 2);
        settle().await;
        assert_eq!(r.built.load(Ordering::SeqCst), 2, "not for other keys");
        r.stop.cancel();
        let _ = r.task.await;
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_delivered_while_the_switch_is_not_on() {
        let r = rig(Recording::default(), false);
        r.beats(T0, 2);
        tokio::time::advance(HOUR).await;
        settle().await;
        assert_eq!(r.output.count(), 0, "pending: held");
        assert_eq!(r.core.buffered(), 2);
        r.switch.send_replace(decide(
            KonfluxSays::Set(true),
            None,
            PlatformSays::Kubernetes,
        ));
        settle().await;
        tokio::time::advance(HOUR).await;
        settle().await;
        assert_eq!(r.output.count(), 2, "on: sent at the next flush");
        // Off: the output is rebuilt, nothing goes out, and none at stop.
        r.switch.send_replace(decide(
            KonfluxSays::Set(false),
            None,
            PlatformSays::Kubernetes,
        ));
        settle().await;
        assert_eq!(r.built.load(Ordering::SeqCst), 2);
        r.beats(T0 + 10, 1);
        tokio::time::advance(HOUR).await;
        settle().await;
        r.stop.cancel();
        let flusher = r.task.await.expect("the loop ends on stop");
        flusher.finish().await;
        assert_eq!(r.output.count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flush_under_way_is_dropped_when_telemetry_turns_off() {
        let r = rig(
            Recording {
                hang: true,
                ..Recording::default()
            },
            true,
        );
        r.beats(T0, 1);
        tokio::time::advance(HOUR).await;
        settle().await;
        // The delivery hangs; turning telemetry off ends it, and the loop goes on.
        r.switch.send_replace(decide(
            KonfluxSays::Set(false),
            None,
            PlatformSays::Kubernetes,
        ));
        settle().await;
        assert_eq!(
            r.built.load(Ordering::SeqCst),
            2,
            "a new output, old connections closed"
        );
        r.stop.cancel();
        let flusher = r
            .task
            .await
            .expect("the loop ends on stop, not stuck in the delivery");
        flusher.finish().await;
        assert_eq!(r.output.count(), 0);
    }

    /// This thread's log lines while the guard lives.
    fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
        #[derive(Clone)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines(Arc::default());
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        (lines.0, tracing::subscriber::set_default(subscriber))
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_flush_of_a_full_buffer_waits_for_the_interval() {
        let (logs, _guard) = capture_logs();
        let output = Recording {
            refuse: true,
            ..Recording::default()
        };
        let r = rig(output, true);
        r.beats(T0, FULL_BATCH);
        settle().await;
        let tries = || r.output.tries.load(Ordering::SeqCst);
        assert_eq!(tries(), 1, "the full buffer's early flush, once");
        // More events while failing: still no early flush.
        r.beats(T0 + 10_000, 10);
        settle().await;
        tokio::time::advance(HOUR / 2).await;
        settle().await;
        assert_eq!(tries(), 1, "nothing before the interval");
        assert_eq!(
            r.core.buffered(),
            FULL_BATCH + 10,
            "the events stay buffered"
        );
        tokio::time::advance(HOUR / 2).await;
        settle().await;
        assert_eq!(tries(), 2, "the interval's flush");
        r.stop.cancel();
        let _ = r.task.await;
        let text = String::from_utf8_lossy(
            &logs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_owned();
        assert_eq!(text.matches("flush failed").count(), 1, "said once: {text}");
    }
}
