//! Bookinfo's services: each router's JSON and pages through `oneshot`, the binaries'
//! settings, and the four services as mesh servers on loopback, found through a real DNS
//! server.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use bookinfo::books::Upstreams;
use bookinfo::env::Settings;
use bookinfo::productpage::{DETAILS_UNAVAILABLE, REVIEWS_UNAVAILABLE};
use bookinfo::reviews::{RATINGS_UNAVAILABLE, Version};
use bookinfo::{details, productpage, ratings, reviews};
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use mesh::tower::testing::DnsServer;
use mesh::{ConfigError, MeshClient, MeshConfig, MeshServer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use tower::util::MapRequestLayer;

/// A loopback address nothing listens on.
const NOWHERE: &str = "http://127.0.120.99:9";

/// Sends `req` to `router`, answering the status, the headers and the body.
async fn call(router: Router, req: Request<Full<Bytes>>) -> (StatusCode, http::HeaderMap, String) {
    let res = router.oneshot(req).await.expect("routers never fail");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).expect("UTF-8"),
    )
}

async fn get(router: Router, path: &str) -> (StatusCode, Value) {
    let req = Request::get(path).body(Full::default()).expect("request");
    let (status, _, body) = call(router, req).await;
    (status, serde_json::from_str(&body).expect("JSON"))
}

/// A client resolving through `dns` (or failing to resolve anything, without it).
fn client(service: &str, dns: &DnsServer) -> MeshClient {
    MeshClient::new(config(service, dns)).expect("client")
}

fn config(service: &str, dns: &DnsServer) -> MeshConfig {
    MeshConfig::builder()
        .service(service)
        .namespace("default")
        .discovery(dns.config())
        .shutdown_drain(Duration::ZERO)
        .build()
        .expect("config")
}

#[tokio::test]
async fn details_answers_istios_json() {
    let (status, body) = get(details::router(), "/details/0").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"id":0,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,
               "publisher":"PublisherA","language":"English","ISBN-10":"1234567890",
               "ISBN-13":"123-1234567890"})
    );
    let (status, body) = get(details::router(), "/details/zero").await;
    assert_eq!(status, 400);
    assert_eq!(body, json!({"error": "please provide numeric product id"}));
    let (status, body) = get(details::router(), "/health").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "Details is healthy"}))
    );
}

#[tokio::test]
async fn ratings_answers_istios_json_and_keeps_posted_ratings() {
    let (status, body) = get(ratings::router(), "/ratings/0").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}})
    );
    let (status, body) = get(ratings::router(), "/ratings/x").await;
    assert_eq!(status, 400);
    assert_eq!(body, json!({"error": "please provide numeric product ID"}));

    let router = ratings::router();
    let post = |body: &'static str| {
        Request::post("/ratings/7")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .expect("request")
    };
    let (status, _, _) = call(router.clone(), post("not json")).await;
    assert_eq!(status, 400);
    let (status, _, body) = call(router.clone(), post(r#"{"Reviewer1":1}"#)).await;
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"id":7,"ratings":{"Reviewer1":1}}"#);
    let (_, body) = get(router, "/ratings/7").await;
    assert_eq!(body, json!({"id":7,"ratings":{"Reviewer1":1}}));
}

#[tokio::test(start_paused = true)]
async fn reviews_v1_has_no_ratings_and_v2_says_when_ratings_fail() {
    let dns = DnsServer::start().expect("DNS server");
    let upstreams = Upstreams {
        ratings: NOWHERE.to_owned(),
        ..Upstreams::default()
    };
    let v1 = reviews::router(Version::V1, client("reviews", &dns), upstreams.clone());
    let (status, body) = get(v1.clone(), "/reviews/0").await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], "0");
    assert_eq!(body["podname"], "reviews-v1");
    assert_eq!(body["clustername"], "Kubernetes");
    let list = body["reviews"].as_array().expect("reviews");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["reviewer"], "Reviewer1");
    assert!(list.iter().all(|r| r.get("rating").is_none()), "{body}");
    let (status, _) = get(v1.clone(), "/reviews/abc").await;
    assert_eq!(status, 404);
    let (_, health) = get(v1, "/health").await;
    assert_eq!(health, json!({"status": "Reviews is healthy"}));

    let v2 = reviews::router(Version::V2, client("reviews", &dns), upstreams);
    let (status, body) = get(v2, "/reviews/0").await;
    assert_eq!(status, 200);
    for review in body["reviews"].as_array().expect("reviews") {
        assert_eq!(review["rating"], json!({"error": RATINGS_UNAVAILABLE}));
    }
}

#[tokio::test(start_paused = true)]
async fn productpage_api_login_and_failures() {
    let dns = DnsServer::start().expect("DNS server");
    let down = Upstreams {
        details: NOWHERE.to_owned(),
        reviews: NOWHERE.to_owned(),
        ratings: NOWHERE.to_owned(),
        productpage: NOWHERE.to_owned(),
    };
    let page = productpage::router(client("productpage", &dns), down);

    let (status, list) = get(page.clone(), "/api/v1/products").await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["id"], 0);
    assert_eq!(list[0]["title"], "The Comedy of Errors");
    assert!(
        list[0]["descriptionHtml"]
            .as_str()
            .expect("html")
            .contains("Wikipedia Summary")
    );

    let (status, body) = get(page.clone(), "/api/v1/products/0").await;
    assert!(status.is_server_error(), "{status}");
    assert_eq!(body, json!({"error": DETAILS_UNAVAILABLE}));
    let (_, body) = get(page.clone(), "/api/v1/products/0/reviews").await;
    assert_eq!(body, json!({"error": REVIEWS_UNAVAILABLE}));

    let req = Request::get("/productpage")
        .body(Full::default())
        .expect("request");
    let (status, _, html) = call(page.clone(), req).await;
    assert_eq!(status, 200);
    assert!(html.contains("<title>Simple Bookstore App</title>"));
    assert!(html.contains(DETAILS_UNAVAILABLE) && html.contains(REVIEWS_UNAVAILABLE));
    assert!(html.contains("action=\"/login\"") && html.contains("name=\"username\""));

    let req = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(
            b"username=jason&passwd=secret",
        )))
        .expect("request");
    let (status, headers, _) = call(page.clone(), req).await;
    assert_eq!(status, 302);
    assert_eq!(headers[header::LOCATION], "/productpage");
    assert_eq!(headers[header::SET_COOKIE], "user=jason; Path=/");

    let req = Request::get("/logout")
        .body(Full::default())
        .expect("request");
    let (status, headers, _) = call(page.clone(), req).await;
    assert_eq!(status, 302);
    assert!(
        headers[header::SET_COOKIE]
            .to_str()
            .expect("ascii")
            .starts_with("user=;")
    );

    let req = Request::get("/static/bookinfo.css")
        .body(Full::default())
        .expect("request");
    let (status, headers, _) = call(page.clone(), req).await;
    assert_eq!(status, 200);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/css")
    );
    let req = Request::get("/health")
        .body(Full::default())
        .expect("request");
    let (_, _, body) = call(page, req).await;
    assert_eq!(body, "Product page is healthy");
}

#[test]
fn settings_name_bad_variables_and_add_propagation() {
    let base = || MeshConfig::builder().build().expect("config");
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let s = Settings::from_lookup("reviews", base(), vars(&[("REVIEWS_VERSION", "v3")]))
        .expect("settings");
    assert_eq!(s.reviews_version, Version::V3);
    assert_eq!(s.addr, "0.0.0.0:9080".parse::<SocketAddr>().expect("addr"));
    assert_eq!(s.upstreams, Upstreams::default());
    assert_eq!(s.mesh.workload.service, "reviews");
    assert_eq!(s.mesh.workload.version.as_deref(), Some("v3"));
    assert_eq!(s.mesh.telemetry.propagate_headers, ["end-user"]);
    assert_eq!(s.mesh.telemetry.propagate_cookies, ["user"]);

    for (name, value) in [
        ("BOOKINFO_ADDR", "localhost"),
        ("REVIEWS_VERSION", "v4"),
        ("DETAILS_URL", "ftp://details:21"),
        ("RATINGS_URL", "not a url"),
    ] {
        let lookup = move |n: &str| (n == name).then(|| value.to_owned());
        match Settings::from_lookup("reviews", base(), lookup) {
            Err(ConfigError::Invalid { path, value: v, .. }) => {
                assert_eq!((path.as_str(), v.as_str()), (name, value));
            }
            other => panic!("{name}={value}: {other:?}"),
        }
    }
}

/// A running service: where it listens, and how to stop it.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("server task");
    }
}

/// Serves `router` as service `name` on `ip` (any port), registered in `dns`.
async fn start(dns: &DnsServer, name: &str, ip: u8, router: Router) -> Running {
    let settings = Settings::from_lookup(name, config(name, dns), |_| None).expect("settings");
    let ip = Ipv4Addr::new(127, 0, 120, ip);
    let listener = TcpListener::bind((ip, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    dns.set_hosts(&format!("{name}.default.svc"), &[IpAddr::V4(ip)], 1)
        .expect("DNS record");
    let server = MeshServer::from_config(&settings.mesh).expect("server");
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        server
            .serve(listener, router, async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
    });
    Running { addr, stop, task }
}

/// The product page as `user` sees it (signed in when given).
async fn page(client: &MeshClient, addr: SocketAddr, user: Option<&str>) -> String {
    let mut req = Request::get(format!("http://productpage:{}/productpage", addr.port()));
    if let Some(user) = user {
        req = req.header(header::COOKIE, format!("user={user}"));
    }
    let res = client
        .request(req.body(Full::<Bytes>::default()).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8(body.to_vec()).expect("UTF-8")
}

#[tokio::test]
async fn the_four_services_over_the_mesh() {
    let dns = DnsServer::start().expect("DNS server");
    let details = start(&dns, "details", 1, details::router()).await;
    // What ratings was sent, two calls away from the page: `end-user` and the cookie.
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let record = seen.clone();
    let ratings_app = ratings::router().layer(MapRequestLayer::new(
        move |req: Request<axum::body::Body>| {
            let header = |name| {
                req.headers()
                    .get(name)
                    .and_then(|v: &http::HeaderValue| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let seen = (header("end-user"), header("cookie"));
            record.lock().expect("lock").push(seen);
            req
        },
    ));
    let ratings = start(&dns, "ratings", 2, ratings_app).await;
    let mut upstreams = Upstreams {
        details: format!("http://details:{}", details.addr.port()),
        ratings: format!("http://ratings:{}", ratings.addr.port()),
        ..Upstreams::default()
    };
    let reviews_app = reviews::router(Version::V2, client("reviews", &dns), upstreams.clone());
    let reviews = start(&dns, "reviews", 3, reviews_app).await;
    upstreams.reviews = format!("http://reviews:{}", reviews.addr.port());
    let page_app = productpage::router(client("productpage", &dns), upstreams);
    let productpage = start(&dns, "productpage", 4, page_app).await;
    let user = client("gateway", &dns);

    let html = page(&user, productpage.addr, Some("jason")).await;
    assert!(html.contains("signed in as jason"), "{html}");
    assert!(html.contains("<dt>Pages:</dt><dd>200</dd>"), "{html}");
    assert!(
        html.contains("<dt>ISBN-13:</dt><dd>123-1234567890</dd>"),
        "{html}"
    );
    assert!(html.contains("style=\"color: black\">★★★★★</p>"), "{html}");
    assert!(html.contains("style=\"color: black\">★★★★☆</p>"), "{html}");
    assert!(
        html.contains("Reviews served by:</dt><dd><u>reviews-v2</u>"),
        "{html}"
    );

    let html = page(&user, productpage.addr, None).await;
    assert!(html.contains(">Sign in</button>") && !html.contains("signed in as"));

    ratings.stop().await;
    let html = page(&user, productpage.addr, None).await;
    assert!(
        html.contains("<i>Ratings service is currently unavailable</i>"),
        "{html}"
    );
    assert!(html.contains("Book Details"), "{html}");

    details.stop().await;
    let html = page(&user, productpage.addr, None).await;
    assert!(html.contains(DETAILS_UNAVAILABLE), "{html}");
    assert!(html.contains("Book Reviews"), "{html}");

    productpage.stop().await;
    reviews.stop().await;
}

#[tokio::test(start_paused = true)]
async fn productpage_gives_up_on_details_after_3s_and_on_reviews_after_two_tries() {
    let dns = DnsServer::start().expect("DNS server");
    let slow = || {
        Router::new().fallback(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "too late"
        })
    };
    let details = start(&dns, "details", 5, slow()).await;
    let reviews = start(&dns, "reviews", 6, slow()).await;
    let upstreams = Upstreams {
        details: format!("http://details:{}", details.addr.port()),
        reviews: format!("http://reviews:{}", reviews.addr.port()),
        ..Upstreams::default()
    };
    let page_app = productpage::router(client("productpage", &dns), upstreams);
    let start = tokio::time::Instant::now();
    let req = Request::get("/productpage")
        .body(Full::default())
        .expect("request");
    let (status, _, html) = call(page_app, req).await;
    let waited = start.elapsed();
    assert_eq!(status, 200);
    assert!(html.contains(DETAILS_UNAVAILABLE) && html.contains(REVIEWS_UNAVAILABLE));
    // Reviews: two tries of 3 s each (details' 3 s run meanwhile).
    assert!(
        waited >= Duration::from_secs(6) && waited < Duration::from_secs(7),
        "{waited:?}"
    );
}
