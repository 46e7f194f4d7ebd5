//! Retry policy: when a failed attempt runs again.
//!
//! A job that fails with attempts left is scheduled again after
//! [`RetryPolicy::delay`]. The delay grows exponentially (or stays fixed), is
//! capped, and is spread by ±10 % jitter so that jobs that failed together do not
//! all retry in the same instant.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::InvalidInput;

/// How long to wait before the next attempt of a failed job.
///
/// The default is exponential from 1 s, capped at 16 s (seed 001's 1 s..16 s).
///
/// ```
/// use std::time::Duration;
/// use kyu_core::RetryPolicy;
///
/// let p = RetryPolicy::exponential(Duration::from_secs(2), Duration::from_secs(60));
/// // After the 1st attempt: about 2 s, after the 3rd: about 8 s, never more than 66 s.
/// let d = p.delay(3);
/// assert!(d >= Duration::from_millis(7200) && d <= Duration::from_millis(8800));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RetryPolicy {
    /// `initial × 2^(attempt-1)`, at most `cap`.
    Exponential {
        /// Delay after the first failed attempt, in milliseconds.
        initial_ms: u64,
        /// Largest delay, in milliseconds.
        cap_ms: u64,
    },
    /// The same delay after every failed attempt.
    Fixed {
        /// The delay, in milliseconds.
        delay_ms: u64,
    },
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::exponential(Duration::from_secs(1), Duration::from_secs(16))
    }
}

impl RetryPolicy {
    /// Exponential backoff from `initial`, capped at `cap`.
    pub fn exponential(initial: Duration, cap: Duration) -> Self {
        RetryPolicy::Exponential {
            initial_ms: initial.as_millis() as u64,
            cap_ms: cap.as_millis() as u64,
        }
    }

    /// The same `delay` after every failure.
    pub fn fixed(delay: Duration) -> Self {
        RetryPolicy::Fixed {
            delay_ms: delay.as_millis() as u64,
        }
    }

    /// The delay before the attempt after `attempt` (1-based) failed, before jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        match *self {
            RetryPolicy::Exponential { initial_ms, cap_ms } => {
                let shift = attempt.saturating_sub(1).min(62);
                let ms = initial_ms.saturating_mul(1u64 << shift).min(cap_ms);
                Duration::from_millis(ms)
            }
            RetryPolicy::Fixed { delay_ms } => Duration::from_millis(delay_ms),
        }
    }

    /// The delay before the next attempt, after attempt number `attempt`
    /// (1-based) failed: [`base_delay`](Self::base_delay) with ±10 % jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.base_delay(attempt).as_secs_f64();
        let factor = rand::thread_rng().gen_range(0.9..=1.1);
        Duration::from_secs_f64(base * factor)
    }

    /// Checks that the policy makes sense: a cap below the initial delay is refused.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        match *self {
            RetryPolicy::Exponential { initial_ms, cap_ms } if cap_ms < initial_ms => {
                Err(InvalidInput::new(
                    "retry",
                    format!(
                        "cap {cap_ms} ms is below the initial delay {initial_ms} ms; \
                         the cap must be at least the initial delay"
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_doubles_and_caps() {
        let p = RetryPolicy::exponential(Duration::from_secs(1), Duration::from_secs(16));
        let secs: Vec<u64> = (1..=7).map(|a| p.base_delay(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 16, 16]);
        // Huge attempt numbers neither overflow nor exceed the cap.
        assert_eq!(p.base_delay(u32::MAX), Duration::from_secs(16));
    }

    #[test]
    fn fixed_is_fixed() {
        let p = RetryPolicy::fixed(Duration::from_secs(2));
        assert_eq!(p.base_delay(1), p.base_delay(9));
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let p = RetryPolicy::exponential(Duration::from_secs(2), Duration::from_secs(60));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let d = p.delay(2).as_secs_f64();
            assert!((3.6..=4.4).contains(&d), "{d}");
            seen.insert((d * 1000.0) as u64);
        }
        assert!(seen.len() > 10, "jitter should spread delays");
    }

    #[test]
    fn cap_below_initial_is_refused() {
        let p = RetryPolicy::exponential(Duration::from_secs(10), Duration::from_secs(1));
        let e = p.validate().unwrap_err();
        assert!(e.to_string().contains("cap"), "{e}");
    }

    #[test]
    fn serializes_as_tagged_json() {
        let p = RetryPolicy::fixed(Duration::from_millis(500));
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"type":"fixed","delay_ms":500}"#
        );
    }
}
