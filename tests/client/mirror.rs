//! Traffic mirroring: every request to `reviews` v1 is copied to v2 with the `-shadow` host;
//! the copies' answers are dropped, so a failing, slow or dead mirror changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mesh::tower::MeshClient;
use mesh::tower::testing::Behavior;
use tokio::time::Instant;

use crate::support::{Report, Versions, eventually, istio, load};

const MIRROR_V2: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 100
    mirror:
      host: reviews
      subset: v2
    mirrorPercentage:
      value: 100.0
"#;

async fn mirrored(net: u8) -> (Versions, MeshClient) {
    let reviews = Versions::start("reviews", net, &[("v1", 2), ("v2", 2)]).await;
    let client = reviews.client(&[MIRROR_V2, &istio("destination-rule-all.yaml")]);
    (reviews, client)
}

/// 1,000 requests, 10 callers at a time, every one answered 200 by v1.
async fn all_from_v1(reviews: &Versions, client: &MeshClient) -> Report {
    let report = load(client, &reviews.uri("/reviews/0"), 10, 100, Arc::default()).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(
        reviews.by_version(&report),
        BTreeMap::from([("v1".to_owned(), 1000)])
    );
    report
}

#[tokio::test(start_paused = true)]
async fn mirror_gets_a_copy_of_every_request_with_the_shadow_host() {
    let (reviews, client) = mirrored(70).await;
    all_from_v1(&reviews, &client).await;

    // Copies are sent in the background: wait for them.
    assert!(
        eventually(Duration::from_secs(5), || reviews.hits("v2") >= 1000).await,
        "v2 saw {} copies",
        reviews.hits("v2")
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let shadow = format!("reviews-shadow:{}", reviews.port);
    assert_eq!(reviews.hosts("v2"), BTreeMap::from([(shadow, 1000)]));
    assert_eq!(
        reviews.hosts("v1"),
        BTreeMap::from([(reviews.authority(), 1000)])
    );
}

#[tokio::test(start_paused = true)]
async fn failing_slow_or_dead_mirror_changes_nothing() {
    let (reviews, client) = mirrored(71).await;

    // The mirror answers 500: its answers are dropped.
    for pod in reviews.pods("v2") {
        pod.set_behavior(Behavior::Status(500));
    }
    all_from_v1(&reviews, &client).await;
    assert!(
        eventually(Duration::from_secs(5), || reviews.hits("v2") >= 1000).await,
        "v2 saw {} copies",
        reviews.hits("v2")
    );

    // The mirror takes 30 s to answer: nobody waits for it.
    for pod in reviews.pods("v2") {
        pod.set_behavior(Behavior::Delay(Duration::from_secs(30)));
    }
    let start = Instant::now();
    all_from_v1(&reviews, &client).await;
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs(30),
        "the callers waited {elapsed:?} for the mirror"
    );

    // The mirror's pods are gone.
    for pod in reviews.pods("v2") {
        pod.kill();
    }
    all_from_v1(&reviews, &client).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(reviews.hits("v1"), 3000);
}
