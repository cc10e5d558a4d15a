//! Settings that change without a restart, read from the daemon's ConfigMap.
//!
//! Every key is optional and has a default. A key whose value cannot be used is rejected
//! with a log line and a metric, and the last good value of that key stays in force.

pub mod live;

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
    /// The window of each `Usage Summary` (`summaryInterval`, default 24h, at least 1s).
    pub summary_interval: Duration,
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
    /// Whether to send at all when the Konflux CR does not say (`telemetryEnabled`; unset
    /// by default: the platform decides, off on vanilla Kubernetes); see [`crate::switch`].
    pub telemetry_enabled: Option<bool>,
}

impl Default for Settings {
    /// Every key at its default in [`KEYS`], the one place defaults are written.
    fn default() -> Self {
        let mut s = Settings::blank();
        for key in KEYS {
            let read = (key.set)(&mut s, key.default);
            debug_assert!(read.is_ok(), "default of {}: {read:?}", key.name);
        }
        s
    }
}

/// One ConfigMap key: its name, its default as written in the ConfigMap, how a value is
/// read (parser and bounds) into [`Settings`], and how the last good value is kept.
/// Adding a key is a field of [`Settings`] and one entry of [`KEYS`].
pub struct Key {
    pub name: &'static str,
    /// The value a missing key means, as the README and `deploy/` write it.
    pub default: &'static str,
    /// Reads a value (trimmed) into the settings, or says why it cannot be used.
    set: fn(&mut Settings, &str) -> Result<(), InvalidValue>,
    /// Copies this key's value from the last good settings (the value given was rejected).
    keep: fn(&mut Settings, &Settings),
    /// The value, for the log line of a change.
    show: fn(&Settings) -> String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name)
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

/// A [`Key`] for field `$field`, read by `$parse` (text to the field's type, bounds checked),
/// or a duration of at least `$min` (and at most 720h).
macro_rules! key {
    ($name:literal, $default:literal, $field:ident, duration >= $min:expr) => {
        key!($name, $default, $field, |t| duration(t, $min))
    };
    ($name:literal, $default:literal, $field:ident, $parse:expr) => {
        Key {
            name: $name,
            default: $default,
            set: |s, text| {
                s.$field = ($parse)(text)?;
                Ok(())
            },
            keep: |s, last| s.$field.clone_from(&last.$field),
            show: |s| format!("{:?}", s.$field),
        }
    };
}

/// Every key: name, default, parser and bounds. The README's table and `deploy/` document
/// these (tests/docs.rs checks that they do).
#[rustfmt::skip] // a table: one key a line
pub const KEYS: &[Key] = &[
    key!("flushInterval", "1h", flush_interval, duration >= Duration::from_millis(100)),
    key!("heartbeatInterval", "1h", heartbeat_interval, duration >= Duration::from_secs(1)),
    key!("lookback", "4h", lookback, duration >= Duration::from_secs(60)),
    key!("summaryInterval", "24h", summary_interval, duration >= Duration::from_secs(1)),
    key!("maxBufferedEvents", "100000", max_buffered_events, |t| count(t, 1, 10_000_000)),
    key!("maxBufferedBytes", "32Mi", max_buffered_bytes, |t| byte_size(t, MI, 1024 * MI)),
    key!("requestsPerSecond", "10", requests_per_second, |t| count(t, 1, 1000).and_then(|n| {
        u32::try_from(n).ok().and_then(NonZeroU32::new).ok_or(InvalidValue::OutOfRange)
    })),
    key!("logLevel", "info", log_level, log_level),
    key!("sweepInterval", "1h", sweep_interval, duration >= Duration::from_secs(1)),
    key!("retryBaseDelay", "500ms", retry_base_delay, duration >= Duration::from_millis(1)),
    key!("retryMaxDelay", "60s", retry_max_delay, duration >= Duration::from_millis(1)),
    key!("retryDeadline", "5m", retry_deadline, duration >= Duration::from_millis(1)),
    key!("telemetryEnabled", "", telemetry_enabled, optional_boolean),
];

/// One key that was not applied, and why. The value is not repeated: it is config, not a
/// secret, but it may be long or odd, and the reason says enough.
#[derive(Debug)]
pub struct Rejected {
    pub key: String,
    pub reason: InvalidValue,
}

/// Why a value (of a ConfigMap key, or a duration flag) cannot be used. The texts name
/// what is expected, never the value given.
#[derive(Debug, thiserror::Error)]
pub enum InvalidValue {
    /// A key that is not in [`KEYS`].
    #[error("unknown key (ignored)")]
    UnknownKey,
    #[error("empty duration")]
    EmptyDuration,
    /// A duration part starting with something else than a number.
    #[error("expected a number, as in 30s, 5m, 1h30m")]
    ExpectedNumber,
    /// Digits and dots that are not a number (`1.2.3s`).
    #[error("not a number")]
    NotANumber(#[source] std::num::ParseFloatError),
    #[error("missing unit (ms, s, m or h)")]
    MissingUnit,
    #[error("unknown unit (use ms, s, m or h)")]
    UnknownUnit,
    /// Too large for its type (or a duration overflowing).
    #[error("out of range")]
    OutOfRange,
    #[error("must be at least {0:?}")]
    TooShort(Duration),
    #[error("must be at most 720h")]
    TooLong,
    #[error("not a whole number")]
    NotAWholeNumber(#[source] std::num::ParseIntError),
    #[error("must be between {min} and {max}")]
    CountOutOfBounds { min: usize, max: usize },
    /// Not digits with an optional `Ki`, `Mi` or `Gi` (no source: the unit was wrong).
    #[error("expected a whole number of bytes, or with Ki, Mi or Gi")]
    NotAByteSize(#[source] Option<std::num::ParseIntError>),
    #[error("must be between {}Mi and {}Mi", .min / MI, .max / MI)]
    SizeOutOfBounds { min: usize, max: usize },
    #[error("must be true or false")]
    NotABoolean,
    #[error("not a log filter: {0}")]
    LogFilter(#[source] tracing_subscriber::filter::ParseError),
}

impl Settings {
    /// Every field at a placeholder, before [`KEYS`]' defaults are read into it.
    fn blank() -> Self {
        Self {
            flush_interval: Duration::ZERO,
            heartbeat_interval: Duration::ZERO,
            lookback: Duration::ZERO,
            summary_interval: Duration::ZERO,
            max_buffered_events: 0,
            max_buffered_bytes: 0,
            requests_per_second: NonZeroU32::MIN,
            log_level: String::new(),
            sweep_interval: Duration::ZERO,
            retry_base_delay: Duration::ZERO,
            retry_max_delay: Duration::ZERO,
            retry_deadline: Duration::ZERO,
            telemetry_enabled: None,
        }
    }

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
        for (name, value) in data {
            let outcome = match KEYS.iter().find(|k| k.name == name) {
                Some(key) => (key.set)(&mut next, value.trim()).inspect_err(|_| {
                    (key.keep)(&mut next, last_good);
                }),
                None => Err(InvalidValue::UnknownKey),
            };
            if let Err(reason) = outcome {
                rejected.push(Rejected {
                    key: name.clone(),
                    reason,
                });
            }
        }
        if next.retry_max_delay < next.retry_base_delay {
            next.retry_max_delay = next.retry_base_delay;
        }
        (next, rejected)
    }

    /// Every key with its value, for the log line of a change.
    pub fn describe(&self) -> String {
        KEYS.iter()
            .map(|k| format!("{}={}", k.name, (k.show)(self)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A duration as Kubernetes and Go write them: `90s`, `1h30m`, `500ms`, `2h`, `1.5h`.
///
/// Why not `humantime::parse_duration` (2.x): it reads every form above (measured: `90s`,
/// `1h30m`, `500ms`, `1.5h`, `2h` all parse the same), but also `10 days`, `1M` (a month),
/// `1y`, `5ns` and spaces, which Go's `time.ParseDuration` (what Kubernetes users and the
/// old bridge write) refuses and no setting means; there a typo should be an error, and
/// narrowing humantime's grammar would take this parser anyway. This is Go's grammar for
/// the units the settings take (`ms`, `s`, `m`, `h`), tested beside it.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidValue> {
    let text = text.trim();
    if text.is_empty() {
        return Err(InvalidValue::EmptyDuration);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(InvalidValue::ExpectedNumber);
        }
        let number: f64 = rest[..digits].parse().map_err(InvalidValue::NotANumber)?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(InvalidValue::MissingUnit),
            _ => return Err(InvalidValue::UnknownUnit),
        };
        rest = &rest[unit_len..];
        let part =
            Duration::try_from_secs_f64(number * seconds).map_err(|_| InvalidValue::OutOfRange)?;
        total = total.checked_add(part).ok_or(InvalidValue::OutOfRange)?;
    }
    Ok(total)
}

fn duration(text: &str, min: Duration) -> Result<Duration, InvalidValue> {
    let d = parse_duration(text)?;
    if d < min {
        return Err(InvalidValue::TooShort(min));
    }
    if d > Duration::from_secs(30 * 24 * 3600) {
        return Err(InvalidValue::TooLong);
    }
    Ok(d)
}

fn count(text: &str, min: usize, max: usize) -> Result<usize, InvalidValue> {
    let n: usize = text.parse().map_err(InvalidValue::NotAWholeNumber)?;
    if n < min || n > max {
        return Err(InvalidValue::CountOutOfBounds { min, max });
    }
    Ok(n)
}

/// A mebibyte.
const MI: usize = 1024 * 1024;

/// A size as Kubernetes writes quantities of bytes: `33554432`, `512Ki`, `32Mi`, `1Gi`.
fn byte_size(text: &str, min: usize, max: usize) -> Result<usize, InvalidValue> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let unit = match unit {
        "" => 1,
        "Ki" => 1024,
        "Mi" => MI,
        "Gi" => 1024 * MI,
        _ => return Err(InvalidValue::NotAByteSize(None)),
    };
    let n: usize = digits
        .parse()
        .map_err(|e| InvalidValue::NotAByteSize(Some(e)))?;
    let n = n.checked_mul(unit).ok_or(InvalidValue::OutOfRange)?;
    if n < min || n > max {
        return Err(InvalidValue::SizeOutOfBounds { min, max });
    }
    Ok(n)
}

fn boolean(text: &str) -> Result<bool, InvalidValue> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(InvalidValue::NotABoolean),
    }
}

/// `true`, `false`, or empty: not said (the platform decides, see [`crate::switch`]).
fn optional_boolean(text: &str) -> Result<Option<bool>, InvalidValue> {
    if text.is_empty() {
        return Ok(None);
    }
    boolean(text).map(Some)
}

fn log_level(text: &str) -> Result<String, InvalidValue> {
    tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map(|_| text.to_owned())
        .map_err(InvalidValue::LogFilter)
}

/// A ConfigMap's `data` from pairs, for tests.
#[cfg(test)]
pub(crate) fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = |t: &str| parse_duration(t).ok();
        assert_eq!(ok("90s"), Some(Duration::from_secs(90)));
        assert_eq!(ok("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(ok("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(ok("1.5h"), Some(Duration::from_secs(5400)));
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
        assert_eq!(byte_size("2097152", MI, 2 * MI).ok(), Some(2 * MI));
        assert_eq!(byte_size("1024Ki", MI, 2 * MI).ok(), Some(MI));
        assert_eq!(byte_size("1Gi", MI, 1024 * MI).ok(), Some(1024 * MI));
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
        assert_eq!(
            rejected[0].reason.to_string(),
            "must be between 1Mi and 1024Mi"
        );
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
            telemetry_enabled: Some(true),
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
        assert_eq!(s.telemetry_enabled, Some(true), "the last good value stays");
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
                .map(|k| (k.name.to_owned(), k.default.to_owned()))
                .collect(),
        );
        assert!(rejected.is_empty(), "{rejected:?}");
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn every_key_rejects_garbage_and_keeps_its_last_good_value() {
        let last = Settings::default();
        let mut names = std::collections::HashSet::new();
        for key in KEYS {
            assert!(names.insert(key.name), "{} twice in KEYS", key.name);
            let (s, rejected) = Settings::apply(
                &Settings::blank(),
                &last,
                &data(&[(key.name, "not-a-value-[[[")]),
            );
            assert_eq!(rejected.len(), 1, "{}", key.name);
            assert_eq!((key.show)(&s), (key.show)(&last), "{}", key.name);
        }
    }

    #[test]
    fn reasons_name_what_is_expected_and_keep_their_source() {
        let reason = |key: &str, value: &str| {
            let (_, mut rejected) = Settings::apply(
                &Settings::default(),
                &Settings::default(),
                &data(&[(key, value)]),
            );
            assert_eq!(rejected.len(), 1, "{key}={value}");
            rejected.remove(0).reason
        };
        for (key, value, text) in [
            ("colour", "blue", "unknown key (ignored)"),
            ("flushInterval", " ", "empty duration"),
            (
                "flushInterval",
                "h",
                "expected a number, as in 30s, 5m, 1h30m",
            ),
            ("flushInterval", "1.2.3s", "not a number"),
            ("flushInterval", "10", "missing unit (ms, s, m or h)"),
            ("flushInterval", "1d", "unknown unit (use ms, s, m or h)"),
            ("flushInterval", "99999999999999999999999h", "out of range"),
            ("flushInterval", "10ms", "must be at least 100ms"),
            ("flushInterval", "721h", "must be at most 720h"),
            ("maxBufferedEvents", "x", "not a whole number"),
            ("maxBufferedEvents", "0", "must be between 1 and 10000000"),
            ("requestsPerSecond", "1001", "must be between 1 and 1000"),
            (
                "maxBufferedBytes",
                "32M",
                "expected a whole number of bytes, or with Ki, Mi or Gi",
            ),
            (
                "maxBufferedBytes",
                "99999999999999999999Gi",
                "expected a whole number of bytes, or with Ki, Mi or Gi",
            ),
            ("maxBufferedBytes", "10", "must be between 1Mi and 1024Mi"),
            ("telemetryEnabled", "no", "must be true or false"),
        ] {
            assert_eq!(reason(key, value).to_string(), text, "{key}={value}");
        }
        let filter = reason("logLevel", "info,[[[");
        assert!(
            filter.to_string().starts_with("not a log filter: "),
            "{filter}"
        );
        use std::error::Error as _;
        assert!(filter.source().is_some());
        assert!(reason("flushInterval", "1.2.3s").source().is_some());
        assert!(reason("maxBufferedEvents", "x").source().is_some());
    }

    #[test]
    fn describe_names_every_key() {
        let text = Settings::default().describe();
        for key in KEYS {
            assert!(text.contains(&format!("{}=", key.name)), "{text}");
        }
    }
}
