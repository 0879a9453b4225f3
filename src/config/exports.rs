//! Export settings and the retry policy of export jobs (docs/domain.md §10.2).

use std::path::PathBuf;
use std::time::Duration;

use crate::closed_set::closed_set;
use serde::{Deserialize, Serialize};

closed_set! {
    /// How a failed attempt's delay grows (docs/domain.md §10.2).
    #[derive(Serialize, Deserialize, async_graphql::Enum)]
    #[serde(rename_all = "snake_case")]
    pub enum RetryStrategy {
        Fixed => "fixed",
        Linear => "linear",
        Exponential => "exponential",
        Fibonacci => "fibonacci",
    }
}

const FIBONACCI: [u64; 12] = [1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144];

/// Retry configuration (docs/domain.md §10.2 defaults: 3 attempts, exponential, 60 s base, 3600 s
/// cap, jitter 0.2). `max_attempts` counts every attempt, the first included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub strategy: RetryStrategy,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub jitter_factor: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            strategy: RetryStrategy::Exponential,
            base_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(3600),
            jitter_factor: 0.2,
        }
    }
}

impl RetryPolicy {
    /// Whether another attempt follows attempt `attempt` (1-based) that just failed.
    pub fn should_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The delay before the attempt after `attempt` (1-based), in milliseconds: fixed = base,
    /// linear = base × attempt, exponential = base × 2^(attempt−1), fibonacci = base ×
    /// F[min(attempt−1, 11)]; plus `delay × jitter × u` for `u` in [0, 1); capped at `max_delay`.
    pub fn delay_ms(&self, attempt: u32, u: f64) -> u64 {
        let base = self.base_delay.as_millis() as u64;
        let n = attempt.max(1) as u64;
        let delay = match self.strategy {
            RetryStrategy::Fixed => base,
            RetryStrategy::Linear => base.saturating_mul(n),
            RetryStrategy::Exponential => {
                base.saturating_mul(1u64.checked_shl((n - 1) as u32).unwrap_or(u64::MAX))
            }
            RetryStrategy::Fibonacci => {
                base.saturating_mul(FIBONACCI[((n - 1) as usize).min(FIBONACCI.len() - 1)])
            }
        };
        let jittered = if self.jitter_factor > 0.0 {
            delay.saturating_add((delay as f64 * self.jitter_factor * u.clamp(0.0, 1.0)) as u64)
        } else {
            delay
        };
        jittered.min(self.max_delay.as_millis() as u64)
    }
}

/// Where artefacts go and how the in-process workers behave.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// Directory of artefacts and manifests (shared by every server process of a deployment).
    pub dir: PathBuf,
    /// Run export workers in this process.
    pub worker: bool,
    /// How often an idle worker looks for due jobs (new jobs of this process wake it at once).
    pub poll_interval: Duration,
    /// How long a claimed job stays owned without a heartbeat; a dead worker's job is
    /// reclaimed after it.
    pub lease_ttl: Duration,
    /// Rows per keyset batch.
    pub batch_size: u64,
    /// How often a worker deletes partial files (`*.part-<attempt>`) whose attempt is no
    /// longer the live leased attempt of its job (also done when the worker starts).
    pub sweep_interval: Duration,
    pub retry: RetryPolicy,
    /// Test hook: the first N attempts of every job fail after writing their first batch.
    pub fail_first_attempts: u32,
    /// Test hook: a pause after each batch (to observe or interrupt a running job).
    pub batch_delay: Duration,
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings {
            dir: PathBuf::from("exports"),
            worker: true,
            poll_interval: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(30),
            batch_size: 5_000,
            sweep_interval: Duration::from_secs(600),
            retry: RetryPolicy::default(),
            fail_first_attempts: 0,
            batch_delay: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(strategy: RetryStrategy) -> RetryPolicy {
        RetryPolicy {
            strategy,
            jitter_factor: 0.0,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn delays_follow_the_strategies() {
        let exp = policy(RetryStrategy::Exponential);
        assert_eq!(
            (1..=4).map(|a| exp.delay_ms(a, 0.5)).collect::<Vec<_>>(),
            [60_000, 120_000, 240_000, 480_000]
        );
        let lin = policy(RetryStrategy::Linear);
        assert_eq!(lin.delay_ms(3, 0.0), 180_000);
        let fib = policy(RetryStrategy::Fibonacci);
        assert_eq!(fib.delay_ms(5, 0.0), 5 * 60_000);
        assert_eq!(fib.delay_ms(40, 0.0), 3_600_000);
        let fixed = policy(RetryStrategy::Fixed);
        assert_eq!(fixed.delay_ms(9, 0.0), 60_000);
        let jitter = RetryPolicy::default();
        assert_eq!(jitter.delay_ms(1, 0.5), 66_000);
        assert!(exp.should_retry(2) && !exp.should_retry(3));
    }
}
