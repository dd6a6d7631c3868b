//! Request bodies under retries: replayed when small, sent once when large; non-idempotent
//! requests retried only when they never reached the application.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use mesh::core::config::{LoadBalancer, Protocol};
use mesh::core::retry::RetryOn;
use mesh::tower::MeshClient;
use mesh::tower::testing::Behavior;

use crate::support::Service;

async fn send(client: &MeshClient, method: &str, uri: &str, body: Vec<u8>) -> (u16, String, usize) {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status().as_u16();
    let len = res
        .headers()
        .get("x-body-len")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), len)
}

/// One backend answering 503 and one answering 200, balanced in turn, retrying once on
/// `5xx,connect-failure`.
async fn half_failing(net: u8) -> (Service, MeshClient, String) {
    let store = Service::start("store", net, 2).await;
    store.pods[0].set_behavior(Behavior::Status(503));
    let client = store.client(|c| {
        c.load_balancer(LoadBalancer::RoundRobin)
            .retry_on("5xx,connect-failure".parse::<RetryOn>().unwrap())
            .retry_attempts(1)
    });
    let uri = store.uri("/items");
    (store, client, uri)
}

#[tokio::test(start_paused = true)]
async fn small_bodies_are_replayed_on_retry() {
    let (store, client, uri) = half_failing(40).await;
    for _ in 0..10 {
        let (status, body, len) = send(&client, "PUT", &uri, vec![7; 1024]).await;
        assert_eq!((status, body.as_str(), len), (200, "store-1", 1024));
    }
    // Some first tries went to the failing backend and were replayed on the other one.
    assert!(store.pods[0].hits() >= 1, "no try was retried");
    assert_eq!(store.pods[1].hits(), 10);
}

#[tokio::test(start_paused = true)]
async fn streamed_bodies_are_buffered_for_replay() {
    let (_store, client, uri) = half_failing(41).await;
    for _ in 0..4 {
        let chunks = (0..8)
            .map(|_| Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from(vec![1u8; 1000]))));
        let body = StreamBody::new(futures_util::stream::iter(chunks));
        let req = http::Request::put(&uri).body(body).unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-body-len"], "8000");
    }
}

#[tokio::test(start_paused = true)]
async fn large_bodies_are_sent_once() {
    let (store, client, uri) = half_failing(42).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, _, len) = send(&client, "PUT", &uri, vec![1; 100 * 1024]).await;
        assert_eq!(len, 100 * 1024);
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(
        statuses,
        [200, 200, 503, 503],
        "no retry for a body past 64 KiB"
    );
    assert_eq!(store.pods[0].hits() + store.pods[1].hits(), 4);
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_requests_are_not_retried_after_reaching_the_app() {
    let (store, client, uri) = half_failing(43).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(send(&client, "POST", &uri, b"order".to_vec()).await.0);
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 503, 503]);
    assert_eq!(store.pods[0].hits() + store.pods[1].hits(), 4);
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_requests_are_retried_when_never_sent() {
    let (store, client, uri) = half_failing(44).await;
    store.pods[0].kill();
    for _ in 0..6 {
        let (status, body, len) = send(&client, "POST", &uri, b"order".to_vec()).await;
        assert_eq!((status, body.as_str(), len), (200, "store-1", 5));
    }
    // Let the killed endpoint's connect back-off pass between rounds too.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(send(&client, "POST", &uri, b"order".to_vec()).await.0, 200);
}

#[tokio::test(start_paused = true)]
async fn http2_keeps_the_logical_authority() {
    let grpc = Service::start("grpc", 45, 1).await;
    let client = grpc.client(|c| c.protocol(Protocol::Http2));
    let req = http::Request::get(grpc.uri("/"))
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-version"], "HTTP/2.0");
    assert_eq!(
        res.headers()["x-host"],
        format!("grpc:{}", grpc.port).as_str()
    );
}
