//! Choosing one endpoint of a snapshot by the configured algorithm.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::{Rng, RngExt};

use super::EndpointStats;
use super::maglev::Maglev;
use super::p2c::{self, Cost};
use super::ring_hash::Ring;
use super::round_robin::Schedule;
use super::weighted::AliasTable;
use crate::Endpoint;
use crate::config::{HashTable, LoadBalancer};

/// Candidates drawn (or round-robin turns taken) before the picker gives up on luck and
/// scans the snapshot for an endpoint that qualifies.
pub(crate) const MAX_DRAWS: usize = 4;

/// Ring entries or Maglev slots a hashed pick walks past an endpoint that does not qualify
/// before it scans the snapshot instead.
const MAX_WALK: usize = 4096;

/// The algorithm a [`LoadBalancer`] maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Algorithm {
    RoundRobin,
    Random,
    PowerOfTwo(Cost),
    Passthrough,
    ConsistentHash,
}

/// A consistent-hash lookup structure: positions (ring entries or table slots) that each
/// belong to an endpoint.
#[derive(Debug)]
enum Lookup {
    Ring(Ring),
    Maglev(Maglev),
}

impl Lookup {
    fn new(table: HashTable, hosts: &[(String, u32)], floor: f64) -> Self {
        match table {
            HashTable::Ring { minimum_size } => {
                Lookup::Ring(Ring::after(hosts, minimum_size, floor))
            }
            HashTable::Maglev { table_size } => Lookup::Maglev(Maglev::new(hosts, table_size)),
        }
    }

    fn len(&self) -> usize {
        match self {
            Lookup::Ring(ring) => ring.len(),
            Lookup::Maglev(maglev) => maglev.len(),
        }
    }

    fn slot(&self, hash: u64) -> usize {
        match self {
            Lookup::Ring(ring) => ring.slot(hash),
            Lookup::Maglev(maglev) => maglev.slot(hash),
        }
    }

    fn host_at(&self, position: usize) -> usize {
        match self {
            Lookup::Ring(ring) => ring.host_at(position),
            Lookup::Maglev(maglev) => maglev.host_at(position),
        }
    }

    /// The endpoint `hash` belongs to, or the first that `admits` accepts among the next
    /// positions: next ring entries, which is where the key would go were the refused
    /// endpoints off the ring, or next Maglev slots. The walk is bounded by [`MAX_WALK`]
    /// positions and by `2 * n` changes of endpoint; `None` when it finds none.
    fn walk(&self, hash: u64, n: usize, admits: impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.len();
        let start = self.slot(hash);
        let mut last = usize::MAX;
        let mut refused = 0;
        for k in 0..len.min(MAX_WALK) {
            let position = if start + k >= len {
                start + k - len
            } else {
                start + k
            };
            let host = self.host_at(position);
            if host == last {
                continue;
            }
            if admits(host) {
                return Some(host);
            }
            last = host;
            refused += 1;
            if refused >= 2 * n {
                break;
            }
        }
        None
    }
}

/// Which endpoints a fallback pass accepts, from the most to the least wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tier {
    /// Outside connect back-off and not the endpoint to avoid.
    Eligible,
    /// Outside connect back-off, even the endpoint to avoid.
    Available,
    /// Panic mode: any endpoint but the one to avoid.
    NotAvoided,
    /// Panic mode with a single candidate: anything.
    Any,
}

const FALLBACK: [Tier; 4] = [Tier::Eligible, Tier::Available, Tier::NotAvoided, Tier::Any];

impl Tier {
    fn admits(self, i: usize, stats: &EndpointStats, now: Duration, avoid: Option<usize>) -> bool {
        match self {
            Tier::Eligible => avoid != Some(i) && stats.is_available(now),
            Tier::Available => stats.is_available(now),
            Tier::NotAvoided => avoid != Some(i),
            Tier::Any => true,
        }
    }
}

/// Chooses an endpoint from a snapshot by one load-balancing algorithm.
///
/// Built once per endpoint snapshot (it precomputes the weighted round-robin schedule, the
/// weighted-random table, or the consistent-hash ring or Maglev table); [`pick`](Self::pick)
/// is then lock-free, allocation-free and O(1) (O(log n) on a ring) unless most candidates
/// it draws are unavailable. Endpoints in connect back-off and the endpoint to `avoid` are
/// skipped while any other will do; when none qualifies it falls back to available
/// endpoints including `avoid`, then to all (Envoy's panic mode).
#[derive(Debug)]
pub struct Picker {
    lb: LoadBalancer,
    algorithm: Algorithm,
    len: usize,
    table: Option<AliasTable>,
    schedule: Option<Schedule>,
    lookup: Option<Lookup>,
    cursor: AtomicUsize,
}

impl Picker {
    /// A picker for a snapshot of endpoints with these weights, in the snapshot's order.
    ///
    /// A weight of 0 counts as 1. Algorithms this picker does not implement balance as
    /// least request. Without addresses, a consistent-hash table is keyed by position: keys
    /// stick within one snapshot but move when it changes; use
    /// [`for_endpoints`](Self::for_endpoints) to key it by address.
    pub fn new(lb: &LoadBalancer, weights: &[u32]) -> Self {
        Self::build(lb, weights, 0.0, |i| i.to_string())
    }

    /// A picker for a snapshot of `endpoints` (weights and addresses, in the snapshot's
    /// order). Consistent-hash policies build their ring or Maglev table from the addresses
    /// (`10.0.0.1:8080`, as Envoy hashes them), so that a key keeps its endpoint across
    /// snapshots while that endpoint stays; other algorithms use the weights only, as
    /// [`new`](Self::new) does.
    pub fn for_endpoints(lb: &LoadBalancer, endpoints: &[Endpoint]) -> Self {
        Self::for_endpoints_after(lb, endpoints, None)
    }

    /// Like [`for_endpoints`](Self::for_endpoints), for the snapshot that replaces the one
    /// `previous` was built for: a hash ring keeps at least the previous ring's entries per
    /// endpoint, so that when endpoints leave only their keys move.
    pub fn for_endpoints_after(
        lb: &LoadBalancer,
        endpoints: &[Endpoint],
        previous: Option<&Picker>,
    ) -> Self {
        let weights: Vec<u32> = endpoints.iter().map(|e| e.weight).collect();
        let floor = match previous.and_then(|p| p.lookup.as_ref()) {
            Some(Lookup::Ring(ring)) => ring.per_weight(),
            _ => 0.0,
        };
        Self::build(lb, &weights, floor, |i| {
            endpoints
                .get(i)
                .map_or_else(|| i.to_string(), |e| e.addr.to_string())
        })
    }

    /// The picker for `weights`, with `key(i)` the consistent-hash key of endpoint `i` and
    /// `floor` the least ring entries per unit of weight.
    fn build(
        lb: &LoadBalancer,
        weights: &[u32],
        floor: f64,
        key: impl Fn(usize) -> String,
    ) -> Self {
        #[allow(unreachable_patterns)] // `LoadBalancer` is non-exhaustive and may grow.
        let algorithm = match lb {
            LoadBalancer::RoundRobin => Algorithm::RoundRobin,
            LoadBalancer::Random => Algorithm::Random,
            LoadBalancer::LeastRequest => Algorithm::PowerOfTwo(Cost::Load),
            LoadBalancer::PeakEwma(_) => Algorithm::PowerOfTwo(Cost::PeakEwma),
            LoadBalancer::Passthrough => Algorithm::Passthrough,
            LoadBalancer::ConsistentHash(_) => Algorithm::ConsistentHash,
            _ => Algorithm::PowerOfTwo(Cost::Load),
        };
        let (table, schedule) = match algorithm {
            Algorithm::RoundRobin => (None, Schedule::new(weights)),
            Algorithm::Passthrough => (None, None),
            // Hash pickers draw at random (weighted) for requests without a hash.
            _ => (AliasTable::new(weights), None),
        };
        let lookup = match lb {
            LoadBalancer::ConsistentHash(hash) => {
                let hosts: Vec<(String, u32)> = (0..weights.len())
                    .zip(weights)
                    .map(|(i, &w)| (key(i), w.max(1)))
                    .collect();
                Some(Lookup::new(hash.table, &hosts, floor))
            }
            _ => None,
        };
        Self {
            lb: lb.clone(),
            algorithm,
            len: weights.len(),
            table,
            schedule,
            lookup,
            cursor: AtomicUsize::new(0),
        }
    }

    /// The same picker with its round robin starting at `position` instead of the first
    /// endpoint; pass a random position so that many clients do not all start together.
    pub fn starting_at(self, position: usize) -> Self {
        self.cursor.store(position, Ordering::Relaxed);
        self
    }

    /// The algorithm this picker was built for.
    pub fn load_balancer(&self) -> &LoadBalancer {
        &self.lb
    }

    /// Picks the index of an endpoint, or `None` when `endpoints` is empty.
    ///
    /// `endpoints` should be the snapshot the picker was built for; a slice of another
    /// length is balanced as if all its weights were equal. `avoid` is the endpoint a failed
    /// try just used, so that the retry goes elsewhere when anywhere else will do.
    /// A consistent-hash picker picks at random here; see [`pick_hashed`](Self::pick_hashed).
    pub fn pick<E: AsRef<EndpointStats>, R: Rng + ?Sized>(
        &self,
        endpoints: &[E],
        now: Duration,
        rng: &mut R,
        avoid: Option<usize>,
    ) -> Option<usize> {
        self.pick_hashed(endpoints, now, rng, avoid, None)
    }

    /// Like [`pick`](Self::pick), with the request's consistent hash when it has one.
    /// Pickers that do not hash ignore it; hashing pickers without one pick at random
    /// (weighted), as `RANDOM` does.
    ///
    /// A hashing picker takes the endpoint the hash belongs to. When that one is in connect
    /// back-off or is `avoid`, it walks on (next ring entries, next Maglev slots) to the
    /// first that qualifies, so the key moves back once its endpoint recovers; the walk is
    /// bounded, after which it scans the snapshot from position `hash % n`. The same tiers
    /// as the other algorithms follow when none qualifies. A slice of another length than
    /// the snapshot's is served by that scan alone.
    pub fn pick_hashed<E: AsRef<EndpointStats>, R: Rng + ?Sized>(
        &self,
        endpoints: &[E],
        now: Duration,
        rng: &mut R,
        avoid: Option<usize>,
        hash: Option<u64>,
    ) -> Option<usize> {
        let n = endpoints.len();
        if n <= 1 {
            return n.checked_sub(1);
        }
        let eligible = |i: usize| {
            endpoints
                .get(i)
                .is_some_and(|e| Tier::Eligible.admits(i, e.as_ref(), now, avoid))
        };
        let picked = match (self.algorithm, hash) {
            (Algorithm::RoundRobin, _) => (0..MAX_DRAWS)
                .map(|_| self.next_turn(n))
                .find(|&i| eligible(i))
                .unwrap_or_else(|| self.scan_in_turn(endpoints, now, avoid)),
            (Algorithm::Random, _) | (Algorithm::ConsistentHash, None) => (0..MAX_DRAWS)
                .map(|_| self.draw(n, rng))
                .find(|&i| eligible(i))
                .unwrap_or_else(|| self.scan_random(endpoints, now, rng, avoid)),
            (Algorithm::PowerOfTwo(cost), _) => self.pick_two(cost, endpoints, now, rng, avoid),
            (Algorithm::Passthrough, _) => scan_from(0, endpoints, now, avoid),
            (Algorithm::ConsistentHash, Some(hash)) => {
                self.pick_by_hash(hash, endpoints, now, avoid)
            }
        };
        Some(picked)
    }

    /// Consistent hash: the endpoint `hash` belongs to, or the next that the most wanted
    /// tier admits.
    fn pick_by_hash<E: AsRef<EndpointStats>>(
        &self,
        hash: u64,
        endpoints: &[E],
        now: Duration,
        avoid: Option<usize>,
    ) -> usize {
        let n = endpoints.len();
        // `n >= 2`; the remainder is below `n`.
        let start = (hash % n as u64) as usize;
        let Some(lookup) = self
            .lookup
            .as_ref()
            .filter(|l| self.len == n && l.len() > 0)
        else {
            return scan_from(start, endpoints, now, avoid);
        };
        FALLBACK
            .iter()
            .find_map(|tier| {
                let admits = |i: usize| {
                    endpoints
                        .get(i)
                        .is_some_and(|e| tier.admits(i, e.as_ref(), now, avoid))
                };
                lookup
                    .walk(hash, n, admits)
                    .or_else(|| (0..n).map(|k| (start + k) % n).find(|&i| admits(i)))
            })
            .unwrap_or(start)
    }

    /// Power of two choices: two distinct eligible candidates, the cheaper kept.
    fn pick_two<E: AsRef<EndpointStats>, R: Rng + ?Sized>(
        &self,
        cost: Cost,
        endpoints: &[E],
        now: Duration,
        rng: &mut R,
        avoid: Option<usize>,
    ) -> usize {
        let n = endpoints.len();
        let eligible = |i: usize, e: &EndpointStats| Tier::Eligible.admits(i, e, now, avoid);
        let eligible_at = |i: usize| endpoints.get(i).is_some_and(|e| eligible(i, e.as_ref()));
        let Some(a) = (0..MAX_DRAWS)
            .map(|_| self.draw(n, rng))
            .find(|&i| eligible_at(i))
        else {
            return self.scan_p2c(cost, endpoints, now, rng, avoid);
        };
        // A second candidate by luck, or else by a scan: it keeps P2C's choice even when
        // most endpoints are unavailable.
        let b = (0..MAX_DRAWS)
            .map(|_| self.draw_other(n, a, rng))
            .find(|&i| eligible_at(i))
            .or_else(|| scan_weighted(endpoints, rng, |i, e| i != a && eligible(i, e)));
        match b {
            Some(b) => p2c::choose(cost, endpoints, a, b, now, rng),
            None => a,
        }
    }

    /// The next round-robin turn among `n` endpoints.
    fn next_turn(&self, n: usize) -> usize {
        let position = self.cursor.fetch_add(1, Ordering::Relaxed);
        match &self.schedule {
            Some(schedule) if self.len == n => schedule.at(position),
            _ => position % n,
        }
    }

    /// A random endpoint among `n`, weighted when the weights differ.
    fn draw<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> usize {
        match &self.table {
            Some(table) if table.len() == n => table.sample(rng),
            _ => rng.random_range(0..n),
        }
    }

    /// A random endpoint among `n >= 2` other than `a`, weighted when the weights differ.
    fn draw_other<R: Rng + ?Sized>(&self, n: usize, a: usize, rng: &mut R) -> usize {
        if let Some(table) = self.table.as_ref().filter(|t| t.len() == n) {
            // Rejection sampling, bounded: a dominant `a` falls back to a uniform draw.
            for _ in 0..MAX_DRAWS {
                let i = table.sample(rng);
                if i != a {
                    return i;
                }
            }
        }
        let i = rng.random_range(0..n - 1);
        if i >= a { i + 1 } else { i }
    }

    /// Round-robin fallback: the first endpoint in index order from the next turn that the
    /// most wanted tier admits.
    fn scan_in_turn<E: AsRef<EndpointStats>>(
        &self,
        endpoints: &[E],
        now: Duration,
        avoid: Option<usize>,
    ) -> usize {
        scan_from(self.next_turn(endpoints.len()), endpoints, now, avoid)
    }

    /// Random fallback: a weighted draw among the most wanted tier that admits anyone.
    fn scan_random<E: AsRef<EndpointStats>, R: Rng + ?Sized>(
        &self,
        endpoints: &[E],
        now: Duration,
        rng: &mut R,
        avoid: Option<usize>,
    ) -> usize {
        FALLBACK
            .iter()
            .find_map(|tier| scan_weighted(endpoints, rng, |i, e| tier.admits(i, e, now, avoid)))
            .unwrap_or(0)
    }

    /// Power-of-two fallback: two weighted draws among the most wanted tier that admits
    /// anyone, the cheaper kept.
    fn scan_p2c<E: AsRef<EndpointStats>, R: Rng + ?Sized>(
        &self,
        cost: Cost,
        endpoints: &[E],
        now: Duration,
        rng: &mut R,
        avoid: Option<usize>,
    ) -> usize {
        FALLBACK
            .iter()
            .find_map(|tier| {
                let a = scan_weighted(endpoints, rng, |i, e| tier.admits(i, e, now, avoid))?;
                let b = scan_weighted(endpoints, rng, |i, e| {
                    i != a && tier.admits(i, e, now, avoid)
                });
                Some(b.map_or(a, |b| p2c::choose(cost, endpoints, a, b, now, rng)))
            })
            .unwrap_or(0)
    }
}

/// The first endpoint in index order from `start` (wrapping around) that the most wanted
/// tier admits; `start` itself when `endpoints` is empty.
fn scan_from<E: AsRef<EndpointStats>>(
    start: usize,
    endpoints: &[E],
    now: Duration,
    avoid: Option<usize>,
) -> usize {
    let n = endpoints.len();
    FALLBACK
        .iter()
        .find_map(|tier| {
            (0..n)
                .map(|k| (start + k) % n)
                .find(|&i| tier.admits(i, endpoints[i].as_ref(), now, avoid))
        })
        .unwrap_or(start)
}

/// A draw weighted by each endpoint's own weight among those `admits` accepts, by two
/// passes over the snapshot; `None` when it accepts none.
fn scan_weighted<E, R, F>(endpoints: &[E], rng: &mut R, admits: F) -> Option<usize>
where
    E: AsRef<EndpointStats>,
    R: Rng + ?Sized,
    F: Fn(usize, &EndpointStats) -> bool,
{
    let admitted = || {
        endpoints
            .iter()
            .enumerate()
            .filter(|(i, e)| admits(*i, e.as_ref()))
            .map(|(i, e)| (i, u64::from(e.as_ref().weight())))
    };
    let total: u64 = admitted().map(|(_, w)| w).sum();
    if total == 0 {
        return None;
    }
    let mut r = rng.random_range(0..total);
    let mut last = None;
    for (i, w) in admitted() {
        if r < w {
            return Some(i);
        }
        r -= w;
        last = Some(i);
    }
    // Health changed between the two passes: take the last one still admitted.
    last
}
