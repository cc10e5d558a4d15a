//! The sink's state: injected faults, the request log, the statistics the control API
//! returns.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A fault to inject, as `POST /control/fault` takes it (camelCase JSON), e.g.
/// `{"status":503,"count":5}`, `{"status":429,"retryAfter":2,"seconds":3}`,
/// `{"latencyMs":1500,"count":3}`, `{"drop":true,"count":2}`.
///
/// A fault applies to the next `count` batch requests, or to those arriving in the next
/// `seconds`, whichever ends first (one request when neither is given). Faults queue up:
/// the oldest one still active applies. On a faulty request the sink first waits
/// `latencyMs`, then either drops the connection (`drop`: it reads part of the body and
/// closes without answering) or answers `status` (with `Retry-After: retryAfter` when
/// given) without storing the events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fault {
    /// The HTTP status to answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `Retry-After` seconds sent with `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Delay before answering (or dropping), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Close the connection mid-body, without an answer.
    #[serde(default)]
    pub drop: bool,
    /// How many batch requests the fault applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// For how long (from when it is posted) the fault applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

impl Fault {
    /// Answers `status` (to one request, unless [`Fault::times`] or [`Fault::for_seconds`]
    /// says otherwise).
    pub fn answer(status: u16) -> Fault {
        Fault {
            status: Some(status),
            ..Fault::default()
        }
    }

    /// Drops the connection mid-body, without an answer.
    pub fn dropping() -> Fault {
        Fault {
            drop: true,
            ..Fault::default()
        }
    }

    /// With `Retry-After: seconds`.
    pub fn retry_after(self, seconds: u64) -> Fault {
        Fault {
            retry_after: Some(seconds),
            ..self
        }
    }

    /// After waiting `ms` milliseconds.
    pub fn latency_ms(self, ms: u64) -> Fault {
        Fault {
            latency_ms: Some(ms),
            ..self
        }
    }

    /// For the next `count` batch requests.
    pub fn times(self, count: u32) -> Fault {
        Fault {
            count: Some(count),
            ..self
        }
    }

    /// For the requests arriving in the next `seconds`.
    pub fn for_seconds(self, seconds: f64) -> Fault {
        Fault {
            seconds: Some(seconds),
            ..self
        }
    }

    /// Why the fault cannot be used, if it cannot.
    pub fn validate(&self) -> Result<(), &'static str> {
        if let Some(status) = self.status
            && !(100..=599).contains(&status)
        {
            return Err("status must be 100..=599");
        }
        if self.status.is_none() && self.latency_ms.is_none() && !self.drop {
            return Err("a fault needs status, latencyMs or drop");
        }
        if self.drop && self.status.is_some() {
            return Err("drop and status exclude each other");
        }
        if self
            .seconds
            .is_some_and(|s| !s.is_finite() || !(0.0..=86_400.0).contains(&s))
        {
            return Err("seconds must be within 0..=86400");
        }
        Ok(())
    }
}

/// One batch request, as `GET /control/stats` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// When the request's head arrived, Unix milliseconds.
    pub arrival_ms: u64,
    /// When the sink answered or dropped it, Unix milliseconds.
    pub responded_ms: u64,
    /// `/v1/batch` or `/batch`.
    pub path: String,
    /// The answer's status; `None` when the connection was dropped.
    pub status: Option<u16>,
    /// Events in the body (0 when it could not be read).
    pub events: usize,
    /// The events' `messageId`s, in order.
    pub message_ids: Vec<String>,
    /// Uncompressed body size.
    pub bytes: usize,
    /// The body's `sentAt`.
    pub sent_at: Option<String>,
    /// Why the sink refused the request, when it did.
    pub error: Option<String>,
    /// The request's `X-Retry-Count` header, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<String>,
}

/// What `GET /control/stats` returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Batch requests since the start or the last reset.
    pub requests: u64,
    /// Batch requests by answer status (`"200"`, `"503"`, ..., `"dropped"`).
    pub statuses: BTreeMap<String, u64>,
    /// Events accepted and written to the output file.
    pub accepted_events: u64,
    /// The last batch requests (as many as the sink's `--request-log`), in arrival order;
    /// `requests` counts them all.
    pub request_log: Vec<RequestRecord>,
}

struct ActiveFault {
    fault: Fault,
    remaining: Option<u32>,
    until: Option<Instant>,
}

impl ActiveFault {
    fn active(&self, now: Instant) -> bool {
        self.remaining.is_none_or(|n| n > 0) && self.until.is_none_or(|t| now < t)
    }
}

/// Faults and statistics, behind the sink's mutex.
pub(crate) struct Control {
    faults: VecDeque<ActiveFault>,
    stats: Stats,
    /// The request log: a ring of the last `log_capacity` requests.
    log: VecDeque<RequestRecord>,
    log_capacity: usize,
}

impl Control {
    pub(crate) fn new(log_capacity: usize) -> Self {
        Self {
            faults: VecDeque::new(),
            stats: Stats::default(),
            log: VecDeque::new(),
            log_capacity,
        }
    }

    pub(crate) fn push_fault(&mut self, fault: Fault) {
        let remaining = match (fault.count, fault.seconds) {
            (None, None) => Some(1),
            (count, _) => count,
        };
        let until = fault
            .seconds
            .map(|s| Instant::now() + Duration::from_secs_f64(s));
        self.faults.push_back(ActiveFault {
            fault,
            remaining,
            until,
        });
    }

    /// The fault for the request arriving now, if any; counts it against the fault.
    pub(crate) fn take_fault(&mut self) -> Option<Fault> {
        let now = Instant::now();
        while self.faults.front().is_some_and(|f| !f.active(now)) {
            self.faults.pop_front();
        }
        let front = self.faults.front_mut()?;
        if let Some(n) = &mut front.remaining {
            *n -= 1;
        }
        Some(front.fault.clone())
    }

    pub(crate) fn record(&mut self, record: RequestRecord, accepted: usize) {
        let key = record
            .status
            .map_or_else(|| "dropped".to_owned(), |s| s.to_string());
        *self.stats.statuses.entry(key).or_default() += 1;
        self.stats.requests += 1;
        self.stats.accepted_events += accepted as u64;
        if self.log_capacity == 0 {
            return;
        }
        if self.log.len() == self.log_capacity {
            self.log.pop_front();
        }
        self.log.push_back(record);
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut stats = self.stats.clone();
        stats.request_log = self.log.iter().cloned().collect();
        stats
    }

    pub(crate) fn reset(&mut self) {
        *self = Control::new(self.log_capacity);
    }
}

/// Now, in Unix milliseconds.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Fault {
        serde_json::from_str(s).expect("fault JSON")
    }

    #[test]
    fn fault_json() {
        assert_eq!(
            parse(r#"{"status":429,"retryAfter":2,"seconds":3}"#),
            Fault {
                status: Some(429),
                retry_after: Some(2),
                seconds: Some(3.0),
                ..Fault::default()
            }
        );
        assert!(parse(r#"{"drop":true,"count":2}"#).validate().is_ok());
        assert!(parse(r#"{"latencyMs":1500,"count":3}"#).validate().is_ok());
        assert!(parse(r#"{"count":3}"#).validate().is_err());
        assert!(parse(r#"{"status":1000}"#).validate().is_err());
        assert!(serde_json::from_str::<Fault>(r#"{"stauts":503}"#).is_err());
    }

    #[test]
    fn faults_apply_in_order_and_run_out() {
        let mut c = Control::new(10);
        c.push_fault(parse(r#"{"status":503,"count":2}"#));
        c.push_fault(parse(r#"{"drop":true}"#));
        c.push_fault(parse(r#"{"status":500,"seconds":0}"#));
        assert_eq!(c.take_fault().and_then(|f| f.status), Some(503));
        assert_eq!(c.take_fault().and_then(|f| f.status), Some(503));
        assert!(c.take_fault().is_some_and(|f| f.drop));
        assert_eq!(c.take_fault(), None);
        c.push_fault(parse(r#"{"status":502,"seconds":60}"#));
        for _ in 0..10 {
            assert_eq!(c.take_fault().and_then(|f| f.status), Some(502));
        }
        c.reset();
        assert_eq!(c.take_fault(), None);
    }

    #[test]
    fn the_request_log_keeps_the_last_n() {
        let mut c = Control::new(3);
        for i in 0..10u64 {
            let record = RequestRecord {
                arrival_ms: i,
                responded_ms: i,
                path: "/v1/batch".into(),
                status: Some(200),
                events: 0,
                message_ids: Vec::new(),
                bytes: 0,
                sent_at: None,
                error: None,
                retry_count: None,
            };
            c.record(record, 1);
        }
        let stats = c.stats();
        assert_eq!(stats.requests, 10);
        assert_eq!(stats.accepted_events, 10);
        let kept: Vec<u64> = stats.request_log.iter().map(|r| r.arrival_ms).collect();
        assert_eq!(kept, [7, 8, 9]);
        c.reset();
        assert_eq!(c.stats(), Stats::default());
        assert_eq!(Control::new(0).stats().request_log.len(), 0);
    }
}
