//! How a watch waits after a failure, for every watch of the daemon (the watched kinds and
//! the ConfigMaps).
//!
//! kube's watcher reports the start of each relist (`Event::Init`) before it sends the
//! LIST, so a backoff that resets on any item (kube's `default_backoff`) never grows when
//! the LIST itself fails (a CRD not installed, a forbidden namespace): a LIST, an INFO and
//! a WARN every second. Here only progress resets it: an object listed, the end of a list,
//! a change.

use futures::{Stream, StreamExt};
use kube::runtime::watcher::{self, Event};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Exponential backoff with equal jitter: failure `n` (0-based) waits a random time in
/// `[c/2, c]` where `c = min(cap, base * 2^n)`, so consecutive waits never shrink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchRetry {
    pub base: Duration,
    pub cap: Duration,
    failures: u32,
}

impl Default for WatchRetry {
    /// 1 s doubling to 5 min.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(300))
    }
}

impl WatchRetry {
    pub const fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            failures: 0,
        }
    }

    /// The largest wait after failure `n` (0-based): `min(cap, base * 2^n)`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// Failures since the last progress.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A failure: how long to wait before the next try, with `unit` in `[0, 1)` as the
    /// jitter.
    pub fn failed_with(&mut self, unit: f64) -> Duration {
        let c = self.ceiling(self.failures);
        self.failures = self.failures.saturating_add(1);
        c / 2 + (c / 2).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// [`WatchRetry::failed_with`] with fresh randomness.
    pub fn failed(&mut self) -> Duration {
        self.failed_with(rand::random::<f64>())
    }

    /// An item from the watcher: progress (anything but the start of a relist) resets the
    /// backoff. True when it ended a run of failures (time to say "recovered").
    pub fn saw<K>(&mut self, event: &Event<K>) -> bool {
        if matches!(event, Event::Init) {
            return false;
        }
        std::mem::replace(&mut self.failures, 0) > 0
    }
}

/// What a [`Guarded`] watch yields.
#[derive(Debug)]
pub enum WatchItem<K> {
    /// An item of the watch; `recovered` after a run of failures (time to say so).
    Event { event: Event<K>, recovered: bool },
    /// The watch failed; the next call to [`Guarded::next`] first waits out the backoff.
    Failed(watcher::Error),
}

/// The wrapper every watch of the daemon goes through: it ends at `stop` (or with the
/// stream), and after each error waits with [`WatchRetry`]'s backoff, which only
/// progress resets.
pub struct Guarded<S> {
    stream: S,
    retry: WatchRetry,
    stop: CancellationToken,
    failed: bool,
}

impl<S, K> Guarded<S>
where
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Unpin,
{
    pub fn new(stream: S, retry: WatchRetry, stop: CancellationToken) -> Self {
        Self {
            stream,
            retry,
            stop,
            failed: false,
        }
    }

    /// The next item, `None` at stop or at the end of the stream.
    pub async fn next(&mut self) -> Option<WatchItem<K>> {
        if std::mem::take(&mut self.failed) {
            let wait = self.retry.failed();
            tokio::select! {
                () = self.stop.cancelled() => return None,
                () = tokio::time::sleep(wait) => {}
            }
        }
        let item = tokio::select! {
            () = self.stop.cancelled() => return None,
            item = self.stream.next() => item?,
        };
        Some(match item {
            Ok(event) => WatchItem::Event {
                recovered: self.retry.saw(&event),
                event,
            },
            Err(e) => {
                self.failed = true;
                WatchItem::Failed(e)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn waits_double_up_to_the_cap_and_never_shrink() {
        let mut r = WatchRetry::default();
        let lows: Vec<Duration> = (0..12).map(|_| r.failed_with(0.0)).collect();
        assert_eq!(
            lows,
            [
                500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 150_000, 150_000,
                150_000
            ]
            .map(Duration::from_millis)
        );
        let mut r = WatchRetry::default();
        let highs: Vec<Duration> = (0..10).map(|_| r.failed_with(0.999_999)).collect();
        assert!(highs[9] <= s(300) && highs[9] > s(299));
        // With any jitter, a wait is at least the one before (below the cap), and at
        // least half the cap after that.
        let mut r = WatchRetry::default();
        let mut previous = Duration::ZERO;
        for _ in 0..40 {
            let d = r.failed();
            assert!(d >= previous.min(s(150)), "{d:?} after {previous:?}");
            previous = d;
        }
    }

    #[test]
    fn only_progress_resets_the_backoff() {
        let mut r = WatchRetry::default();
        r.failed_with(0.0);
        r.failed_with(0.0);
        assert!(
            !r.saw(&Event::<()>::Init),
            "the start of a relist is no progress"
        );
        assert_eq!(r.failed_with(0.0), s(2));
        assert!(r.saw(&Event::<()>::InitDone));
        assert!(
            !r.saw(&Event::Apply(())),
            "only the first progress is a recovery"
        );
        assert_eq!(r.failed_with(0.0), Duration::from_millis(500));
    }
}
