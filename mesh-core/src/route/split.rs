//! Weighted choice of a route's destination, once per request.

use rand::{Rng, RngExt};

use super::Split;

impl Split {
    /// A split over these weights (in order).
    ///
    /// Weights are relative (normalised over their sum). A zero weight is never picked while
    /// another weight is positive. When every weight is zero the choices share equally, so a
    /// route written without weights still spreads its traffic; a single choice always wins.
    pub fn new(weights: &[u32]) -> Split {
        let all_zero = weights.iter().all(|&w| w == 0);
        let cumulative = weights
            .iter()
            .scan(0u64, |sum, &w| {
                *sum += if all_zero { 1 } else { u64::from(w) };
                Some(*sum)
            })
            .collect();
        Split { cumulative }
    }

    /// The number of choices.
    pub fn len(&self) -> usize {
        self.cumulative.len()
    }

    /// Whether there is no choice at all (then [`pick`](Self::pick) answers 0).
    pub fn is_empty(&self) -> bool {
        self.cumulative.is_empty()
    }

    /// The index chosen for one request: one random draw and a binary search, no allocation.
    /// A split of one choice (or none) answers 0 without drawing.
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        match self.cumulative.as_slice() {
            [] | [_] => 0,
            [.., total] => {
                let x = rng.random_range(0..*total);
                // The first choice whose running total exceeds the draw; zero weights repeat the
                // previous total and so are never first.
                self.cumulative.partition_point(|&c| c <= x)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::route::tests::NoDraw;

    fn counts(weights: &[u32], draws: usize, seed: u64) -> Vec<usize> {
        let split = Split::new(weights);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut counts = vec![0; weights.len().max(1)];
        for _ in 0..draws {
            counts[split.pick(&mut rng)] += 1;
        }
        counts
    }

    #[test]
    fn single_and_empty_draw_nothing() {
        assert_eq!(Split::new(&[]).pick(&mut NoDraw), 0);
        assert_eq!(Split::new(&[0]).pick(&mut NoDraw), 0);
        assert_eq!(Split::new(&[7]).pick(&mut NoDraw), 0);
        assert!(Split::new(&[]).is_empty());
        assert_eq!(Split::new(&[1, 2]).len(), 2);
    }

    #[test]
    fn zero_weights_get_nothing() {
        let c = counts(&[0, 5, 0, 5, 0], 10_000, 1);
        assert_eq!((c[0], c[2], c[4]), (0, 0, 0));
        assert!(c[1] > 4_000 && c[3] > 4_000, "{c:?}");
        assert_eq!(counts(&[0, 1], 1_000, 2), [0, 1_000]);
        assert_eq!(counts(&[1, 0], 1_000, 2), [1_000, 0]);
    }

    #[test]
    fn all_zero_splits_equally() {
        let c = counts(&[0, 0, 0, 0], 40_000, 3);
        for n in &c {
            assert!((9_000..=11_000).contains(n), "{c:?}");
        }
    }

    #[test]
    fn large_weights_do_not_overflow() {
        let c = counts(&[u32::MAX, u32::MAX, 0], 10_000, 4);
        assert_eq!(c[2], 0);
        assert!(c[0] > 4_000 && c[1] > 4_000, "{c:?}");
    }

    #[test]
    fn ninety_ten() {
        let c = counts(&[90, 10], 100_000, 5);
        assert!((89_000..=91_000).contains(&c[0]), "{c:?}");
    }
}
