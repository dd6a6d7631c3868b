//! Local rate limits and concurrency limits per destination on the client: exact counts, 429
//! RL and 503 UO answered by the mesh without reaching the pods.

use std::time::Duration;

use futures_util::future::join_all;
use mesh::core::ratelimit::TokenBucketConfig;
use mesh::tower::testing::Behavior;

use crate::support::{Service, fetch};

#[tokio::test(start_paused = true)]
async fn a_token_bucket_admits_exactly_its_tokens() {
    let ratings = Service::start("ratings", 86, 2).await;
    let client =
        ratings.client(|b| b.rate_limit(TokenBucketConfig::new(10, 5, Duration::from_secs(1))));
    let uri = ratings.uri("/ratings/0");
    // Discovery answers first, so that no request waits for it.
    assert_eq!(fetch(&client, &uri, &[]).await.status, 200);

    let answers = join_all((0..30).map(|_| fetch(&client, &uri, &[]))).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let limited: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!(
        (ok, limited.len()),
        (9, 21),
        "one token went to the first request"
    );
    assert!(limited.iter().all(|a| a.response_flag() == "RL"));
    assert_eq!(ratings.pods.iter().map(|p| p.hits()).sum::<usize>(), 10);

    // One fill later: exactly five more.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answers = join_all((0..30).map(|_| fetch(&client, &uri, &[]))).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(ok, 5);
}

#[tokio::test(start_paused = true)]
async fn a_concurrency_limit_sheds_the_excess_at_once() {
    let ratings = Service::start("ratings", 87, 2).await;
    let client = ratings.client(|b| b.concurrency_limit(2));
    let uri = ratings.uri("/ratings/0");
    assert_eq!(fetch(&client, &uri, &[]).await.status, 200);
    ratings.behave(Behavior::Delay(Duration::from_secs(5)));

    let started = tokio::time::Instant::now();
    let answers = join_all((0..5).map(|_| async {
        let answer = fetch(&client, &uri, &[]).await;
        (answer, started.elapsed())
    }))
    .await;
    let ok = answers.iter().filter(|(a, _)| a.status == 200).count();
    let shed: Vec<_> = answers.iter().filter(|(a, _)| a.status == 503).collect();
    assert_eq!((ok, shed.len()), (2, 3));
    for (answer, after) in shed {
        assert_eq!(answer.response_flag(), "UO");
        assert!(
            answer.body.contains("concurrency limit of 2"),
            "{}",
            answer.body
        );
        assert!(*after < Duration::from_secs(1), "shed after {after:?}");
    }
    // The slots come back when the bodies end.
    ratings.behave(Behavior::Ok);
    let answers = join_all((0..2).map(|_| fetch(&client, &uri, &[]))).await;
    assert!(answers.iter().all(|a| a.status == 200));
}
