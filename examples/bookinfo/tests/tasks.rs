//! Istio's Bookinfo tasks replayed through the demo's gateway, each with the task's own YAML:
//! request routing, fault injection (delay and abort), traffic shifting, request timeouts
//! and circuit breaking. Each test asserts on the page a user sees.
//!
//! Each test has its own pod network (`127.0.134.x` to `127.0.139.x`). They run on paused
//! tokio time: the demo's DNS server, TLS handshakes and servers all run on the test's
//! runtime, whose loopback I/O is ready whenever the runtime looks for it, so the clock only
//! jumps to a timer when nothing else can run; injected delays of seconds then take none.
//!
//! Istio's `kubectl apply` replaces a document of the same kind and name; the demo applies
//! its files' documents side by side, so each test applies only the documents its step
//! needs (`destination-rule-all.yaml` and the task's VirtualServices), never two
//! VirtualServices of one name.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use bookinfo::demo::{Demo, DemoOptions};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use mesh::{MeshClient, MeshConfig, Telemetry};

/// What productpage shows in place of the reviews when it cannot get them.
const REVIEWS_UNAVAILABLE: &str = "Sorry, product reviews are currently unavailable for this book.";

/// A plaintext client for the gateway (outside the mesh, as a browser is): it never retries,
/// so the test sees the gateway's answer (mesh retries a 503 by default).
fn browser() -> MeshClient {
    let config = MeshConfig::builder()
        .service("browser")
        .retry_attempts(0)
        .build()
        .unwrap();
    MeshClient::builder()
        .config(config)
        .telemetry(Telemetry::disabled())
        .build()
        .unwrap()
}

/// Bookinfo's task files, from the workspace's fixtures.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/istio")
        .join(name)
}

/// The demo on the pod network `127.0.<net>.x`, with the gateway on a free port and the
/// given task files applied in order.
async fn start(net: u8, files: &[&str]) -> Demo {
    let mut options = DemoOptions::default();
    options.gateway_addr = "127.0.0.1:0".parse().unwrap();
    options.network = Ipv4Addr::new(127, 0, net, 0);
    options.admin_port = 0;
    options.config = files.iter().map(|f| fixture(f)).collect();
    Demo::start(options).await.expect("demo starts")
}

/// Who asks for the page.
#[derive(Clone, Copy, Debug)]
enum User {
    Anonymous,
    /// Signed in as `jason`: the `user=jason` cookie productpage's sign-in sets.
    Jason,
}

/// `GET <path>` through the gateway as `user`: the status and the body.
async fn get(client: &MeshClient, gateway: SocketAddr, path: &str, user: User) -> (u16, String) {
    let mut req = http::Request::get(format!("http://{gateway}{path}"));
    if let User::Jason = user {
        req = req.header(http::header::COOKIE, "user=jason");
    }
    let req = req.body(Empty::<Bytes>::new()).unwrap();
    let Ok(res) = client.request(req).await;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The product page as `user`, which must be 200 with the book on it.
async fn page(client: &MeshClient, gateway: SocketAddr, user: User) -> String {
    let (status, body) = get(client, gateway, "/productpage", user).await;
    assert_eq!(status, 200, "{user:?}: {body}");
    assert!(body.contains("The Comedy of Errors"), "{body}");
    body
}

/// Which reviews the page shows, by its stars.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stars {
    /// No stars: reviews v1.
    None,
    /// Black stars: reviews v2.
    Black,
    /// Red stars: reviews v3.
    Red,
    /// The reviews are unavailable.
    Unavailable,
}

fn stars(page: &str) -> Stars {
    if page.contains(REVIEWS_UNAVAILABLE) {
        Stars::Unavailable
    } else if page.contains("color: black") && page.contains('★') {
        Stars::Black
    } else if page.contains("color: red") && page.contains('★') {
        Stars::Red
    } else {
        assert!(!page.contains('★'), "{page}");
        Stars::None
    }
}

/// The demo's gateway's metrics (the process's, as every admin server shows them).
async fn gateway_metrics(client: &MeshClient, demo: &Demo) -> String {
    let admin = demo.urls().admin("istio-ingressgateway-v1").unwrap();
    let (status, metrics) = get(client, admin, "/stats/prometheus", User::Anonymous).await;
    assert_eq!(status, 200);
    metrics
}

/// Request routing: all traffic to v1, then jason to v2.
#[tokio::test(start_paused = true)]
async fn request_routing_sends_everyone_to_v1_then_jason_to_v2() {
    let client = browser();
    let demo = start(
        134,
        &["destination-rule-all.yaml", "virtual-service-all-v1.yaml"],
    )
    .await;
    let gateway = demo.urls().gateway;
    for i in 0..20 {
        let user = if i % 2 == 0 {
            User::Anonymous
        } else {
            User::Jason
        };
        let body = page(&client, gateway, user).await;
        assert_eq!(stars(&body), Stars::None, "request {i} as {user:?}: {body}");
    }
    demo.shutdown().await;

    let demo = start(
        134,
        &[
            "destination-rule-all.yaml",
            "virtual-service-reviews-test-v2.yaml",
        ],
    )
    .await;
    let gateway = demo.urls().gateway;
    for i in 0..20 {
        let body = page(&client, gateway, User::Jason).await;
        assert!(body.contains("signed in as jason"), "{body}");
        assert_eq!(stars(&body), Stars::Black, "jason, request {i}: {body}");
        let body = page(&client, gateway, User::Anonymous).await;
        assert_eq!(stars(&body), Stars::None, "anonymous, request {i}: {body}");
    }
    demo.shutdown().await;
}

/// Fault injection, delay: ratings waits 7 s for jason; reviews v2 waits for it (its own
/// timeout is 10 s) but productpage gives reviews 3 s and one retry, so jason's page shows
/// the reviews as unavailable. Everyone else is fine.
#[tokio::test(start_paused = true)]
async fn a_seven_second_delay_for_jason_makes_his_reviews_unavailable() {
    let client = browser();
    let demo = start(
        135,
        &[
            "destination-rule-all.yaml",
            "virtual-service-reviews-test-v2.yaml",
            "virtual-service-ratings-test-delay.yaml",
        ],
    )
    .await;
    let gateway = demo.urls().gateway;
    for _ in 0..3 {
        let body = page(&client, gateway, User::Jason).await;
        assert!(body.contains(REVIEWS_UNAVAILABLE), "{body}");
        assert_eq!(stars(&body), Stars::Unavailable, "{body}");
        let body = page(&client, gateway, User::Anonymous).await;
        assert_eq!(stars(&body), Stars::None, "{body}");
    }
    demo.shutdown().await;
}

/// Fault injection, abort: ratings answers 500 for jason; reviews v2 says so in place of
/// the stars.
#[tokio::test(start_paused = true)]
async fn an_abort_for_jason_makes_his_ratings_unavailable() {
    let client = browser();
    let demo = start(
        136,
        &[
            "destination-rule-all.yaml",
            "virtual-service-reviews-test-v2.yaml",
            "virtual-service-ratings-test-abort.yaml",
        ],
    )
    .await;
    let gateway = demo.urls().gateway;
    for _ in 0..3 {
        let body = page(&client, gateway, User::Jason).await;
        assert!(
            body.contains("Ratings service is currently unavailable"),
            "{body}"
        );
        assert!(!body.contains('★'), "{body}");
        assert!(!body.contains(REVIEWS_UNAVAILABLE), "{body}");
        let body = page(&client, gateway, User::Anonymous).await;
        assert_eq!(stars(&body), Stars::None, "{body}");
        assert!(!body.contains("currently unavailable"), "{body}");
    }
    demo.shutdown().await;
}

/// Request timeouts: reviews to v2 with a 0.5 s timeout, ratings delayed 2 s: the page
/// shows the reviews as unavailable, for everyone.
#[tokio::test(start_paused = true)]
async fn a_half_second_reviews_timeout_beats_a_two_second_ratings_delay() {
    let client = browser();
    let demo = start(
        137,
        &[
            "destination-rule-all.yaml",
            "virtual-service-reviews-v2-timeout.yaml",
        ],
    )
    .await;
    let gateway = demo.urls().gateway;
    for user in [User::Anonymous, User::Jason] {
        let started = tokio::time::Instant::now();
        let body = page(&client, gateway, user).await;
        assert_eq!(stars(&body), Stars::Unavailable, "{user:?}: {body}");
        // Virtual time: productpage's two tries of half a second each, not ratings' 2 s.
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
    demo.shutdown().await;
}

/// Traffic shifting: 50 % to v3, then 100 %.
#[tokio::test(start_paused = true)]
async fn traffic_shifting_sends_half_then_all_to_v3() {
    let client = browser();
    let demo = start(
        138,
        &[
            "destination-rule-all.yaml",
            "virtual-service-reviews-50-v3.yaml",
        ],
    )
    .await;
    let gateway = demo.urls().gateway;
    let mut seen = std::collections::BTreeMap::<Stars, u32>::new();
    for _ in 0..200 {
        let body = page(&client, gateway, User::Anonymous).await;
        *seen.entry(stars(&body)).or_default() += 1;
    }
    // v3 ~ Binomial(200, 1/2): 60 to 140 (30 % to 70 %) misses with probability 6.3e-9.
    let red = seen.get(&Stars::Red).copied().unwrap_or(0);
    let none = seen.get(&Stars::None).copied().unwrap_or(0);
    assert_eq!(red + none, 200, "only v1 and v3: {seen:?}");
    assert!((60..=140).contains(&red), "{seen:?}");
    demo.shutdown().await;

    let demo = start(
        138,
        &[
            "destination-rule-all.yaml",
            "virtual-service-reviews-v3.yaml",
        ],
    )
    .await;
    let gateway = demo.urls().gateway;
    for user in [User::Anonymous, User::Jason].into_iter().cycle().take(20) {
        let body = page(&client, gateway, user).await;
        assert_eq!(stars(&body), Stars::Red, "{user:?}: {body}");
    }
    demo.shutdown().await;
}

/// Circuit breaking: one connection and one pending request to productpage; three callers
/// at once overflow, and the gateway answers 503 with the flag UO.
#[tokio::test(start_paused = true)]
async fn circuit_breaking_refuses_what_overflows_the_connection_pool() {
    let client = browser();
    let demo = start(139, &["destination-rule-productpage-circuit-breaker.yaml"]).await;
    let gateway = demo.urls().gateway;
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let client = client.clone();
        callers.spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..30 {
                answers.push(get(&client, gateway, "/productpage", User::Anonymous).await);
            }
            answers
        });
    }
    let mut ok = 0;
    let mut overflowed = 0;
    while let Some(answers) = callers.join_next().await {
        for (status, body) in answers.unwrap() {
            match status {
                200 => ok += 1,
                503 => {
                    assert!(body.contains("overflow"), "{body}");
                    overflowed += 1;
                }
                _ => panic!("{status}: {body}"),
            }
        }
    }
    assert!(ok > 0 && overflowed > 0, "{ok} ok, {overflowed} overflowed");
    let metrics = gateway_metrics(&client, &demo).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("istio_requests_total{")
                && l.contains("reporter=\"source\"")
                && l.contains("source_workload=\"istio-ingressgateway")
                && l.contains("response_code=\"503\"")
                && l.contains("response_flags=\"UO\"")),
        "{metrics}"
    );
    demo.shutdown().await;
}
