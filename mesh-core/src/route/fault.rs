//! Percentages and fault injection (Istio's `HTTPFaultInjection`).

use rand::{Rng, RngExt};

use super::{Fault, FaultDecision, Percentage};

impl Percentage {
    /// All requests.
    pub const ALL: Percentage = Percentage(100.0);

    /// No request.
    pub const NONE: Percentage = Percentage(0.0);

    /// `value` percent; errors unless 0 ≤ value ≤ 100 (NaN is refused too). The error is the
    /// reason alone, for a [`ConfigError`](crate::ConfigError) that names the field.
    pub fn new(value: f64) -> Result<Percentage, String> {
        if (0.0..=100.0).contains(&value) {
            Ok(Percentage(value))
        } else {
            Err("must be a percentage between 0 and 100".to_owned())
        }
    }

    /// The value in percent.
    pub fn value(self) -> f64 {
        self.0
    }

    /// Whether one request is in the share: true with probability `value / 100`. 100 % and
    /// 0 % draw no random number.
    pub fn sample<R: Rng + ?Sized>(self, rng: &mut R) -> bool {
        if self.0 >= 100.0 {
            true
        } else if self.0 <= 0.0 {
            false
        } else {
            rng.random::<f64>() * 100.0 < self.0
        }
    }
}

impl Fault {
    /// What to do with one request: the delay and the abort are sampled independently, each
    /// by its own percentage; when both apply the request is delayed, then aborted (as Envoy
    /// does).
    pub fn decide<R: Rng + ?Sized>(&self, rng: &mut R) -> FaultDecision {
        let delay = self
            .delay
            .filter(|d| d.percentage.sample(rng))
            .map(|d| d.fixed);
        let abort = self
            .abort
            .filter(|a| a.percentage.sample(rng))
            .map(|a| a.status);
        FaultDecision { delay, abort }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::route::tests::NoDraw;
    use crate::route::{AbortStatus, FaultAbort, FaultDelay};

    #[test]
    fn percentage_bounds() {
        for ok in [0.0, 0.1, 50.0, 100.0, -0.0] {
            assert_eq!(Percentage::new(ok).unwrap().value(), ok);
        }
        for bad in [-0.1, 100.01, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(Percentage::new(bad).is_err(), "{bad}");
        }
        assert_eq!(Percentage::ALL.value(), 100.0);
        assert_eq!(Percentage::NONE.value(), 0.0);
    }

    #[test]
    fn extremes_draw_nothing() {
        assert!(Percentage::ALL.sample(&mut NoDraw));
        assert!(!Percentage::NONE.sample(&mut NoDraw));
    }

    #[test]
    fn sample_frequency() {
        let mut rng = StdRng::seed_from_u64(1);
        for pct in [0.5, 10.0, 50.0, 99.0] {
            let p = Percentage::new(pct).unwrap();
            let n = 100_000;
            let hits = (0..n).filter(|_| p.sample(&mut rng)).count();
            let share = hits as f64 * 100.0 / n as f64;
            // Five standard deviations of a binomial share.
            let sd = (pct * (100.0 - pct) / n as f64).sqrt();
            assert!((share - pct).abs() <= 5.0 * sd + 0.01, "{pct}: {share}");
        }
    }

    fn fault(delay: f64, abort: f64) -> Fault {
        Fault {
            delay: Some(FaultDelay {
                fixed: Duration::from_secs(7),
                percentage: Percentage::new(delay).unwrap(),
            }),
            abort: Some(FaultAbort {
                status: AbortStatus::Http(503),
                percentage: Percentage::new(abort).unwrap(),
            }),
        }
    }

    #[test]
    fn decide_both_or_neither() {
        assert_eq!(
            fault(100.0, 100.0).decide(&mut NoDraw),
            FaultDecision {
                delay: Some(Duration::from_secs(7)),
                abort: Some(AbortStatus::Http(503)),
            }
        );
        assert_eq!(
            fault(0.0, 0.0).decide(&mut NoDraw),
            FaultDecision::default()
        );
        assert_eq!(
            Fault::default().decide(&mut NoDraw),
            FaultDecision::default()
        );
        let only_abort = Fault {
            delay: None,
            ..fault(0.0, 100.0)
        };
        assert_eq!(
            only_abort.decide(&mut NoDraw),
            FaultDecision {
                delay: None,
                abort: Some(AbortStatus::Http(503)),
            }
        );
    }

    #[test]
    fn decide_samples_independently() {
        let f = fault(50.0, 50.0);
        let mut rng = StdRng::seed_from_u64(9);
        let mut counts = [[0u32; 2]; 2];
        for _ in 0..40_000 {
            let d = f.decide(&mut rng);
            counts[usize::from(d.delay.is_some())][usize::from(d.abort.is_some())] += 1;
        }
        // Each of the four combinations gets about a quarter.
        for c in counts.iter().flatten() {
            assert!((9_000..=11_000).contains(c), "{counts:?}");
        }
    }
}
