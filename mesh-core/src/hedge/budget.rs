//! The hedge budget: the extra load hedging may add to one destination.
//!
//! A thin wrapper over the retry budget's windowed counting ([`RetryBudget`]): each original
//! request deposits, each hedge withdraws, and hedges stay within `max_extra_percent` of the
//! requests plus `min_per_second` each second, counted over a sliding window.

use std::time::Duration;

use crate::config::RetryBudgetConfig;
use crate::retry::RetryBudget;

/// Hedges may add at most `max_extra_percent` % of requests plus `min_per_second` each
/// second, counted over a sliding `window`. Starts with `min_per_second * window` hedges
/// available. Lock-free; time is passed in.
#[derive(Debug)]
pub struct HedgeBudget {
    inner: RetryBudget,
}

impl HedgeBudget {
    /// A full budget. A negative or NaN percentage counts as 0.
    pub fn new(max_extra_percent: f64, min_per_second: u32, window: Duration) -> Self {
        Self {
            inner: RetryBudget::new(RetryBudgetConfig {
                ratio: max_extra_percent / 100.0,
                min_per_second,
                window,
            }),
        }
    }

    /// Records an original request (not a hedge) at `now`.
    pub fn deposit(&self, now: Duration) {
        self.inner.deposit(now);
    }

    /// Takes one hedge from the budget at `now`; `false` when the budget is spent.
    pub fn try_withdraw(&self, now: Duration) -> bool {
        self.inner.try_withdraw(now)
    }

    /// How many hedges the budget would allow at `now`, for reporting.
    pub fn remaining(&self, now: Duration) -> u64 {
        self.inner.remaining(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn starts_with_the_floor() {
        let b = HedgeBudget::new(10.0, 1, 10 * SEC);
        assert_eq!(b.remaining(Duration::ZERO), 10);
        for _ in 0..10 {
            assert!(b.try_withdraw(Duration::ZERO));
        }
        assert!(!b.try_withdraw(Duration::ZERO));
        for _ in 0..10 {
            b.deposit(Duration::ZERO);
        }
        assert!(b.try_withdraw(Duration::ZERO));
        assert!(!b.try_withdraw(Duration::ZERO));
    }

    /// Every request would like a hedge; over a long run the hedges stay within 10 % of the
    /// requests plus the floor, and the budget is used.
    #[test]
    fn caps_extra_load_over_a_long_run() {
        let secs = 300u64;
        for (name, per_ms) in [("steady", 1u64), ("busy", 5), ("quiet", 0)] {
            let b = HedgeBudget::new(10.0, 1, 10 * SEC);
            let (mut sent, mut hedges) = (0u64, 0u64);
            for ms in 0..secs * 1000 {
                let now = Duration::from_millis(ms);
                // A quiet service: one request every 100 ms.
                let arrivals = if per_ms == 0 {
                    u64::from(ms % 100 == 0)
                } else {
                    per_ms
                };
                for _ in 0..arrivals {
                    b.deposit(now);
                    sent += 1;
                    if b.try_withdraw(now) {
                        hedges += 1;
                    }
                }
            }
            let bound = 0.1 * sent as f64 + secs as f64 + 10.0;
            assert!(hedges as f64 <= bound, "{name}: {hedges} > {bound}");
            assert!(
                hedges as f64 >= 0.1 * sent as f64,
                "{name}: {hedges} of {sent}"
            );
        }
    }

    #[test]
    fn odd_values_are_safe() {
        let b = HedgeBudget::new(f64::NAN, 0, Duration::ZERO);
        b.deposit(Duration::ZERO);
        assert!(!b.try_withdraw(Duration::ZERO));
        let b = HedgeBudget::new(-5.0, 0, SEC);
        b.deposit(Duration::ZERO);
        assert!(!b.try_withdraw(Duration::ZERO));
    }
}
