//! A value that must not show: the Segment write key and the Results token as flags.

use std::convert::Infallible;
use std::str::FromStr;

/// A secret string. `Debug` and `Display` print `<redacted>`; only [`Secret::expose`]
/// gives the value, for the one place that sends it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// `Debug` and `Display` for a type holding a secret: both print `$mask`, never the value.
macro_rules! redacted_fmt {
    ($type:ty, $mask:literal) => {
        impl std::fmt::Debug for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($mask)
            }
        }

        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($mask)
            }
        }
    };
}
pub(crate) use redacted_fmt;

redacted_fmt!(Secret, "<redacted>");

impl FromStr for Secret {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_shows_only_when_exposed() {
        let s: Secret = "tok-123".parse().unwrap_or_default();
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(<redacted>)");
        assert_eq!(s.expose(), "tok-123");
    }
}
