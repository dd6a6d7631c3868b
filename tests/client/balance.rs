//! How load balancing spreads requests over real backends.

use std::sync::Arc;
use std::time::Duration;

use mesh::core::config::{LoadBalancer, PeakEwmaConfig};
use mesh::tower::MeshClient;
use mesh::tower::testing::{Backend, Behavior, DnsServer};

use crate::support::{config, ips, load};

#[tokio::test(start_paused = true)]
async fn round_robin_spreads_within_five_percent() {
    let dns = DnsServer::start().unwrap();
    let ips = ips(30, 4);
    let (port, _backends) = Backend::start_many("details", &ips).await.unwrap();
    dns.set_hosts("details.default.svc", &ips, 30).unwrap();
    let config = config(&dns)
        .load_balancer(LoadBalancer::RoundRobin)
        .build()
        .unwrap();
    let client = MeshClient::new(config).unwrap();
    let report = load(
        &client,
        &format!("http://details:{port}/"),
        8,
        125,
        Arc::default(),
    )
    .await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.by_backend.len(), 4);
    for (backend, hits) in &report.by_backend {
        let share = *hits as f64 / 1000.0;
        assert!((share - 0.25).abs() <= 0.05 * 0.25, "{backend}: {share}");
    }
}

async fn slow_share(lb: LoadBalancer, net: u8) -> f64 {
    let dns = DnsServer::start().unwrap();
    let ips = ips(net, 3);
    let (port, backends) = Backend::start_many("reviews", &ips).await.unwrap();
    backends[0].set_behavior(Behavior::Delay(Duration::from_millis(100)));
    backends[1].set_behavior(Behavior::Delay(Duration::from_millis(5)));
    backends[2].set_behavior(Behavior::Delay(Duration::from_millis(5)));
    dns.set_hosts("reviews.default.svc", &ips, 30).unwrap();
    let client = MeshClient::new(config(&dns).load_balancer(lb).build().unwrap()).unwrap();
    let report = load(
        &client,
        &format!("http://reviews:{port}/"),
        8,
        150,
        Arc::default(),
    )
    .await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    backends[0].hits() as f64 / report.total() as f64
}

#[tokio::test(start_paused = true)]
async fn slow_backend_loses_traffic_under_peak_ewma() {
    let ewma = slow_share(LoadBalancer::PeakEwma(PeakEwmaConfig::default()), 31).await;
    let round_robin = slow_share(LoadBalancer::RoundRobin, 32).await;
    assert!(ewma < 0.10, "the slow backend kept {ewma:.3} of requests");
    assert!(
        (round_robin - 1.0 / 3.0).abs() < 0.02,
        "round robin gave it {round_robin:.3}"
    );
}

#[tokio::test(start_paused = true)]
async fn least_request_avoids_the_busy_backend() {
    let dns = DnsServer::start().unwrap();
    let ips = ips(33, 2);
    let (port, backends) = Backend::start_many("ratings", &ips).await.unwrap();
    backends[0].set_behavior(Behavior::Delay(Duration::from_millis(200)));
    backends[1].set_behavior(Behavior::Delay(Duration::from_millis(2)));
    dns.set_hosts("ratings.default.svc", &ips, 30).unwrap();
    let client = MeshClient::new(config(&dns).build().unwrap()).unwrap();
    let report = load(
        &client,
        &format!("http://ratings:{port}/"),
        8,
        100,
        Arc::default(),
    )
    .await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let busy = backends[0].hits() as f64 / report.total() as f64;
    assert!(busy < 0.25, "the busy backend got {busy:.3}");
}
