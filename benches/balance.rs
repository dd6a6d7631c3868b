//! Consistent-hash balancing over 100 endpoints: the cost of one hashed pick and of
//! building the ring or Maglev table, and (printed once, under `cargo bench` only) how
//! evenly 1,000,000 keys spread and how many move when one endpoint leaves.
//!
//! `cargo bench --bench balance`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::Criterion;
use mesh::core::Endpoint;
use mesh::core::balance::{EndpointStats, Picker};
use mesh::core::config::{ConsistentHash, HashKey, HashTable, LoadBalancer};
use mesh::core::hash::hash_bytes;
use rand::SeedableRng;
use rand::rngs::StdRng;

const ENDPOINTS: usize = 100;
const KEYS: usize = 1_000_000;
const NOW: Duration = Duration::from_secs(1);

/// The tables compared: Envoy's default ring, a ring of 100 entries per endpoint, and
/// Envoy's default Maglev table.
const TABLES: [(&str, HashTable); 3] = [
    ("ring_1024", HashTable::Ring { minimum_size: 1024 }),
    (
        "ring_100_per_host",
        HashTable::Ring {
            minimum_size: 100 * ENDPOINTS as u64,
        },
    ),
    ("maglev_65537", HashTable::Maglev { table_size: 65537 }),
];

fn consistent_hash(table: HashTable) -> LoadBalancer {
    LoadBalancer::ConsistentHash(ConsistentHash {
        key: HashKey::SourceIp,
        table,
    })
}

fn endpoints(n: usize) -> Vec<Endpoint> {
    (0..n)
        .map(|i| {
            Endpoint::new(SocketAddr::from((
                [10, 1, (i / 250) as u8, (i % 250) as u8 + 1],
                9080,
            )))
        })
        .collect()
}

fn stats(endpoints: &[Endpoint]) -> Vec<EndpointStats> {
    endpoints
        .iter()
        .map(|e| EndpointStats::new(e.weight))
        .collect()
}

/// Request hashes as a header value would give them.
fn keys(count: usize) -> Vec<u64> {
    (0..count as u64)
        .map(|i| hash_bytes(format!("user-{i}").as_bytes()))
        .collect()
}

/// The address each key goes to, every endpoint available, with the picker that placed
/// them; `previous` is the picker of the snapshot this one replaces, as a balancer keeps it.
fn owners(
    table: HashTable,
    endpoints: &[Endpoint],
    keys: &[u64],
    previous: Option<&Picker>,
) -> (Vec<SocketAddr>, Picker) {
    let picker = Picker::for_endpoints_after(&consistent_hash(table), endpoints, previous);
    let stats = stats(endpoints);
    let mut rng = StdRng::seed_from_u64(1);
    let owners = keys
        .iter()
        .map(|&k| {
            let i = picker
                .pick_hashed(&stats, NOW, &mut rng, None, Some(k))
                .unwrap_or(0);
            endpoints[i].addr
        })
        .collect();
    (owners, picker)
}

/// Spread and disruption, printed as a table.
fn figures() {
    let keys = keys(KEYS);
    let all = endpoints(ENDPOINTS);
    let gone = 42;
    let mut rest = all.clone();
    rest.remove(gone);
    println!("consistent hash over {ENDPOINTS} equal endpoints, {KEYS} keys");
    println!(
        "{:<18} {:>9} {:>9} {:>12} {:>12} {:>12}",
        "table", "max/mean", "min/mean", "moved", "of departed", "extra"
    );
    for (name, table) in TABLES {
        let (before, picker) = owners(table, &all, &keys, None);
        let loads: Vec<usize> = all
            .iter()
            .map(|e| before.iter().filter(|&&a| a == e.addr).count())
            .collect();
        let mean = KEYS as f64 / ENDPOINTS as f64;
        let max = *loads.iter().max().unwrap_or(&0) as f64 / mean;
        let min = *loads.iter().min().unwrap_or(&0) as f64 / mean;
        let (after, _) = owners(table, &rest, &keys, Some(&picker));
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        let departed = before.iter().filter(|&&b| b == all[gone].addr).count();
        let pct = |n: usize| format!("{:.3} %", 100.0 * n as f64 / KEYS as f64);
        println!(
            "{name:<18} {max:>9.3} {min:>9.3} {:>12} {:>12} {:>12}",
            pct(moved),
            pct(departed),
            pct(moved - departed),
        );
    }
    println!();
}

fn lookup(c: &mut Criterion) {
    let all = endpoints(ENDPOINTS);
    let stats = stats(&all);
    let keys = keys(4096);
    let mut group = c.benchmark_group("balance/pick_hashed_100");
    for (name, table) in TABLES {
        let picker = Picker::for_endpoints(&consistent_hash(table), &all);
        let mut rng = StdRng::seed_from_u64(1);
        let mut k = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                k = (k + 1) % keys.len();
                picker.pick_hashed(&stats, NOW, &mut rng, None, Some(black_box(keys[k])))
            })
        });
    }
    // For comparison: Istio's default, least request, picks with no hash.
    let picker = Picker::for_endpoints(&LoadBalancer::LeastRequest, &all);
    let mut rng = StdRng::seed_from_u64(1);
    group.bench_function("least_request", |b| {
        b.iter(|| picker.pick_hashed(&stats, NOW, &mut rng, None, None))
    });
    group.finish();
}

fn build(c: &mut Criterion) {
    let all = endpoints(ENDPOINTS);
    let mut group = c.benchmark_group("balance/build_100");
    for (name, table) in TABLES {
        let lb = consistent_hash(table);
        group.bench_function(name, |b| {
            b.iter(|| Picker::for_endpoints(&lb, black_box(&all)))
        });
    }
    group.finish();
}

fn main() {
    // The figures take a few seconds: only under `cargo bench`, not `cargo test`.
    if std::env::args().any(|a| a == "--bench") {
        figures();
    }
    let mut c = Criterion::default().configure_from_args();
    lookup(&mut c);
    build(&mut c);
    c.final_summary();
}
