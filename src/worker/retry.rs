//! The retry policy, pure: how long to wait before attempt `n + 1`.

use std::time::Duration;

use crate::config::RetrySettings;

/// Exponential backoff with "equal jitter": half the step is fixed, half random, so retries of
/// many jobs that failed together spread out instead of hitting the provider in a wave.
/// `jitter` is a uniform sample from `[0, 1)`.
pub fn backoff(settings: &RetrySettings, failed_attempt: u32, jitter: f64) -> Duration {
    let exp = failed_attempt.saturating_sub(1).min(30);
    let step = settings.base.saturating_mul(1u32 << exp).min(settings.max);
    let half = step / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// What to do after a failed attempt, before looking at the job's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    RetryAfter(Duration),
    /// `retry.max_attempts` provider calls were made.
    Exhausted,
}

pub fn next(
    settings: &RetrySettings,
    failed_attempt: u32,
    at_least: Option<Duration>,
    jitter: f64,
) -> Next {
    if failed_attempt >= settings.max_attempts.get() {
        return Next::Exhausted;
    }
    let delay = backoff(settings, failed_attempt, jitter);
    Next::RetryAfter(at_least.map_or(delay, |min| delay.max(min)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn settings() -> RetrySettings {
        RetrySettings {
            max_attempts: NonZeroU32::new(5).unwrap(),
            base: Duration::from_millis(500),
            max: Duration::from_millis(30_000),
        }
    }

    #[test]
    fn doubles_from_base_and_caps_at_max() {
        let s = settings();
        let full = |n| backoff(&s, n, 1.0);
        assert_eq!(full(1), Duration::from_millis(500));
        assert_eq!(full(2), Duration::from_millis(1000));
        assert_eq!(full(3), Duration::from_millis(2000));
        assert_eq!(full(7), Duration::from_millis(30_000));
        assert_eq!(full(1000), Duration::from_millis(30_000));
    }

    #[test]
    fn jitter_stays_within_half_to_full_step() {
        let s = settings();
        assert_eq!(backoff(&s, 2, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(&s, 2, 0.5), Duration::from_millis(750));
    }

    #[test]
    fn stops_after_max_attempts_and_honours_a_minimum() {
        let s = settings();
        assert_eq!(next(&s, 5, None, 0.0), Next::Exhausted);
        assert_eq!(
            next(&s, 1, Some(Duration::from_secs(60)), 0.0),
            Next::RetryAfter(Duration::from_secs(60))
        );
        assert_eq!(
            next(&s, 1, None, 0.0),
            Next::RetryAfter(Duration::from_millis(250))
        );
    }
}
