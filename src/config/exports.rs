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

/// `serve`'s flags for the retry policy of new export jobs (a job keeps the policy it was
/// created with). Only retryable errors are retried (docs/api.md, exports).
#[derive(Debug, Clone, clap::Args)]
pub struct ExportRetryArgs {
    /// Attempts an export job gets, the first included (1 to 100; 1: never retry).
    #[arg(
        long = "export-max-attempts",
        env = "LOGBOOK_EXPORT_MAX_ATTEMPTS",
        default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..=100)
    )]
    pub max_attempts: u32,
    /// How the delay between attempts grows: fixed, linear, exponential or fibonacci.
    #[arg(
        long = "export-retry-strategy",
        env = "LOGBOOK_EXPORT_RETRY_STRATEGY",
        default_value = "exponential",
        value_parser = parse_strategy
    )]
    pub strategy: RetryStrategy,
    /// The backoff base: the delay before the first retry (`500ms`, `60s`, `5m`, `1h`; a bare
    /// number is seconds).
    #[arg(
        long = "export-retry-base",
        env = "LOGBOOK_EXPORT_RETRY_BASE",
        default_value = "60s",
        value_parser = parse_duration
    )]
    pub base_delay: Duration,
    /// The backoff cap: no delay between attempts is longer (same units).
    #[arg(
        long = "export-retry-cap",
        env = "LOGBOOK_EXPORT_RETRY_CAP",
        default_value = "3600s",
        value_parser = parse_duration
    )]
    pub max_delay: Duration,
}

impl ExportRetryArgs {
    /// The policy these flags set (jitter as by default); the base must not exceed the cap.
    pub fn policy(&self) -> Result<RetryPolicy, String> {
        if self.base_delay > self.max_delay {
            return Err(format!(
                "--export-retry-base ({:?}) is longer than --export-retry-cap ({:?})",
                self.base_delay, self.max_delay
            ));
        }
        Ok(RetryPolicy {
            max_attempts: self.max_attempts,
            strategy: self.strategy,
            base_delay: self.base_delay,
            max_delay: self.max_delay,
            ..RetryPolicy::default()
        })
    }
}

fn parse_strategy(text: &str) -> Result<RetryStrategy, String> {
    RetryStrategy::parse(&text.to_ascii_lowercase())
        .ok_or_else(|| "expected fixed, linear, exponential or fibonacci".to_owned())
}

/// `500ms`, `60s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 500ms, 60s, 5m, 1h)"))?;
    let millis = match unit.trim() {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is not a duration (e.g. 500ms, 60s, 5m, 1h)"))
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

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        retry: ExportRetryArgs,
    }

    #[test]
    fn retry_flags_set_the_policy() {
        use clap::Parser;
        let defaults = Cli::parse_from(["logbook"]).retry.policy().unwrap();
        assert_eq!(defaults, RetryPolicy::default());
        let set = Cli::parse_from([
            "logbook",
            "--export-max-attempts",
            "5",
            "--export-retry-strategy",
            "fixed",
            "--export-retry-base",
            "250ms",
            "--export-retry-cap",
            "2m",
        ])
        .retry
        .policy()
        .unwrap();
        assert_eq!(set.max_attempts, 5);
        assert_eq!(set.strategy, RetryStrategy::Fixed);
        assert_eq!(set.base_delay, Duration::from_millis(250));
        assert_eq!(set.max_delay, Duration::from_secs(120));
        assert!(Cli::try_parse_from(["logbook", "--export-max-attempts", "0"]).is_err());
        assert!(Cli::try_parse_from(["logbook", "--export-retry-base", "5 weeks"]).is_err());
        let inverted = Cli::parse_from(["logbook", "--export-retry-base", "2h"]).retry;
        assert!(inverted.policy().is_err());
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
    }
}
