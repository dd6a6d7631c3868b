//! Weighted random choice in constant time: Walker's alias method, in exact integers.
//!
//! Built once per endpoint snapshot; each draw costs two random numbers and no search.

use rand::{Rng, RngExt};

/// An alias table over `n` weights: slot `i` keeps itself with probability
/// `threshold[i] / total` and otherwise yields `alias[i]`.
#[derive(Debug)]
pub(crate) struct AliasTable {
    threshold: Box<[u64]>,
    alias: Box<[u32]>,
    total: u64,
}

impl AliasTable {
    /// A table for `weights` (0 counts as 1), or `None` when they are all equal (a uniform
    /// draw is then exact and cheaper) or there are too many to index.
    pub(crate) fn new(weights: &[u32]) -> Option<Self> {
        let first = *weights.first()?;
        if weights.iter().all(|&w| w.max(1) == first.max(1)) {
            return None;
        }
        let n = u32::try_from(weights.len()).ok()?;
        let total: u64 = weights.iter().map(|&w| u64::from(w.max(1))).sum();
        // Each slot holds `total`; weight `w` is scaled to `w * n` so the slots sum exactly.
        let mut scaled: Vec<u128> = weights
            .iter()
            .map(|&w| u128::from(w.max(1)) * u128::from(n))
            .collect();
        let cap = u128::from(total);
        let mut threshold = vec![total; weights.len()];
        let mut alias: Vec<u32> = (0..n).collect();
        let (mut small, mut large): (Vec<u32>, Vec<u32>) =
            (0..n).partition(|&i| scaled[i as usize] < cap);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            let (si, li) = (s as usize, l as usize);
            // `scaled[si] < cap = total`, so it fits.
            threshold[si] = u64::try_from(scaled[si]).unwrap_or(total);
            alias[si] = l;
            scaled[li] = scaled[li] + scaled[si] - cap;
            if scaled[li] < cap {
                large.pop();
                small.push(l);
            }
        }
        // Integer arithmetic is exact: whatever remains holds exactly `total` and keeps itself.
        Some(Self {
            threshold: threshold.into(),
            alias: alias.into(),
            total,
        })
    }

    /// How many weights the table covers.
    pub(crate) fn len(&self) -> usize {
        self.threshold.len()
    }

    /// Draws an index with probability proportional to its weight.
    pub(crate) fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let i = rng.random_range(0..self.threshold.len());
        let x = rng.random_range(0..self.total);
        if x < self.threshold[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn frequencies(weights: &[u32], draws: usize) -> Vec<f64> {
        let table = AliasTable::new(weights).expect("unequal weights");
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = vec![0usize; weights.len()];
        for _ in 0..draws {
            counts[table.sample(&mut rng)] += 1;
        }
        counts.iter().map(|&c| c as f64 / draws as f64).collect()
    }

    #[test]
    fn equal_weights_need_no_table() {
        assert!(AliasTable::new(&[]).is_none());
        assert!(AliasTable::new(&[3, 3, 3]).is_none());
        assert!(AliasTable::new(&[0, 1]).is_none());
    }

    #[test]
    fn thresholds_are_exact() {
        // 1:3 over 2 slots of 4: slot 0 keeps itself 2/4, else goes to 1.
        let t = AliasTable::new(&[1, 3]).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.total, 4);
        assert_eq!(&*t.threshold, &[2, 4]);
        assert_eq!(&*t.alias, &[1, 1]);
    }

    #[test]
    fn draws_follow_weights() {
        let weights = [1, 2, 3, 4, 0];
        let f = frequencies(&weights, 200_000);
        let total = 11.0;
        for (i, &w) in weights.iter().enumerate() {
            let expected = f64::from(w.max(1)) / total;
            assert!(
                (f[i] - expected).abs() < 0.01,
                "{i}: {} vs {expected}",
                f[i]
            );
        }
    }

    #[test]
    fn extreme_weights_do_not_overflow() {
        let f = frequencies(&[u32::MAX, 1, u32::MAX], 10_000);
        assert!(f[1] < 0.001);
        assert!((f[0] - 0.5).abs() < 0.03);
    }
}
