//! How load balancing spreads requests over real backends.

use std::sync::Arc;
use std::time::Duration;

use mesh::core::config::{LoadBalancer, PeakEwmaConfig};
use mesh::tower::testing::Behavior;

use crate::support::{Service, load};

#[tokio::test(start_paused = true)]
async fn round_robin_spreads_within_five_percent() {
    let details = Service::start("details", 30, 4).await;
    let client = details.client(|c| c.load_balancer(LoadBalancer::RoundRobin));
    let report = load(&client, &details.uri("/"), 8, 125, Arc::default()).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.by_backend.len(), 4);
    for (backend, hits) in &report.by_backend {
        let share = *hits as f64 / 1000.0;
        assert!((share - 0.25).abs() <= 0.05 * 0.25, "{backend}: {share}");
    }
}

/// The share of requests the one slow pod of three gets under `lb`.
async fn slow_share(lb: LoadBalancer, net: u8) -> f64 {
    let reviews = Service::start("reviews", net, 3).await;
    reviews.behave(Behavior::Delay(Duration::from_millis(5)));
    reviews.pods[0].set_behavior(Behavior::Delay(Duration::from_millis(100)));
    let client = reviews.client(|c| c.load_balancer(lb));
    let report = load(&client, &reviews.uri("/"), 8, 150, Arc::default()).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    reviews.pods[0].hits() as f64 / report.total() as f64
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
    let ratings = Service::start("ratings", 33, 2).await;
    ratings.pods[0].set_behavior(Behavior::Delay(Duration::from_millis(200)));
    ratings.pods[1].set_behavior(Behavior::Delay(Duration::from_millis(2)));
    let client = ratings.client(|c| c);
    let report = load(&client, &ratings.uri("/"), 8, 100, Arc::default()).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let busy = ratings.pods[0].hits() as f64 / report.total() as f64;
    assert!(busy < 0.25, "the busy backend got {busy:.3}");
}
