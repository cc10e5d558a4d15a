//! The summary's windows: aligned to the interval from the Unix epoch, so that every
//! replica, a restart and the old bridge beside it agree on which window a moment is in,
//! and so on the window's `messageId`. Pure.

use crate::events::{ClusterIdentity, Timestamp};

/// `[start, end)` in unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    /// The window of `interval_seconds` (at least 1) that `t` lies in.
    pub fn containing(t: i64, interval_seconds: i64) -> Self {
        let interval = interval_seconds.max(1);
        let start = t.div_euclid(interval) * interval;
        Window {
            start,
            end: start.saturating_add(interval),
        }
    }

    /// The last window that has ended by `now`: its end is `floor(now / interval) * interval`.
    pub fn last_ended(now: i64, interval_seconds: i64) -> Self {
        let current = Self::containing(now, interval_seconds);
        Self::containing(current.start - 1, interval_seconds)
    }

    pub fn contains(&self, t: i64) -> bool {
        self.start <= t && t < self.end
    }

    pub fn seconds(&self) -> i64 {
        self.end - self.start
    }

    /// The window's end as the event's timestamp; `None` past year 9999.
    pub fn end_timestamp(&self) -> Option<Timestamp> {
        Timestamp::from_unix_seconds(self.end).ok()
    }
}

/// `<clusterIdHash>-usage-summary-<window end>` (`usage-summary-<window end>` without a
/// cluster id), the end as the event's timestamp is written.
pub fn message_id(identity: &ClusterIdentity, end: &Timestamp) -> String {
    match identity.cluster_id_hash() {
        Some(hash) => format!("{hash}-usage-summary-{end}"),
        None => format!("usage-summary-{end}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_767_225_600 + 3_600 * 5 + 7; // 2026-01-01T05:00:07Z

    #[test]
    fn windows_are_aligned_so_replicas_agree() {
        let w = Window::containing(NOW, DAY);
        assert_eq!((w.start, w.end), (1_767_225_600, 1_767_225_600 + DAY));
        assert!(w.contains(w.start) && !w.contains(w.end));
        // any moment of the next day ends the same window
        for later in [w.end, w.end + 1, w.end + DAY - 1] {
            assert_eq!(Window::last_ended(later, DAY), w, "{later}");
        }
        assert_eq!(Window::last_ended(w.end - 1, DAY).end, w.start);
        let s = Window::containing(NOW, 1);
        assert_eq!((s.start, s.end), (NOW, NOW + 1));
        assert_eq!(Window::containing(NOW, 0), s, "an interval of 0 is 1 s");
        assert_eq!(Window::containing(-1, 10).start, -10);
    }

    #[test]
    fn the_id_is_the_cluster_hash_and_the_window_end() {
        let end = Window::last_ended(NOW, DAY).end_timestamp().unwrap();
        let with = ClusterIdentity::new(Some("c".into()), None, None);
        let hash = with.cluster_id_hash().unwrap().to_owned();
        assert_eq!(
            message_id(&with, &end),
            format!("{hash}-usage-summary-2026-01-01T00:00:00Z")
        );
        let without = ClusterIdentity::default();
        assert_eq!(
            message_id(&without, &end),
            "usage-summary-2026-01-01T00:00:00Z"
        );
        assert!(message_id(&with, &end).len() < 100);
    }
}
