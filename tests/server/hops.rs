//! A deadline shrinks across two hops: caller -> reviews -> ratings, each service a
//! MeshServer whose handler calls the next through a MeshClient, with no code forwarding
//! anything.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use http_body_util::BodyExt;
use mesh::core::MeshConfig;
use mesh::tower::MeshClient;
use mesh::tower::context::RequestContext;
use mesh::tower::testing::DnsServer;
use tokio::time::Instant;

use crate::support::{Running, config, ip};

/// What ratings saw of one request: the header and the time its context left.
#[derive(Clone, Debug, Default)]
struct Seen {
    header: Option<String>,
    left: Option<Duration>,
}

/// What reviews' handler holds: its client, ratings' URI, and where it notes its header.
type Hop = (MeshClient, String, Arc<Mutex<Option<String>>>);

fn client(dns: &DnsServer, timeout: Duration) -> MeshClient {
    let config = MeshConfig::builder()
        .service("tester")
        .namespace("default")
        .discovery(dns.config())
        .timeout(timeout)
        .retry_attempts(0)
        .build()
        .expect("valid config");
    MeshClient::new(config).expect("client")
}

async fn body_of(res: http::Response<mesh::tower::ResponseBody>) -> (u16, String) {
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// reviews takes `work` before calling ratings; ratings records what it saw.
async fn two_hops(net: u8, work: Duration) -> ((u16, String), Seen, Option<String>) {
    let dns = DnsServer::start().expect("DNS server");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let ratings_app = Router::new()
        .route(
            "/ratings",
            get(
                |State(seen): State<Arc<Mutex<Seen>>>, headers: HeaderMap| async move {
                    let left = RequestContext::current_deadline()
                        .map(|at| at.saturating_duration_since(Instant::now()));
                    *seen.lock().unwrap() = Seen {
                        header: headers
                            .get("x-mesh-timeout-ms")
                            .map(|v| v.to_str().unwrap_or("?").to_owned()),
                        left,
                    };
                    "5 stars"
                },
            ),
        )
        .with_state(seen.clone());
    let server = config(Duration::ZERO, Duration::from_secs(1));
    let ratings = Running::start(SocketAddr::new(ip(net, 2), 0), server.clone(), ratings_app).await;
    dns.set_hosts("ratings.default.svc", &[ip(net, 2)], 1)
        .expect("DNS record");

    // reviews calls ratings with a generous timeout of its own: the inbound deadline binds.
    let outbound = client(&dns, Duration::from_secs(15));
    let ratings_uri = format!("http://ratings:{}/ratings", ratings.addr.port());
    let reviews_seen = Arc::new(Mutex::new(None::<String>));
    let reviews_app = Router::new()
        .route(
            "/reviews",
            get(
                move |State((client, uri, seen)): State<Hop>, headers: HeaderMap| async move {
                    *seen.lock().unwrap() = headers
                        .get("x-mesh-timeout-ms")
                        .map(|v| v.to_str().unwrap_or("?").to_owned());
                    tokio::time::sleep(work).await;
                    let req = http::Request::get(&uri)
                        .body(http_body_util::Empty::<bytes::Bytes>::new())
                        .expect("request");
                    let res = client.request(req).await.expect("never fails");
                    let (status, body) = body_of(res).await;
                    format!("{status} {body}")
                },
            ),
        )
        .with_state((outbound, ratings_uri, reviews_seen.clone()));
    let reviews = Running::start(SocketAddr::new(ip(net, 1), 0), server, reviews_app).await;
    dns.set_hosts("reviews.default.svc", &[ip(net, 1)], 1)
        .expect("DNS record");

    let caller = client(&dns, Duration::from_secs(1));
    let req = http::Request::get(format!("http://reviews:{}/reviews", reviews.addr.port()))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let answer = body_of(caller.request(req).await.expect("never fails")).await;
    // Let a call that outlived the caller finish before reading what ratings saw.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = seen.lock().unwrap().clone();
    let reviews_header = reviews_seen.lock().unwrap().clone();
    (answer, seen, reviews_header)
}

#[tokio::test(start_paused = true)]
async fn a_deadline_shrinks_across_two_hops() {
    let (answer, seen, reviews_header) = two_hops(88, Duration::from_millis(300)).await;
    assert_eq!(answer, (200, "200 5 stars".to_owned()));
    // The caller's 1 s timeout reaches reviews whole (no time passes on the paused clock
    // between sending and receiving), and ratings gets what reviews' 300 ms of work left.
    assert_eq!(reviews_header.as_deref(), Some("1000"));
    assert_eq!(seen.header.as_deref(), Some("700"));
    assert_eq!(seen.left, Some(Duration::from_millis(700)));
}

#[tokio::test(start_paused = true)]
async fn a_call_made_after_the_deadline_is_not_sent() {
    let (answer, seen, _) = two_hops(89, Duration::from_millis(1200)).await;
    // The caller gave up at 1 s; reviews' call to ratings at 1.2 s fails at once, unsent.
    assert_eq!(answer.0, 504);
    assert!(seen.header.is_none(), "ratings was called: {seen:?}");
}
