//! The cost of telemetry, in one run, on loopback: a MeshClient calling a MeshServer through
//! a real DNS server on kept-alive connections, with telemetry `off` (`Telemetry::disabled()`
//! on both stacks) against `on` (Istio's standard metrics recorded into a Prometheus
//! recorder installed as the global one, and spans through an OpenTelemetry SDK tracer,
//! always sampled, batched to an exporter that drops them). Every request carries a
//! `traceparent` and an `x-request-id`, so that extraction and injection happen on both
//! stacks. One request at a time and 16 at a time; then the two alternate in short rounds
//! and the median ratio on / off of time per request is printed.
//!
//! `cargo bench --bench telemetry`.

#[path = "support/discard.rs"]
mod discard;
#[path = "support/rounds.rs"]
mod rounds;

use discard::Discard;
use rounds::{CONCURRENCY, PER_ROUND, time_concurrent, time_sequential};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::future::join_all;
use http_body_util::{BodyExt, Empty, Full};
use mesh::core::config::ServerConfig;
use mesh::prelude::*;
use mesh::tower::telemetry::metrics::prometheus_builder;
use mesh::tower::telemetry::{Telemetry, Tracer};
use mesh::tower::testing::DnsServer;
use metrics_exporter_prometheus::PrometheusHandle;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tokio::net::TcpListener;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const REQUEST_ID: &str = "6b8f1c2e-bench-request-id";

/// The address of a variant's server.
fn ip(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 92, host))
}

/// A MeshServer answering `ok` on `ip` with `telemetry`.
async fn serve(ip: IpAddr, name: &str, telemetry: Telemetry) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = MeshServer::new(ServerConfig::default())
        .name(name.to_owned())
        .telemetry(telemetry);
    let app = tower::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    tokio::spawn(async move {
        server
            .serve(listener, app, std::future::pending())
            .await
            .expect("serve");
    });
    addr
}

/// One GET through `client` carrying trace context and a request id, checked and read whole.
async fn get(client: &MeshClient, uri: &str) {
    let req = http::Request::get(uri)
        .header("traceparent", TRACEPARENT)
        .header("x-request-id", REQUEST_ID)
        .body(Empty::<Bytes>::new())
        .expect("request");
    let res = client.request(req).await.expect("mesh request");
    assert!(res.status().is_success(), "{}", res.status());
    res.into_body().collect().await.expect("body");
}

/// The telemetry of a workload named `service`: its config's (metrics and tracing on) with
/// spans through `provider`, less what `metrics` and `tracing` turn off.
fn telemetry(
    service: &str,
    dns: &DnsServer,
    provider: &SdkTracerProvider,
    metrics: bool,
    tracing: bool,
) -> Telemetry {
    if !metrics && !tracing {
        return Telemetry::disabled();
    }
    let mut config = config(service, dns);
    config.telemetry.metrics = metrics;
    config.telemetry.tracing = tracing;
    let telemetry = Telemetry::from_config(&config).expect("telemetry");
    if tracing {
        telemetry.with_tracer(Tracer::sdk(provider.tracer("mesh-bench")))
    } else {
        telemetry.with_tracer(Tracer::none())
    }
}

fn config(service: &str, dns: &DnsServer) -> MeshConfig {
    MeshConfig::builder()
        .service(service)
        .discovery(dns.config())
        .build()
        .expect("config")
}

fn bench(c: &mut Criterion) {
    // Installed before anything is built, so every metric handle is this recorder's.
    let recorder = prometheus_builder().build_recorder();
    let handle: PrometheusHandle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the bench's recorder is the first");
    let exported = Discard::default();
    // The batch processor exports from a thread of its own (no runtime needed).
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOn)
        .with_batch_exporter(exported.clone())
        .build();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // off, metrics only, spans only, both: one server and one client each.
    let kinds: [(&str, bool, bool); 4] = [
        ("off", false, false),
        ("metrics", true, false),
        ("tracing", false, true),
        ("on", true, true),
    ];
    let (dns, variants) = rt.block_on(async {
        let dns = DnsServer::start().expect("dns");
        let mut variants = Vec::new();
        for (i, (name, metrics, tracing)) in kinds.into_iter().enumerate() {
            let ip = ip(101 + i as u8);
            dns.set_hosts(&format!("{name}.default.svc"), &[ip], 300)
                .expect("record");
            let telemetry = |service: &str| telemetry(service, &dns, &provider, metrics, tracing);
            let addr = serve(ip, name, telemetry(name)).await;
            let client = MeshClient::builder()
                .config(config("bench-client", &dns))
                .telemetry(telemetry("bench-client"))
                .build()
                .expect("client");
            variants.push((name, client, format!("http://{name}:{}/", addr.port())));
        }
        // Keeps histogram buckets drained, as an exporter's upkeep would.
        let upkeep = handle.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                upkeep.run_upkeep();
            }
        });
        (dns, variants)
    });
    let getter = |i: usize| {
        let (_, client, uri) = &variants[i];
        move || {
            let (client, uri) = (client.clone(), uri.clone());
            async move { get(&client, &uri).await }
        }
    };
    let (off_get, on_get) = (getter(0), getter(3));
    // Warm every pool (and the first DNS answers): the requests below reuse connections.
    rt.block_on(async {
        for i in 0..variants.len() {
            join_all((0..CONCURRENCY).map(|_| getter(i)())).await;
        }
    });

    let mut group = c.benchmark_group("telemetry_sequential");
    group.throughput(Throughput::Elements(1));
    group.bench_function("off", |b| b.to_async(&rt).iter(&off_get));
    group.bench_function("on", |b| b.to_async(&rt).iter(&on_get));
    group.finish();

    let mut group = c.benchmark_group("telemetry_concurrent16");
    group.throughput(Throughput::Elements(CONCURRENCY as u64));
    group.bench_function("off", |b| {
        b.to_async(&rt)
            .iter(|| join_all((0..CONCURRENCY).map(|_| off_get())))
    });
    group.bench_function("on", |b| {
        b.to_async(&rt)
            .iter(|| join_all((0..CONCURRENCY).map(|_| on_get())))
    });
    group.finish();

    // Criterion runs one function after the other, so a drift of this shared machine between
    // them skews their ratio. Here the variants alternate in short rounds (sequential, then
    // 16 at a time) and the median of each ratio to `off` is printed.
    let rounds: Vec<Round> = (0..ROUNDS)
        .map(|_| {
            rt.block_on(async {
                let mut round = Vec::new();
                for i in 0..variants.len() {
                    let get = getter(i);
                    round.push((
                        time_sequential(&get, PER_ROUND).await,
                        time_concurrent(&get).await,
                    ));
                }
                round
            })
        })
        .collect();
    let median = |f: &dyn Fn(&Round) -> f64| {
        let mut v: Vec<f64> = rounds.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[ROUNDS / 2]
    };
    println!("interleaved, median of {ROUNDS} rounds, time per request:");
    for (i, (name, ..)) in variants.iter().enumerate() {
        println!(
            "  {name:<8} sequential {:>7.2} us ({:.3} of off)  16 at a time {:>7.2} us ({:.3} of off)",
            median(&|r| r[i].0) * 1e6,
            median(&|r| r[i].0 / r[0].0),
            median(&|r| r[i].1) * 1e6,
            median(&|r| r[i].1 / r[0].1),
        );
    }
    // What `on` produced, so that a run shows the layers did their work.
    let _ = provider.force_flush();
    let scrape = handle.render();
    let requests = scrape
        .lines()
        .filter(|l| l.starts_with("istio_requests_total{"))
        .count();
    println!(
        "  on: {} spans exported, {requests} istio_requests_total series",
        exported.count()
    );
    let _ = provider.shutdown();
    drop(dns);
}

/// Seconds per request of each variant in one round: (sequential, 16 at a time).
type Round = Vec<(f64, f64)>;

const ROUNDS: usize = 9;

criterion_group!(benches, bench);
criterion_main!(benches);
