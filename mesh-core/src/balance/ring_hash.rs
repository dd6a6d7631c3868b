//! A Ketama-style consistent-hash ring, sized and filled as Envoy's ring hash does.
//!
//! Each endpoint places entries on a ring of 64-bit hashes in proportion to its weight;
//! entry `i` of the endpoint at `10.0.0.1:8080` hashes `"10.0.0.1:8080_i"` with xxHash64
//! (seed 0). A key belongs to the first entry at or after it, wrapping around. Since the
//! entries depend on an endpoint's own address, removing an endpoint moves only the keys
//! that were on it, as long as the others keep their entry counts (they do unless the
//! removal raises the number of entries per unit of weight, see [`Ring::new`]).
//!
//! With the same addresses, weights and sizes this ring is Envoy's, entry for entry, so a
//! key lands on the same endpoint here as behind an Envoy sidecar.

use std::fmt::Write as _;

use crate::hash::hash_bytes;

/// The minimum ring size when the configuration leaves it at 0 (Envoy's and Istio's default).
pub(crate) const DEFAULT_MINIMUM_SIZE: u64 = 1024;

/// The largest ring built, whatever the minimum and the weights ask (Envoy's default
/// `maximum_ring_size`, 8M entries of 12 bytes).
pub(crate) const MAXIMUM_SIZE: u64 = 8 * 1024 * 1024;

/// How far above a whole number a running target may be and still count as that number.
const ROUNDING: f64 = 1e-6;

/// A sorted ring of entries: `hashes[k]` belongs to endpoint `hosts[k]`.
#[derive(Debug)]
pub(crate) struct Ring {
    hashes: Box<[u64]>,
    hosts: Box<[u32]>,
    per_weight: f64,
}

impl Ring {
    /// The ring over `hosts` (each endpoint's hash key, usually its address, and its
    /// weight, in snapshot order) with at least `minimum_size` entries (0 means 1024;
    /// larger than [`MAXIMUM_SIZE`] counts as that).
    ///
    /// Envoy's rule: weights are normalized to sum to 1; the scale (total entries) is
    /// `ceil(min_weight * minimum_size) / min_weight`, so that the lightest endpoint gets a
    /// whole number of entries, capped at [`MAXIMUM_SIZE`]; endpoint `i` then gets
    /// `scale * weight_i` entries (rounded up; rounding errors below [`ROUNDING`] ignored).
    /// With 10 equal endpoints and the default minimum each gets 103 entries, with 9 each
    /// gets 114: on its own, this rule moves keys between endpoints that stay.
    #[cfg(test)]
    pub(crate) fn new(hosts: &[(String, u32)], minimum_size: u64) -> Self {
        Self::with_maximum(hosts, minimum_size, 0.0, MAXIMUM_SIZE)
    }

    /// Like [`new`](Self::new), for the ring that replaces one with `floor` entries per unit
    /// of weight (its [`per_weight`](Self::per_weight)): endpoints keep that many entries
    /// each, so an endpoint that stays keeps every entry it had and only a departed
    /// endpoint's keys move. Only when that would leave the ring below half the minimum size
    /// is it sized by Envoy's rule again (with at least `floor` per weight), which moves
    /// some keys between endpoints that stay.
    pub(crate) fn after(hosts: &[(String, u32)], minimum_size: u64, floor: f64) -> Self {
        Self::with_maximum(hosts, minimum_size, floor, MAXIMUM_SIZE)
    }

    /// Entries per unit of weight.
    pub(crate) fn per_weight(&self) -> f64 {
        self.per_weight
    }

    /// [`after`](Self::after) with another maximum size (at most [`MAXIMUM_SIZE`]).
    fn with_maximum(hosts: &[(String, u32)], minimum_size: u64, floor: f64, maximum: u64) -> Self {
        let maximum = maximum.clamp(1, MAXIMUM_SIZE);
        let empty = Self {
            hashes: Box::new([]),
            hosts: Box::new([]),
            per_weight: 0.0,
        };
        if hosts.is_empty() || u32::try_from(hosts.len()).is_err() {
            return empty;
        }
        let minimum = match minimum_size {
            0 => DEFAULT_MINIMUM_SIZE,
            m => m.min(maximum),
        };
        let sum: u64 = hosts.iter().map(|&(_, w)| u64::from(w.max(1))).sum();
        let sum = sum as f64;
        // Normalized as Envoy does: weight * 1.0 / sum, in doubles.
        let min_weight = hosts
            .iter()
            .map(|&(_, w)| f64::from(w.max(1)) / sum)
            .fold(f64::INFINITY, f64::min);
        let scale = ((min_weight * minimum as f64).ceil() / min_weight).min(maximum as f64);
        let floor = if floor.is_finite() { floor } else { 0.0 };
        // The previous ring's entries per weight stay while they give at least half the
        // minimum size: then no entry of an endpoint that stays appears or goes.
        let sticky = floor > 0.0 && floor * sum >= minimum as f64 / 2.0;
        let per_weight = if sticky {
            floor
        } else {
            (scale / sum).max(floor)
        };
        let per_weight = per_weight.min(maximum as f64 / sum);
        // At most 8M entries: the cast is exact.
        let mut entries: Vec<(u64, u32)> =
            Vec::with_capacity((per_weight * sum).ceil() as usize + hosts.len());
        let mut key = String::new();
        for (index, (name, weight)) in (0u32..).zip(hosts) {
            key.clear();
            key.push_str(name);
            key.push('_');
            let prefix = key.len();
            // An endpoint's entries depend on its own weight alone, so that they stay put
            // when other endpoints come and go.
            let count = (per_weight * f64::from((*weight).max(1)) - ROUNDING)
                .ceil()
                .max(1.0) as u64;
            for i in 0..count {
                key.truncate(prefix);
                let _ = write!(key, "{i}");
                entries.push((hash_bytes(key.as_bytes()), index));
            }
        }
        // Ties (two equal 64-bit hashes) are ordered by endpoint, so any build agrees.
        entries.sort_unstable();
        let (hashes, hosts): (Vec<u64>, Vec<u32>) = entries.into_iter().unzip();
        Self {
            hashes: hashes.into(),
            hosts: hosts.into(),
            per_weight,
        }
    }

    /// How many entries the ring has.
    pub(crate) fn len(&self) -> usize {
        self.hashes.len()
    }

    /// The position of the entry `hash` belongs to: the first at or after it, wrapping
    /// around to the first entry. 0 for an empty ring.
    pub(crate) fn slot(&self, hash: u64) -> usize {
        let k = self.hashes.partition_point(|&h| h < hash);
        if k == self.hashes.len() { 0 } else { k }
    }

    /// The endpoint at `position` (`position < len`), or `usize::MAX` when out of range.
    pub(crate) fn host_at(&self, position: usize) -> usize {
        self.hosts.get(position).map_or(usize::MAX, |&i| i as usize)
    }

    /// How many entries each endpoint got, for tests and reports.
    #[cfg(test)]
    pub(crate) fn counts(&self, n: usize) -> Vec<usize> {
        let mut counts = vec![0; n];
        for &i in self.hosts.iter() {
            counts[i as usize] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::tests::hosts;

    #[test]
    fn sizes_follow_envoys_rule() {
        let ring = Ring::new(&hosts(&[1; 100]), 1024);
        assert_eq!(ring.counts(100), vec![11; 100]);
        // 1024 / 99 rounds up to 11 entries each, though 11 * 99 / 99 is not exactly 11.
        let ring = Ring::new(&hosts(&[1; 99]), 1024);
        assert_eq!(ring.counts(99), vec![11; 99]);
        let ring = Ring::new(&hosts(&[1; 10]), 1024);
        assert_eq!(ring.counts(10), vec![103; 10]);
        let ring = Ring::new(&hosts(&[1; 9]), 1024);
        assert_eq!(ring.counts(9), vec![114; 9]);
        // The lightest gets whole entries; the others in proportion.
        let ring = Ring::new(&hosts(&[1, 2, 3]), 1024);
        assert_eq!(ring.counts(3), vec![171, 342, 513]);
        // 0 means the default minimum; the maximum caps extreme ratios.
        assert_eq!(Ring::new(&hosts(&[1; 4]), 0).len(), 1024);
        // Every endpoint keeps at least one entry.
        let ring = Ring::with_maximum(&hosts(&[u32::MAX, 1]), 1024, 0.0, 5000);
        assert_eq!(ring.counts(2), vec![5000, 1]);
        let ring = Ring::with_maximum(&hosts(&[1; 4]), 1 << 40, 0.0, 5000);
        assert_eq!(ring.len(), 5000);
    }

    #[test]
    fn a_ring_after_another_keeps_its_entries_per_endpoint() {
        let ten = Ring::new(&hosts(&[1; 10]), 1024);
        let nine = Ring::after(&hosts(&[1; 9]), 1024, ten.per_weight());
        assert_eq!(nine.counts(9), vec![103; 9]);
        // Every key not on the departed endpoint stays where it was.
        for k in 0..20_000u64 {
            let hash = hash_bytes(&k.to_le_bytes());
            let before = ten.host_at(ten.slot(hash));
            if before != 9 {
                assert_eq!(nine.host_at(nine.slot(hash)), before, "key {k}");
            }
        }
        // Endpoints that join get as many entries; the ring grows past the minimum.
        let eleven = Ring::after(&hosts(&[1; 11]), 1024, nine.per_weight());
        assert_eq!(eleven.counts(11), vec![103; 11]);
        // Below half the minimum the ring is sized again.
        let four = Ring::after(&hosts(&[1; 4]), 1024, ten.per_weight());
        assert_eq!(four.counts(4), vec![256; 4]);
    }

    #[test]
    fn entries_hash_address_and_index() {
        let ring = Ring::new(&[("10.0.0.1:80".into(), 1)], 3);
        let mut expected: Vec<u64> = (0..3)
            .map(|i| hash_bytes(format!("10.0.0.1:80_{i}").as_bytes()))
            .collect();
        expected.sort_unstable();
        assert_eq!(&*ring.hashes, &expected[..]);
    }

    #[test]
    fn lookup_takes_the_next_entry_and_wraps() {
        let ring = Ring::new(&hosts(&[1, 1, 1]), 30);
        for k in 0..ring.len() {
            let h = ring.hashes[k];
            assert_eq!(ring.slot(h), k);
            if h > 0 && (k == 0 || ring.hashes[k - 1] < h - 1) {
                assert_eq!(ring.slot(h - 1), k);
            }
        }
        assert_eq!(ring.slot(u64::MAX), 0);
        assert_eq!(ring.slot(0), 0);
        let empty = Ring::new(&[], 1024);
        assert_eq!(
            (empty.len(), empty.slot(7), empty.host_at(0)),
            (0, 0, usize::MAX)
        );
    }

    #[test]
    fn removal_moves_keys_only_off_the_departed_or_onto_new_entries() {
        let all = hosts(&[1; 10]);
        let mut rest = all.clone();
        let gone = rest.remove(4);
        let (before, after) = (Ring::new(&all, 1024), Ring::new(&rest, 1024));
        let old: std::collections::HashSet<u64> = before.hashes.iter().copied().collect();
        let mut extra = 0;
        for k in 0..20_000u64 {
            let key = hash_bytes(&k.to_le_bytes());
            let (b, a) = (before.slot(key), after.slot(key));
            let owner_before = &all[before.host_at(b)].0;
            let owner_after = &rest[after.host_at(a)].0;
            if owner_before != owner_after && *owner_before != gone.0 {
                // Moved between two endpoints that stayed: only to an entry the smaller
                // ring added (each endpoint's entries 103 to 113).
                assert!(!old.contains(&after.hashes[a]));
                extra += 1;
            }
        }
        assert!(extra > 0);
    }
}
