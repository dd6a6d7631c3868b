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
