//! Fully jittered exponential back-off.

use std::time::Duration;

use rand::{Rng, RngExt};

use crate::config::BackoffConfig;

/// The pause before retry number `retry` (1 for the first retry).
///
/// Uniform in `[0, min(max, base * 2^(retry-1))]` ("full jitter"), so that clients that
/// failed together do not retry together. Retry 0 counts as 1; any `retry` is safe, the
/// bound simply stops growing at `max` (itself capped at `u64::MAX` nanoseconds).
pub fn backoff<R: Rng + ?Sized>(config: &BackoffConfig, retry: u32, rng: &mut R) -> Duration {
    let bound = ceiling(config, retry);
    let bound_ns = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.random_range(0..=bound_ns))
}

/// The upper bound of the pause before retry number `retry`.
fn ceiling(config: &BackoffConfig, retry: u32) -> Duration {
    let doublings = retry.saturating_sub(1);
    1u32.checked_shl(doublings)
        .and_then(|factor| config.base.checked_mul(factor))
        .map_or(config.max, |d| d.min(config.max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const MS: Duration = Duration::from_millis(1);

    fn config() -> BackoffConfig {
        BackoffConfig {
            base: 25 * MS,
            max: 250 * MS,
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let c = config();
        assert_eq!(ceiling(&c, 0), 25 * MS);
        assert_eq!(ceiling(&c, 1), 25 * MS);
        assert_eq!(ceiling(&c, 2), 50 * MS);
        assert_eq!(ceiling(&c, 4), 200 * MS);
        assert_eq!(ceiling(&c, 5), 250 * MS);
        assert_eq!(ceiling(&c, 32), 250 * MS);
        assert_eq!(ceiling(&c, 33), 250 * MS);
        assert_eq!(ceiling(&c, u32::MAX), 250 * MS);
    }

    #[test]
    fn pauses_are_spread_over_the_whole_range() {
        let mut rng = StdRng::seed_from_u64(3);
        let pauses: Vec<Duration> = (0..1000).map(|_| backoff(&config(), 3, &mut rng)).collect();
        assert!(pauses.iter().all(|&p| p <= 100 * MS));
        assert!(pauses.iter().any(|&p| p < 10 * MS));
        assert!(pauses.iter().any(|&p| p > 90 * MS));
        let mean = pauses.iter().sum::<Duration>() / 1000;
        assert!(mean > 45 * MS && mean < 55 * MS, "{mean:?}");
    }

    #[test]
    fn degenerate_configs() {
        let mut rng = StdRng::seed_from_u64(3);
        let zero = BackoffConfig {
            base: Duration::ZERO,
            max: Duration::ZERO,
        };
        assert_eq!(backoff(&zero, 7, &mut rng), Duration::ZERO);
        let huge = BackoffConfig {
            base: Duration::MAX,
            max: Duration::MAX,
        };
        assert!(backoff(&huge, u32::MAX, &mut rng) <= Duration::from_nanos(u64::MAX));
        // max below base: max wins.
        let inverted = BackoffConfig {
            base: Duration::from_secs(1),
            max: MS,
        };
        assert!(backoff(&inverted, 1, &mut rng) <= MS);
    }

    proptest! {
        #[test]
        fn stays_within_bounds(
            base_ns in any::<u64>(),
            max_ns in any::<u64>(),
            retry in any::<u32>(),
            seed in any::<u64>(),
        ) {
            let config = BackoffConfig {
                base: Duration::from_nanos(base_ns),
                max: Duration::from_nanos(max_ns),
            };
            let mut rng = StdRng::seed_from_u64(seed);
            let pause = backoff(&config, retry, &mut rng);
            prop_assert!(pause <= config.max);
            let doublings = retry.saturating_sub(1).min(64);
            let grown = u128::from(base_ns) << doublings;
            prop_assert!(pause.as_nanos() <= grown);
        }
    }
}
