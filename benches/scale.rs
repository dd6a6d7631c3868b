//! Scale figures, printed as a table, then criterion timings where one fits:
//!
//! - **Discovery updates with 10,000 endpoints**: the time to apply a DNS answer to a
//!   destination's balancer as mesh does it: the answer's addresses become an
//!   [`EndpointSet`] (sorted, de-duplicated), the refresh state decides to publish it, the
//!   watch channel carries it, and the balancer's updater task builds the new snapshot
//!   (keeping the endpoints that stay, with their pools and statistics; a new picker, with
//!   its ring or Maglev table rebuilt). Timed from the answer to the moment a request would
//!   see the new snapshot, for one endpoint added, one removed, and a full replacement; for
//!   least request (Istio's default), ring hash and Maglev. Target: under 10 ms.
//! - **Memory per endpoint**: the bytes that stay allocated after a balancer of 10,000
//!   endpoints has applied its first answer (endpoint clients with their idle pools and
//!   statistics, the snapshot, the picker's tables, the published set), divided by 10,000.
//!   Target: under 2 KiB. Counted by an instrumented global allocator (which adds an atomic
//!   add to every allocation of this benchmark).
//! - **1,000 routes**: finding the matching route when it is the first and the last.
//! - **A MeshClient holding 1,000 destinations**: the bytes that stay allocated once each of
//!   1,000 destinations (one endpoint each) has served one request, divided by 1,000; with
//!   the connection kept in the destination's pool, and with the server closing it. The
//!   server runs in a child process, so its allocations are not counted.
//!
//! `cargo bench --bench scale`.

#[path = "support/tenant_routes.rs"]
mod tenant_routes;
use tenant_routes::routes;

use std::alloc::System;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use criterion::Criterion;
use http::Request;
use http_body_util::{BodyExt, Empty};
use mesh::core::balance::Picker;
use mesh::core::config::{ConsistentHash, HashKey, HashTable, LoadBalancer, TrafficPolicy};
use mesh::core::discovery::{Answer, RefreshState};
use mesh::core::name::Target;
use mesh::core::route::{RequestInfo, find};
use mesh::core::{Endpoint, EndpointSet, MeshConfig, Resolution};
use mesh::dns::StaticDiscovery;
use mesh::tower::MeshClient;
use mesh::tower::balance::Balance;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ENDPOINTS: usize = 10_000;
const ROUTES: usize = 1_000;
const DESTINATIONS: usize = 1_000;
/// Repetitions of each timed update; the median and the worst are printed.
const RUNS: usize = 21;
/// The environment variable that makes this binary the child process's HTTP server.
const SERVER_MODE: &str = "MESH_SCALE_SERVER";

/// Bytes allocated and not freed since `region` started.
fn net_bytes(region: &Region<'_, System>) -> i64 {
    let change = region.change();
    change.bytes_allocated as i64 - change.bytes_deallocated as i64
}

/// `n` addresses from `10.<base>.0.1` on, port 9080.
fn addrs(base: u8, n: usize) -> Vec<SocketAddr> {
    (0..n)
        .map(|i| {
            SocketAddr::from((
                [
                    10,
                    base.wrapping_add((i >> 16) as u8),
                    (i >> 8) as u8,
                    i as u8,
                ],
                9080,
            ))
        })
        .collect()
}

fn balancers() -> [(&'static str, LoadBalancer); 3] {
    let hash = |table| {
        LoadBalancer::ConsistentHash(ConsistentHash {
            key: HashKey::SourceIp,
            table,
        })
    };
    [
        ("least_request", LoadBalancer::LeastRequest),
        ("ring_hash", hash(HashTable::Ring { minimum_size: 1024 })),
        ("maglev", hash(HashTable::Maglev { table_size: 65537 })),
    ]
}

/// One destination as discovery and the balancer hold it.
struct Destination {
    state: RefreshState,
    tx: watch::Sender<Resolution>,
    balance: Balance,
    rng: SmallRng,
    origin: Instant,
}

impl Destination {
    fn new(lb: &LoadBalancer) -> Self {
        let (tx, rx) = watch::channel(Resolution::Pending);
        let policy = TrafficPolicy {
            load_balancer: lb.clone(),
            ..TrafficPolicy::default()
        };
        Self {
            state: RefreshState::new(Default::default()),
            tx,
            balance: Balance::new("scale:9080", &policy, rx),
            rng: SmallRng::seed_from_u64(1),
            origin: Instant::now(),
        }
    }

    /// Applies a DNS answer of `addrs` as the refresh task and the balancer do; returns once
    /// the balancer's snapshot has them, with the time that took.
    async fn answer(&mut self, addrs: &[SocketAddr]) -> Duration {
        let mut sorted = addrs.to_vec();
        sorted.sort();
        let start = Instant::now();
        let endpoints = EndpointSet::from_addrs(addrs.iter().copied());
        let decision = self.state.on_lookup(
            Ok(Answer {
                endpoints,
                ttl: Duration::from_secs(30),
            }),
            self.origin.elapsed(),
            &mut self.rng,
        );
        if let Some(value) = decision.publish {
            self.tx.send_if_modified(|current| {
                if *current == value {
                    false
                } else {
                    *current = value;
                    true
                }
            });
        }
        loop {
            tokio::task::yield_now().await;
            let now = self.balance.endpoints();
            if now.len() == sorted.len()
                && now.first() == sorted.first()
                && now.last() == sorted.last()
            {
                break;
            }
        }
        start.elapsed()
    }
}

/// Median and worst of `times`, in ms.
fn median_max(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(times[times.len() / 2]), ms(times[times.len() - 1]))
}

/// Update times and memory per endpoint with 10,000 endpoints, for each balancer.
async fn discovery_table() {
    let a = addrs(1, ENDPOINTS);
    let b = addrs(101, ENDPOINTS);
    let mut added = a.clone();
    added.push(SocketAddr::from(([10, 200, 0, 1], 9080)));
    let mut removed = a.clone();
    removed.remove(ENDPOINTS / 2);
    println!(
        "discovery updates, {ENDPOINTS} endpoints (median / worst of {RUNS}, ms; memory net after the first answer)"
    );
    println!(
        "{:<14} {:>13} {:>15} {:>15} {:>17} {:>13}",
        "balancer", "first answer", "add one", "remove one", "replace all", "B / endpoint"
    );
    for (name, lb) in balancers() {
        let region = Region::new(GLOBAL);
        let mut d = Destination::new(&lb);
        let first = d.answer(&a).await;
        let bytes = net_bytes(&region);
        let (mut add, mut remove, mut replace) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            add.push(d.answer(&added).await);
            d.answer(&a).await;
            remove.push(d.answer(&removed).await);
            d.answer(&a).await;
        }
        for i in 0..RUNS {
            replace.push(d.answer(if i % 2 == 0 { &b } else { &a }).await);
        }
        let show = |t: Vec<Duration>| {
            let (m, w) = median_max(t);
            format!("{m:.2} / {w:.2}")
        };
        println!(
            "{name:<14} {:>13.2} {:>15} {:>15} {:>17} {:>13}",
            first.as_secs_f64() * 1e3,
            show(add),
            show(remove),
            show(replace),
            bytes / ENDPOINTS as i64,
        );
    }
    println!();
}

// ---------------------------------------------------------------- MeshClient destinations

/// The child process: a minimal HTTP/1.1 server on loopback answering `ok` to every
/// request; with `close`, it closes each connection after its answer. Prints its port,
/// stops when its standard input ends.
fn serve_child(close: bool) {
    std::thread::spawn(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        println!("{port}");
        std::io::stdout().flush().expect("flush");
        let reply: &[u8] = if close {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        };
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut pending = Vec::new();
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        if stream.write_all(reply).await.is_err() || close {
                            return;
                        }
                    }
                }
            });
        }
    });
}

/// Starts the child server; returns it and its port.
fn start_child(close: bool) -> (std::process::Child, u16) {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env(SERVER_MODE, if close { "close" } else { "keep-alive" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server process");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the port");
    (child, line.trim().parse().expect("port"))
}

/// Bytes per destination of a MeshClient after each of 1,000 destinations served one
/// request, the server keeping (`close == false`) or closing the connection.
async fn client_destinations(close: bool) -> i64 {
    let (mut child, port) = start_child(close);
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let name = |i: usize| format!("svc-{i}");
    let mut discovery = StaticDiscovery::new();
    for i in 0..=DESTINATIONS {
        let target = Target::Host {
            fqdn: format!("{}.default.svc.cluster.local", name(i)),
            port,
        };
        discovery.insert(target, EndpointSet::new([Endpoint::new(server)]));
    }
    let client = MeshClient::builder()
        .config(MeshConfig::default())
        .discovery(discovery)
        .build()
        .expect("client");
    let get = |i: usize| {
        let client = client.clone();
        async move {
            let req = Request::get(format!("http://{}:{port}/", name(i)))
                .body(Empty::<Bytes>::new())
                .expect("request");
            let response = client.request(req).await.expect("response");
            assert_eq!(response.status(), 200, "destination {i}");
            response.into_body().collect().await.expect("body");
        }
    };
    // One destination first, so that one-time setup is not counted.
    get(DESTINATIONS).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let region = Region::new(GLOBAL);
    for i in 0..DESTINATIONS {
        get(i).await;
    }
    // Let closed connections finish closing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bytes = net_bytes(&region);
    drop(client);
    drop(child.stdin.take());
    let _ = child.wait();
    bytes / DESTINATIONS as i64
}

async fn figures() {
    discovery_table().await;
    println!(
        "MeshClient with {DESTINATIONS} destinations, each used once (net bytes per destination)"
    );
    let kept = client_destinations(false).await;
    let closed = client_destinations(true).await;
    println!("{:<44} {:>10}", "connection kept in the pool", kept);
    println!("{:<44} {:>10}", "connection closed by the server", closed);
    println!();
}

/// Criterion timings: the pieces of an update (the set, the picker) and route matching.
fn timings(c: &mut Criterion) {
    let a = addrs(1, ENDPOINTS);
    let endpoints: Vec<Endpoint> = a.iter().map(|&addr| Endpoint::new(addr)).collect();
    let mut group = c.benchmark_group("scale/10000_endpoints");
    group.sample_size(20);
    group.bench_function("endpoint_set_from_answer", |b| {
        b.iter(|| EndpointSet::from_addrs(a.iter().copied()))
    });
    for (name, lb) in balancers() {
        let previous = Picker::for_endpoints(&lb, &endpoints);
        group.bench_function(format!("picker_{name}"), |b| {
            b.iter(|| Picker::for_endpoints_after(&lb, &endpoints, Some(&previous)))
        });
    }
    group.finish();

    let routes = routes(ROUTES);
    let mut group = c.benchmark_group("scale/find_1000_routes");
    for (label, tenant, expected) in [("first", "tenant-0", 0), ("last", "tenant-999", ROUTES - 1)]
    {
        let req = Request::get("http://reviews:9080/api/reviews/0")
            .header("x-tenant", tenant)
            .body(())
            .expect("request");
        let info = RequestInfo::new(req.method(), req.uri(), req.headers());
        assert_eq!(find(&routes, &info).map(|h| h.index), Some(expected));
        group.bench_function(label, |b| {
            b.iter(|| {
                let info = RequestInfo::new(req.method(), req.uri(), req.headers());
                find(&routes, &info).map(|h| h.index)
            })
        });
    }
    group.finish();
}

fn main() {
    if let Ok(mode) = std::env::var(SERVER_MODE) {
        serve_child(mode == "close");
        return;
    }
    // The figures take seconds: only under `cargo bench`, not `cargo test`.
    if std::env::args().any(|a| a == "--bench") {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(figures());
    }
    let mut c = Criterion::default().configure_from_args();
    timings(&mut c);
    c.final_summary();
}
