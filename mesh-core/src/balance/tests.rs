//! Tests of the picker over whole snapshots: spread, load, latency and fallbacks.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{EndpointStats, Picker};
use crate::config::{LoadBalancer, PeakEwmaConfig};

const MS: Duration = Duration::from_millis(1);
const T0: Duration = Duration::from_secs(1000);

const ALL: [LoadBalancer; 4] = [
    LoadBalancer::RoundRobin,
    LoadBalancer::Random,
    LoadBalancer::LeastRequest,
    LoadBalancer::PeakEwma(PeakEwmaConfig {
        decay: Duration::from_secs(10),
        default_rtt: Duration::from_millis(30),
    }),
];

fn rng() -> StdRng {
    StdRng::seed_from_u64(42)
}

fn stats(weights: &[u32]) -> Vec<EndpointStats> {
    weights.iter().map(|&w| EndpointStats::new(w)).collect()
}

/// How often each endpoint is picked in `picks` picks.
fn spread(
    picker: &Picker,
    endpoints: &[EndpointStats],
    picks: usize,
    avoid: Option<usize>,
) -> Vec<usize> {
    let mut rng = rng();
    let mut counts = vec![0; endpoints.len()];
    for _ in 0..picks {
        let i = picker
            .pick(endpoints, T0, &mut rng, avoid)
            .expect("non-empty");
        counts[i] += 1;
    }
    counts
}

#[test]
fn empty_is_none_and_single_is_picked() {
    let mut rng = rng();
    let none: [EndpointStats; 0] = [];
    let one = stats(&[1]);
    one[0].on_connect_failure(T0);
    for lb in ALL {
        let picker = Picker::new(&lb, &[]);
        assert_eq!(picker.pick(&none, T0, &mut rng, None), None);
        let picker = Picker::new(&lb, &[1]);
        // Unavailable and avoided, but the only one.
        assert_eq!(picker.pick(&one, T0, &mut rng, Some(0)), Some(0));
    }
}

#[test]
fn round_robin_spreads_exactly() {
    let endpoints = stats(&[1; 5]);
    let picker = Picker::new(&LoadBalancer::RoundRobin, &[1; 5]);
    // Every window of 5 consecutive picks covers each endpoint once.
    for _ in 0..20 {
        assert_eq!(spread(&picker, &endpoints, 5, None), vec![1; 5]);
    }
    let picker = Picker::new(&LoadBalancer::RoundRobin, &[1; 5]).starting_at(3);
    let mut rng = rng();
    assert_eq!(picker.pick(&endpoints, T0, &mut rng, None), Some(3));
    assert_eq!(spread(&picker, &endpoints, 4, None), vec![1, 1, 1, 0, 1]);
}

#[test]
fn round_robin_is_exact_across_threads() {
    let endpoints: Vec<Arc<EndpointStats>> =
        (0..4).map(|_| Arc::new(EndpointStats::new(1))).collect();
    let picker = Picker::new(&LoadBalancer::RoundRobin, &[1; 4]);
    let counts: Vec<Vec<usize>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|seed| {
                let (picker, endpoints) = (&picker, &endpoints);
                s.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(seed);
                    let mut counts = vec![0; 4];
                    for _ in 0..1000 {
                        if let Some(i) = picker.pick(endpoints, T0, &mut rng, None) {
                            counts[i] += 1;
                        }
                    }
                    counts
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let total: Vec<usize> = (0..4).map(|i| counts.iter().map(|c| c[i]).sum()).collect();
    assert_eq!(total, vec![1000; 4]);
}

#[test]
fn weighted_round_robin_follows_weights_exactly() {
    let weights = [3, 1, 2];
    let picker = Picker::new(&LoadBalancer::RoundRobin, &weights);
    assert_eq!(
        spread(&picker, &stats(&weights), 600, None),
        vec![300, 100, 200]
    );
}

#[test]
fn weighted_random_is_within_tolerance() {
    let weights = [1, 2, 7, 0];
    let picker = Picker::new(&LoadBalancer::Random, &weights);
    let picks = 100_000;
    let counts = spread(&picker, &stats(&weights), picks, None);
    for (i, &w) in weights.iter().enumerate() {
        let share = counts[i] as f64 / picks as f64;
        let expected = f64::from(w.max(1)) / 11.0;
        assert!(
            (share - expected).abs() < 0.01,
            "{i}: {share} vs {expected}"
        );
    }
}

#[test]
fn uniform_random_is_within_tolerance() {
    let picker = Picker::new(&LoadBalancer::Random, &[1; 4]);
    let counts = spread(&picker, &stats(&[1; 4]), 40_000, None);
    assert!(
        counts.iter().all(|&c| (9_500..10_500).contains(&c)),
        "{counts:?}"
    );
}

#[test]
fn least_request_prefers_the_less_loaded() {
    let endpoints = stats(&[1; 4]);
    for (i, e) in endpoints.iter().enumerate() {
        for _ in 0..i * 3 {
            e.on_start();
        }
    }
    let picker = Picker::new(&LoadBalancer::LeastRequest, &[1; 4]);
    let counts = spread(&picker, &endpoints, 12_000, None);
    // The most loaded is never the lower of two distinct candidates.
    assert_eq!(counts[3], 0);
    // Endpoint i wins against every more loaded one: (3 - i) of the 6 pairs.
    for (i, &c) in counts.iter().enumerate().take(3) {
        let expected = 12_000.0 * (3 - i) as f64 / 6.0;
        assert!(
            (c as f64 - expected).abs() < 400.0,
            "{i}: {c} vs {expected}"
        );
    }
}

#[test]
fn least_request_divides_load_by_weight() {
    let endpoints = stats(&[4, 1]);
    for _ in 0..3 {
        endpoints[0].on_start();
    }
    endpoints[1].on_start();
    let picker = Picker::new(&LoadBalancer::LeastRequest, &[4, 1]);
    // 3/4 < 1/1: the heavy endpoint wins even with more requests in flight.
    assert_eq!(spread(&picker, &endpoints, 100, None), vec![100, 0]);
}

#[test]
fn least_request_breaks_ties_at_random() {
    let picker = Picker::new(&LoadBalancer::LeastRequest, &[1, 1]);
    let counts = spread(&picker, &stats(&[1, 1]), 1000, None);
    assert!(counts.iter().all(|&c| c > 400), "{counts:?}");
}

#[test]
fn weighted_least_request_draws_heavy_candidates_more() {
    let weights = [1, 1, 8];
    let picker = Picker::new(&LoadBalancer::LeastRequest, &weights);
    let counts = spread(&picker, &stats(&weights), 10_000, None);
    assert!(counts[2] > counts[0] * 3, "{counts:?}");
}

#[test]
fn peak_ewma_prefers_the_fast_endpoint_and_forgets() {
    let cfg = PeakEwmaConfig::default();
    let lb = LoadBalancer::PeakEwma(cfg);
    let endpoints: Vec<EndpointStats> = (0..2)
        .map(|_| EndpointStats::for_balancer(1, &lb))
        .collect();
    let picker = Picker::new(&lb, &[1, 1]);
    let mut rng = rng();
    let t = Duration::from_secs(10);
    endpoints[0].observe_rtt(t, 500 * MS);
    endpoints[1].observe_rtt(t, 10 * MS);
    for _ in 0..100 {
        assert_eq!(picker.pick(&endpoints, t, &mut rng, None), Some(1));
    }
    // Latency times load: 10 ms * 60 in flight is worse than 500 ms * 1.
    for _ in 0..59 {
        endpoints[1].on_start();
    }
    assert_eq!(picker.pick(&endpoints, t, &mut rng, None), Some(0));
    for _ in 0..59 {
        endpoints[1].on_end();
    }
    // A minute later endpoint 0's old peak has decayed (500 ms * e^-6 ~ 1.2 ms) and
    // endpoint 1 has just been seen at 20 ms: endpoint 0 is now preferred.
    let later = t + Duration::from_secs(60);
    endpoints[1].observe_rtt(later, 20 * MS);
    assert!(endpoints[0].rtt_estimate(later) < 2 * MS);
    for _ in 0..100 {
        assert_eq!(picker.pick(&endpoints, later, &mut rng, None), Some(0));
    }
}

#[test]
fn peak_ewma_uses_the_default_rtt_before_observations() {
    let endpoints = stats(&[1, 1]);
    let picker = Picker::new(&LoadBalancer::PeakEwma(PeakEwmaConfig::default()), &[1, 1]);
    let mut rng = rng();
    endpoints[1].observe_rtt(T0, 100 * MS);
    // Endpoint 0 is assumed at 30 ms.
    assert_eq!(picker.pick(&endpoints, T0, &mut rng, None), Some(0));
    endpoints[1].observe_rtt(T0, 100 * MS);
    endpoints[0].observe_rtt(T0, 200 * MS);
    assert_eq!(picker.pick(&endpoints, T0, &mut rng, None), Some(1));
}

#[test]
fn avoid_sends_retries_elsewhere() {
    let endpoints = stats(&[1, 1, 1]);
    for lb in ALL {
        let picker = Picker::new(&lb, &[1, 1, 1]);
        let counts = spread(&picker, &endpoints, 3000, Some(1));
        assert_eq!(counts[1], 0, "{lb:?}: {counts:?}");
        assert!(counts[0] > 500 && counts[2] > 500, "{lb:?}: {counts:?}");
    }
}

#[test]
fn unavailable_endpoints_are_skipped_until_their_backoff_ends() {
    let endpoints = stats(&[1, 1, 1]);
    endpoints[0].on_connect_failure(T0 - 50 * MS);
    for lb in ALL {
        let picker = Picker::new(&lb, &[1, 1, 1]);
        let counts = spread(&picker, &endpoints, 300, None);
        assert_eq!(counts[0], 0, "{lb:?}: {counts:?}");
    }
    let after = T0 + 50 * MS;
    let mut rng = rng();
    let picker = Picker::new(&LoadBalancer::RoundRobin, &[1, 1, 1]);
    let picked: Vec<_> = (0..3)
        .filter_map(|_| picker.pick(&endpoints, after, &mut rng, None))
        .collect();
    assert_eq!(picked, vec![0, 1, 2]);
}

#[test]
fn avoided_endpoint_is_used_when_the_others_are_unavailable() {
    let endpoints = stats(&[1, 1, 1]);
    endpoints[0].on_connect_failure(T0);
    endpoints[2].on_connect_failure(T0);
    for lb in ALL {
        let picker = Picker::new(&lb, &[1, 1, 1]);
        assert_eq!(
            spread(&picker, &endpoints, 50, Some(1)),
            vec![0, 50, 0],
            "{lb:?}"
        );
    }
}

#[test]
fn panic_mode_uses_everyone_but_the_avoided() {
    let endpoints = stats(&[1, 1, 1]);
    for e in &endpoints {
        e.on_connect_failure(T0);
    }
    for lb in ALL {
        let picker = Picker::new(&lb, &[1, 1, 1]);
        let counts = spread(&picker, &endpoints, 300, Some(0));
        assert_eq!(counts[0], 0, "{lb:?}: {counts:?}");
        assert!(counts[1] > 50 && counts[2] > 50, "{lb:?}: {counts:?}");
        let counts = spread(&picker, &endpoints, 300, None);
        assert!(counts.iter().all(|&c| c > 50), "{lb:?}: {counts:?}");
    }
    let two = stats(&[1, 1]);
    for e in &two {
        e.on_connect_failure(T0);
    }
    let picker = Picker::new(&LoadBalancer::LeastRequest, &[1, 1]);
    assert_eq!(spread(&picker, &two, 20, Some(1)), vec![20, 0]);
}

#[test]
fn few_available_among_many_are_found() {
    let weights = vec![1; 100];
    let endpoints = stats(&weights);
    let available = [7, 42, 93];
    for (i, e) in endpoints.iter().enumerate() {
        if !available.contains(&i) {
            e.on_connect_failure(T0);
        }
    }
    for lb in ALL {
        let picker = Picker::new(&lb, &weights);
        let counts = spread(&picker, &endpoints, 3000, Some(42));
        let picked: Vec<usize> = (0..100).filter(|&i| counts[i] > 0).collect();
        assert_eq!(picked, vec![7, 93], "{lb:?}");
    }
}

#[test]
fn a_snapshot_of_another_length_is_balanced_evenly() {
    let endpoints = stats(&[1; 5]);
    for lb in ALL {
        let picker = Picker::new(&lb, &[1, 9, 3]);
        let counts = spread(&picker, &endpoints, 5000, None);
        assert!(counts.iter().all(|&c| c > 500), "{lb:?}: {counts:?}");
    }
}

#[test]
fn non_exhaustive_default_is_least_request() {
    assert_eq!(LoadBalancer::default(), LoadBalancer::LeastRequest);
    assert_eq!(
        Picker::new(&LoadBalancer::default(), &[]).load_balancer(),
        &LoadBalancer::LeastRequest
    );
}

/// The best fallback tier any endpoint is in: 0 eligible, 1 available, 2 not avoided, 3 any.
fn tier(endpoints: &[EndpointStats], i: usize, avoid: Option<usize>) -> u8 {
    match (endpoints[i].is_available(T0), avoid == Some(i)) {
        (true, false) => 0,
        (true, true) => 1,
        (false, false) => 2,
        (false, true) => 3,
    }
}

proptest! {
    #[test]
    fn pick_is_valid_and_prefers_the_best_tier(
        setup in prop::collection::vec((any::<u32>(), 0u32..5, any::<bool>()), 0..12),
        picker_weights in prop::option::of(prop::collection::vec(any::<u32>(), 0..12)),
        avoid in prop::option::of(0usize..14),
        lb in 0usize..4,
        seed in any::<u64>(),
    ) {
        let endpoints: Vec<EndpointStats> = setup
            .iter()
            .map(|&(w, load, down)| {
                let e = EndpointStats::new(w);
                (0..load).for_each(|_| e.on_start());
                if down {
                    e.on_connect_failure(T0);
                }
                e
            })
            .collect();
        let weights: Vec<u32> = picker_weights.unwrap_or_else(|| setup.iter().map(|s| s.0).collect());
        let picker = Picker::new(&ALL[lb], &weights);
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..8 {
            let picked = picker.pick(&endpoints, T0, &mut rng, avoid);
            match picked {
                None => prop_assert!(endpoints.is_empty()),
                Some(i) => {
                    prop_assert!(i < endpoints.len());
                    let best = (0..endpoints.len()).map(|j| tier(&endpoints, j, avoid)).min();
                    // A lone endpoint is picked whatever its tier.
                    if endpoints.len() > 1 {
                        prop_assert_eq!(Some(tier(&endpoints, i, avoid)), best);
                    }
                }
            }
        }
    }
}

// Consistent hash and passthrough.

mod hashing {
    use std::net::SocketAddr;

    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::{MS, T0, stats};
    use crate::Endpoint;
    use crate::balance::{EndpointStats, Picker};
    use crate::config::{ConsistentHash, HashKey, HashTable, LoadBalancer};

    fn lb(table: HashTable) -> LoadBalancer {
        LoadBalancer::ConsistentHash(ConsistentHash {
            key: HashKey::SourceIp,
            table,
        })
    }

    const RING: HashTable = HashTable::Ring { minimum_size: 1024 };
    const MAGLEV: HashTable = HashTable::Maglev { table_size: 65537 };

    fn addr(i: usize) -> SocketAddr {
        SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8 + 1], 8080))
    }

    fn endpoints(weights: &[u32]) -> Vec<Endpoint> {
        (0..weights.len())
            .map(|i| Endpoint::new(addr(i)).with_weight(weights[i]))
            .collect()
    }

    fn keys(count: usize) -> Vec<u64> {
        let mut rng = StdRng::seed_from_u64(9);
        (0..count).map(|_| rng.random()).collect()
    }

    /// The address each key goes to, all endpoints available.
    fn owners(table: HashTable, eps: &[Endpoint], keys: &[u64]) -> Vec<SocketAddr> {
        let picker = Picker::for_endpoints(&lb(table), eps);
        let s: Vec<EndpointStats> = eps.iter().map(|e| EndpointStats::new(e.weight)).collect();
        let mut rng = StdRng::seed_from_u64(1);
        keys.iter()
            .map(|&k| {
                let i = picker
                    .pick_hashed(&s, T0, &mut rng, None, Some(k))
                    .expect("non-empty");
                eps[i].addr
            })
            .collect()
    }

    /// Keys per endpoint, in snapshot order.
    fn loads(table: HashTable, eps: &[Endpoint], keys: &[u64]) -> Vec<usize> {
        let owners = owners(table, eps, keys);
        eps.iter()
            .map(|e| owners.iter().filter(|&&a| a == e.addr).count())
            .collect()
    }

    fn max_over_mean(loads: &[usize]) -> f64 {
        let mean = loads.iter().sum::<usize>() as f64 / loads.len() as f64;
        *loads.iter().max().unwrap_or(&0) as f64 / mean
    }

    /// Of `keys`, the share that moved when endpoint `gone` left, and the share of those
    /// that were not on it.
    fn disruption(table: HashTable, n: usize, gone: usize, keys: &[u64]) -> (f64, f64) {
        let all = endpoints(&vec![1; n]);
        let mut rest = all.clone();
        rest.remove(gone);
        let before = owners(table, &all, keys);
        let after = owners(table, &rest, keys);
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        let extra = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b != a && **b != all[gone].addr)
            .count();
        let total = keys.len() as f64;
        (moved as f64 / total, extra as f64 / total)
    }

    /// Envoy's own test vectors: six endpoints `127.0.0.1:90` to `:95`, a ring of minimum
    /// size 12 and a Maglev table of 7 slots. The same keys pick the same endpoints.
    #[test]
    fn picks_match_envoys() {
        let eps: Vec<Endpoint> = (90..96)
            .map(|port| Endpoint::new(SocketAddr::from(([127, 0, 0, 1], port))))
            .collect();
        let s = stats(&[1; 6]);
        let mut rng = StdRng::seed_from_u64(1);
        let ring = Picker::for_endpoints(&lb(HashTable::Ring { minimum_size: 12 }), &eps);
        for (key, expected) in [
            (0, 4),
            (u64::MAX, 4),
            (3_551_244_743_356_806_947, 5),
            (3_551_244_743_356_806_948, 3),
            (16_117_243_373_044_804_880, 0),
        ] {
            let picked = ring.pick_hashed(&s, T0, &mut rng, None, Some(key));
            assert_eq!(picked, Some(expected), "ring, key {key}");
        }
        let maglev = Picker::for_endpoints(&lb(HashTable::Maglev { table_size: 7 }), &eps);
        for (key, expected) in (0..21).zip([2, 4, 0, 1, 5, 0, 3].into_iter().cycle()) {
            let picked = maglev.pick_hashed(&s, T0, &mut rng, None, Some(key));
            assert_eq!(picked, Some(expected), "maglev, key {key}");
        }
    }

    #[test]
    fn a_key_keeps_its_endpoint_across_rebuilds() {
        let keys = keys(5_000);
        let eps = endpoints(&[1, 3, 1, 2, 1, 1, 5, 1]);
        for table in [RING, MAGLEV] {
            let first = owners(table, &eps, &keys);
            assert_eq!(owners(table, &eps, &keys), first, "{table:?}");
            // Equal weights: the order of the snapshot does not matter either.
            let equal = endpoints(&[1; 8]);
            let mut shuffled = equal.clone();
            shuffled.rotate_left(3);
            assert_eq!(
                owners(table, &equal, &keys),
                owners(table, &shuffled, &keys),
                "{table:?}"
            );
        }
    }

    #[test]
    fn ring_removal_moves_only_the_departed_endpoints_keys() {
        let keys = keys(50_000);
        // 100 and 99 endpoints both get 11 entries each: exactly minimal.
        let (moved, extra) = disruption(RING, 100, 42, &keys);
        assert_eq!(extra, 0.0);
        assert!(moved > 0.003 && moved < 0.02, "{moved}");
        // 10 endpoints get 103 entries each and 9 get 114: the 99 new entries (9.6 % of the
        // ring) take their keys from the others too, as in Envoy.
        let (moved, extra) = disruption(RING, 10, 4, &keys);
        assert!(extra > 0.03 && extra < 0.10, "{extra}");
        assert!(moved - extra > 0.05 && moved - extra < 0.15, "{moved}");
    }

    #[test]
    fn maglev_removal_moves_few_other_keys() {
        let keys = keys(50_000);
        let (moved, extra) = disruption(MAGLEV, 100, 42, &keys);
        assert!(extra < 0.03, "{extra}");
        assert!(moved - extra > 0.005 && moved - extra < 0.015, "{moved}");
        let (moved, extra) = disruption(MAGLEV, 10, 4, &keys);
        assert!(extra < 0.03, "{extra}");
        assert!(moved - extra > 0.08 && moved - extra < 0.12, "{moved}");
    }

    #[test]
    fn keys_spread_over_equal_endpoints() {
        let keys = keys(100_000);
        let eps = endpoints(&[1; 100]);
        // 11 entries per endpoint spread keys poorly; 100 per endpoint better; Maglev evenly
        // (what remains is the sampling noise of 1,000 keys per endpoint).
        let ring = max_over_mean(&loads(RING, &eps, &keys));
        let big_ring = max_over_mean(&loads(
            HashTable::Ring {
                minimum_size: 10_000,
            },
            &eps,
            &keys,
        ));
        let maglev = max_over_mean(&loads(MAGLEV, &eps, &keys));
        assert!(ring < 2.5, "{ring}");
        assert!(big_ring < 1.6, "{big_ring}");
        assert!(maglev < 1.15, "{maglev}");
    }

    #[test]
    fn weights_set_the_share_of_keys() {
        let keys = keys(60_000);
        let eps = endpoints(&[1, 2, 1, 2]);
        for table in [RING, MAGLEV] {
            let l = loads(table, &eps, &keys);
            for (i, &w) in [1.0, 2.0, 1.0, 2.0].iter().enumerate() {
                let share = l[i] as f64 / keys.len() as f64;
                let expected = w / 6.0;
                assert!(
                    (share - expected).abs() < 0.05,
                    "{table:?} {i}: {share} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn an_unavailable_endpoint_is_skipped_and_its_keys_come_back() {
        let keys = keys(2_000);
        let eps = endpoints(&[1; 10]);
        let s = stats(&[1; 10]);
        let mut rng = StdRng::seed_from_u64(1);
        for table in [RING, MAGLEV] {
            let picker = Picker::for_endpoints(&lb(table), &eps);
            let pick = |k, now, avoid, rng: &mut StdRng| {
                picker
                    .pick_hashed(&s, now, rng, avoid, Some(k))
                    .expect("non-empty")
            };
            let before: Vec<usize> = keys.iter().map(|&k| pick(k, T0, None, &mut rng)).collect();
            s[3].on_connect_failure(T0);
            let during: Vec<usize> = keys.iter().map(|&k| pick(k, T0, None, &mut rng)).collect();
            // Only endpoint 3's keys move, and they spread over the others.
            for (b, d) in before.iter().zip(&during) {
                assert_eq!(*d == *b, *b != 3, "{table:?}");
            }
            let moved_to: std::collections::HashSet<usize> = during
                .iter()
                .zip(&before)
                .filter(|(_, b)| **b == 3)
                .map(|(d, _)| *d)
                .collect();
            assert!(moved_to.len() >= 5, "{table:?}: {moved_to:?}");
            // Avoiding endpoint 5 for a retry moves only its keys, deterministically.
            let retry: Vec<usize> = keys
                .iter()
                .map(|&k| pick(k, T0, Some(5), &mut rng))
                .collect();
            for (r, d) in retry.iter().zip(&during) {
                assert_eq!(*r == *d, *d != 5, "{table:?}");
            }
            // The back-off ends: everything is back where it was.
            let after = T0 + 200 * MS;
            let back: Vec<usize> = keys
                .iter()
                .map(|&k| pick(k, after, None, &mut rng))
                .collect();
            assert_eq!(back, before, "{table:?}");
            s[3].on_connect_success();
        }
    }

    #[test]
    fn hashing_falls_back_through_the_tiers() {
        let eps = endpoints(&[1; 3]);
        for table in [RING, MAGLEV] {
            let picker = Picker::for_endpoints(&lb(table), &eps);
            let s = stats(&[1; 3]);
            let mut rng = StdRng::seed_from_u64(1);
            s[0].on_connect_failure(T0);
            s[2].on_connect_failure(T0);
            for k in keys(200) {
                // Only the avoided one is available: it is used.
                assert_eq!(
                    picker.pick_hashed(&s, T0, &mut rng, Some(1), Some(k)),
                    Some(1)
                );
            }
            s[1].on_connect_failure(T0);
            for k in keys(200) {
                // Panic mode: anyone but the avoided one, still by hash.
                let i = picker.pick_hashed(&s, T0, &mut rng, Some(1), Some(k));
                assert!(matches!(i, Some(0 | 2)), "{table:?}");
                assert_eq!(picker.pick_hashed(&s, T0, &mut rng, Some(1), Some(k)), i);
            }
        }
    }

    #[test]
    fn few_available_among_many_are_found_by_hash() {
        let eps = endpoints(&[1; 100]);
        let s = stats(&[1; 100]);
        let available = [7, 42, 93];
        for (i, e) in s.iter().enumerate() {
            if !available.contains(&i) {
                e.on_connect_failure(T0);
            }
        }
        let mut rng = StdRng::seed_from_u64(1);
        for table in [RING, MAGLEV] {
            let picker = Picker::for_endpoints(&lb(table), &eps);
            let mut seen = std::collections::BTreeSet::new();
            for k in keys(1000) {
                seen.insert(
                    picker
                        .pick_hashed(&s, T0, &mut rng, Some(42), Some(k))
                        .unwrap(),
                );
            }
            assert_eq!(
                seen.into_iter().collect::<Vec<_>>(),
                vec![7, 93],
                "{table:?}"
            );
        }
    }

    #[test]
    fn without_a_hash_the_pick_is_weighted_random() {
        let eps = endpoints(&[1, 3]);
        let s = stats(&[1, 3]);
        let mut rng = StdRng::seed_from_u64(1);
        for table in [RING, MAGLEV] {
            let picker = Picker::for_endpoints(&lb(table), &eps);
            let mut counts = [0usize; 2];
            for _ in 0..8000 {
                counts[picker.pick(&s, T0, &mut rng, None).unwrap()] += 1;
            }
            assert!(
                counts[1] > 5500 && counts[1] < 6500,
                "{table:?}: {counts:?}"
            );
        }
    }

    #[test]
    fn non_hashing_pickers_ignore_the_hash() {
        let s = stats(&[1; 3]);
        let picker = Picker::for_endpoints(&LoadBalancer::RoundRobin, &endpoints(&[1; 3]));
        let mut rng = StdRng::seed_from_u64(1);
        let picked: Vec<_> = (0..6)
            .filter_map(|k| picker.pick_hashed(&s, T0, &mut rng, None, Some(k)))
            .collect();
        assert_eq!(picked, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn passthrough_picks_the_first_eligible() {
        let lb = LoadBalancer::Passthrough;
        let picker = Picker::for_endpoints(&lb, &endpoints(&[1, 5, 1, 1])).starting_at(2);
        let s = stats(&[1, 5, 1, 1]);
        let mut rng = StdRng::seed_from_u64(1);
        let mut pick = |avoid, hash| picker.pick_hashed(&s, T0, &mut rng, avoid, hash);
        assert_eq!(pick(None, None), Some(0));
        assert_eq!(pick(None, Some(77)), Some(0));
        assert_eq!(pick(Some(0), None), Some(1));
        s[0].on_connect_failure(T0);
        s[1].on_connect_failure(T0);
        assert_eq!(pick(None, None), Some(2));
        assert_eq!(pick(Some(2), None), Some(3));
        s[2].on_connect_failure(T0);
        s[3].on_connect_failure(T0);
        // Everyone in back-off: the first but the avoided one.
        assert_eq!(pick(None, None), Some(0));
        assert_eq!(pick(Some(0), None), Some(1));
        // Built by weights alone it behaves the same.
        assert_eq!(Picker::new(&lb, &[1, 1]).load_balancer(), &lb);
    }

    #[test]
    fn new_keys_a_hash_table_by_position() {
        let s = stats(&[1; 5]);
        let mut rng = StdRng::seed_from_u64(1);
        for table in [RING, MAGLEV] {
            let a = Picker::new(&lb(table), &[1; 5]);
            let b = Picker::new(&lb(table), &[1; 5]);
            for k in keys(500) {
                assert_eq!(
                    a.pick_hashed(&s, T0, &mut rng, None, Some(k)),
                    b.pick_hashed(&s, T0, &mut rng, None, Some(k))
                );
            }
        }
    }

    #[test]
    fn odd_table_sizes_are_usable() {
        let eps = endpoints(&[1; 20]);
        let s = stats(&[1; 20]);
        let mut rng = StdRng::seed_from_u64(1);
        for table in [
            HashTable::Ring { minimum_size: 0 },
            HashTable::Ring { minimum_size: 1 },
            HashTable::Maglev { table_size: 0 },
            HashTable::Maglev { table_size: 1 },
            HashTable::Maglev { table_size: 10 },
        ] {
            let picker = Picker::for_endpoints(&lb(table), &eps);
            for k in keys(100) {
                let i = picker.pick_hashed(&s, T0, &mut rng, None, Some(k));
                assert!(i.is_some_and(|i| i < 20), "{table:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn hashed_pick_is_valid_and_prefers_the_best_tier(
            setup in prop::collection::vec((1u32..5, any::<bool>()), 0..12),
            other_len in prop::option::of(0usize..12),
            avoid in prop::option::of(0usize..14),
            maglev in any::<bool>(),
            size in 0u64..2000,
            hash in prop::option::of(any::<u64>()),
            seed in any::<u64>(),
        ) {
            let table = if maglev {
                HashTable::Maglev { table_size: size }
            } else {
                HashTable::Ring { minimum_size: size }
            };
            let weights: Vec<u32> = setup.iter().map(|s| s.0).collect();
            // The picker is built for the snapshot, or for one of another length.
            let built = endpoints(&other_len.map_or(weights.clone(), |n| vec![1; n]));
            let picker = Picker::for_endpoints(&lb(table), &built);
            let s: Vec<EndpointStats> = setup
                .iter()
                .map(|&(w, down)| {
                    let e = EndpointStats::new(w);
                    if down {
                        e.on_connect_failure(T0);
                    }
                    e
                })
                .collect();
            let mut rng = StdRng::seed_from_u64(seed);
            let picked = picker.pick_hashed(&s, T0, &mut rng, avoid, hash);
            match picked {
                None => prop_assert!(s.is_empty()),
                Some(i) => {
                    prop_assert!(i < s.len());
                    let best = (0..s.len()).map(|j| super::tier(&s, j, avoid)).min();
                    if s.len() > 1 {
                        prop_assert_eq!(Some(super::tier(&s, i, avoid)), best);
                    }
                    if hash.is_some() {
                        prop_assert_eq!(picker.pick_hashed(&s, T0, &mut rng, avoid, hash), picked);
                    }
                }
            }
        }

        #[test]
        fn passthrough_is_valid(
            down in prop::collection::vec(any::<bool>(), 0..12),
            avoid in prop::option::of(0usize..14),
        ) {
            let picker = Picker::new(&LoadBalancer::Passthrough, &vec![1; down.len()]);
            let s = stats(&vec![1; down.len()]);
            for (e, &d) in s.iter().zip(&down) {
                if d {
                    e.on_connect_failure(T0);
                }
            }
            let mut rng = StdRng::seed_from_u64(1);
            let picked = picker.pick(&s, T0, &mut rng, avoid);
            if s.len() > 1 {
                let best = (0..s.len()).map(|j| super::tier(&s, j, avoid)).min();
                let first = (0..s.len()).find(|&j| Some(super::tier(&s, j, avoid)) == best);
                prop_assert_eq!(picked, first);
            } else {
                prop_assert_eq!(picked, s.len().checked_sub(1));
            }
        }
    }
}

/// Ring and table hosts `10.0.0.<i>:8080` with these weights, in order.
pub(super) fn hosts(weights: &[u32]) -> Vec<(String, u32)> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| (format!("10.0.0.{i}:8080"), w))
        .collect()
}
