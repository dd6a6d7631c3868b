//! Recent latencies in a fixed log-linear histogram of atomics, for cheap percentiles.
//!
//! Latencies are counted in units of 65.536 µs (nanoseconds shifted right by 16). Below 32
//! units (about 2.1 ms) each unit has its bucket; above, each power of two is split into 16
//! buckets, so a bucket is at most 1/16 (6.25 %) wider than its lower edge. 272 buckets reach
//! 2^20 units (about 68.7 s); longer latencies are counted in the last bucket.
//!
//! Samples are kept in windows of a configurable length numbered from the caller's origin:
//! percentiles are computed over the current and the previous window, so a sample counts for
//! between one and two window lengths. Three histogram slots rotate: the current window's,
//! the previous one's, and an old one that is cleared by the first sample of a new window.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::health::as_nanos;

/// Nanoseconds are shifted right by this many bits to make the histogram's unit.
const UNIT_SHIFT: u32 = 16;
/// Buckets per power of two, as a power of two.
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// The largest value with its own bucket; above is counted here.
const MAX_UNITS: u64 = (1 << 20) - 1;
/// Number of buckets.
const BUCKETS: usize = bucket_of(MAX_UNITS) + 1;
/// Histogram slots: current window, previous window, and the next to reuse.
const SLOTS: usize = 3;
/// A slot's tag while it has never been used.
const EMPTY: u64 = u64::MAX;

/// The bucket of a value in units.
const fn bucket_of(units: u64) -> usize {
    if units < 2 * SUB {
        units as usize
    } else {
        let shift = 63 - units.leading_zeros() - SUB_BITS;
        (shift as u64 * SUB + (units >> shift)) as usize
    }
}

/// The largest value in units counted in `bucket`.
fn bucket_max(bucket: usize) -> u64 {
    let b = bucket as u64;
    if b < 2 * SUB {
        b
    } else {
        let shift = b / SUB - 1;
        let mantissa = b - shift * SUB;
        ((mantissa + 1) << shift) - 1
    }
}

/// One window's counts, tagged with the window number (`window << 1`, or `| 1` while the
/// counts are being cleared for it).
#[derive(Debug)]
struct Slot {
    tag: AtomicU64,
    counts: Box<[AtomicU64]>,
}

/// The latencies of recent requests, with their percentiles. Lock-free; time is passed in.
///
/// Accuracy: a percentile is reported as the upper edge of its bucket, so it is never below
/// the exact sample at that rank and at most 1/16 of it plus 65.536 µs above (latencies over
/// 68.7 s are reported as 68.7 s). Counting is exact except around a window change, when a
/// sample recorded while its slot is being cleared is dropped.
#[derive(Debug)]
pub struct LatencyTracker {
    window_ns: u64,
    min_samples: u64,
    slots: [Slot; SLOTS],
}

impl LatencyTracker {
    /// A tracker with windows of `window` (at least 1 ns) that reports no percentile until it
    /// holds `min_samples` samples (at least 1).
    pub fn new(window: Duration, min_samples: u64) -> Self {
        Self {
            window_ns: as_nanos(window).max(1),
            min_samples: min_samples.max(1),
            slots: std::array::from_fn(|_| Slot {
                tag: AtomicU64::new(EMPTY),
                counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            }),
        }
    }

    /// Records one request's `latency`, finished at `now`.
    pub fn record(&self, latency: Duration, now: Duration) {
        let window = self.window(now);
        let slot = &self.slots[(window % SLOTS as u64) as usize];
        let bucket = bucket_of((as_nanos(latency) >> UNIT_SHIFT).min(MAX_UNITS));
        let ready = window << 1;
        loop {
            let tag = slot.tag.load(Ordering::Acquire);
            if tag == ready {
                slot.counts[bucket].fetch_add(1, Ordering::Relaxed);
                return;
            }
            let held = tag >> 1;
            if tag != EMPTY && (tag & 1 == 1 || held > window) {
                // Being cleared by another caller, or already reused for a later window
                // (this reading is too late to count): drop the sample.
                return;
            }
            // An older window's counts: the first to claim the slot clears it.
            if slot
                .tag
                .compare_exchange(tag, ready | 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                for count in slot.counts.iter() {
                    count.store(0, Ordering::Relaxed);
                }
                slot.counts[bucket].fetch_add(1, Ordering::Relaxed);
                slot.tag.store(ready, Ordering::Release);
                return;
            }
        }
    }

    /// The samples in the current and previous window at `now`.
    pub fn count(&self, now: Duration) -> u64 {
        self.live_slots(now)
            .map(|slot| {
                slot.counts
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .sum::<u64>()
            })
            .sum()
    }

    /// The `p` quantile (0.95 for p95) of the latencies in the current and previous window at
    /// `now`, by nearest rank; `None` while fewer than `min_samples` are held, or when `p` is
    /// NaN. `p` is clamped to `0..=1`.
    pub fn percentile(&self, p: f64, now: Duration) -> Option<Duration> {
        if p.is_nan() {
            return None;
        }
        let mut counts = [0u64; BUCKETS];
        for slot in self.live_slots(now) {
            for (sum, count) in counts.iter_mut().zip(slot.counts.iter()) {
                *sum += count.load(Ordering::Relaxed);
            }
        }
        let total: u64 = counts.iter().sum();
        if total < self.min_samples {
            return None;
        }
        // Nearest rank: the smallest sample with at least `p` of the samples at or below it.
        let rank = ((p.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        let bucket = counts
            .iter()
            .position(|&c| {
                seen += c;
                seen >= rank
            })
            .unwrap_or(BUCKETS - 1);
        Some(Duration::from_nanos((bucket_max(bucket) + 1) << UNIT_SHIFT))
    }

    /// The slots holding the current or the previous window at `now`, fully cleared.
    fn live_slots(&self, now: Duration) -> impl Iterator<Item = &Slot> {
        let window = self.window(now);
        self.slots.iter().filter(move |slot| {
            let tag = slot.tag.load(Ordering::Acquire);
            tag != EMPTY && tag & 1 == 0 && {
                let held = tag >> 1;
                held == window || held.wrapping_add(1) == window
            }
        })
    }

    fn window(&self, now: Duration) -> u64 {
        // Below 2^63 for any window of at least 2 ns, so `window << 1` keeps every bit; a
        // 1 ns window is clamped there too.
        (as_nanos(now) / self.window_ns).min(u64::MAX >> 2)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<LatencyTracker>();
    }

    #[test]
    fn buckets_are_contiguous() {
        assert_eq!(BUCKETS, 272);
        let mut expected = 0;
        for b in 0..BUCKETS {
            assert_eq!(bucket_of(expected), b);
            let max = bucket_max(b);
            assert_eq!(bucket_of(max), b);
            if b + 1 < BUCKETS {
                assert_eq!(bucket_of(max + 1), b + 1);
            }
            // At most 1/16 wider than the lower edge (or one unit wide).
            let width = max + 1 - expected;
            assert!(width == 1 || width * SUB <= expected, "bucket {b}");
            expected = max + 1;
        }
        assert_eq!(expected, MAX_UNITS + 1);
    }

    #[test]
    fn none_until_min_samples() {
        let t = LatencyTracker::new(10 * SEC, 20);
        for _ in 0..19 {
            t.record(10 * MS, SEC);
        }
        assert_eq!(t.percentile(0.95, SEC), None);
        t.record(10 * MS, SEC);
        let p = t.percentile(0.95, SEC).unwrap();
        assert!(p >= 10 * MS && p <= 10 * MS * 17 / 16, "{p:?}");
        assert_eq!(t.percentile(f64::NAN, SEC), None);
    }

    #[test]
    fn percentile_picks_the_rank() {
        let t = LatencyTracker::new(10 * SEC, 1);
        for ms in 1..=100 {
            t.record(ms * MS, Duration::ZERO);
        }
        let at = |p: f64| t.percentile(p, Duration::ZERO).unwrap();
        let within = |got: Duration, want: Duration| {
            assert!(got >= want && got <= want * 17 / 16, "{got:?} for {want:?}");
        };
        within(at(0.95), 95 * MS);
        within(at(0.5), 50 * MS);
        within(at(1.0), 100 * MS);
        within(at(0.0), MS);
        within(at(-3.0), MS);
        within(at(7.0), 100 * MS);
    }

    #[test]
    fn extremes_fall_in_the_end_buckets() {
        let t = LatencyTracker::new(10 * SEC, 1);
        t.record(Duration::ZERO, Duration::ZERO);
        assert_eq!(
            t.percentile(0.5, Duration::ZERO),
            Some(Duration::from_nanos(1 << UNIT_SHIFT))
        );
        t.record(Duration::MAX, Duration::ZERO);
        t.record(Duration::from_secs(3600), Duration::ZERO);
        assert_eq!(
            t.percentile(1.0, Duration::ZERO),
            Some(Duration::from_nanos((MAX_UNITS + 1) << UNIT_SHIFT))
        );
    }

    #[test]
    fn windows_rotate_and_forget() {
        let t = LatencyTracker::new(SEC, 10);
        for _ in 0..100 {
            t.record(10 * MS, 500 * MS);
        }
        for _ in 0..100 {
            t.record(100 * MS, 1500 * MS);
        }
        // Window 1: windows 0 and 1 count.
        assert_eq!(t.count(1500 * MS), 200);
        let p25 = t.percentile(0.25, 1999 * MS).unwrap();
        assert!(p25 < 11 * MS, "{p25:?}");
        // Window 2: only window 1 counts.
        assert_eq!(t.count(2 * SEC), 100);
        let p25 = t.percentile(0.25, 2 * SEC).unwrap();
        assert!(p25 >= 100 * MS, "{p25:?}");
        // A sample in window 3 reuses window 0's slot, clearing it first.
        t.record(SEC, 3 * SEC);
        assert_eq!(t.count(3 * SEC), 1);
        assert_eq!(t.percentile(0.5, 3 * SEC), None);
        // Long idle: nothing counts.
        assert_eq!(t.count(100 * SEC), 0);
        assert_eq!(t.percentile(0.5, 100 * SEC), None);
        t.record(SEC, 100 * SEC);
        assert_eq!(t.count(100 * SEC), 1);
    }

    #[test]
    fn late_samples_are_counted_or_dropped() {
        let t = LatencyTracker::new(SEC, 1);
        t.record(MS, 5 * SEC);
        // The previous window's slot was never used: it takes the late sample.
        t.record(MS, 4 * SEC);
        assert_eq!(t.count(5 * SEC), 2);
        // Window 2 shares its slot with window 5, which is newer: dropped.
        t.record(MS, 2 * SEC);
        assert_eq!(t.count(5 * SEC), 2);
    }

    #[test]
    fn exact_counts_under_concurrency() {
        let t = LatencyTracker::new(10 * SEC, 1);
        std::thread::scope(|s| {
            for i in 0..8u64 {
                let t = &t;
                s.spawn(move || {
                    for j in 0..10_000u64 {
                        t.record(Duration::from_micros(i * 1000 + j % 500), SEC);
                    }
                });
            }
        });
        assert_eq!(t.count(SEC), 80_000);
    }

    proptest! {
        /// Against a sorted reference: the reported percentile is the sample at that rank,
        /// rounded up to its bucket's edge.
        #[test]
        fn percentile_matches_sorted_samples(
            mut samples in proptest::collection::vec(0u64..70_000_000, 1..400),
            p in 0.0f64..=1.0,
        ) {
            let t = LatencyTracker::new(10 * SEC, 1);
            for &us in &samples {
                t.record(Duration::from_micros(us), SEC);
            }
            samples.sort_unstable();
            let rank = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            let want = Duration::from_micros(samples[rank - 1]);
            let got = t.percentile(p, SEC).unwrap();
            let unit = Duration::from_nanos(1 << UNIT_SHIFT);
            let cap = Duration::from_nanos((MAX_UNITS + 1) << UNIT_SHIFT);
            prop_assert!(got >= want.min(cap), "{:?} < {:?}", got, want);
            prop_assert!(got <= want * 17 / 16 + unit, "{:?} > {:?}", got, want);
        }
    }
}
