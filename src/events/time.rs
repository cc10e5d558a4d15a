//! Timestamps as objects carry them: RFC 3339, kept verbatim for the event and parsed for
//! durations and the lookback.

use std::fmt;
use std::str::FromStr;

/// A point in time read from an object. `raw` is passed on to the event unchanged (the
/// catalogue says "as the object has it"); `at` is used for arithmetic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timestamp {
    raw: Box<str>,
    at: jiff::Timestamp,
}

/// A timestamp that is not RFC 3339. The offending text is not kept: it came from the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp")]
pub struct InvalidTimestamp;

impl Timestamp {
    pub fn parse(raw: &str) -> Result<Self, InvalidTimestamp> {
        let at = jiff::Timestamp::from_str(raw).map_err(|_| InvalidTimestamp)?;
        Ok(Self {
            raw: raw.into(),
            at,
        })
    }

    /// From a clock reading, formatted as the heartbeat wants it: whole seconds, `Z`.
    pub fn from_unix_seconds(seconds: i64) -> Result<Self, InvalidTimestamp> {
        let at = jiff::Timestamp::from_second(seconds).map_err(|_| InvalidTimestamp)?;
        Ok(Self {
            raw: at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string().into(),
            at,
        })
    }

    /// The current time in whole seconds.
    pub fn now() -> Self {
        let at = jiff::Timestamp::now();
        Self::from_unix_seconds(at.as_second()).unwrap_or(Self {
            raw: at.to_string().into(),
            at,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Seconds since the Unix epoch (negative before 1970).
    pub fn unix_seconds(&self) -> i64 {
        self.at.as_second()
    }

    /// Whole seconds from `self` to `later`, truncated toward zero; negative when `later`
    /// is earlier (the object's own clocks disagree, which is passed on, not invented away).
    pub fn whole_seconds_until(&self, later: &Timestamp) -> i64 {
        let nanos = later.at.as_nanosecond() - self.at.as_nanosecond();
        i64::try_from(nanos / 1_000_000_000).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_text_and_parses_fractions() {
        let t = Timestamp::parse("2026-01-01T00:01:00.5Z").unwrap();
        assert_eq!(t.as_str(), "2026-01-01T00:01:00.5Z");
        assert_eq!(t.unix_seconds(), 1_767_225_660);
    }

    #[test]
    fn durations_are_whole_seconds() {
        let a = Timestamp::parse("2026-01-01T00:00:00.9Z").unwrap();
        let b = Timestamp::parse("2026-01-01T00:00:02.1Z").unwrap();
        assert_eq!(a.whole_seconds_until(&b), 1);
        assert_eq!(b.whole_seconds_until(&a), -1);
        let c = Timestamp::parse("2026-03-03T11:36:25Z").unwrap();
        let d = Timestamp::parse("2026-03-03T11:36:48Z").unwrap();
        assert_eq!(c.whole_seconds_until(&d), 23);
    }

    #[test]
    fn offsets_and_old_dates() {
        let t = Timestamp::parse("1969-12-31T23:59:59+00:00").unwrap();
        assert_eq!(t.unix_seconds(), -1);
        let u = Timestamp::parse("2026-01-01T02:00:00+02:00").unwrap();
        assert_eq!(u.unix_seconds(), 1_767_225_600);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-01-01",
            "2026-01-01T00:00:00",
        ] {
            assert_eq!(Timestamp::parse(bad), Err(InvalidTimestamp), "{bad}");
        }
    }

    #[test]
    fn heartbeat_format() {
        let t = Timestamp::from_unix_seconds(1_772_611_200).unwrap();
        assert_eq!(t.as_str(), "2026-03-04T08:00:00Z");
    }
}
