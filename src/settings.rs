//! Settings that change without a restart, read from the daemon's ConfigMap.
//!
//! Every key is optional and has a default. A key whose value cannot be used is rejected
//! with a log line and a metric, and the last good value of that key stays in force.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

/// The live settings. `Default` is what a missing ConfigMap means.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// How often buffered events are sent (`flushInterval`, default 1h).
    pub flush_interval: Duration,
    /// How often the heartbeat is produced (`heartbeatInterval`, default 1h).
    pub heartbeat_interval: Duration,
    /// How far back an event may lie and still be produced (`lookback`, default 4h).
    pub lookback: Duration,
    /// How many events the buffer holds before it drops the oldest (`maxBufferedEvents`).
    pub max_buffered_events: usize,
    /// How many bytes the buffer holds before it drops the oldest (`maxBufferedBytes`,
    /// default 32Mi): each event counts its JSON plus its bookkeeping, about what it
    /// holds in memory.
    pub max_buffered_bytes: usize,
    /// Requests per second to Segment at most (`requestsPerSecond`, default 10).
    pub requests_per_second: NonZeroU32,
    /// Log filter (`logLevel`, default `info`), in `tracing` directive syntax.
    pub log_level: String,
    /// How often the Tekton Results sweep runs (`sweepInterval`, default 1h).
    pub sweep_interval: Duration,
    /// First retry delay of a failed Segment request (`retryBaseDelay`, default 500ms).
    pub retry_base_delay: Duration,
    /// Longest retry delay (`retryMaxDelay`, default 60s).
    pub retry_max_delay: Duration,
    /// How long one batch is retried before it waits for the next flush (`retryDeadline`,
    /// default 5m).
    pub retry_deadline: Duration,
    /// Whether to send at all when the Konflux CR does not say (`telemetryEnabled`, default
    /// true); see [`crate::switch`].
    pub telemetry_enabled: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(3600),
            heartbeat_interval: Duration::from_secs(3600),
            lookback: Duration::from_secs(4 * 3600),
            max_buffered_events: 100_000,
            max_buffered_bytes: 32 * MI,
            requests_per_second: NonZeroU32::MIN.saturating_add(9),
            log_level: "info".to_owned(),
            sweep_interval: Duration::from_secs(3600),
            retry_base_delay: Duration::from_millis(500),
            retry_max_delay: Duration::from_secs(60),
            retry_deadline: Duration::from_secs(300),
            telemetry_enabled: true,
        }
    }
}

/// Every key, its meaning and default, as documented in the README and `deploy/`.
pub const KEYS: &[(&str, &str)] = &[
    ("flushInterval", "1h"),
    ("heartbeatInterval", "1h"),
    ("lookback", "4h"),
    ("maxBufferedEvents", "100000"),
    ("maxBufferedBytes", "32Mi"),
    ("requestsPerSecond", "10"),
    ("logLevel", "info"),
    ("sweepInterval", "1h"),
    ("retryBaseDelay", "500ms"),
    ("retryMaxDelay", "60s"),
    ("retryDeadline", "5m"),
    ("telemetryEnabled", "true"),
];

/// One key that was not applied, and why. The value is not repeated: it is config, not a
/// secret, but it may be long or odd, and the reason says enough.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub key: String,
    pub reason: String,
}

impl Settings {
    /// Applies the ConfigMap's `data`: each valid key takes its value, each missing key its
    /// value in `base` (the defaults, with the command line's flags), each invalid key keeps
    /// the value it had in `last_good`.
    pub fn apply(
        base: &Settings,
        last_good: &Settings,
        data: &BTreeMap<String, String>,
    ) -> (Settings, Vec<Rejected>) {
        let mut next = base.clone();
        let mut rejected = Vec::new();
        for (key, value) in data {
            let value = value.trim();
            let outcome = match key.as_str() {
                "flushInterval" => {
                    duration(value, Duration::from_millis(100)).map(|d| next.flush_interval = d)
                }
                "heartbeatInterval" => {
                    duration(value, Duration::from_secs(1)).map(|d| next.heartbeat_interval = d)
                }
                "lookback" => duration(value, Duration::from_secs(60)).map(|d| next.lookback = d),
                "sweepInterval" => {
                    duration(value, Duration::from_secs(1)).map(|d| next.sweep_interval = d)
                }
                "retryBaseDelay" => {
                    duration(value, Duration::from_millis(1)).map(|d| next.retry_base_delay = d)
                }
                "retryMaxDelay" => {
                    duration(value, Duration::from_millis(1)).map(|d| next.retry_max_delay = d)
                }
                "retryDeadline" => {
                    duration(value, Duration::from_millis(1)).map(|d| next.retry_deadline = d)
                }
                "maxBufferedEvents" => {
                    count(value, 1, 10_000_000).map(|n| next.max_buffered_events = n)
                }
                "maxBufferedBytes" => {
                    byte_size(value, MI, 1024 * MI).map(|n| next.max_buffered_bytes = n)
                }
                "requestsPerSecond" => count(value, 1, 1000)
                    .and_then(|n| {
                        u32::try_from(n)
                            .ok()
                            .and_then(NonZeroU32::new)
                            .ok_or_else(|| "out of range".to_owned())
                    })
                    .map(|n| next.requests_per_second = n),
                "logLevel" => log_level(value).map(|l| next.log_level = l),
                "telemetryEnabled" => boolean(value).map(|b| next.telemetry_enabled = b),
                _ => Err("unknown key (ignored)".to_owned()),
            };
            if let Err(reason) = outcome {
                keep_last_good(&mut next, last_good, key);
                rejected.push(Rejected {
                    key: key.clone(),
                    reason,
                });
            }
        }
        if next.retry_max_delay < next.retry_base_delay {
            next.retry_max_delay = next.retry_base_delay;
        }
        (next, rejected)
    }
}

fn keep_last_good(next: &mut Settings, last: &Settings, key: &str) {
    match key {
        "flushInterval" => next.flush_interval = last.flush_interval,
        "heartbeatInterval" => next.heartbeat_interval = last.heartbeat_interval,
        "lookback" => next.lookback = last.lookback,
        "sweepInterval" => next.sweep_interval = last.sweep_interval,
        "retryBaseDelay" => next.retry_base_delay = last.retry_base_delay,
        "retryMaxDelay" => next.retry_max_delay = last.retry_max_delay,
        "retryDeadline" => next.retry_deadline = last.retry_deadline,
        "maxBufferedEvents" => next.max_buffered_events = last.max_buffered_events,
        "maxBufferedBytes" => next.max_buffered_bytes = last.max_buffered_bytes,
        "requestsPerSecond" => next.requests_per_second = last.requests_per_second,
        "logLevel" => next.log_level.clone_from(&last.log_level),
        "telemetryEnabled" => next.telemetry_enabled = last.telemetry_enabled,
        _ => {}
    }
}

/// A duration as Kubernetes and Go write them: `90s`, `1h30m`, `500ms`, `2h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".to_owned());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err("expected a number, as in 30s, 5m, 1h30m".to_owned());
        }
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| "not a number".to_owned())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err("missing unit (ms, s, m or h)".to_owned()),
            _ => return Err("unknown unit (use ms, s, m or h)".to_owned()),
        };
        rest = &rest[unit_len..];
        let part =
            Duration::try_from_secs_f64(number * seconds).map_err(|_| "out of range".to_owned())?;
        total = total
            .checked_add(part)
            .ok_or_else(|| "out of range".to_owned())?;
    }
    Ok(total)
}

fn duration(text: &str, min: Duration) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < min {
        return Err(format!("must be at least {min:?}"));
    }
    if d > Duration::from_secs(30 * 24 * 3600) {
        return Err("must be at most 720h".to_owned());
    }
    Ok(d)
}

fn count(text: &str, min: usize, max: usize) -> Result<usize, String> {
    let n: usize = text.parse().map_err(|_| "not a whole number".to_owned())?;
    if n < min || n > max {
        return Err(format!("must be between {min} and {max}"));
    }
    Ok(n)
}

/// A mebibyte.
const MI: usize = 1024 * 1024;

/// A size as Kubernetes writes quantities of bytes: `33554432`, `512Ki`, `32Mi`, `1Gi`.
fn byte_size(text: &str, min: usize, max: usize) -> Result<usize, String> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let unit = match unit {
        "" => 1,
        "Ki" => 1024,
        "Mi" => MI,
        "Gi" => 1024 * MI,
        _ => return Err("expected a whole number of bytes, or with Ki, Mi or Gi".to_owned()),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| "expected a whole number of bytes, or with Ki, Mi or Gi".to_owned())?;
    let n = n
        .checked_mul(unit)
        .ok_or_else(|| "out of range".to_owned())?;
    if n < min || n > max {
        return Err(format!("must be between {}Mi and {}Mi", min / MI, max / MI));
    }
    Ok(n)
}

fn boolean(text: &str) -> Result<bool, String> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be true or false".to_owned()),
    }
}

fn log_level(text: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("not a log filter: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        for bad in ["", "10", "h", "5 minutes", "-1s", "1d", "1e400h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn byte_sizes() {
        let (s, rejected) = Settings::apply(
            &Settings::default(),
            &Settings::default(),
            &data(&[("maxBufferedBytes", "48Mi")]),
        );
        assert!(rejected.is_empty());
        assert_eq!(s.max_buffered_bytes, 48 * MI);
        assert_eq!(byte_size("2097152", MI, 2 * MI), Ok(2 * MI));
        assert_eq!(byte_size("1024Ki", MI, 2 * MI), Ok(MI));
        assert_eq!(byte_size("1Gi", MI, 1024 * MI), Ok(1024 * MI));
        for bad in [
            "",
            "Mi",
            "32M",
            "32 Mi",
            "-1Mi",
            "1.5Mi",
            "1048575",
            "2Gi",
            "99999999999999999999Gi",
        ] {
            assert!(byte_size(bad, MI, 1024 * MI).is_err(), "{bad}");
        }
        let last = Settings {
            max_buffered_bytes: 5 * MI,
            ..Settings::default()
        };
        let (s, rejected) = Settings::apply(
            &Settings::default(),
            &last,
            &data(&[("maxBufferedBytes", "10")]),
        );
        assert_eq!(s.max_buffered_bytes, 5 * MI);
        assert_eq!(rejected[0].reason, "must be between 1Mi and 1024Mi");
    }

    #[test]
    fn valid_keys_apply_and_missing_keys_reset_to_default() {
        let last = Settings {
            lookback: Duration::from_secs(60),
            ..Settings::default()
        };
        let (s, rejected) = Settings::apply(
            &Settings::default(),
            &last,
            &data(&[("flushInterval", "1s"), ("maxBufferedEvents", "50")]),
        );
        assert!(rejected.is_empty());
        assert_eq!(s.flush_interval, Duration::from_secs(1));
        assert_eq!(s.max_buffered_events, 50);
        assert_eq!(s.lookback, Settings::default().lookback);
    }

    #[test]
    fn invalid_values_keep_the_last_good_one() {
        let last = Settings {
            flush_interval: Duration::from_secs(5),
            requests_per_second: NonZeroU32::MIN,
            ..Settings::default()
        };
        let (s, rejected) = Settings::apply(
            &Settings::default(),
            &last,
            &data(&[
                ("flushInterval", "soon"),
                ("requestsPerSecond", "0"),
                ("logLevel", "info,[[["),
                ("heartbeatInterval", "2m"),
                ("colour", "blue"),
                ("telemetryEnabled", "no"),
            ]),
        );
        assert_eq!(s.flush_interval, Duration::from_secs(5));
        assert_eq!(s.requests_per_second, NonZeroU32::MIN);
        assert_eq!(s.log_level, "info");
        assert_eq!(s.heartbeat_interval, Duration::from_secs(120));
        assert!(s.telemetry_enabled);
        let keys: Vec<&str> = rejected.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "colour",
                "flushInterval",
                "logLevel",
                "requestsPerSecond",
                "telemetryEnabled"
            ]
        );
    }

    #[test]
    fn every_key_is_documented_with_its_default() {
        let (s, rejected) = Settings::apply(
            &Settings::default(),
            &Settings::default(),
            &KEYS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        assert!(rejected.is_empty(), "{rejected:?}");
        assert_eq!(s, Settings::default());
    }
}
