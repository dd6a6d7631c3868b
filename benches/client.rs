//! The cost of the mesh client against a bare hyper-util client, in one run, against one
//! loopback server: one request at a time (latency) and 16 at a time (throughput).
//!
//! `cargo bench --bench client`; compare `bare` with `mesh` in each group.

#[path = "support/ok_server.rs"]
mod ok_server;
#[path = "support/rounds.rs"]
mod rounds;

use rounds::{CONCURRENCY, PER_ROUND, time_concurrent, time_sequential};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::future::join_all;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mesh::core::config::Format;
use mesh::prelude::*;
use mesh::tower::testing::DnsServer;
use tokio::net::TcpListener;

async fn serve() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    ok_server::spawn(listener);
    addr
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (addr, dns) = rt.block_on(async {
        let addr = serve().await;
        let dns = DnsServer::start().expect("dns");
        dns.set_hosts("bench.default.svc", &[IpAddr::V4(Ipv4Addr::LOCALHOST)], 300)
            .expect("record");
        (addr, dns)
    });

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let bare: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let bare_uri: http::Uri = format!("http://{addr}/").parse().expect("uri");

    // Discovery through DNS, least-request balancing, a timeout and retries: the defaults.
    let config = MeshConfig::builder()
        .service("bench")
        .discovery(dns.config())
        .build()
        .expect("config");
    let mesh = rt.block_on(async { MeshClient::new(config).expect("client") });
    let mesh_uri = format!("http://bench:{}/", addr.port());

    // The same, with a VirtualService: ten routes matched by header, the request taking the
    // last, which splits 90/10 between two subsets of the host (both the one server).
    let routed = rt.block_on(async { MeshClient::new(routed_config(&dns)).expect("client") });

    let bare_get = || {
        let (bare, uri) = (bare.clone(), bare_uri.clone());
        async move {
            let res = bare.get(uri).await.expect("bare request");
            assert!(res.status().is_success());
            res.into_body().collect().await.expect("body");
        }
    };
    let routed_get = || {
        let (mesh, uri) = (routed.clone(), mesh_uri.clone());
        async move {
            let req = http::Request::get(uri)
                .header("x-tenant", "tenant-9")
                .body(Empty::<Bytes>::new())
                .expect("request");
            let res = mesh.request(req).await.expect("mesh request");
            assert!(res.status().is_success(), "{}", res.status());
            res.into_body().collect().await.expect("body");
        }
    };
    let mesh_get = || {
        let (mesh, uri) = (mesh.clone(), mesh_uri.clone());
        async move {
            let req = http::Request::get(uri)
                .body(Empty::<Bytes>::new())
                .expect("request");
            let res = mesh.request(req).await.expect("mesh request");
            assert!(res.status().is_success());
            res.into_body().collect().await.expect("body");
        }
    };
    // Warm both pools (and the mesh's first DNS answer).
    rt.block_on(async {
        join_all((0..CONCURRENCY).map(|_| bare_get())).await;
        join_all((0..CONCURRENCY).map(|_| mesh_get())).await;
        join_all((0..CONCURRENCY).map(|_| routed_get())).await;
    });

    let mut group = c.benchmark_group("sequential");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare", |b| b.to_async(&rt).iter(bare_get));
    group.bench_function("mesh", |b| b.to_async(&rt).iter(mesh_get));
    group.finish();

    let mut group = c.benchmark_group("concurrent16");
    group.throughput(Throughput::Elements(CONCURRENCY as u64));
    group.bench_function("bare", |b| {
        b.to_async(&rt)
            .iter(|| join_all((0..CONCURRENCY).map(|_| bare_get())))
    });
    group.bench_function("mesh", |b| {
        b.to_async(&rt)
            .iter(|| join_all((0..CONCURRENCY).map(|_| mesh_get())))
    });
    group.finish();

    // Criterion runs one function after the other, so a drift of this shared machine between
    // them skews their ratio. Here the two alternate in short rounds (A B A B ...) and the
    // median of the per-round ratios is printed.
    let rounds: Vec<[f64; 4]> = (0..ROUNDS)
        .map(|_| {
            rt.block_on(async {
                let bare_seq = time_sequential(&bare_get, PER_ROUND).await;
                let mesh_seq = time_sequential(&mesh_get, PER_ROUND).await;
                let routed_seq = time_sequential(&routed_get, PER_ROUND).await;
                let bare_conc = time_concurrent(&bare_get).await;
                let mesh_conc = time_concurrent(&mesh_get).await;
                let routed_conc = time_concurrent(&routed_get).await;
                [
                    mesh_seq / bare_seq,
                    mesh_conc / bare_conc,
                    routed_seq / bare_seq,
                    routed_conc / bare_conc,
                ]
            })
        })
        .collect();
    let median = |k: usize| {
        let mut v: Vec<f64> = rounds.iter().map(|r| r[k]).collect();
        v.sort_by(f64::total_cmp);
        v[ROUNDS / 2]
    };
    println!(
        "interleaved, median of {ROUNDS} rounds of {PER_ROUND} requests, time per request / bare:"
    );
    for (name, k) in [
        ("mesh sequential", 0),
        ("mesh concurrent16", 1),
        ("routed sequential", 2),
        ("routed concurrent16", 3),
    ] {
        let ratio = median(k);
        println!(
            "  {name:<20} {ratio:.3}  (requests per second {:.3} of bare)",
            1.0 / ratio
        );
    }
    drop(dns);
}

/// The bench config with a VirtualService for `bench` and two subsets of it (in mesh's own
/// document: both subsets resolve through the name `bench`).
fn routed_config(dns: &DnsServer) -> MeshConfig {
    let nameserver = dns.addr();
    let mut yaml = format!(
        "workload: {{service: bench, namespace: default}}\n\
         discovery: {{nameservers: [\"{nameserver}\"]}}\n\
         destinations:\n\
         - host: bench\n  \
           subsets: [{{name: a, host: bench}}, {{name: b, host: bench}}]\n"
    );
    yaml.push_str(
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n\
         metadata: {name: bench}\nspec:\n  hosts: [bench]\n  http:\n",
    );
    for i in 0..9 {
        yaml.push_str(&format!(
            "  - match: [{{headers: {{x-tenant: {{exact: tenant-{i}x}}}}}}]\n    \
             route: [{{destination: {{host: bench, subset: a}}}}]\n"
        ));
    }
    yaml.push_str(
        "  - match: [{headers: {x-tenant: {prefix: tenant-}}}]\n    route:\n    \
         - {destination: {host: bench, subset: a}, weight: 90}\n    \
         - {destination: {host: bench, subset: b}, weight: 10}\n",
    );
    MeshConfig::from_str(&yaml, Format::Yaml).expect("routed config")
}

const ROUNDS: usize = 9;

criterion_group!(benches, bench);
criterion_main!(benches);
