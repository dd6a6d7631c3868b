//! Circuit breaking by connection-pool limits, as in Istio's circuit-breaking task: one
//! connection, one pending request; concurrent callers past that get 503 UO at once.

use std::sync::Arc;
use std::time::Duration;

use mesh::tower::testing::Behavior;

use crate::support::{Service, fetch, load};

const ONE_CONNECTION: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: httpbin
spec:
  host: httpbin
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
"#;

/// `callers` callers, 20 requests each, to one pod that takes 10 ms per answer.
async fn run(net: u8, callers: usize) -> crate::support::Report {
    let httpbin = Service::start("httpbin", net, 1).await;
    httpbin.behave(Behavior::Delay(Duration::from_millis(10)));
    let client = httpbin.yaml_client(&[ONE_CONNECTION]);
    load(&client, &httpbin.uri("/get"), callers, 20, Arc::default()).await
}

#[tokio::test(start_paused = true)]
async fn two_callers_fit_one_connection_and_one_pending() {
    let report = run(75, 2).await;
    assert_eq!(report.statuses.get(&200), Some(&40), "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn a_third_caller_overflows_with_503_uo_and_nothing_hangs() {
    let report = run(76, 3).await;
    // Every request was answered (none hangs); some overflowed, the rest succeeded.
    assert_eq!(report.total(), 60, "{report:?}");
    let overflowed = report.statuses.get(&503).copied().unwrap_or(0);
    let ok = report.statuses.get(&200).copied().unwrap_or(0);
    assert!(overflowed > 0 && ok > 0, "{report:?}");
    assert_eq!(ok + overflowed, 60, "{report:?}");
    assert!(
        report
            .failures
            .iter()
            .all(|(_, body)| body.contains("max_pending_requests limit reached")),
        "{:?}",
        report.failures
    );
}

#[tokio::test(start_paused = true)]
async fn an_overflow_is_flagged_uo() {
    let httpbin = Service::start("httpbin", 77, 1).await;
    httpbin.behave(Behavior::Delay(Duration::from_secs(1)));
    let client = httpbin.yaml_client(&[ONE_CONNECTION]);
    let uri = httpbin.uri("/get");
    let slow = (0..2).map(|_| {
        let (client, uri) = (client.clone(), uri.clone());
        tokio::spawn(async move { fetch(&client, &uri, &[]).await })
    });
    let slow: Vec<_> = slow.collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = fetch(&client, &uri, &[]).await;
    assert_eq!(third.status, 503, "{third:?}");
    assert_eq!(third.response_flag(), "UO");
    for task in slow {
        assert_eq!(task.await.expect("caller").status, 200);
    }
}
