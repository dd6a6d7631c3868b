//! A token bucket with Envoy's local rate limit semantics, as one packed atomic.
//!
//! Tokens are added in whole fills, not continuously: at each boundary `k * fill_interval`
//! (counted from the origin of the caller's clock) the bucket gains `tokens_per_fill`, capped at
//! `max_tokens`. This is what Envoy's timer-driven `local_ratelimit` does; here the fills a caller
//! missed are added when it next looks, so no timer is needed.
//!
//! The state is one `AtomicU64`: the fill index last applied (40 bits) and the tokens left
//! (24 bits). Taking a token is one compare-and-swap that applies the pending fills and
//! decrements together, so concurrent callers never get more tokens than the bucket holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::health::as_nanos;

/// Bits of the packed state holding the tokens; the rest hold the fill index.
const TOKEN_BITS: u32 = 24;
const TOKEN_MASK: u64 = (1 << TOKEN_BITS) - 1;
/// Fill indexes are kept modulo 2^40: over 34 years of 1 ms fills.
const INDEX_MASK: u64 = (1 << (64 - TOKEN_BITS)) - 1;
/// The token count of a bucket no caller has used yet: full, with no fill index, so the
/// first caller's clock sets the index whatever origin it counts from.
const FRESH: u64 = TOKEN_MASK;

/// The configuration of a [`TokenBucket`], as in Envoy's `token_bucket`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenBucketConfig {
    /// The most tokens the bucket holds, and the tokens it starts with (the burst size).
    pub max_tokens: u32,
    /// Tokens added at each fill interval boundary (Envoy's default is 1).
    pub tokens_per_fill: u32,
    /// The time between fills.
    pub fill_interval: Duration,
}

impl TokenBucketConfig {
    /// The largest `max_tokens` accepted, 16,777,214: the token count is packed in 24 bits
    /// and the largest value marks an unused bucket.
    pub const MAX_TOKENS: u32 = FRESH as u32 - 1;
    /// The shortest `fill_interval` accepted. Envoy asks for at least 50 ms because each
    /// fill is a timer event; fills here cost nothing until a caller looks, so 1 ms is allowed.
    pub const MIN_FILL_INTERVAL: Duration = Duration::from_millis(1);

    /// A bucket of `max_tokens` refilled with `tokens_per_fill` every `fill_interval`.
    pub fn new(max_tokens: u32, tokens_per_fill: u32, fill_interval: Duration) -> Self {
        Self {
            max_tokens,
            tokens_per_fill,
            fill_interval,
        }
    }

    /// Checks the ranges: `max_tokens` in `1..=MAX_TOKENS`, `tokens_per_fill >= 1` and
    /// `fill_interval >= MIN_FILL_INTERVAL`; the error names the field and says why.
    ///
    /// A `tokens_per_fill` above `max_tokens` is accepted (as in Envoy): it refills the bucket
    /// completely at every boundary.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_tokens == 0 {
            return Err("max_tokens must be at least 1".to_owned());
        }
        if self.max_tokens > Self::MAX_TOKENS {
            return Err(format!("max_tokens must be at most {}", Self::MAX_TOKENS));
        }
        if self.tokens_per_fill == 0 {
            return Err("tokens_per_fill must be at least 1".to_owned());
        }
        if self.fill_interval < Self::MIN_FILL_INTERVAL {
            return Err("fill_interval must be at least 1ms".to_owned());
        }
        Ok(())
    }
}

/// A token bucket: `max_tokens` at most, starting full, `tokens_per_fill` added at each
/// `fill_interval` boundary. Lock-free and exact under concurrency; time is passed in.
#[derive(Debug)]
pub struct TokenBucket {
    config: TokenBucketConfig,
    max: u64,
    per_fill: u64,
    interval_ns: u64,
    /// `fill index << TOKEN_BITS | tokens`.
    state: AtomicU64,
}

impl TokenBucket {
    /// A full bucket.
    ///
    /// Call [`TokenBucketConfig::validate`] first: out-of-range values are clamped into range
    /// here rather than rejected (`max_tokens` to `1..=MAX_TOKENS`, `tokens_per_fill` to at
    /// least 1, `fill_interval` to at least 1 ms).
    pub fn new(config: TokenBucketConfig) -> Self {
        let max = u64::from(config.max_tokens.clamp(1, TokenBucketConfig::MAX_TOKENS));
        let interval = config
            .fill_interval
            .max(TokenBucketConfig::MIN_FILL_INTERVAL);
        Self {
            config,
            max,
            per_fill: u64::from(config.tokens_per_fill.max(1)).min(max),
            interval_ns: as_nanos(interval),
            state: AtomicU64::new(pack(0, FRESH)),
        }
    }

    /// The configuration this bucket was built with.
    pub fn config(&self) -> &TokenBucketConfig {
        &self.config
    }

    /// Takes one token at `now`; `false` (rate limited) when the bucket is empty.
    ///
    /// A caller whose `now` is behind the last fill another caller applied (its clock was read
    /// a little earlier) takes from the bucket as it is, without adding fills.
    pub fn try_acquire(&self, now: Duration) -> bool {
        let index = self.index(now);
        self.state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |packed| {
                let (last, tokens) = self.refill(packed, index);
                (tokens > 0).then(|| pack(last, tokens - 1))
            })
            .is_ok()
    }

    /// The tokens the bucket holds at `now`, for reporting.
    pub fn available(&self, now: Duration) -> u64 {
        self.refill(self.state.load(Ordering::Relaxed), self.index(now))
            .1
    }

    /// The number of the fill interval `now` is in, modulo 2^40.
    fn index(&self, now: Duration) -> u64 {
        (as_nanos(now) / self.interval_ns) & INDEX_MASK
    }

    /// The state at fill `index`: the fills since the last applied one added, capped at max.
    ///
    /// A reading from before the last applied fill is taken as late (another caller read
    /// its clock later) when it is less than 2^39 fills behind; the bucket is then used as
    /// it is. So a bucket idle for over 2^39 fills (17 years at 1 ms) may miss its refill.
    fn refill(&self, packed: u64, index: u64) -> (u64, u64) {
        let (last, tokens) = unpack(packed);
        if tokens == FRESH {
            return (index, self.max);
        }
        let elapsed = index.wrapping_sub(last) & INDEX_MASK;
        if elapsed == 0 || elapsed > INDEX_MASK / 2 {
            // The same fill, or a reading from before the last applied fill.
            return (last, tokens);
        }
        let added = elapsed.saturating_mul(self.per_fill);
        (index, tokens.saturating_add(added).min(self.max))
    }
}

fn pack(index: u64, tokens: u64) -> u64 {
    ((index & INDEX_MASK) << TOKEN_BITS) | (tokens & TOKEN_MASK)
}

fn unpack(packed: u64) -> (u64, u64) {
    (packed >> TOKEN_BITS, packed & TOKEN_MASK)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use proptest::prelude::*;

    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const SEC: Duration = Duration::from_secs(1);

    fn bucket(max: u32, per_fill: u32, interval: Duration) -> TokenBucket {
        TokenBucket::new(TokenBucketConfig::new(max, per_fill, interval))
    }

    fn drain(b: &TokenBucket, now: Duration) -> u64 {
        let mut n = 0;
        while b.try_acquire(now) {
            n += 1;
            assert!(
                n <= u64::from(TokenBucketConfig::MAX_TOKENS),
                "never empties"
            );
        }
        n
    }

    #[test]
    fn is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<TokenBucket>();
    }

    #[test]
    fn validation_names_the_field() {
        let ok = TokenBucketConfig::new(10, 1, SEC);
        assert_eq!(ok.validate(), Ok(()));
        let bad = |c: TokenBucketConfig, field: &str| {
            let e = c.validate().unwrap_err();
            assert!(e.starts_with(field), "{e}");
        };
        bad(
            TokenBucketConfig {
                max_tokens: 0,
                ..ok
            },
            "max_tokens",
        );
        bad(
            TokenBucketConfig {
                max_tokens: (1 << 24) - 1,
                ..ok
            },
            "max_tokens",
        );
        bad(
            TokenBucketConfig {
                tokens_per_fill: 0,
                ..ok
            },
            "tokens_per_fill",
        );
        let fast = TokenBucketConfig {
            fill_interval: Duration::from_micros(999),
            ..ok
        };
        bad(fast, "fill_interval");
        let edge = TokenBucketConfig::new(TokenBucketConfig::MAX_TOKENS, u32::MAX, MS);
        assert_eq!(edge.validate(), Ok(()));
    }

    #[test]
    fn starts_full_and_empties() {
        let b = bucket(5, 1, SEC);
        assert_eq!(b.available(Duration::ZERO), 5);
        assert_eq!(drain(&b, Duration::ZERO), 5);
        assert_eq!(b.available(Duration::ZERO), 0);
    }

    #[test]
    fn refills_in_whole_fills_at_boundaries() {
        let b = bucket(10, 3, SEC);
        let t = Duration::from_secs(7);
        assert_eq!(drain(&b, t), 10);
        // Nothing within the same interval, however close to its end.
        assert!(!b.try_acquire(t + SEC - Duration::from_nanos(1)));
        // Exactly at the boundary, one fill.
        assert_eq!(drain(&b, t + SEC), 3);
        // Two boundaries crossed: two fills.
        assert_eq!(drain(&b, t + 3 * SEC + 500 * MS), 6);
        // Many boundaries: capped at max.
        assert_eq!(drain(&b, t + 100 * SEC), 10);
    }

    #[test]
    fn boundaries_count_from_the_origin() {
        let b = bucket(1, 1, 100 * MS);
        assert!(b.try_acquire(99 * MS));
        // 99 ms and 100 ms are in different intervals: a fill in between.
        assert!(b.try_acquire(100 * MS));
        assert!(!b.try_acquire(199 * MS));
        assert!(b.try_acquire(200 * MS));
    }

    #[test]
    fn never_above_max() {
        let b = bucket(4, 100, MS);
        assert_eq!(b.available(SEC), 4);
        assert!(b.try_acquire(SEC));
        assert_eq!(b.available(SEC + MS), 4);
        let b = bucket(4, u32::MAX, MS);
        assert_eq!(drain(&b, Duration::MAX), 4);
    }

    #[test]
    fn any_origin_works() {
        // A clock counted from long ago (fill indexes past 2^39): the first reading sets the
        // index, and later fills are applied.
        let b = bucket(2, 1, MS);
        let long_ago = Duration::from_secs(56 * 365 * 24 * 3600);
        assert_eq!(drain(&b, long_ago), 2);
        assert!(!b.try_acquire(long_ago));
        assert_eq!(drain(&b, long_ago + MS), 1);
        assert_eq!(drain(&b, long_ago + 10 * MS), 2);
        assert_eq!(b.available(long_ago + 20 * MS), 2);
    }

    #[test]
    fn late_readings_take_without_refilling() {
        let b = bucket(2, 2, SEC);
        assert_eq!(drain(&b, 5 * SEC), 2);
        // Another caller read its clock before the 5 s fill was applied.
        assert!(!b.try_acquire(4 * SEC));
        assert!(!b.try_acquire(5 * SEC));
        assert_eq!(drain(&b, 6 * SEC), 2);
    }

    #[test]
    fn odd_configs_are_clamped() {
        let b = bucket(0, 0, Duration::ZERO);
        assert_eq!(drain(&b, Duration::ZERO), 1);
        assert!(!b.try_acquire(Duration::from_micros(999)));
        assert!(b.try_acquire(MS));
        let b = bucket(u32::MAX, 1, SEC);
        assert_eq!(
            b.available(Duration::ZERO),
            u64::from(TokenBucketConfig::MAX_TOKENS)
        );
    }

    #[test]
    fn exact_under_concurrency() {
        let b = bucket(1000, 10, SEC);
        let granted = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        if b.try_acquire(Duration::ZERO) {
                            granted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(granted.into_inner(), 1000);
    }

    #[test]
    fn bounded_under_concurrency_across_fills() {
        let b = bucket(100, 10, MS);
        let granted = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for ms in 0..200 {
                        for _ in 0..50 {
                            if b.try_acquire(ms * MS) {
                                granted.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
        });
        // The fill index only moves forward: at most 199 fills are applied.
        let granted = granted.into_inner();
        assert!(granted <= 100 + 199 * 10, "{granted}");
        // Every interval sees 8 * 50 attempts, so the bucket is drained at the end.
        assert_eq!(b.available(199 * MS), 0);
    }

    /// A straightforward model: u128 arithmetic, no packing, no wrapping.
    struct Model {
        max: u128,
        per_fill: u128,
        interval: u128,
        last: u128,
        tokens: u128,
    }

    impl Model {
        fn try_acquire(&mut self, now: Duration) -> bool {
            let index = now.as_nanos() / self.interval;
            if index > self.last {
                self.tokens = (self.tokens + (index - self.last) * self.per_fill).min(self.max);
                self.last = index;
            }
            let ok = self.tokens > 0;
            if ok {
                self.tokens -= 1;
            }
            ok
        }
    }

    proptest! {
        /// Over any schedule (times in any order), grants never exceed `max_tokens` plus one
        /// fill per boundary between the first call and the latest time seen, and every
        /// decision matches the model.
        #[test]
        fn never_grants_more_than_fills_allow(
            max in 1u32..50,
            per_fill in 1u32..20,
            interval_ms in 1u64..100,
            times in proptest::collection::vec(0u64..20_000, 1..300),
        ) {
            let interval = Duration::from_millis(interval_ms);
            let b = bucket(max, per_fill, interval);
            let mut model = Model {
                max: max.into(),
                per_fill: per_fill.into(),
                interval: interval.as_nanos(),
                last: 0,
                tokens: max.into(),
            };
            let mut granted = 0u64;
            for &ms in &times {
                let now = Duration::from_millis(ms);
                let ok = b.try_acquire(now);
                prop_assert_eq!(ok, model.try_acquire(now));
                granted += u64::from(ok);
            }
            let first = times[0] / interval_ms;
            let latest = times.iter().max().unwrap() / interval_ms;
            let bound = u64::from(max) + (latest - first) * u64::from(per_fill);
            prop_assert!(granted <= bound, "{} > {}", granted, bound);
        }
    }

    #[test]
    fn packing_round_trips() {
        assert_eq!(
            unpack(pack(INDEX_MASK, TOKEN_MASK)),
            (INDEX_MASK, TOKEN_MASK)
        );
        assert_eq!(unpack(pack(12345, 678)), (12345, 678));
        assert!(u64::from(TokenBucketConfig::MAX_TOKENS) < FRESH);
    }
}
