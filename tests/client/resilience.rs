//! Timeouts, retries and the retry budget against real backends.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use mesh::core::config::LoadBalancer;
use mesh::core::retry::RetryOn;
use mesh::tower::testing::{Backend, Behavior, DnsServer};
use mesh::tower::{LocalReply, MeshClient, MeshError};

use crate::support::{config, ips, load, wait_for_count};

#[tokio::test(start_paused = true)]
async fn killed_backend_costs_zero_failed_idempotent_requests() {
    let dns = DnsServer::start().unwrap();
    let ips = ips(20, 3);
    let (port, backends) = Backend::start_many("productpage", &ips).await.unwrap();
    for b in &backends {
        // Requests are in flight on every backend when one dies.
        b.set_behavior(Behavior::Delay(Duration::from_millis(2)));
    }
    dns.set_hosts("productpage.default.svc", &ips, 30).unwrap();
    let client = MeshClient::new(config(&dns).build().unwrap()).unwrap();
    let uri = format!("http://productpage:{port}/productpage");

    let done = Arc::new(AtomicUsize::new(0));
    let running = {
        let (client, uri, done) = (client.clone(), uri.clone(), done.clone());
        tokio::spawn(async move { load(&client, &uri, 16, 150, done).await })
    };
    wait_for_count(&done, 600).await;
    backends[1].kill();
    let hits_at_kill = backends[1].hits();
    let report = running.await.unwrap();

    assert!(report.failures.is_empty(), "failed: {:?}", report.failures);
    assert_eq!(report.total(), 2400);
    assert_eq!(backends[1].hits(), hits_at_kill);
    assert!(hits_at_kill > 0);
}

#[tokio::test(start_paused = true)]
async fn budget_caps_attempts_under_total_failure() {
    let dns = DnsServer::start().unwrap();
    let ips = ips(21, 3);
    let (port, backends) = Backend::start_many("ratings", &ips).await.unwrap();
    for b in &backends {
        b.set_behavior(Behavior::Status(503));
    }
    dns.set_hosts("ratings.default.svc", &ips, 30).unwrap();
    let config = config(&dns)
        .retry_attempts(5)
        .retry_on("5xx".parse::<RetryOn>().unwrap())
        .build()
        .unwrap();
    let budget = config.defaults.retries.budget;
    let client = MeshClient::new(config).unwrap();

    let start = tokio::time::Instant::now();
    let requests = 2000;
    let report = load(
        &client,
        &format!("http://ratings:{port}/"),
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
    let attempts: usize = backends.iter().map(Backend::hits).sum();
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
    let dns = DnsServer::start().unwrap();
    let ips = ips(22, 1);
    let (port, backends) = Backend::start_many("reviews", &ips).await.unwrap();
    backends[0].set_behavior(Behavior::Delay(Duration::from_secs(30)));
    dns.set_hosts("reviews.default.svc", &ips, 30).unwrap();
    let config = config(&dns)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let client = MeshClient::new(config).unwrap();

    let req = http::Request::get(format!("http://reviews:{port}/reviews/0"))
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
    let body = crate::support::get(&client, &format!("http://reviews:{port}/"))
        .await
        .1;
    assert!(
        body.contains("timeout") && body.contains("reviews.default.svc.cluster.local"),
        "{body}"
    );
}

#[tokio::test(start_paused = true)]
async fn per_try_timeout_retries_on_another_endpoint() {
    let dns = DnsServer::start().unwrap();
    let ips = ips(23, 2);
    let (port, backends) = Backend::start_many("details", &ips).await.unwrap();
    backends[0].set_behavior(Behavior::Delay(Duration::from_secs(10)));
    dns.set_hosts("details.default.svc", &ips, 30).unwrap();
    let config = config(&dns)
        .load_balancer(LoadBalancer::RoundRobin)
        .per_try_timeout(Duration::from_millis(100))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let client = MeshClient::new(config).unwrap();
    let report = load(
        &client,
        &format!("http://details:{port}/"),
        1,
        20,
        Arc::default(),
    )
    .await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.by_backend.get("details-1"), Some(&20));
}
