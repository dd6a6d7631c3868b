//! Outlier detection: an endpoint that keeps failing is ejected, within
//! `maxEjectionPercent`, and returns after its ejection time.

use std::sync::Arc;
use std::time::Duration;

use mesh::tower::testing::Behavior;

use crate::support::{Service, load};

fn rule(max_ejection_percent: u32) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 5
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: {max_ejection_percent}
"#
    )
}

#[tokio::test(start_paused = true)]
async fn a_failing_endpoint_is_ejected_and_retries_hide_its_errors() {
    let reviews = Service::start("reviews", 78, 5).await;
    reviews.pods[2].set_behavior(Behavior::Status(503));
    let client = reviews.yaml_client(&[&rule(100)]);
    let report = load(&client, &reviews.uri("/reviews/0"), 16, 625, Arc::default()).await;

    assert_eq!(report.total(), 10_000);
    let ok = report.statuses.get(&200).copied().unwrap_or(0);
    assert!(
        ok >= 9_990,
        "{ok} of 10,000 succeeded: {:?}",
        report.statuses
    );
    // Ejected after its fifth 503 (a few more may have been in flight then).
    let bad = reviews.pods[2].hits();
    assert!((5..=5 + 16).contains(&bad), "the failing pod served {bad}");
}

#[tokio::test(start_paused = true)]
async fn ejections_never_exceed_max_ejection_percent() {
    let reviews = Service::start("reviews", 79, 5).await;
    reviews.pods[0].set_behavior(Behavior::Status(503));
    reviews.pods[1].set_behavior(Behavior::Status(503));
    // 20 % of 5: one endpoint may be ejected, not two.
    let client = reviews.yaml_client(&[&rule(20)]);
    let uri = reviews.uri("/reviews/0");
    load(&client, &uri, 4, 250, Arc::default()).await;
    let before = [reviews.pods[0].hits(), reviews.pods[1].hits()];
    load(&client, &uri, 4, 250, Arc::default()).await;
    let after = [reviews.pods[0].hits(), reviews.pods[1].hits()];
    let still_served = (0..2).filter(|&i| after[i] > before[i]).count();
    assert_eq!(still_served, 1, "before {before:?}, after {after:?}");
}

#[tokio::test(start_paused = true)]
async fn an_ejected_endpoint_returns_after_its_time() {
    let reviews = Service::start("reviews", 80, 3).await;
    reviews.pods[0].set_behavior(Behavior::Status(503));
    let client = reviews.yaml_client(&[&rule(100)]);
    let uri = reviews.uri("/reviews/0");
    load(&client, &uri, 2, 100, Arc::default()).await;
    let ejected_at = reviews.pods[0].hits();
    load(&client, &uri, 2, 100, Arc::default()).await;
    assert_eq!(
        reviews.pods[0].hits(),
        ejected_at,
        "an ejected pod got traffic"
    );

    // Healthy again; after the 30 s ejection it takes traffic once more.
    reviews.pods[0].set_behavior(Behavior::Ok);
    tokio::time::sleep(Duration::from_secs(31)).await;
    let report = load(&client, &uri, 2, 150, Arc::default()).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(
        reviews.pods[0].hits() > ejected_at + 20,
        "the pod did not return: {} hits",
        reviews.pods[0].hits()
    );
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_whose_tries_time_out_is_ejected() {
    let reviews = Service::start("reviews", 81, 4).await;
    reviews.pods[1].set_behavior(Behavior::Delay(Duration::from_secs(30)));
    let rule = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    outlierDetection:
      consecutiveLocalOriginFailures: 3
      splitExternalLocalOriginErrors: true
      interval: 10s
      baseEjectionTime: 60s
      maxEjectionPercent: 100
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    retries: {attempts: 2, perTryTimeout: 100ms, retryOn: "reset,connect-failure"}
"#;
    let client = reviews.yaml_client(&[rule]);
    let report = load(&client, &reviews.uri("/reviews/0"), 4, 100, Arc::default()).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(
        report.statuses.get(&200),
        Some(&400),
        "{:?}",
        report.statuses
    );
    // Three per-try timeouts eject it (one more may have been in flight).
    let slow = reviews.pods[1].hits();
    assert!(
        (3..=3 + 4).contains(&slow),
        "the hanging pod got {slow} tries"
    );
}

#[tokio::test(start_paused = true)]
async fn below_min_health_percent_every_endpoint_takes_traffic() {
    let reviews = Service::start("reviews", 84, 4).await;
    for pod in &reviews.pods[..3] {
        pod.set_behavior(Behavior::Status(503));
    }
    let rule = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 5
      baseEjectionTime: 300s
      maxEjectionPercent: 100
      minHealthPercent: 50
"#;
    let client = reviews.yaml_client(&[rule]);
    let uri = reviews.uri("/reviews/0");
    load(&client, &uri, 2, 200, Arc::default()).await;
    let before: Vec<usize> = reviews.pods.iter().map(|p| p.hits()).collect();
    load(&client, &uri, 2, 200, Arc::default()).await;
    let after: Vec<usize> = reviews.pods.iter().map(|p| p.hits()).collect();
    // Three of four ejected leaves 25 % healthy, under 50 %: panic mode uses them all.
    for i in 0..3 {
        assert!(
            after[i] > before[i] + 10,
            "pod {i} got no traffic in panic mode: {before:?} -> {after:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn success_rate_ejection_catches_an_endpoint_that_fails_one_in_three() {
    use mesh::core::config::OutlierDetection;
    use mesh::core::outlier::SuccessRate;

    let reviews = Service::start("reviews", 85, 5).await;
    // Never two failures in a row: consecutive-5xx detection cannot see it.
    reviews.pods[3].set_behavior(Behavior::FailEvery {
        every: 3,
        status: 503,
    });
    let client = reviews.client(|b| {
        b.retry_attempts(0).outlier_detection(OutlierDetection {
            interval: Some(Duration::from_secs(1)),
            max_ejection_percent: Some(100),
            success_rate: Some(SuccessRate::threshold(90).with_request_volume(10)),
            ..Default::default()
        })
    });
    let uri = reviews.uri("/reviews/0");
    // Five seconds of traffic, one request every 10 ms.
    let mut errors = 0;
    for _ in 0..500 {
        if crate::support::fetch(&client, &uri, &[]).await.status == 503 {
            errors += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = reviews.pods[3].hits();
    let report2 = load(&client, &uri, 2, 250, Arc::default()).await;
    assert_eq!(
        report2.statuses.get(&200),
        Some(&500),
        "{:?}",
        report2.statuses
    );
    assert_eq!(
        reviews.pods[3].hits(),
        before,
        "the ejected pod got traffic"
    );
    // Judged at the first sweep where it had 10 requests (about 20 arrive each second), not
    // after the whole run: a third of its 100 requests would be 33 errors.
    assert!(errors < 20, "{errors} errors before the ejection");
}
