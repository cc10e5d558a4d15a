//! The window's activity, accumulated from what the pipeline observes: PipelineRuns
//! completed (by `pipelineType` and outcome, their durations), the namespaces where runs
//! started or completed, Components created, and the daemon's own events. Pure (the time
//! is given) and bounded: see [`MAX_TRACKED`], [`MAX_NAMESPACES`] and [`Activity::bytes`].
//!
//! An object counts in the window its own time falls in (a run's completion, a
//! Component's creation), not when the daemon saw it, and once: a relist after a restart
//! or a 410, or the sweep seeing the same run, counts nothing twice. So a restart within
//! a window loses nothing the cluster (or Tekton Results) still holds. Only the current
//! window and the one before are kept; older times are not counted.

use super::window::Window;
use crate::events::Object;
use crate::events::object::PipelineRun;
use crate::events::pipelinerun::pipeline_type;
use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

/// Runs and Components one window remembers (to count each once); past it they are still
/// counted, without that guard (a relist may count one of them twice, logged as
/// `overflowed`).
pub const MAX_TRACKED: usize = 200_000;
/// Namespaces with a run one window remembers; past it the count of active tenants is a
/// lower bound.
pub const MAX_NAMESPACES: usize = 50_000;
/// What one remembered uid or namespace costs at most: an 8-byte fingerprint in a hash
/// set, its control byte, and the set's spare room (it grows to twice before it rehashes).
pub const BYTES_PER_ENTRY: usize = 24;
/// Durations beyond this (about 34 years) are this.
const MAX_DURATION: u64 = 1 << 30;

/// How a run ended, from the reason of its condition `Succeeded`: a fixed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Succeeded,
    Failed,
    Cancelled,
    Timeout,
    Unknown,
}

impl Outcome {
    pub fn of_reason(reason: Option<&str>) -> Self {
        match reason {
            None => Outcome::Unknown,
            Some("Succeeded" | "Completed") => Outcome::Succeeded,
            Some(
                "Cancelled"
                | "PipelineRunCancelled"
                | "CancelledRunningFinally"
                | "StoppedRunningFinally",
            ) => Outcome::Cancelled,
            Some("PipelineRunTimeout" | "Timeout") => Outcome::Timeout,
            Some(_) => Outcome::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::Timeout => "timeout",
            Outcome::Unknown => "unknown",
        }
    }
}

/// The summary's key for a run's `pipelineType`: the enumeration `pipelineType` sends,
/// `none` without the label, `empty` for an empty value.
pub fn type_key(label: Option<&str>) -> String {
    match label {
        None => "none".to_owned(),
        Some("") => "empty".to_owned(),
        Some(l) => pipeline_type(l),
    }
}

/// Durations in whole seconds, in buckets exact below 64 s and about 3% wide above (32 to
/// each power of two): at most 64 + 25 * 32 buckets, whatever the number of runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    buckets: BTreeMap<u16, u32>,
    count: u64,
}

fn bucket(v: u64) -> u16 {
    let v = v.min(MAX_DURATION);
    if v < 64 {
        return v as u16;
    }
    let e = 63 - u64::from(v.leading_zeros()); // 6..=30
    let sub = (v >> (e - 5)) & 31;
    (64 + (e - 6) * 32 + sub) as u16
}

/// The smallest duration of bucket `b`.
fn lower(b: u16) -> u64 {
    if b < 64 {
        return u64::from(b);
    }
    let k = u64::from(b - 64);
    let (e, sub) = (k / 32 + 6, k % 32);
    (32 + sub) << (e - 5)
}

impl Histogram {
    pub fn add(&mut self, seconds: u64) {
        *self.buckets.entry(bucket(seconds)).or_default() += 1;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `percent`th percentile (nearest rank), as the smallest duration of its bucket:
    /// exact below 64 s, at most about 3% under the true value above.
    pub fn percentile(&self, percent: u64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = (percent * self.count).div_ceil(100).max(1);
        let mut seen = 0;
        for (&b, &n) in &self.buckets {
            seen += u64::from(n);
            if seen >= rank {
                return Some(lower(b));
            }
        }
        None
    }

    fn bytes(&self) -> usize {
        self.buckets.len() * 16
    }
}

/// One window's activity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowActivity {
    /// Completed runs by (type key, outcome).
    pub runs: BTreeMap<(String, Outcome), u64>,
    /// Durations of completed runs by type key.
    pub durations: BTreeMap<String, Histogram>,
    pub components_created: u64,
    /// Events the daemon produced, sent, and dropped (buffer full, refused, too large),
    /// by its own clock, since it started.
    pub events_produced: u64,
    pub events_sent: u64,
    pub events_dropped: u64,
    /// Whether a bound was reached (a count may be off by what a relist repeated).
    pub overflowed: bool,
    /// Fingerprints of the runs and Components counted.
    seen: HashSet<u64>,
    /// Fingerprints of the namespaces where a run started or completed.
    namespaces: HashSet<u64>,
}

/// A string's fingerprint: 64 bits, the same in every process (SipHash with fixed keys).
pub fn fingerprint(parts: &[&str]) -> u64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

impl WindowActivity {
    /// Whether a run started or completed in `namespace` in the window.
    pub fn ran_in(&self, namespace: &str) -> bool {
        self.namespaces.contains(&fingerprint(&[namespace]))
    }

    /// A copy without the fingerprints of what was counted (the largest part, which a
    /// summary does not read).
    fn counts(&self) -> Self {
        Self {
            runs: self.runs.clone(),
            durations: self.durations.clone(),
            namespaces: self.namespaces.clone(),
            seen: HashSet::new(),
            ..*self
        }
    }

    /// Remembers `key` as counted; false if it was counted before.
    fn first(&mut self, key: u64) -> bool {
        if self.seen.contains(&key) {
            return false;
        }
        if self.seen.len() < MAX_TRACKED {
            self.seen.insert(key);
        } else {
            self.overflowed = true;
        }
        true
    }

    fn ran(&mut self, namespace: Option<&str>) {
        let key = fingerprint(&[namespace.unwrap_or("")]);
        if self.namespaces.len() < MAX_NAMESPACES {
            self.namespaces.insert(key);
        } else if !self.namespaces.contains(&key) {
            self.overflowed = true;
        }
    }

    fn bytes(&self) -> usize {
        (self.seen.capacity() + self.namespaces.capacity()) * BYTES_PER_ENTRY
            + self.runs.len() * 64
            + self.durations.values().map(Histogram::bytes).sum::<usize>()
    }
}

/// What the daemon itself did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Own {
    Produced,
    Sent,
    Dropped,
}

/// The current window's activity and the one before, for windows of `interval` seconds.
#[derive(Debug)]
pub struct Activity {
    interval: i64,
    windows: BTreeMap<i64, WindowActivity>,
}

impl Activity {
    pub fn new(interval_seconds: i64) -> Self {
        Self {
            interval: interval_seconds.max(1),
            windows: BTreeMap::new(),
        }
    }

    /// A new interval starts over: the windows no longer line up.
    pub fn set_interval(&mut self, interval_seconds: i64) {
        let interval = interval_seconds.max(1);
        if interval != self.interval {
            self.interval = interval;
            self.windows.clear();
        }
    }

    pub fn interval(&self) -> i64 {
        self.interval
    }

    /// The window `t` counts in, if it is the current one at `now` or the one before.
    fn window_at(&mut self, t: i64, now: i64) -> Option<&mut WindowActivity> {
        let current = Window::containing(now, self.interval);
        let w = Window::containing(t, self.interval);
        if w.start > current.start || w.start < current.start - self.interval {
            return None;
        }
        // Older windows have been summarised (or never will be): let them go.
        let oldest = current.start - self.interval;
        self.windows.retain(|&start, _| start >= oldest);
        Some(self.windows.entry(w.start).or_default())
    }

    /// Counts what `object` says happened, at `now` (unix seconds). Objects that do not
    /// count (a Namespace that is no tenant's) are given as they are: only runs and
    /// Components are read.
    pub fn observe(&mut self, object: &Object, now: i64) {
        match object {
            Object::PipelineRun(run) => self.run(run, now),
            Object::Component(c) => {
                let Some(created) = &c.meta.creation_timestamp else {
                    return;
                };
                let key = fingerprint(&["component", &c.meta.uid]);
                if let Some(w) = self.window_at(created.unix_seconds(), now)
                    && w.first(key)
                {
                    w.components_created += 1;
                }
            }
            Object::Namespace(_) | Object::Konflux(_) => {}
        }
    }

    fn run(&mut self, run: &PipelineRun, now: i64) {
        let namespace = run.meta.namespace.as_deref();
        if let Some(start) = &run.start_time
            && let Some(w) = self.window_at(start.unix_seconds(), now)
        {
            w.ran(namespace);
        }
        let Some(done) = &run.completion_time else {
            return;
        };
        let key = fingerprint(&["run", &run.meta.uid]);
        let Some(w) = self.window_at(done.unix_seconds(), now) else {
            return;
        };
        w.ran(namespace);
        if !w.first(key) {
            return;
        }
        let kind = type_key(run.pipeline_type.as_deref());
        let outcome = Outcome::of_reason(run.succeeded_reason.as_deref());
        *w.runs.entry((kind.clone(), outcome)).or_default() += 1;
        if let Some(start) = &run.start_time {
            let seconds = start.whole_seconds_until(done);
            if seconds >= 0 {
                w.durations.entry(kind).or_default().add(seconds as u64);
            }
        }
    }

    /// Counts `n` of the daemon's own events at `now`.
    pub fn own(&mut self, what: Own, n: u64, now: i64) {
        if let Some(w) = self.window_at(now, now) {
            match what {
                Own::Produced => w.events_produced += n,
                Own::Sent => w.events_sent += n,
                Own::Dropped => w.events_dropped += n,
            }
        }
    }

    /// The activity of `window` (empty if nothing was seen in it). It stays until it is
    /// older than the window before the current one: a second look gives the same.
    pub fn of(&self, window: Window) -> WindowActivity {
        if window.seconds() != self.interval {
            return WindowActivity::default();
        }
        self.windows
            .get(&window.start)
            .map(WindowActivity::counts)
            .unwrap_or_default()
    }

    /// What the activity holds, in bytes (an upper estimate).
    pub fn bytes(&self) -> usize {
        self.windows.values().map(WindowActivity::bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Decoded, decode_one};

    const HOUR: i64 = 3_600;
    /// 2026-01-01T01:00:00Z: the current hour's window starts here.
    const T: i64 = 1_767_225_600 + HOUR;

    fn iso(t: i64) -> String {
        crate::events::Timestamp::from_unix_seconds(t)
            .unwrap()
            .to_string()
    }

    fn run(
        uid: &str,
        ns: &str,
        kind: Option<&str>,
        start: i64,
        done: Option<(i64, &str)>,
    ) -> Object {
        let mut status = serde_json::json!({"startTime": iso(start)});
        if let Some((at, reason)) = done {
            status["completionTime"] = iso(at).into();
            status["conditions"] =
                serde_json::json!([{"type": "Succeeded", "status": "True", "reason": reason}]);
        }
        let mut meta = serde_json::json!({"uid": uid, "namespace": ns, "name": "r",
            "creationTimestamp": iso(start)});
        if let Some(k) = kind {
            meta["labels"] = serde_json::json!({"pipelines.appstudio.openshift.io/type": k});
        }
        let json = serde_json::json!({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
            "metadata": meta, "status": status});
        match decode_one(json.to_string().as_bytes()) {
            Decoded::Object(o) => o,
            other => panic!("{other:?}"),
        }
    }

    fn component(uid: &str, created: i64) -> Object {
        let json = serde_json::json!({"apiVersion": "appstudio.redhat.com/v1alpha1",
            "kind": "Component", "metadata": {"uid": uid, "name": "c", "namespace": "ns",
            "creationTimestamp": iso(created)}, "spec": {"application": "a"}});
        match decode_one(json.to_string().as_bytes()) {
            Decoded::Object(o) => o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn runs_count_once_in_the_window_of_their_completion() {
        let mut a = Activity::new(HOUR);
        let now = T + 10;
        let this = Window::containing(now, HOUR);
        let before = Window::last_ended(now, HOUR);
        let b1 = run(
            "b1",
            "ns1",
            Some("build"),
            T - 100,
            Some((T - 40, "Succeeded")),
        );
        for _ in 0..3 {
            // the watch, a relist and the sweep
            a.observe(&b1, now);
        }
        a.observe(
            &run(
                "b2",
                "ns1",
                Some("build"),
                T - 200,
                Some((T - 50, "Failed")),
            ),
            now,
        );
        a.observe(
            &run(
                "t1",
                "ns2",
                Some("test"),
                T - 200,
                Some((T + 1, "Cancelled")),
            ),
            now,
        );
        a.observe(
            &run(
                "x",
                "ns3",
                Some("my-secret"),
                T - 9,
                Some((T - 8, "Completed")),
            ),
            now,
        );
        a.observe(
            &run(
                "n",
                "ns3",
                None,
                T - 70,
                Some((T - 5, "PipelineRunTimeout")),
            ),
            now,
        );
        a.observe(&run("going", "ns4", Some("build"), T - 5, None), now);
        // an hour too old: not kept
        a.observe(
            &run(
                "old",
                "ns5",
                Some("build"),
                T - 3 * HOUR,
                Some((T - 2 * HOUR, "Succeeded")),
            ),
            now,
        );
        let w = a.of(before);
        let runs: Vec<_> = w
            .runs
            .iter()
            .map(|((k, o), n)| (k.as_str(), o.as_str(), *n))
            .collect();
        assert_eq!(
            runs,
            [
                ("build", "succeeded", 1),
                ("build", "failed", 1),
                ("none", "timeout", 1),
                ("other", "succeeded", 1)
            ]
        );
        assert_eq!(w.durations["build"].percentile(50), Some(60));
        assert_eq!(
            w.durations["build"].percentile(95),
            Some(148),
            "150 s: its bucket from 148"
        );
        assert_eq!(
            w.durations["none"].percentile(50),
            Some(64),
            "65 s: its bucket from 64"
        );
        assert!(
            !w.durations.contains_key("test"),
            "completed in the next window"
        );
        // started in it (ns2, ns4) or completed in it
        for ns in ["ns1", "ns2", "ns3", "ns4"] {
            assert!(w.ran_in(ns), "{ns}");
        }
        assert!(!w.ran_in("ns5"), "too old");
        let now_w = a.of(this);
        assert_eq!(now_w.runs[&("test".to_owned(), Outcome::Cancelled)], 1);
        assert!(now_w.ran_in("ns2"));
        assert_eq!(a.of(Window::containing(now, 60)), WindowActivity::default());
    }

    #[test]
    fn components_count_once_and_old_windows_go() {
        let mut a = Activity::new(HOUR);
        let now = T + 10;
        a.observe(&component("c1", T - 10), now);
        a.observe(&component("c1", T - 10), now);
        a.observe(&component("c2", T + 5), now);
        a.own(Own::Produced, 3, now);
        a.own(Own::Sent, 2, now);
        a.own(Own::Dropped, 1, now);
        let before = Window::last_ended(now, HOUR);
        assert_eq!(a.of(before).components_created, 1);
        let this = a.of(Window::containing(now, HOUR));
        assert_eq!(this.components_created, 1);
        assert_eq!(
            (this.events_produced, this.events_sent, this.events_dropped),
            (3, 2, 1)
        );
        // two hours on, both windows are gone
        a.own(Own::Sent, 1, now + 2 * HOUR);
        assert_eq!(a.of(before), WindowActivity::default());
        a.set_interval(60);
        assert!(a.windows.is_empty());
    }

    #[test]
    fn percentiles_are_exact_below_64_s_and_within_3_percent_above() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(50), None);
        for s in 1..=20 {
            h.add(s);
        }
        assert_eq!((h.percentile(50), h.percentile(95)), (Some(10), Some(19)));
        for v in [64, 100, 1_000, 3_599, 86_400, 1 << 29] {
            let b = bucket(v);
            assert!(lower(b) <= v && v - lower(b) <= v / 32, "{v}: {}", lower(b));
            assert_eq!(bucket(lower(b)), b);
        }
        assert!(bucket(u64::MAX) < 64 + 25 * 32);
    }

    #[test]
    fn memory_is_bounded() {
        let mut a = Activity::new(HOUR);
        let now = T + 10;
        for i in 0..(MAX_TRACKED + 10) {
            a.own(Own::Produced, 1, now);
            let key = fingerprint(&["run", &i.to_string()]);
            let w = a.window_at(now, now).unwrap();
            w.first(key);
        }
        let start = Window::containing(now, HOUR).start;
        assert_eq!(a.windows[&start].seen.len(), MAX_TRACKED);
        let w = a.of(Window::containing(now, HOUR));
        assert!(w.overflowed);
        assert!(
            w.seen.is_empty(),
            "a summary's copy leaves the fingerprints out"
        );
        assert_eq!(w.events_produced, (MAX_TRACKED + 10) as u64);
        assert!(
            a.bytes() <= 2 * MAX_TRACKED * BYTES_PER_ENTRY * 2,
            "{}",
            a.bytes()
        );
    }
}
