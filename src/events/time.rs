//! Timestamps as objects carry them: strict RFC 3339, parsed, and written out again from the
//! parsed instant, so that what leaves is always `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.

use std::fmt;
use std::str::FromStr;

/// A point in time read from an object. `text` is the instant re-formatted in UTC (the
/// fraction without trailing zeros, none when it is zero), never the object's own text;
/// `at` is used for arithmetic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timestamp {
    raw: Box<str>,
    at: jiff::Timestamp,
}

/// A timestamp that is not RFC 3339. The offending text is not kept: it came from the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp")]
pub struct InvalidTimestamp;

/// The longest RFC 3339 timestamp accepted: nanoseconds and a numeric offset,
/// `2026-01-01T00:00:00.123456789+02:00`.
const MAX_LEN: usize = 35;

/// `YYYY-MM-DDTHH:MM:SS[.1-9 digits](Z|+HH:MM|-HH:MM)`, `t` and `z` in either case, as RFC
/// 3339 section 5.6 writes it. jiff alone accepts more (RFC 9557 suffixes such as
/// `Z[x-name=alice]`, a space for `T`, comma fractions, `+0200`), which would reach
/// Segment verbatim if the text were passed on.
fn rfc3339_shape(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 20 || b.len() > MAX_LEN {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let date_time = digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !date_time {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if !(1..=9).contains(&(i - start)) {
            return false;
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

impl Timestamp {
    /// Reads a strict RFC 3339 timestamp; what leaves is the instant re-formatted in UTC.
    /// Anything else, or an instant whose UTC year is not four digits, is invalid.
    pub fn parse(text: &str) -> Result<Self, InvalidTimestamp> {
        if !rfc3339_shape(text) {
            return Err(InvalidTimestamp);
        }
        let at = jiff::Timestamp::from_str(text).map_err(|_| InvalidTimestamp)?;
        // jiff writes UTC with `Z` and the fraction only when it is not zero, trimmed.
        let formatted = at.to_string();
        if !rfc3339_shape(&formatted) || !formatted.ends_with('Z') {
            return Err(InvalidTimestamp);
        }
        Ok(Self {
            raw: formatted.into(),
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
    fn fractions_are_kept_without_trailing_zeros() {
        let t = Timestamp::parse("2026-01-01T00:01:00.5Z").unwrap();
        assert_eq!(t.as_str(), "2026-01-01T00:01:00.5Z");
        assert_eq!(t.unix_seconds(), 1_767_225_660);
        for (text, out) in [
            ("2026-01-01T00:01:00.500Z", "2026-01-01T00:01:00.5Z"),
            ("2026-01-01T00:01:00.000Z", "2026-01-01T00:01:00Z"),
            (
                "2026-01-01T00:01:00.123456789Z",
                "2026-01-01T00:01:00.123456789Z",
            ),
            ("2026-01-01t00:01:00z", "2026-01-01T00:01:00Z"),
            ("2026-03-03T11:36:25Z", "2026-03-03T11:36:25Z"),
        ] {
            assert_eq!(Timestamp::parse(text).unwrap().as_str(), out, "{text}");
        }
    }

    #[test]
    fn what_leaves_is_reformatted_in_utc() {
        let t = Timestamp::parse("2026-01-01T02:00:00.25+02:00").unwrap();
        assert_eq!(t.as_str(), "2026-01-01T00:00:00.25Z");
        assert_eq!(t.to_string(), "2026-01-01T00:00:00.25Z");
        let t = Timestamp::parse("2025-12-31T23:00:00-01:30").unwrap();
        assert_eq!(t.as_str(), "2026-01-01T00:30:00Z");
    }

    #[test]
    fn what_jiff_accepts_beyond_rfc_3339_is_invalid() {
        let long = format!("2026-01-01T00:00:00Z{}", "x".repeat(400));
        for bad in [
            "2026-01-01T00:00:00Z[x-name=alice]",
            "2026-01-01T00:00:00+00:00[Europe/Paris]",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00:00,5Z",
            "2026-01-01T00:00:00+0200",
            "2026-01-01T00:00Z",
            "20260101T000000Z",
            "2026-01-01T00:00:00.1234567890Z",
            "2026-01-01T00:00:00.Z",
            "+002026-01-01T00:00:00Z",
            " 2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00Z ",
            // UTC year outside four digits
            "0000-01-01T00:30:00+01:00",
            long.as_str(),
        ] {
            assert_eq!(Timestamp::parse(bad), Err(InvalidTimestamp), "{bad}");
        }
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
