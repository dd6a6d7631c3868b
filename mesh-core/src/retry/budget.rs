//! The retry budget shared by all requests to one destination.
//!
//! Requests and retries are counted in [`RetryBudget::BUCKETS`] buckets of `window / BUCKETS` each. A
//! retry is allowed while the retries counted are fewer than
//! `min_per_second * window_secs + ratio * requests counted`. The count covers the current
//! (partial) bucket and the `BUCKETS` before it, so a retry stays counted for at least
//! one `window` and at most one `window` plus one bucket: the budget never refills faster
//! than `min_per_second`, and a burst of requests may lend retries for up to a bucket
//! longer than `window`.
//!
//! Each counter packs its bucket number with its count in one `AtomicU64`, so moving a
//! bucket on to a new period is a single compare-and-swap and no count is lost to a reset.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::RetryBudgetConfig;
use crate::health::as_nanos;

/// Buckets per window.
const BUCKETS: usize = 10;

/// Bits of a packed counter that hold the count; the rest hold the bucket number.
const COUNT_BITS: u32 = 24;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
/// Bucket numbers are kept modulo 2^40, which spans decades for any sane window.
const EPOCH_MASK: u64 = (1 << (64 - COUNT_BITS)) - 1;

/// Retries may add at most `ratio` of requests plus `min_per_second` each second, counted
/// over a sliding window. Lock-free; time is passed in.
#[derive(Debug)]
pub struct RetryBudget {
    config: RetryBudgetConfig,
    /// Retries always allowed per window: `min_per_second * window_secs`.
    reserve: f64,
    /// `ratio`, made finite and non-negative.
    ratio: f64,
    bucket_ns: u64,
    /// One slot per bucket in the counted span (`BUCKETS` + the current one).
    deposits: [AtomicU64; BUCKETS + 1],
    withdrawals: [AtomicU64; BUCKETS + 1],
}

impl RetryBudget {
    /// How many buckets a window is counted in.
    pub const BUCKETS: usize = BUCKETS;

    /// A full budget.
    ///
    /// A negative or NaN `ratio` counts as 0; a window shorter than [`Self::BUCKETS`]
    /// nanoseconds counts as that long.
    pub fn new(config: RetryBudgetConfig) -> Self {
        let ratio = if config.ratio.is_nan() {
            0.0
        } else {
            config.ratio.clamp(0.0, f64::MAX)
        };
        Self {
            config,
            reserve: f64::from(config.min_per_second) * config.window.as_secs_f64(),
            ratio,
            bucket_ns: (as_nanos(config.window) / BUCKETS as u64).max(1),
            deposits: Default::default(),
            withdrawals: Default::default(),
        }
    }

    /// The configuration this budget was built with.
    pub fn config(&self) -> &RetryBudgetConfig {
        &self.config
    }

    /// Records a request (not a retry) at `now`.
    pub fn deposit(&self, now: Duration) {
        self.bump(&self.deposits, self.epoch(now));
    }

    /// Takes one retry from the budget at `now`; `false` when the budget is spent.
    pub fn try_withdraw(&self, now: Duration) -> bool {
        let epoch = self.epoch(now);
        let allowed = self.balance(epoch) > 0.0;
        if allowed {
            self.bump(&self.withdrawals, epoch);
        }
        allowed
    }

    /// How many retries the budget would allow at `now`, for reporting.
    pub fn remaining(&self, now: Duration) -> u64 {
        // `as` saturates: a negative balance is 0, an infinite one `u64::MAX`.
        self.balance(self.epoch(now)).ceil() as u64
    }

    /// `reserve + ratio * deposited - withdrawn` over the counted span: a retry is allowed
    /// while it is positive, that is while `withdrawn < reserve + ratio * deposited`.
    fn balance(&self, epoch: u64) -> f64 {
        let deposited = sum(&self.deposits, epoch) as f64;
        let withdrawn = sum(&self.withdrawals, epoch) as f64;
        let balance = self.reserve + self.ratio * deposited - withdrawn;
        if balance.is_nan() { 0.0 } else { balance }
    }

    fn epoch(&self, now: Duration) -> u64 {
        (as_nanos(now) / self.bucket_ns) & EPOCH_MASK
    }

    fn bump(&self, slots: &[AtomicU64; BUCKETS + 1], epoch: u64) {
        let slot = &slots[(epoch % slots.len() as u64) as usize];
        let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |packed| {
            let (e, count) = unpack(packed);
            Some(if e == epoch || is_newer(e, epoch) {
                // A caller whose clock reading is a bucket late adds to the newer bucket.
                pack(e, count.saturating_add(1).min(COUNT_MAX))
            } else {
                pack(epoch, 1)
            })
        });
    }
}

/// The counts of the current bucket and the [`BUCKETS`] before it.
fn sum(slots: &[AtomicU64; BUCKETS + 1], epoch: u64) -> u64 {
    slots
        .iter()
        .map(|slot| unpack(slot.load(Ordering::Relaxed)))
        .filter(|&(e, _)| age(epoch, e) <= BUCKETS as u64 || is_newer(e, epoch))
        .map(|(_, count)| count)
        .sum()
}

/// Buckets from `then` to `now`, modulo the epoch range.
fn age(now: u64, then: u64) -> u64 {
    now.wrapping_sub(then) & EPOCH_MASK
}

/// Whether bucket `e` is ahead of `now` (another caller's clock is slightly ahead).
fn is_newer(e: u64, now: u64) -> bool {
    e != now && age(now, e) > EPOCH_MASK / 2
}

fn pack(epoch: u64, count: u64) -> u64 {
    ((epoch & EPOCH_MASK) << COUNT_BITS) | count.min(COUNT_MAX)
}

fn unpack(packed: u64) -> (u64, u64) {
    (packed >> COUNT_BITS, packed & COUNT_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const SEC: Duration = Duration::from_secs(1);

    fn budget() -> RetryBudget {
        RetryBudget::new(RetryBudgetConfig::default())
    }

    fn drain(b: &RetryBudget, now: Duration) -> usize {
        let mut n = 0;
        while b.try_withdraw(now) {
            n += 1;
            assert!(n < 1_000_000, "budget never ran out");
        }
        n
    }

    #[test]
    fn is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<RetryBudget>();
    }

    #[test]
    fn starts_full() {
        let b = budget();
        assert_eq!(b.remaining(Duration::ZERO), 100);
        assert_eq!(drain(&b, Duration::ZERO), 100);
        assert_eq!(b.remaining(Duration::ZERO), 0);
    }

    #[test]
    fn deposits_lend_ratio_of_requests() {
        let b = budget();
        let t = Duration::from_secs(100);
        assert_eq!(drain(&b, t), 100);
        for _ in 0..50 {
            b.deposit(t);
        }
        assert_eq!(drain(&b, t), 10);
        // A fraction of a retry is enough: 110 withdrawn < 100 + 0.2 * 51.
        b.deposit(t);
        assert!(b.try_withdraw(t));
        for _ in 0..3 {
            b.deposit(t);
        }
        // 111 withdrawn, limit 100 + 0.2 * 54 = 110.8.
        assert!(!b.try_withdraw(t));
        b.deposit(t);
        b.deposit(t);
        assert!(b.try_withdraw(t));
    }

    #[test]
    fn refills_without_traffic() {
        let b = budget();
        let t = Duration::from_secs(5);
        assert_eq!(drain(&b, t), 100);
        // Still spent within the window.
        assert!(!b.try_withdraw(t + 9 * SEC));
        // Retries expire between one window and one window plus a bucket later.
        assert_eq!(drain(&b, t + 11 * SEC), 100);
    }

    #[test]
    fn old_buckets_expire_one_by_one() {
        let b = budget();
        // 10 retries in each of the first 10 seconds use the whole reserve.
        for s in 0..10 {
            for _ in 0..10 {
                assert!(b.try_withdraw(Duration::from_secs(s)));
            }
        }
        assert!(!b.try_withdraw(Duration::from_secs(10)));
        // At 11 s the retries of second 0 are out of the counted span.
        assert_eq!(drain(&b, Duration::from_secs(11)), 10);
    }

    /// Runs `secs` seconds of traffic where every request fails: `requests(ms)` new
    /// requests arrive at each millisecond, and every request still waiting retries (at most
    /// `attempts` times) as soon as the budget allows. Returns (requests, retries).
    fn fail_everything(secs: u64, attempts: u64, requests: impl Fn(u64) -> u64) -> (u64, u64) {
        let b = budget();
        let (mut sent, mut retries, mut waiting) = (0u64, 0u64, 0u64);
        for ms in 0..secs * 1000 {
            let now = Duration::from_millis(ms);
            for _ in 0..requests(ms) {
                b.deposit(now);
                sent += 1;
                waiting += attempts;
            }
            while waiting > 0 && b.try_withdraw(now) {
                waiting -= 1;
                retries += 1;
            }
        }
        (sent, retries)
    }

    /// Under 100% failure, retries stay within `0.2 * requests + 10 * seconds`, plus the
    /// reserve a fresh budget starts with (`min_per_second * window` = 100). Bucketing adds
    /// no slack: a retry stays counted for at least a full window, and a request lends
    /// retries only while the retries it paid for are still counted.
    /// New requests arriving at a given millisecond.
    type Arrivals = fn(u64) -> u64;

    #[test]
    fn sustained_failure_is_bounded() {
        let patterns: [(&str, Arrivals); 5] = [
            ("steady 1000/s", |_| 1),
            ("bursts at bucket ends", |ms| {
                if ms % 1000 == 999 { 1000 } else { 0 }
            }),
            ("bursts each window", |ms| {
                if ms % 10_000 == 0 { 5000 } else { 0 }
            }),
            ("odd bursts", |ms| if ms % 10_999 == 7 { 20_000 } else { 0 }),
            ("idle then busy", |ms| if ms > 60_000 { 3 } else { 0 }),
        ];
        let secs = 120;
        for (name, requests) in patterns {
            let (sent, retries) = fail_everything(secs, 3, requests);
            let bound = 0.2 * sent as f64 + 10.0 * secs as f64 + 100.0;
            assert!(retries as f64 <= bound, "{name}: {retries} > {bound}");
            // The budget is used, not just bounded.
            assert!(retries as f64 >= 0.2 * sent as f64, "{name}: {retries}");
        }
    }

    #[test]
    fn no_traffic_still_allows_min_per_second() {
        let b = budget();
        let mut retries = 0;
        for s in 0..60 {
            retries += drain(&b, Duration::from_secs(s));
        }
        // 100 at once, then 100 again each time the previous ones leave the window.
        assert!((500..=600).contains(&retries), "{retries}");
    }

    #[test]
    fn zero_and_odd_configs_are_safe() {
        let b = RetryBudget::new(RetryBudgetConfig {
            ratio: f64::NAN,
            min_per_second: 0,
            window: Duration::ZERO,
        });
        b.deposit(Duration::ZERO);
        assert!(!b.try_withdraw(Duration::ZERO));
        let b = RetryBudget::new(RetryBudgetConfig {
            ratio: f64::INFINITY,
            min_per_second: u32::MAX,
            window: Duration::MAX,
        });
        assert!(b.try_withdraw(Duration::MAX));
        b.deposit(Duration::MAX);
        assert!(b.try_withdraw(Duration::MAX));
        let b = RetryBudget::new(RetryBudgetConfig {
            ratio: -1.0,
            min_per_second: 1,
            window: Duration::from_secs(1),
        });
        b.deposit(Duration::ZERO);
        assert_eq!(drain(&b, Duration::ZERO), 1);
    }

    #[test]
    fn late_clock_readings_count_in_the_newer_bucket() {
        let b = RetryBudget::new(RetryBudgetConfig {
            ratio: 0.0,
            min_per_second: 2,
            window: Duration::from_secs(1),
        });
        assert!(b.try_withdraw(Duration::from_millis(1500)));
        // A caller with an older clock reading, mapped to the same slot eleven buckets back.
        assert!(b.try_withdraw(Duration::from_millis(400)));
        assert!(!b.try_withdraw(Duration::from_millis(1500)));
    }

    #[test]
    fn packing_round_trips() {
        assert_eq!(unpack(pack(12345, 678)), (12345, 678));
        assert_eq!(
            unpack(pack(EPOCH_MASK, COUNT_MAX + 5)),
            (EPOCH_MASK, COUNT_MAX)
        );
        assert!(is_newer(5, 4));
        assert!(!is_newer(4, 5));
        assert!(is_newer(0, EPOCH_MASK));
        assert_eq!(age(0, EPOCH_MASK), 1);
        let _ = MS;
    }
}
