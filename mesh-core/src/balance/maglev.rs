//! A Maglev lookup table (Eisenbud et al., NSDI 2016), weighted as Envoy's Maglev is.
//!
//! The table has a prime number `M` of slots. Each endpoint walks its own permutation of
//! the slots, `(offset + next * skip) % M` with `offset = xxh64(addr, seed 0) % M` and
//! `skip = xxh64(addr, seed 1) % (M - 1) + 1`, and the endpoints take turns claiming the
//! next free slot of their permutation until the table is full. With weights, an
//! endpoint's turn is skipped until its share allows it (Envoy's rule: on round `r`, the
//! endpoint takes a turn when `r * weight >= target`, and each turn raises its target by
//! the largest weight). A key belongs to `table[key % M]`: one array read.
//!
//! Disruption is near-minimal, not exact: when an endpoint leaves, its slots go to the
//! others, and because the turns after it shift, a small share of other slots change hands
//! too: when 1 of 100 equal endpoints leaves, its 1 % of the keys move and so do about
//! 0.5 % more (0.3 % more when 1 of 10 leaves). Spread is near-perfect: every endpoint gets `M / n` slots, give or take one.
//!
//! With the same addresses, weights and table size this table is Envoy's, slot for slot.

use xxhash_rust::xxh64::xxh64;

/// The table size when the configuration leaves it at 0 (Envoy's and Istio's default).
pub(crate) const DEFAULT_TABLE_SIZE: u64 = 65537;

/// The largest table built (Envoy's limit, a prime).
pub(crate) const MAXIMUM_TABLE_SIZE: u64 = 5_000_011;

/// A filled Maglev table: each slot holds an endpoint's index in the snapshot.
#[derive(Debug)]
pub(crate) struct Maglev {
    table: Box<[u32]>,
}

/// One endpoint's state while the table fills: `position` is its permutation's next
/// slot, `(offset + next * skip) % M` kept by addition rather than computed.
struct Builder {
    /// The endpoint's index in the snapshot.
    index: u32,
    position: u64,
    skip: u64,
    weight: f64,
    target: f64,
}

impl Maglev {
    /// The table over `hosts` (each endpoint's hash key, usually its address, and its
    /// weight, in snapshot order) with `table_size` slots.
    ///
    /// A size that is not prime is raised to the next prime (a prime size makes every
    /// permutation visit every slot, which the fill relies on to end); 0 means 65537 and
    /// sizes are capped at [`MAXIMUM_TABLE_SIZE`]. With more endpoints than slots, some
    /// endpoints get none.
    pub(crate) fn new(hosts: &[(String, u32)], table_size: u64) -> Self {
        if hosts.is_empty() || u32::try_from(hosts.len()).is_err() {
            return Self {
                table: Box::new([]),
            };
        }
        let m = effective_size(table_size);
        let sum: u64 = hosts.iter().map(|&(_, w)| u64::from(w.max(1))).sum();
        // Filled in the order of the keys, not of the snapshot, so every client builds the
        // same table whatever order discovery answered in (DNS shuffles its answers).
        let mut order: Vec<(u32, &(String, u32))> = (0u32..).zip(hosts.iter()).collect();
        order.sort_by(|a, b| a.1.0.cmp(&b.1.0));
        let mut builders: Vec<Builder> = order
            .into_iter()
            .map(|(index, (key, w))| Builder {
                index,
                position: xxh64(key.as_bytes(), 0) % m,
                skip: xxh64(key.as_bytes(), 1) % (m - 1) + 1,
                // Normalized as Envoy does, in doubles.
                weight: f64::from((*w).max(1)) / sum as f64,
                target: 0.0,
            })
            .collect();
        let max_weight = builders.iter().map(|b| b.weight).fold(0.0, f64::max);
        // `m` is at most 5_000_011: it fits in usize and u32.
        let size = m as usize;
        let mut table = vec![u32::MAX; size];
        let mut filled = 0usize;
        let mut round = 1u64;
        while filled < size {
            for b in builders.iter_mut() {
                if filled == size {
                    break;
                }
                if (round as f64) * b.weight < b.target {
                    continue;
                }
                b.target += max_weight;
                // The permutation visits every slot (`m` prime, `0 < skip < m`) and the
                // table is not full, so this finds a free slot within `m` steps.
                loop {
                    // `position < m`, which fits in usize.
                    let slot = b.position as usize;
                    b.position += b.skip;
                    if b.position >= m {
                        b.position -= m;
                    }
                    if table[slot] == u32::MAX {
                        table[slot] = b.index;
                        break;
                    }
                }
                filled += 1;
            }
            round += 1;
        }
        Self {
            table: table.into(),
        }
    }

    /// How many slots the table has.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// The slot `hash` belongs to: `hash % M` (0 for an empty table).
    pub(crate) fn slot(&self, hash: u64) -> usize {
        match self.table.len() as u64 {
            0 => 0,
            // Less than the table's length: fits in usize.
            m => (hash % m) as usize,
        }
    }

    /// The endpoint in `slot` (`slot < len`), or `usize::MAX` when out of range.
    pub(crate) fn host_at(&self, slot: usize) -> usize {
        self.table.get(slot).map_or(usize::MAX, |&i| i as usize)
    }

    /// How many slots each endpoint got, for tests and reports.
    #[cfg(test)]
    pub(crate) fn counts(&self, n: usize) -> Vec<usize> {
        let mut counts = vec![0; n];
        for &i in self.table.iter() {
            counts[i as usize] += 1;
        }
        counts
    }
}

/// The table size built for a configured `table_size`: prime, in `2..=MAXIMUM_TABLE_SIZE`.
pub(crate) fn effective_size(table_size: u64) -> u64 {
    let mut m = match table_size {
        0 => DEFAULT_TABLE_SIZE,
        m => m.clamp(2, MAXIMUM_TABLE_SIZE),
    };
    // The maximum is prime, so this stops at it at the latest.
    while !is_prime(m) {
        m += 1;
    }
    m
}

/// Whether `m` is prime (trial division; `m` is at most a few million here).
pub(crate) fn is_prime(m: u64) -> bool {
    if m < 4 {
        return m >= 2;
    }
    if m.is_multiple_of(2) {
        return false;
    }
    (3..)
        .step_by(2)
        .take_while(|d| d * d <= m)
        .all(|d| !m.is_multiple_of(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::tests::hosts;

    #[test]
    fn sizes_are_prime() {
        assert!(is_prime(65537) && is_prime(MAXIMUM_TABLE_SIZE) && is_prime(2));
        let primes: Vec<u64> = (0..30).filter(|n| is_prime(*n)).collect();
        assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(!is_prime(65_536) && !is_prime(65_539 * 3));
        assert!(!is_prime(0) && !is_prime(1) && !is_prime(65535) && !is_prime(9));
        assert_eq!(effective_size(0), 65537);
        assert_eq!(effective_size(1), 2);
        assert_eq!(effective_size(100), 101);
        assert_eq!(effective_size(65537), 65537);
        assert_eq!(effective_size(u64::MAX), MAXIMUM_TABLE_SIZE);
    }

    #[test]
    fn the_table_does_not_depend_on_the_snapshot_order() {
        let forward = hosts(&[1, 2, 1, 3, 1]);
        let mut backward = forward.clone();
        backward.reverse();
        let (a, b) = (Maglev::new(&forward, 65537), Maglev::new(&backward, 65537));
        let n = forward.len();
        for slot in (0..a.len()).step_by(97) {
            // Index i forward is index n - 1 - i backward: the same endpoint.
            assert_eq!(
                forward[a.host_at(slot)].0,
                backward[b.host_at(slot)].0,
                "slot {slot}"
            );
            assert_eq!(a.host_at(slot), n - 1 - b.host_at(slot));
        }
    }

    #[test]
    fn equal_endpoints_share_the_table_evenly() {
        let maglev = Maglev::new(&hosts(&[1; 100]), 65537);
        assert_eq!(maglev.len(), 65537);
        let counts = maglev.counts(100);
        assert!(counts.iter().all(|&c| c == 655 || c == 656), "{counts:?}");
    }

    #[test]
    fn weights_set_the_share_of_slots() {
        let maglev = Maglev::new(&hosts(&[1, 2, 1]), 65537);
        let counts = maglev.counts(3);
        assert!(counts[1].abs_diff(2 * counts[0]) <= 2, "{counts:?}");
        assert!(counts[0].abs_diff(counts[2]) <= 1, "{counts:?}");
    }

    #[test]
    fn first_slots_follow_the_permutations() {
        let maglev = Maglev::new(&hosts(&[1]), 7);
        assert_eq!(maglev.counts(1), vec![7]);
        // Two endpoints in a table of 2: each takes its offset or, taken, the other slot.
        let two = Maglev::new(&hosts(&[1, 1]), 2);
        assert_eq!(two.counts(2), vec![1, 1]);
        let first = xxh64(b"10.0.0.0:8080", 0) % 2;
        assert_eq!(two.host_at(first as usize), 0);
    }

    #[test]
    fn more_endpoints_than_slots_fill_the_table() {
        let maglev = Maglev::new(&hosts(&[1; 10]), 5);
        assert_eq!(maglev.len(), 5);
        assert!((0..5).all(|s| maglev.host_at(s) < 10));
        let empty = Maglev::new(&[], 65537);
        assert_eq!(
            (empty.len(), empty.slot(9), empty.host_at(0)),
            (0, 0, usize::MAX)
        );
    }

    /// Envoy's fill, written as its source does (`(offset + skip * next) % M`).
    fn reference(hosts: &[(String, u32)], m: u64) -> Vec<u32> {
        let sum: u64 = hosts.iter().map(|h| u64::from(h.1)).sum();
        let mut e: Vec<(u64, u64, f64, f64, u64)> = hosts
            .iter()
            .map(|(k, w)| {
                let (k, w) = (k.as_bytes(), f64::from(*w) / sum as f64);
                (xxh64(k, 0) % m, xxh64(k, 1) % (m - 1) + 1, w, 0.0, 0)
            })
            .collect();
        let max = e.iter().map(|e| e.2).fold(0.0, f64::max);
        let mut table = vec![u32::MAX; m as usize];
        let mut filled = 0;
        let mut iteration = 1u64;
        while filled < m {
            for (i, e) in e.iter_mut().enumerate() {
                if filled == m {
                    break;
                }
                if (iteration as f64) * e.2 < e.3 {
                    continue;
                }
                e.3 += max;
                let mut c = (e.0 + e.1 * e.4) % m;
                while table[c as usize] != u32::MAX {
                    e.4 += 1;
                    c = (e.0 + e.1 * e.4) % m;
                }
                table[c as usize] = i as u32;
                e.4 += 1;
                filled += 1;
            }
            iteration += 1;
        }
        table
    }

    #[test]
    fn fill_matches_envoys() {
        for (weights, m) in [
            (&[1, 1, 1][..], 7),
            (&[1, 2, 3, 1, 5], 1009),
            (&[1; 50], 65537),
        ] {
            // In key order, the order the fill takes them in.
            let mut hosts = hosts(weights);
            hosts.sort();
            assert_eq!(&*Maglev::new(&hosts, m).table, &reference(&hosts, m)[..]);
        }
    }
}
