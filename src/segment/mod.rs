//! The Segment batch sender: events to `POST {api_url}/batch`, as
//! `shared/specs/segment-api.md` requires.
//!
//! The batches it sends are cut by [`crate::flush::batch`]; this module is the HTTP client
//! only.
//!
//! - [`sender`]: the HTTP side. [`Sender::send`] sends one batch with retries, backoff,
//!   `Retry-After` and a rate limit; [`Sender::send_all`] sends a flush's batches and
//!   reports which `messageId`s went out.
//! - [`metrics`]: the sender's Prometheus metrics.
//! - [`output`]: the flush's output: Segment, or nothing without a write key.
//!
//! The write key is a [`WriteKey`]: it never shows in logs, errors or `Debug` output.

pub mod backoff;
pub mod credentials;
pub mod metrics;
pub mod output;
pub mod sender;

pub use backoff::Backoff;
pub use metrics::SenderMetrics;
pub use sender::{
    ConfigError, DEFAULT_API_URL, Failure, SendError, Sender, SenderConfig, normalize_api_url,
};

use std::str::FromStr;

/// A Segment write key. Its `Debug` and `Display` print `***`: the key itself only
/// leaves this type as the Basic-auth user name of a request.
#[derive(Clone, PartialEq, Eq)]
pub struct WriteKey(String);

impl WriteKey {
    /// Wraps a key. Surrounding whitespace (a trailing newline from a mounted Secret) is
    /// removed.
    pub fn new(key: impl Into<String>) -> Self {
        let key: String = key.into();
        let trimmed = key.trim();
        if trimmed.len() == key.len() {
            Self(key)
        } else {
            Self(trimmed.to_owned())
        }
    }

    /// True for an empty key (nothing to authenticate with).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `candidate` is this key (a receiver checking a request's credentials),
    /// compared in time that does not depend on where they differ.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let key = self.0.as_bytes();
        key.len() == candidate.len()
            && key
                .iter()
                .zip(candidate)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// The key itself, for the `Authorization` header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

crate::secret::redacted_fmt!(WriteKey, "***");

/// An empty write key. The error does not repeat the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the write key is empty")]
pub struct EmptyWriteKey;

impl FromStr for WriteKey {
    type Err = EmptyWriteKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = WriteKey::new(s);
        if key.is_empty() {
            Err(EmptyWriteKey)
        } else {
            Ok(key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_key_is_hidden() {
        let key = WriteKey::new("s3cr3t-key\n");
        assert_eq!(format!("{key:?}"), "***");
        assert_eq!(format!("{key}"), "***");
        assert_eq!(key.expose(), "s3cr3t-key");
        assert!("".parse::<WriteKey>().is_err());
        assert!(" \n".parse::<WriteKey>().is_err());
    }
}
