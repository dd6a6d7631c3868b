//! A lock-free peak-EWMA round-trip-time estimate, as in Linkerd and tower's `peak_ewma`.
//!
//! The estimate jumps up to any sample above it (the peak), blends toward samples below it
//! with weight `exp(-elapsed / decay)`, and decays toward zero between samples, so a slow
//! endpoint is forgotten after a few `decay` periods. Reads never change the state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::PeakEwmaConfig;
use crate::health::as_nanos;

/// Bits of the estimate before the first sample: a NaN our arithmetic never produces.
const UNOBSERVED: u64 = u64::MAX;

/// The weight `exp(-elapsed / decay)` an old estimate keeps after `elapsed` nanoseconds.
///
/// Always in `[0, 1]`, also for a zero decay (old estimates are then forgotten at once).
pub(crate) fn decay_weight(elapsed_ns: f64, decay_ns: f64) -> f64 {
    if elapsed_ns <= 0.0 {
        return 1.0;
    }
    if decay_ns <= 0.0 || !decay_ns.is_finite() {
        return 0.0;
    }
    let w = (-elapsed_ns / decay_ns).exp();
    if w.is_finite() {
        w.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// The peak-EWMA estimate of one endpoint, in nanoseconds, with the time of its last update.
#[derive(Debug)]
pub(crate) struct RttEstimate {
    /// `f64` nanoseconds as bits, or [`UNOBSERVED`].
    estimate: AtomicU64,
    /// Nanoseconds since the origin of the last sample.
    updated_at: AtomicU64,
    decay_ns: f64,
    config: PeakEwmaConfig,
}

impl RttEstimate {
    pub(crate) fn new(config: PeakEwmaConfig) -> Self {
        Self {
            estimate: AtomicU64::new(UNOBSERVED),
            updated_at: AtomicU64::new(0),
            decay_ns: config.decay.as_nanos() as f64,
            config,
        }
    }

    /// The configuration this estimate was built with.
    pub(crate) fn config(&self) -> PeakEwmaConfig {
        self.config
    }

    /// Records a sample `rtt` taken at `now`.
    pub(crate) fn observe(&self, now: Duration, rtt: Duration) {
        let now_ns = as_nanos(now);
        let rtt_ns = rtt.as_nanos() as f64;
        // Stamp first; a caller whose clock reading is older than the stamp sees no elapsed time.
        let previous = self.updated_at.fetch_max(now_ns, Ordering::Relaxed);
        let w = decay_weight(now_ns.saturating_sub(previous) as f64, self.decay_ns);
        let _ = self
            .estimate
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let next = if bits == UNOBSERVED {
                    rtt_ns
                } else {
                    let decayed = f64::from_bits(bits) * w;
                    if rtt_ns > decayed {
                        rtt_ns
                    } else {
                        decayed * w + rtt_ns * (1.0 - w)
                    }
                };
                Some(sanitize(next).to_bits())
            });
    }

    /// The estimate at `now` in nanoseconds: the last value decayed by the time since, or
    /// the default RTT before any sample.
    pub(crate) fn estimate_ns(&self, now: Duration) -> f64 {
        let bits = self.estimate.load(Ordering::Relaxed);
        if bits == UNOBSERVED {
            return self.config.default_rtt.as_nanos() as f64;
        }
        let at = self.updated_at.load(Ordering::Relaxed);
        let elapsed = as_nanos(now).saturating_sub(at) as f64;
        sanitize(f64::from_bits(bits) * decay_weight(elapsed, self.decay_ns))
    }
}

/// Keeps a value finite and non-negative so no NaN or infinity ever reaches a comparison.
fn sanitize(ns: f64) -> f64 {
    if ns.is_finite() && ns > 0.0 { ns } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn config() -> PeakEwmaConfig {
        PeakEwmaConfig {
            decay: Duration::from_secs(10),
            default_rtt: 30 * MS,
        }
    }

    fn ms(ns: f64) -> f64 {
        ns / 1e6
    }

    #[test]
    fn default_until_observed() {
        let e = RttEstimate::new(config());
        assert_eq!(ms(e.estimate_ns(Duration::from_secs(100))), 30.0);
        e.observe(Duration::from_secs(100), 5 * MS);
        assert_eq!(ms(e.estimate_ns(Duration::from_secs(100))), 5.0);
    }

    #[test]
    fn peak_is_taken_at_once() {
        let e = RttEstimate::new(config());
        let t = Duration::from_secs(1);
        e.observe(t, 10 * MS);
        e.observe(t + MS, 200 * MS);
        assert_eq!(ms(e.estimate_ns(t + MS)), 200.0);
    }

    #[test]
    fn lower_samples_blend_and_time_decays() {
        let e = RttEstimate::new(config());
        let t = Duration::from_secs(1);
        e.observe(t, 100 * MS);
        // One decay period later the estimate has decayed to 1/e.
        let later = t + Duration::from_secs(10);
        let expected = 100.0 * (-1.0f64).exp();
        assert!((ms(e.estimate_ns(later)) - expected).abs() < 1e-6);
        // A sample below the decayed estimate blends: the result lies between the two.
        e.observe(later, 10 * MS);
        let v = ms(e.estimate_ns(later));
        assert!(v > 10.0 && v < expected, "{v}");
        // Long after, it is nearly gone.
        assert!(ms(e.estimate_ns(later + Duration::from_secs(100))) < 0.01);
    }

    #[test]
    fn steady_fast_samples_converge() {
        let e = RttEstimate::new(config());
        e.observe(Duration::ZERO, Duration::from_secs(1));
        let mut now = Duration::ZERO;
        for _ in 0..30_000 {
            now += MS;
            e.observe(now, 10 * MS);
        }
        // 30 s = 3 decay periods, and the samples pull it down too.
        let v = ms(e.estimate_ns(now));
        assert!((10.0..20.0).contains(&v), "{v}");
    }

    #[test]
    fn zero_decay_and_clock_going_back_are_safe() {
        let e = RttEstimate::new(PeakEwmaConfig {
            decay: Duration::ZERO,
            default_rtt: Duration::ZERO,
        });
        assert_eq!(e.estimate_ns(Duration::ZERO), 0.0);
        e.observe(Duration::from_secs(5), 50 * MS);
        // An older clock reading counts as no time elapsed: the peak stays.
        e.observe(Duration::from_secs(4), 10 * MS);
        assert_eq!(ms(e.estimate_ns(Duration::from_secs(5))), 50.0);
        assert_eq!(e.estimate_ns(Duration::from_secs(6)), 0.0);
        e.observe(Duration::MAX, Duration::MAX);
        assert!(e.estimate_ns(Duration::MAX).is_finite());
    }

    #[test]
    fn weights_are_bounded() {
        assert_eq!(decay_weight(0.0, 0.0), 1.0);
        assert_eq!(decay_weight(1.0, 0.0), 0.0);
        assert_eq!(decay_weight(f64::INFINITY, 1.0), 0.0);
        assert_eq!(decay_weight(1.0, f64::NAN), 0.0);
        let w = decay_weight(1.0, 1.0);
        assert!((w - (-1.0f64).exp()).abs() < 1e-12);
    }
}
