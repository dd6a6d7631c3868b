//! Hedged requests: when an attempt is slower than most, send a second one and take
//! whichever answers first.
//!
//! Three pieces, all pure: a [`LatencyTracker`] of recent latencies gives the delay after
//! which an attempt counts as slow (a high percentile, p95 by default); a [`HedgeBudget`]
//! caps the extra load hedges add; a [`HedgePolicy`] holds the settings and turns the
//! tracker's percentile into a hedge delay. The tower layer records the latency of every
//! completed attempt, deposits one per original request, starts the timer from
//! [`HedgePolicy::hedge_delay`], and sends the hedge only if [`HedgeBudget::try_withdraw`]
//! allows it. Only idempotent requests should be hedged.

mod budget;
mod tracker;

use std::time::Duration;

pub use budget::HedgeBudget;
pub use tracker::LatencyTracker;

/// When to hedge and how much extra load hedging may add.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HedgePolicy {
    /// The latency quantile after which an attempt is hedged, as a fraction (0.95).
    pub percentile: f64,
    /// Hedges allowed, in percent of original requests (10).
    pub max_extra_percent: f64,
    /// Hedges always allowed each second, whatever the traffic (1).
    pub min_per_second: u32,
    /// The shortest hedge delay, however fast recent requests were (1 ms): hedging sooner
    /// would mostly duplicate requests that were about to answer.
    pub min_delay: Duration,
    /// The length of the latency tracker's windows and of the budget's window (10 s).
    pub window: Duration,
    /// Samples needed before hedging starts (20): below that a percentile is noise.
    pub min_samples: u64,
}

impl Default for HedgePolicy {
    fn default() -> Self {
        Self {
            percentile: 0.95,
            max_extra_percent: 10.0,
            min_per_second: 1,
            min_delay: Duration::from_millis(1),
            window: Duration::from_secs(10),
            min_samples: 20,
        }
    }
}

impl HedgePolicy {
    /// Checks the ranges; the error names the field and says why.
    ///
    /// `percentile` must be in `(0, 1]` (a fraction: 0.95, not 95), `max_extra_percent` in
    /// `0..=100`, `window` at least 1 ms and `min_samples` at least 1.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.percentile > 0.0 && self.percentile <= 1.0) {
            return Err("percentile must be a fraction in (0, 1], such as 0.95".to_owned());
        }
        if !(0.0..=100.0).contains(&self.max_extra_percent) {
            return Err("max_extra_percent must be between 0 and 100".to_owned());
        }
        if self.window < Duration::from_millis(1) {
            return Err("window must be at least 1ms".to_owned());
        }
        if self.min_samples == 0 {
            return Err("min_samples must be at least 1".to_owned());
        }
        Ok(())
    }

    /// A latency tracker with this policy's window and minimum samples.
    pub fn tracker(&self) -> LatencyTracker {
        LatencyTracker::new(self.window, self.min_samples)
    }

    /// A full hedge budget with this policy's limits.
    pub fn budget(&self) -> HedgeBudget {
        HedgeBudget::new(self.max_extra_percent, self.min_per_second, self.window)
    }

    /// How long to wait for an attempt before hedging it, at `now`: the tracker's
    /// `percentile`, at least `min_delay`. `None` means do not hedge (too few samples yet).
    pub fn hedge_delay(&self, tracker: &LatencyTracker, now: Duration) -> Option<Duration> {
        tracker
            .percentile(self.percentile, now)
            .map(|d| d.max(self.min_delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn default_is_valid() {
        assert_eq!(HedgePolicy::default().validate(), Ok(()));
    }

    #[test]
    fn validation_names_the_field() {
        let ok = HedgePolicy::default();
        let bad = |p: HedgePolicy, field: &str| {
            let e = p.validate().unwrap_err();
            assert!(e.starts_with(field), "{e}");
        };
        for percentile in [0.0, -0.5, 95.0, f64::NAN, f64::INFINITY] {
            bad(HedgePolicy { percentile, ..ok }, "percentile");
        }
        for max_extra_percent in [-1.0, 100.5, f64::NAN] {
            bad(
                HedgePolicy {
                    max_extra_percent,
                    ..ok
                },
                "max_extra_percent",
            );
        }
        bad(
            HedgePolicy {
                window: Duration::ZERO,
                ..ok
            },
            "window",
        );
        bad(
            HedgePolicy {
                min_samples: 0,
                ..ok
            },
            "min_samples",
        );
        assert_eq!(
            HedgePolicy {
                percentile: 1.0,
                max_extra_percent: 0.0,
                ..ok
            }
            .validate(),
            Ok(())
        );
    }

    #[test]
    fn delay_is_the_percentile_with_a_floor() {
        let policy = HedgePolicy::default();
        let tracker = policy.tracker();
        let now = Duration::from_secs(1);
        for _ in 0..19 {
            tracker.record(40 * MS, now);
        }
        assert_eq!(policy.hedge_delay(&tracker, now), None);
        tracker.record(40 * MS, now);
        let delay = policy.hedge_delay(&tracker, now).unwrap();
        assert!(delay >= 40 * MS && delay <= 43 * MS, "{delay:?}");
        // Very fast requests: the floor.
        let fast = policy.tracker();
        for _ in 0..20 {
            fast.record(Duration::from_micros(10), now);
        }
        assert_eq!(policy.hedge_delay(&fast, now), Some(MS));
    }

    #[test]
    fn p95_ignores_the_slow_tail() {
        let policy = HedgePolicy::default();
        let tracker = policy.tracker();
        let now = Duration::ZERO;
        for i in 0..1000 {
            let latency = if i % 100 < 96 { 20 * MS } else { 2000 * MS };
            tracker.record(latency, now);
        }
        let delay = policy.hedge_delay(&tracker, now).unwrap();
        assert!(delay < 22 * MS, "{delay:?}");
    }

    #[test]
    fn budget_follows_the_policy() {
        let policy = HedgePolicy {
            min_per_second: 2,
            window: Duration::from_secs(5),
            ..HedgePolicy::default()
        };
        assert_eq!(policy.budget().remaining(Duration::ZERO), 10);
    }
}
