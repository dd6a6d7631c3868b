//! The cost of routing one request: building its [`RequestInfo`] and finding the first of 100
//! routes that matches (each with a uri prefix and a header match), when the match is the first
//! route, the last one (worst case) or none; and a weighted split's pick.
//!
//! `cargo bench --bench route`; each figure is the time per request.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderName, Request};
use mesh::core::route::{
    DirectResponse, HttpRoute, RequestInfo, RouteAction, RouteMatch, Split, StringMatch,
    ValueMatch, find,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;

const ROUTES: usize = 100;

/// 100 routes for one host: route `i` needs the path prefix `/api/` and `x-tenant: tenant-i`,
/// so every route before the matching one checks both its prefix and its header.
fn routes() -> Vec<HttpRoute> {
    (0..ROUTES)
        .map(|i| HttpRoute {
            name: Some(format!("tenant-{i}")),
            matches: vec![RouteMatch {
                uri: Some(StringMatch::Prefix("/api/".into())),
                headers: vec![(
                    HeaderName::from_static("x-tenant"),
                    ValueMatch::Value(StringMatch::Exact(format!("tenant-{i}"))),
                )],
                ..Default::default()
            }],
            action: RouteAction::DirectResponse(DirectResponse {
                status: 200,
                body: None,
            }),
            headers: Default::default(),
            fault: None,
            mirrors: vec![],
            timeout: None,
            retries: None,
        })
        .collect()
}

fn request(tenant: &str) -> Request<()> {
    Request::get("http://reviews:9080/api/reviews/0?lang=en")
        .header("user-agent", "bench/1.0")
        .header("accept", "application/json")
        .header("x-request-id", "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
        .header("x-tenant", tenant)
        .body(())
        .expect("request")
}

fn bench_find(c: &mut Criterion) {
    let routes = routes();
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

fn bench_split(c: &mut Criterion) {
    let mut group = c.benchmark_group("route/split_pick");
    for weights in [vec![90, 10], vec![10; 10]] {
        let split = Split::new(&weights);
        let mut rng = SmallRng::seed_from_u64(7);
        group.bench_function(format!("{}_destinations", weights.len()), |b| {
            b.iter(|| black_box(&split).pick(&mut rng))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_find, bench_split);
criterion_main!(benches);
