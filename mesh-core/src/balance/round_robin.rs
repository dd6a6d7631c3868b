//! The smooth weighted round-robin schedule: one period of picks, built once per snapshot.
//!
//! Endpoint `i` of weight `w` takes its `k`-th turn at virtual time `(k + 1/2) / w`
//! (stride scheduling), so heavy endpoints are interleaved with light ones instead of
//! being picked in bursts. Weights are reduced by their greatest common divisor and, when
//! the period would exceed [`MAX_PERIOD`], scaled down (each endpoint keeping at least one
//! turn), so the schedule is approximate only for extreme weight ratios.

/// The longest schedule built from weights alone (it grows to twice the endpoint count
/// when there are more endpoints than that).
pub(crate) const MAX_PERIOD: usize = 4096;

/// One period of a weighted round robin, as endpoint indices.
#[derive(Debug)]
pub(crate) struct Schedule {
    order: Box<[u32]>,
}

impl Schedule {
    /// The schedule for `weights` (0 counts as 1), or `None` when they are all equal (plain
    /// rotation is then exact) or there are too many to index.
    pub(crate) fn new(weights: &[u32]) -> Option<Self> {
        let first = weights.first()?.max(&1);
        if weights.iter().all(|w| w.max(&1) == first) {
            return None;
        }
        u32::try_from(weights.len()).ok()?;
        let divisor = weights.iter().fold(0u32, |g, &w| gcd(g, w.max(1)));
        let mut turns: Vec<u64> = weights
            .iter()
            .map(|&w| u64::from(w.max(1) / divisor.max(1)))
            .collect();
        let period: u64 = turns.iter().sum();
        let cap = MAX_PERIOD.max(2 * weights.len()) as u64;
        if period > cap {
            for t in &mut turns {
                // `t * cap / period <= cap`; computed in u128 so it cannot overflow.
                let scaled = u128::from(*t) * u128::from(cap) / u128::from(period);
                *t = u64::try_from(scaled).unwrap_or(cap).max(1);
            }
        }
        // Every turn `(i, k)` at virtual time (2k + 1) / (2 w_i), sorted by that time.
        let mut slots: Vec<(u64, u64, u32)> = Vec::new();
        for (i, &t) in (0u32..).zip(&turns) {
            slots.extend((0..t).map(|k| (2 * k + 1, 2 * t, i)));
        }
        slots.sort_unstable_by(|a, b| {
            let lhs = u128::from(a.0) * u128::from(b.1);
            let rhs = u128::from(b.0) * u128::from(a.1);
            lhs.cmp(&rhs).then(a.2.cmp(&b.2))
        });
        Some(Self {
            order: slots.into_iter().map(|(_, _, i)| i).collect(),
        })
    }

    /// The endpoint at position `position` of the (repeating) schedule.
    pub(crate) fn at(&self, position: usize) -> usize {
        // The schedule is never empty: it has at least one turn per endpoint.
        self.order
            .get(position % self.order.len().max(1))
            .map_or(0, |&i| i as usize)
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(s: &Schedule, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for p in 0..s.order.len() {
            c[s.at(p)] += 1;
        }
        c
    }

    #[test]
    fn equal_weights_need_no_schedule() {
        assert!(Schedule::new(&[]).is_none());
        assert!(Schedule::new(&[1]).is_none());
        assert!(Schedule::new(&[2, 2, 2]).is_none());
        assert!(Schedule::new(&[0, 1]).is_none());
    }

    #[test]
    fn period_matches_reduced_weights() {
        let s = Schedule::new(&[20, 10, 10]).unwrap();
        assert_eq!(s.order.len(), 4);
        assert_eq!(counts(&s, 3), vec![2, 1, 1]);
    }

    #[test]
    fn heavy_endpoint_is_interleaved() {
        let s = Schedule::new(&[3, 1]).unwrap();
        let order: Vec<usize> = (0..4).map(|p| s.at(p)).collect();
        assert_eq!(order, vec![0, 0, 1, 0]);
        let s = Schedule::new(&[1, 1, 2]).unwrap();
        let order: Vec<usize> = (0..4).map(|p| s.at(p)).collect();
        // Endpoint 2's turns are spread, not adjacent.
        assert_eq!(order, vec![2, 0, 1, 2]);
    }

    #[test]
    fn long_periods_are_capped_and_keep_everyone() {
        let s = Schedule::new(&[u32::MAX, 1, 7]).unwrap();
        assert!(s.order.len() <= MAX_PERIOD + 3);
        let c = counts(&s, 3);
        assert!(c.iter().all(|&c| c >= 1), "{c:?}");
        assert!(c[0] > 4000);
        let many: Vec<u32> = (0..10_000).map(|i| 1 + i % 2).collect();
        let s = Schedule::new(&many).unwrap();
        assert!(s.order.len() >= 10_000 && s.order.len() <= 20_000 + 10_000);
        assert!(counts(&s, many.len()).iter().all(|&c| c >= 1));
    }

    #[test]
    fn gcd_works() {
        assert_eq!(gcd(0, 6), 6);
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(gcd(7, 1), 1);
    }
}
