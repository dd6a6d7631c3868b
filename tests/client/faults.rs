//! Fault injection with Bookinfo's task files: a 7 s delay and an HTTP 500 abort, both for
//! the user jason only.

use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;

use crate::support::{Versions, fetch, istio};

/// Bookinfo's `ratings` with its two versions; every route of the task files goes to v1.
async fn ratings(net: u8, fixture: &str) -> (Versions, mesh::tower::MeshClient) {
    let ratings = Versions::start("ratings", net, &[("v1", 2), ("v2", 1)]).await;
    let client = ratings.client(&[&istio(fixture), &istio("destination-rule-all.yaml")]);
    (ratings, client)
}

#[tokio::test(start_paused = true)]
async fn jason_is_delayed_seven_seconds_and_nobody_else() {
    let (ratings, client) = ratings(65, "virtual-service-ratings-test-delay.yaml").await;
    let uri = ratings.uri("/ratings/0");

    let start = Instant::now();
    let answers = join_all((0..5).map(|_| fetch(&client, &uri, &[("end-user", "jason")]))).await;
    let elapsed = start.elapsed();
    for answer in &answers {
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(ratings.version_of(&answer.body), Some("v1"), "{answer:?}");
    }
    assert!(
        elapsed >= Duration::from_secs(7),
        "jason waited only {elapsed:?}"
    );

    for user in [None, Some("mike")] {
        let headers: Vec<(&str, &str)> = user.map(|u| ("end-user", u)).into_iter().collect();
        for _ in 0..20 {
            let start = Instant::now();
            let answer = fetch(&client, &uri, &headers).await;
            let elapsed = start.elapsed();
            assert_eq!(answer.status, 200, "{answer:?}");
            assert_eq!(ratings.version_of(&answer.body), Some("v1"), "{answer:?}");
            assert!(
                elapsed < Duration::from_secs(1),
                "{user:?} was delayed {elapsed:?}"
            );
        }
    }
    assert_eq!(ratings.hits("v1"), 45);
    assert_eq!(ratings.hits("v2"), 0);
}

#[tokio::test(start_paused = true)]
async fn jason_gets_an_injected_500_that_never_reaches_ratings() {
    let (ratings, client) = ratings(66, "virtual-service-ratings-test-abort.yaml").await;
    let uri = ratings.uri("/ratings/0");

    for _ in 0..100 {
        let answer = fetch(&client, &uri, &[("end-user", "jason")]).await;
        assert_eq!(answer.status, 500, "{answer:?}");
        assert!(
            answer.body.contains("fault filter abort"),
            "{}",
            answer.body
        );
        assert_eq!(answer.response_flag(), "FI");
    }
    assert_eq!(ratings.hits("v1") + ratings.hits("v2"), 0);

    for _ in 0..100 {
        let answer = fetch(&client, &uri, &[]).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(ratings.version_of(&answer.body), Some("v1"), "{answer:?}");
    }
    assert_eq!(ratings.hits("v1"), 100);
    assert_eq!(ratings.hits("v2"), 0);
}
