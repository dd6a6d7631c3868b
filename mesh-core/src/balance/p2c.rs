//! Power of two choices: of two candidates, keep the cheaper; ties are broken at random,
//! weighted by the candidates' weights (so an idle heavy endpoint wins most ties).

use std::cmp::Ordering;
use std::time::Duration;

use rand::{Rng, RngExt};

use super::EndpointStats;

/// What makes an endpoint cheaper than another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cost {
    /// Fewer requests in flight per unit of weight (least request).
    Load,
    /// Lower peak-EWMA latency times load per unit of weight.
    PeakEwma,
}

impl Cost {
    /// How `a`'s cost at `now` compares to `b`'s.
    pub(crate) fn compare(self, a: &EndpointStats, b: &EndpointStats, now: Duration) -> Ordering {
        match self {
            // in_flight_a / weight_a vs in_flight_b / weight_b, cross-multiplied exactly.
            Cost::Load => {
                let lhs = u64::from(a.in_flight()) * u64::from(b.weight());
                let rhs = u64::from(b.in_flight()) * u64::from(a.weight());
                lhs.cmp(&rhs)
            }
            // Costs are finite and non-negative, never NaN.
            Cost::PeakEwma => a.peak_ewma_cost(now).total_cmp(&b.peak_ewma_cost(now)),
        }
    }
}

/// The cheaper of candidates `a` and `b` (indices into `endpoints`); a tie goes to `a`
/// with probability `weight_a / (weight_a + weight_b)`.
pub(crate) fn choose<E: AsRef<EndpointStats>, R: Rng + ?Sized>(
    cost: Cost,
    endpoints: &[E],
    a: usize,
    b: usize,
    now: Duration,
    rng: &mut R,
) -> usize {
    let (Some(sa), Some(sb)) = (endpoints.get(a), endpoints.get(b)) else {
        return a;
    };
    let (sa, sb) = (sa.as_ref(), sb.as_ref());
    match cost.compare(sa, sb, now) {
        Ordering::Less => a,
        Ordering::Greater => b,
        Ordering::Equal => {
            let (wa, wb) = (u64::from(sa.weight()), u64::from(sb.weight()));
            if rng.random_range(0..wa + wb) < wa {
                a
            } else {
                b
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn load_is_divided_by_weight() {
        let a = EndpointStats::new(1);
        let b = EndpointStats::new(4);
        a.on_start();
        for _ in 0..3 {
            b.on_start();
        }
        // 1/1 vs 3/4: b is less loaded.
        assert_eq!(
            Cost::Load.compare(&a, &b, Duration::ZERO),
            Ordering::Greater
        );
    }

    #[test]
    fn ties_favour_the_heavier() {
        let endpoints = [EndpointStats::new(1), EndpointStats::new(3)];
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = [0; 2];
        for _ in 0..4000 {
            seen[choose(Cost::Load, &endpoints, 0, 1, Duration::ZERO, &mut rng)] += 1;
        }
        assert!((900..1100).contains(&seen[0]), "{seen:?}");
    }

    #[test]
    fn ties_are_broken_both_ways() {
        let endpoints = [EndpointStats::new(1), EndpointStats::new(1)];
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = [0; 2];
        for _ in 0..100 {
            seen[choose(Cost::Load, &endpoints, 0, 1, Duration::ZERO, &mut rng)] += 1;
        }
        assert!(seen[0] > 20 && seen[1] > 20, "{seen:?}");
    }
}
