//! Exponential backoff with full jitter, bounded by a total deadline.

use std::time::Duration;

/// How long to wait between attempts at one batch: attempt `n` (0 for the first retry)
/// waits a uniformly random time in `[0, min(cap, base * 2^n)]` ("full jitter"); no
/// attempt starts after `deadline` has passed since the first one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first wait.
    pub base: Duration,
    /// The largest ceiling any wait has.
    pub cap: Duration,
    /// The total time one batch may take, retries and waits included.
    pub deadline: Duration,
}

impl Default for Backoff {
    /// base 500 ms, cap 60 s, deadline 10 min.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(60),
            deadline: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// The largest wait before retry `retry` (0-based): `min(cap, base * 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The wait before retry `retry`: uniform in `[0, ceiling(retry)]`, from `unit`, a
    /// number in `[0, 1)`.
    pub fn delay_with(&self, retry: u32, unit: f64) -> Duration {
        self.ceiling(retry).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The wait before retry `retry`, with fresh randomness.
    pub fn delay(&self, retry: u32) -> Duration {
        self.delay_with(retry, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let b = Backoff {
            base: ms(500),
            cap: ms(60_000),
            deadline: ms(600_000),
        };
        assert_eq!(b.ceiling(0), ms(500));
        assert_eq!(b.ceiling(1), ms(1_000));
        assert_eq!(b.ceiling(3), ms(4_000));
        assert_eq!(b.ceiling(6), ms(32_000));
        assert_eq!(b.ceiling(7), ms(60_000));
        assert_eq!(b.ceiling(40), ms(60_000));
        assert_eq!(b.ceiling(u32::MAX), ms(60_000));
    }

    #[test]
    fn full_jitter_stays_within_the_ceiling() {
        let b = Backoff::default();
        assert_eq!(b.delay_with(2, 0.0), Duration::ZERO);
        assert_eq!(b.delay_with(2, 0.5), ms(1_000));
        assert_eq!(b.delay_with(2, 1.0), ms(2_000));
        assert_eq!(b.delay_with(2, 7.0), ms(2_000));
        for retry in 0..20 {
            for _ in 0..50 {
                assert!(b.delay(retry) <= b.ceiling(retry));
            }
        }
    }

    #[test]
    fn defaults_are_the_spec_values() {
        let b = Backoff::default();
        assert_eq!(b.base, ms(500));
        assert_eq!(b.cap, Duration::from_secs(60));
    }
}
