//! Timeouts, retries and the retry budget against real backends.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use mesh::core::config::LoadBalancer;
use mesh::core::retry::RetryOn;
use mesh::tower::testing::{Backend, Behavior};
use mesh::tower::{LocalReply, MeshError};

use crate::support::{Service, get, load, wait_for_count};

#[tokio::test(start_paused = true)]
async fn killed_backend_costs_zero_failed_idempotent_requests() {
    let productpage = Service::start("productpage", 20, 3).await;
    // Requests are in flight on every backend when one dies.
    productpage.behave(Behavior::Delay(Duration::from_millis(2)));
    let client = productpage.client(|c| c);
    let uri = productpage.uri("/productpage");

    let done = Arc::new(AtomicUsize::new(0));
    let running = {
        let (client, uri, done) = (client.clone(), uri.clone(), done.clone());
        tokio::spawn(async move { load(&client, &uri, 16, 150, done).await })
    };
    wait_for_count(&done, 600).await;
    let killed = &productpage.pods[1];
    killed.kill();
    let hits_at_kill = killed.hits();
    let report = running.await.unwrap();

    assert!(report.failures.is_empty(), "failed: {:?}", report.failures);
    assert_eq!(report.total(), 2400);
    assert_eq!(killed.hits(), hits_at_kill);
    assert!(hits_at_kill > 0);
}

#[tokio::test(start_paused = true)]
async fn budget_caps_attempts_under_total_failure() {
    let ratings = Service::start("ratings", 21, 3).await;
    ratings.behave(Behavior::Status(503));
    let client = ratings.client(|c| {
        c.retry_attempts(5)
            .retry_on("5xx".parse::<RetryOn>().unwrap())
    });
    let budget = client.config().defaults.retries.budget;

    let start = tokio::time::Instant::now();
    let requests = 2000;
    let report = load(
        &client,
        &ratings.uri("/"),
        20,
        requests / 20,
        Arc::default(),
    )
    .await;
    let elapsed = start.elapsed().as_secs_f64();

    assert_eq!(
        report.statuses.get(&503),
        Some(&requests),
        "{:?}",
        report.statuses
    );
    let attempts: usize = ratings.pods.iter().map(Backend::hits).sum();
    // Requests x 1.2, plus 10 retries a second over the run and one window of reserve.
    let bound = requests as f64 * (1.0 + budget.ratio)
        + f64::from(budget.min_per_second) * (elapsed + budget.window.as_secs_f64());
    assert!(
        attempts as f64 <= bound,
        "{attempts} attempts for {requests} requests in {elapsed:.1}s exceed the budget's {bound:.0}"
    );
    assert!(attempts > requests, "no retry at all: {attempts}");
    // Without the budget, 5 retries each would have made 6 x the attempts.
    assert!(attempts < requests * 2, "{attempts}");
}

#[tokio::test(start_paused = true)]
async fn request_timeout_is_a_504_with_a_clear_error() {
    let reviews = Service::start("reviews", 22, 1).await;
    reviews.behave(Behavior::Delay(Duration::from_secs(30)));
    let client = reviews.client(|c| c.timeout(Duration::from_millis(500)));

    let req = http::Request::get(reviews.uri("/reviews/0"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), 504);
    let reply = res.extensions().get::<LocalReply>().expect("a local reply");
    assert!(
        matches!(&*reply.error, MeshError::Timeout { timeout, .. } if *timeout == Duration::from_millis(500)),
        "{:?}",
        reply.error
    );
    let body = get(&client, &reviews.uri("/")).await.1;
    assert!(
        body.contains("timeout") && body.contains("reviews.default.svc.cluster.local"),
        "{body}"
    );
}

#[tokio::test(start_paused = true)]
async fn per_try_timeout_retries_on_another_endpoint() {
    let details = Service::start("details", 23, 2).await;
    details.pods[0].set_behavior(Behavior::Delay(Duration::from_secs(10)));
    let client = details.client(|c| {
        c.load_balancer(LoadBalancer::RoundRobin)
            .per_try_timeout(Duration::from_millis(100))
            .timeout(Duration::from_secs(2))
    });
    let report = load(&client, &details.uri("/"), 1, 20, Arc::default()).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.by_backend.get("details-1"), Some(&20));
}
