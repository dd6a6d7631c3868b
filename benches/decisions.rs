//! The cost of each per-request decision and of the layers that record and propagate, one
//! function at a time: route match, weighted split, consistent-hash lookups (ring, Maglev)
//! and their table builds, P2C picks, the retry budget, outlier bookkeeping, authorization,
//! the server metrics layer recording one request, and header propagation.
//!
//! `cargo bench --bench decisions`; each figure is the time per operation. Under
//! `cargo bench` the consistent-hash spread and disruption over 100 endpoints are printed
//! first, as a table.

#[path = "support/tenant_routes.rs"]
mod tenant_routes;
use tenant_routes::routes;

use std::convert::Infallible;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion};
use futures_util::FutureExt;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use mesh::core::Endpoint;
use mesh::core::MeshConfig;
use mesh::core::authz::{Authorizer, AuthzRequest};
use mesh::core::balance::{EndpointStats, Picker};
use mesh::core::config::{
    ConsistentHash, Format, HashKey, HashTable, LoadBalancer, OutlierDetection, PeakEwmaConfig,
    RetryBudgetConfig, TelemetryConfig,
};
use mesh::core::hash::hash_bytes;
use mesh::core::outlier::{EndpointOutlier, Observation, OutlierDetector, OutlierSettings};
use mesh::core::retry::RetryBudget;
use mesh::core::route::{RequestInfo, Split, find};
use mesh::core::telemetry::trace_context::{extract, inject};
use mesh::core::telemetry::{PeerMetadata, Propagated, PropagationSet, TraceContext};
use mesh::tower::telemetry::ServerMetricsLayer;
use mesh::tower::telemetry::metrics::prometheus_builder;
use rand::SeedableRng;
use rand::rngs::{SmallRng, StdRng};
use tower::{Layer, Service, service_fn};

const NOW: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------- route and split

const ROUTES: usize = 100;

fn request(tenant: &str) -> Request<()> {
    Request::get("http://reviews:9080/api/reviews/0?lang=en")
        .header("user-agent", "bench/1.0")
        .header("accept", "application/json")
        .header("x-request-id", "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
        .header("x-tenant", tenant)
        .body(())
        .expect("request")
}

/// Building a request's [`RequestInfo`] and finding the first matching of 100 routes.
fn route(c: &mut Criterion) {
    let routes = routes(ROUTES);
    let mut group = c.benchmark_group("route/find_100");
    for (label, tenant, expected) in [
        ("first", "tenant-0", Some(0)),
        ("last", "tenant-99", Some(ROUTES - 1)),
        ("none", "nobody", None),
    ] {
        let req = request(tenant);
        let info = RequestInfo::new(req.method(), req.uri(), req.headers());
        assert_eq!(find(&routes, &info).map(|h| h.index), expected);
        group.bench_function(label, |b| {
            b.iter(|| {
                let req = black_box(&req);
                let info = RequestInfo::new(req.method(), req.uri(), req.headers());
                find(black_box(&routes), &info).map(|h| h.index)
            })
        });
    }
    group.finish();
}

/// A weighted split's pick among 2 and 10 destinations.
fn split(c: &mut Criterion) {
    let mut group = c.benchmark_group("split/pick");
    for weights in [vec![90, 10], vec![10; 10]] {
        let split = Split::new(&weights);
        let mut rng = SmallRng::seed_from_u64(7);
        group.bench_function(format!("{}_destinations", weights.len()), |b| {
            b.iter(|| black_box(&split).pick(&mut rng))
        });
    }
    group.finish();
}

// ---------------------------------------------------------------- balancing

const ENDPOINTS: usize = 100;
const KEYS: usize = 1_000_000;

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

fn stats(endpoints: &[Endpoint], lb: &LoadBalancer) -> Vec<EndpointStats> {
    endpoints
        .iter()
        .map(|e| EndpointStats::for_balancer(e.weight, lb))
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
    let lb = consistent_hash(table);
    let picker = Picker::for_endpoints_after(&lb, endpoints, previous);
    let stats = stats(endpoints, &lb);
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

/// Consistent-hash spread and disruption, printed as a table.
fn hash_figures() {
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

/// One hashed pick over 100 endpoints (ring and Maglev lookups).
fn hash_lookup(c: &mut Criterion) {
    let all = endpoints(ENDPOINTS);
    let keys = keys(4096);
    let mut group = c.benchmark_group("balance/pick_hashed_100");
    for (name, table) in TABLES {
        let lb = consistent_hash(table);
        let stats = stats(&all, &lb);
        let picker = Picker::for_endpoints(&lb, &all);
        let mut rng = StdRng::seed_from_u64(1);
        let mut k = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                k = (k + 1) % keys.len();
                picker.pick_hashed(&stats, NOW, &mut rng, None, Some(black_box(keys[k])))
            })
        });
    }
    group.finish();
}

/// Building the picker of a 100-endpoint snapshot (ring or Maglev table; P2C's alias table).
fn build(c: &mut Criterion) {
    let all = endpoints(ENDPOINTS);
    let mut group = c.benchmark_group("balance/build_100");
    for (name, table) in TABLES {
        let lb = consistent_hash(table);
        group.bench_function(name, |b| {
            b.iter(|| Picker::for_endpoints(&lb, black_box(&all)))
        });
    }
    group.bench_function("least_request", |b| {
        b.iter(|| Picker::for_endpoints(&LoadBalancer::LeastRequest, black_box(&all)))
    });
    group.finish();
}

/// Power of two choices over 100 endpoints with some load: least request (Istio's default)
/// and peak EWMA, every endpoint available; and least request with the endpoint of the
/// failed try to avoid.
fn p2c(c: &mut Criterion) {
    let all = endpoints(ENDPOINTS);
    let mut group = c.benchmark_group("balance/p2c_100");
    for (name, lb) in [
        ("least_request", LoadBalancer::LeastRequest),
        (
            "peak_ewma",
            LoadBalancer::PeakEwma(PeakEwmaConfig::default()),
        ),
    ] {
        let stats = stats(&all, &lb);
        for (i, s) in stats.iter().enumerate() {
            for _ in 0..i % 4 {
                s.on_start();
            }
            s.observe_rtt(NOW, Duration::from_millis(1 + (i % 7) as u64));
        }
        let picker = Picker::for_endpoints(&lb, &all);
        let mut rng = SmallRng::seed_from_u64(1);
        group.bench_function(name, |b| {
            b.iter(|| picker.pick(black_box(&stats), NOW, &mut rng, None))
        });
        if name == "least_request" {
            group.bench_function("least_request_avoid", |b| {
                b.iter(|| picker.pick(black_box(&stats), NOW, &mut rng, Some(17)))
            });
        }
    }
    // The whole pick of one request as the balancer makes it: start, end.
    let lb = LoadBalancer::LeastRequest;
    let stats = stats(&all, &lb);
    let picker = Picker::for_endpoints(&lb, &all);
    let mut rng = SmallRng::seed_from_u64(1);
    group.bench_function("least_request_start_end", |b| {
        b.iter(|| {
            let i = picker.pick(&stats, NOW, &mut rng, None).unwrap_or(0);
            stats[i].on_start();
            stats[i].on_end();
        })
    });
    group.finish();
}

// ---------------------------------------------------------------- retry budget

/// A request's deposit and a retry's withdrawal, on a budget with Linkerd's defaults, time
/// moving 1 µs per operation so the window's buckets roll over.
fn retry_budget(c: &mut Criterion) {
    let budget = RetryBudget::new(RetryBudgetConfig {
        ratio: 0.2,
        min_per_second: 10,
        window: Duration::from_secs(10),
    });
    let mut group = c.benchmark_group("retry_budget");
    let mut t = NOW;
    group.bench_function("deposit", |b| {
        b.iter(|| {
            t += Duration::from_micros(1);
            budget.deposit(black_box(t))
        })
    });
    group.bench_function("try_withdraw", |b| {
        b.iter(|| {
            t += Duration::from_micros(1);
            budget.try_withdraw(black_box(t))
        })
    });
    group.finish();
}

// ---------------------------------------------------------------- outlier detection

/// Outlier bookkeeping with Istio's defaults (5 consecutive 5xx): recording a success,
/// recording a 5xx, reaching the threshold and deciding the ejection among 100 endpoints,
/// and the periodic sweep of 100 endpoints.
fn outlier(c: &mut Criterion) {
    let detector = OutlierDetector::new(OutlierSettings::from(&OutlierDetection::default()));
    let endpoints: Vec<EndpointOutlier> = (0..ENDPOINTS).map(|_| detector.new_endpoint()).collect();
    let mut group = c.benchmark_group("outlier");
    group.bench_function("observe_200", |b| {
        b.iter(|| endpoints[3].observe(black_box(Observation::Status(200)), NOW))
    });
    group.bench_function("observe_503", |b| {
        b.iter(|| {
            let reason = endpoints[5].observe(black_box(Observation::Status(503)), NOW);
            // Reset before the threshold: this measures counting, not ejecting.
            endpoints[5].observe(Observation::Status(200), NOW);
            reason
        })
    });
    // Five 503s reach the threshold; the detector ejects (max 10 % of 100, so one at a
    // time); the endpoint then returns 30 s later.
    let mut t = NOW;
    group.bench_function("threshold_and_eject_of_100", |b| {
        b.iter(|| {
            t += Duration::from_secs(400);
            let target = &endpoints[7];
            let mut ejected = false;
            for _ in 0..5 {
                if let Some(reason) = target.observe(Observation::Status(503), t) {
                    ejected = detector.on_threshold(target, reason, t, endpoints.iter());
                }
            }
            ejected
        })
    });
    group.bench_function("sweep_100", |b| {
        b.iter(|| {
            t += Duration::from_secs(10);
            detector.sweep(t, endpoints.iter())
        })
    });
    group.finish();
}

// ---------------------------------------------------------------- authorization

/// A policy set as a Bookinfo-like namespace would have: a namespace-wide DENY of a CIDR
/// and of debug paths, an ALLOW per caller (by principal, methods and path templates), a
/// JWT-based ALLOW with claim conditions, and an AUDIT policy.
const POLICIES: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-blocked, namespace: bookinfo}
spec:
  action: DENY
  rules:
  - from: [{source: {ipBlocks: ["192.0.2.0/24", "198.51.100.0/24"]}}]
  - to: [{operation: {paths: ["/debug/*", "/admin/*"]}}]
  - when: [{key: "request.headers[x-block]", values: ["1", "true"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: productpage-viewer, namespace: bookinfo}
spec:
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]}}]
    to: [{operation: {methods: ["GET"], paths: ["/productpage", "/static/*", "/login", "/logout"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-callers, namespace: bookinfo}
spec:
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/bookinfo/sa/bookinfo-productpage"]}}]
    to: [{operation: {methods: ["GET", "HEAD"], paths: ["/reviews/{*}", "/health"]}}]
  - from: [{source: {namespaces: ["monitoring"]}}]
    to: [{operation: {methods: ["GET"], paths: ["/metrics"], ports: ["15020"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api-users, namespace: bookinfo}
spec:
  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: ["issuer.example.com/*"]}}]
    to: [{operation: {hosts: ["api.example.com", "*.bookinfo.svc.cluster.local"], methods: ["GET", "POST"], paths: ["/api/{*}/items/{**}"]}}]
    when:
    - {key: "request.auth.claims[groups]", values: ["readers", "writers"]}
    - {key: "request.auth.audiences", values: ["bookinfo"]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-writes, namespace: bookinfo}
spec:
  action: AUDIT
  rules:
  - to: [{operation: {methods: ["POST", "PUT", "DELETE"]}}]
"#;

/// One request decided against the policy set: the first ALLOW matching, the last rule of
/// the last ALLOW matching (with its claims), and a request no ALLOW admits.
fn authz(c: &mut Criterion) {
    let config = MeshConfig::from_str(POLICIES, Format::Yaml).expect("policies");
    let authorizer = Authorizer::new(&config.security.authorization_policies).expect("compile");
    let headers = {
        let mut h = HeaderMap::new();
        h.insert("user-agent", HeaderValue::from_static("bench/1.0"));
        h.insert("accept", HeaderValue::from_static("application/json"));
        h.insert(
            "x-request-id",
            HeaderValue::from_static("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"),
        );
        h
    };
    let claims = serde_json::json!({
        "iss": "issuer.example.com",
        "sub": "alice",
        "aud": ["bookinfo"],
        "groups": ["readers"],
    });
    let ip = IpAddr::V4(Ipv4Addr::new(10, 244, 1, 17));
    let base = AuthzRequest {
        principal: Some("cluster.local/ns/bookinfo/sa/bookinfo-productpage"),
        request_principal: None,
        claims: None,
        source_ip: ip,
        remote_ip: ip,
        destination_ip: None,
        host: "reviews.bookinfo.svc.cluster.local:9080",
        port: 9080,
        method: "GET",
        path: "/reviews/0",
        headers: &headers,
    };
    let cases = [
        ("allow_by_principal", base, true),
        (
            "allow_by_jwt_claims",
            AuthzRequest {
                principal: Some("cluster.local/ns/bookinfo/sa/gateway"),
                request_principal: Some("issuer.example.com/alice"),
                claims: Some(&claims),
                host: "api.example.com",
                method: "POST",
                path: "/api/v1/items/42/detail",
                ..base
            },
            true,
        ),
        (
            "denied_no_allow",
            AuthzRequest {
                principal: Some("cluster.local/ns/other/sa/default"),
                path: "/ratings/0",
                ..base
            },
            false,
        ),
    ];
    let mut group = c.benchmark_group("authz/5_policies");
    for (name, req, allowed) in cases {
        assert_eq!(authorizer.authorize(&req).allowed, allowed, "{name}");
        group.bench_function(name, |b| b.iter(|| authorizer.authorize(black_box(&req))));
    }
    group.finish();
}

// ---------------------------------------------------------------- metrics

/// The server metrics layer recording one request's series (`istio_requests_total`, the
/// duration, request and response size histograms with Istio's labels) into the Prometheus
/// recorder, over a service that answers at once; the series exists already, as it does
/// after the first request. (The client-side layer is not public: it is built by the client
/// stack only.)
fn metrics_layer(c: &mut Criterion) {
    let handle = prometheus_builder()
        .install_recorder()
        .expect("install the Prometheus recorder");
    let workload = PeerMetadata {
        workload: "reviews-v1".into(),
        namespace: "bookinfo".into(),
        app: "reviews".into(),
        version: "v1".into(),
        service: "reviews".into(),
        canonical_service: "reviews".into(),
        canonical_revision: "v1".into(),
        cluster: "Kubernetes".into(),
        ..PeerMetadata::default()
    };
    let telemetry = mesh::Telemetry::new(workload, TelemetryConfig::default()).expect("telemetry");
    let app = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    let mut svc = ServerMetricsLayer::new(&telemetry, "reviews").layer(app);
    let peer = mesh::Peer {
        addr: SocketAddr::from(([10, 244, 1, 17], 40000)),
        local: SocketAddr::from(([10, 244, 2, 5], 9080)),
        identity: None,
        tls: false,
    };
    let make = || {
        let mut req = Request::get("http://reviews:9080/reviews/0")
            .header("user-agent", "bench/1.0")
            .body(Full::new(Bytes::new()))
            .expect("request");
        req.extensions_mut().insert(peer.clone());
        req
    };
    let mut one = move |req| {
        let response = svc
            .call(req)
            .now_or_never()
            .expect("ready")
            .expect("infallible");
        // The series are recorded as the body ends.
        response.into_body().collect().now_or_never()
    };
    one(make());
    assert!(handle.render().contains("istio_requests_total"));
    let mut group = c.benchmark_group("metrics");
    group.bench_function("server_layer_one_request", |b| {
        b.iter_batched(make, &mut one, BatchSize::SmallInput)
    });
    group.finish();
}

// ---------------------------------------------------------------- propagation

/// Header propagation: writing a client span's context in W3C, in B3 (single and multi)
/// and in all three; reading an inbound `traceparent`; and writing a captured request id,
/// two configured headers and a cookie onto an outbound request.
fn propagation(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(3);
    let ctx = TraceContext::new_root(&mut rng, true).child(&mut rng);
    let mut outbound = HeaderMap::new();
    outbound.insert("accept", HeaderValue::from_static("application/json"));
    let mut group = c.benchmark_group("propagation");
    let w3c = PropagationSet::EMPTY.with(mesh::core::telemetry::Propagation::W3c);
    let b3 = PropagationSet::EMPTY
        .with(mesh::core::telemetry::Propagation::B3Single)
        .with(mesh::core::telemetry::Propagation::B3Multi);
    for (name, styles) in [
        ("inject_w3c", w3c),
        ("inject_b3", b3),
        ("inject_all", PropagationSet::ALL),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || outbound.clone(),
                |headers| inject(black_box(&ctx), styles, headers),
                BatchSize::SmallInput,
            )
        });
    }
    let mut inbound = HeaderMap::new();
    inject(&ctx, w3c, &mut inbound);
    group.bench_function("extract_w3c", |b| b.iter(|| extract(black_box(&inbound))));

    inbound.insert(
        "x-request-id",
        HeaderValue::from_static("6b8f1c2e-bench-request-id"),
    );
    inbound.insert("end-user", HeaderValue::from_static("jason"));
    inbound.insert("x-tenant", HeaderValue::from_static("blue"));
    inbound.insert(
        "cookie",
        HeaderValue::from_static("session=abc; user=jason; theme=dark"),
    );
    let propagated = Propagated::capture(
        &inbound,
        Some(ctx.clone()),
        inbound.get("x-request-id").cloned(),
        &[
            HeaderName::from_static("end-user"),
            HeaderName::from_static("x-tenant"),
        ],
        &["user".to_owned()],
    );
    group.bench_function("apply_request_id_2_headers_1_cookie", |b| {
        b.iter_batched_ref(
            || outbound.clone(),
            |headers| propagated.apply(headers),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn main() {
    // The figures take a few seconds: only under `cargo bench`, not `cargo test`.
    if std::env::args().any(|a| a == "--bench") {
        hash_figures();
    }
    let mut c = Criterion::default().configure_from_args();
    route(&mut c);
    split(&mut c);
    hash_lookup(&mut c);
    build(&mut c);
    p2c(&mut c);
    retry_budget(&mut c);
    outlier(&mut c);
    authz(&mut c);
    metrics_layer(&mut c);
    propagation(&mut c);
    c.final_summary();
}
