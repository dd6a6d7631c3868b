//! One trace across three services, productpage -> reviews -> ratings, each a MeshServer
//! whose handler calls the next through its own MeshClient with no code forwarding anything;
//! each workload exports its spans over OTLP with its own `service.name` to a receiver the
//! test started. Also: an inbound W3C, B3 multi-header and B3 single-header context is
//! continued, and the configured styles are written.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty};
use mesh::core::MeshConfig;
use mesh::core::config::TelemetryConfig;
use mesh::core::telemetry::PropagationSet;
use mesh::tower::MeshClient;
use mesh::tower::telemetry::Telemetry;
use mesh::tower::testing::DnsServer;

use crate::trace_support::{
    CLIENT, Collected, Receiver, SERVER, SeenSlot, flush, header, note, raw_get, serve, telemetry,
};

/// Propagates `end-user` and the `user` cookie; writes every trace header style.
fn config() -> TelemetryConfig {
    TelemetryConfig {
        propagation: PropagationSet::ALL,
        propagate_headers: vec!["end-user".into()],
        propagate_cookies: vec!["user".into()],
        ..TelemetryConfig::default()
    }
}

fn client(dns: &DnsServer, service: &str, telemetry: Telemetry) -> MeshClient {
    let config = MeshConfig::builder()
        .service(service)
        .namespace("default")
        .discovery(dns.config())
        .retry_attempts(0)
        .build()
        .expect("valid config");
    MeshClient::builder()
        .config(config)
        .telemetry(telemetry)
        .build()
        .expect("client")
}

/// A handler that notes what it saw and calls `next` (if any) through `client`.
type Hop = (Option<(MeshClient, String)>, SeenSlot);

fn app(path: &'static str, next: Option<(MeshClient, String)>, seen: SeenSlot) -> Router {
    Router::new()
        .route(
            path,
            get(
                |State((next, seen)): State<Hop>, headers: HeaderMap| async move {
                    note(&seen, &headers);
                    let Some((client, uri)) = next else {
                        return "5 stars".to_owned();
                    };
                    let req = http::Request::get(&uri)
                        .body(Empty::<bytes::Bytes>::new())
                        .expect("request");
                    let res = client.request(req).await.expect("never fails");
                    let status = res.status();
                    let body = res.into_body().collect().await.expect("body").to_bytes();
                    format!("{status} {}", String::from_utf8_lossy(&body))
                },
            ),
        )
        .with_state((next, seen))
}

/// What one request through the chain left behind.
struct Outcome {
    status: u16,
    spans: Vec<Collected>,
    productpage: crate::trace_support::Seen,
    ratings: crate::trace_support::Seen,
}

/// Runs the chain on `127.0.99.<base>..<base + 3>`; the caller sends `headers`.
async fn chain(base: u8, headers: &[(&str, &str)]) -> Outcome {
    let dns = DnsServer::start().expect("DNS server");
    let receiver = Receiver::start(base).await;
    let providers = [
        receiver.provider("productpage", &[]),
        receiver.provider("reviews", &[]),
        receiver.provider("ratings", &[]),
    ];
    let [pp_t, reviews_t, ratings_t] = [0, 1, 2].map(|i| telemetry(config(), Some(&providers[i])));

    let ratings_seen = SeenSlot::default();
    let ratings = serve(
        base + 3,
        "ratings",
        ratings_t.clone(),
        app("/ratings/0", None, ratings_seen.clone()),
    )
    .await;
    dns.set_hosts("ratings.default.svc", &[ratings.ip()], 30)
        .expect("record");

    let reviews_next = (
        client(&dns, "reviews", reviews_t.clone()),
        format!("http://ratings:{}/ratings/0", ratings.port()),
    );
    let reviews = serve(
        base + 2,
        "reviews",
        reviews_t,
        app("/reviews/0", Some(reviews_next), SeenSlot::default()),
    )
    .await;
    dns.set_hosts("reviews.default.svc", &[reviews.ip()], 30)
        .expect("record");

    let pp_seen = SeenSlot::default();
    let pp_next = (
        client(&dns, "productpage", pp_t.clone()),
        format!("http://reviews:{}/reviews/0", reviews.port()),
    );
    let productpage = serve(
        base + 1,
        "productpage",
        pp_t,
        app("/productpage", Some(pp_next), pp_seen.clone()),
    )
    .await;
    dns.set_hosts("productpage.default.svc", &[productpage.ip()], 30)
        .expect("record");

    // A bare caller: no spans, no trace, no retries.
    let (status, body) = raw_get(&format!("http://{productpage}/productpage"), headers).await;
    assert_eq!(body, "200 OK 200 OK 5 stars");

    flush(&providers).await;
    let spans = receiver.spans();
    let productpage = pp_seen.lock().unwrap().clone().expect("productpage called");
    let ratings = ratings_seen
        .lock()
        .unwrap()
        .clone()
        .expect("ratings called");
    Outcome {
        status,
        spans,
        productpage,
        ratings,
    }
}

/// The one span of `service` of `kind`.
fn span<'a>(spans: &'a [Collected], service: &str, kind: i32) -> &'a Collected {
    let found: Vec<&Collected> = spans
        .iter()
        .filter(|s| s.service == service && s.span.kind == kind)
        .collect();
    assert_eq!(found.len(), 1, "{service} kind {kind}: {spans:#?}");
    found[0]
}

/// Checks the five spans of the chain hang together; answers productpage's server span.
fn check_chain(spans: &[Collected]) -> Collected {
    assert_eq!(spans.len(), 5, "{spans:#?}");
    let pp_server = span(spans, "productpage", SERVER);
    let pp_client = span(spans, "productpage", CLIENT);
    let reviews_server = span(spans, "reviews", SERVER);
    let reviews_client = span(spans, "reviews", CLIENT);
    let ratings_server = span(spans, "ratings", SERVER);
    let trace = pp_server.trace_id();
    assert!(spans.iter().all(|s| s.trace_id() == trace), "{spans:#?}");
    assert_eq!(pp_client.parent(), pp_server.span_id());
    assert_eq!(reviews_server.parent(), pp_client.span_id());
    assert_eq!(reviews_client.parent(), reviews_server.span_id());
    assert_eq!(ratings_server.parent(), reviews_client.span_id());

    for s in spans {
        assert_eq!(s.span.name, "GET");
        assert_eq!(s.attr("http.request.method").as_deref(), Some("GET"));
        assert_eq!(s.attr("http.response.status_code").as_deref(), Some("200"));
    }
    assert_eq!(
        pp_client.attr("server.address").as_deref(),
        Some("reviews.default.svc.cluster.local")
    );
    assert_eq!(
        reviews_client.attr("server.address").as_deref(),
        Some("ratings.default.svc.cluster.local")
    );
    assert!(
        reviews_client
            .attr("url.full")
            .is_some_and(|u| u.starts_with("http://ratings:") && u.ends_with("/ratings/0"))
    );
    assert_eq!(
        ratings_server.attr("url.path").as_deref(),
        Some("/ratings/0")
    );
    assert_eq!(ratings_server.attr("url.scheme").as_deref(), Some("http"));
    assert_eq!(
        ratings_server.attr("server.address").as_deref(),
        Some("ratings")
    );
    assert!(
        ratings_server
            .attr("client.address")
            .is_some_and(|a| a.starts_with("127."))
    );
    assert!(ratings_server.attr("server.port").is_some());
    assert!(ratings_server.attr("network.protocol.version").is_some());
    assert!(
        ratings_server
            .resource
            .iter()
            .any(|(k, v)| k == "telemetry.sdk.language" && v == "rust")
    );
    pp_server.clone()
}

#[tokio::test(start_paused = true)]
async fn one_trace_across_three_services() {
    let out = chain(
        10,
        &[("end-user", "jason"), ("cookie", "user=jason; other=x")],
    )
    .await;
    assert_eq!(out.status, 200);
    let root = check_chain(&out.spans);
    assert_eq!(root.parent(), "", "productpage's server span is the root");

    // The request id productpage's server stack gave the request reached ratings.
    let id = header(&out.productpage.headers, "x-request-id").expect("request id");
    assert_eq!(id.len(), 36, "a uuid: {id}");
    assert_eq!(
        header(&out.ratings.headers, "x-request-id"),
        Some(id.clone())
    );
    assert_eq!(root.attr("guid:x-request-id"), Some(id.clone()));
    let ctx = out.ratings.context.expect("ratings' context");
    assert_eq!(
        ctx.request_id().map(|v| v.to_str().unwrap()),
        Some(id.as_str())
    );
    assert_eq!(
        header(&out.ratings.headers, "end-user").as_deref(),
        Some("jason")
    );
    assert_eq!(ctx.header("end-user").unwrap(), "jason");
    assert_eq!(ctx.cookie("user"), Some("jason"));
    let cookie = header(&out.ratings.headers, "cookie").expect("cookie");
    assert!(cookie.contains("user=jason"), "{cookie}");
    assert!(!cookie.contains("other"), "{cookie}");

    // Written in every configured style, naming reviews' client span.
    let reviews_client = span(&out.spans, "reviews", CLIENT);
    let ratings_headers = &out.ratings.headers;
    let traceparent = header(ratings_headers, "traceparent").expect("traceparent");
    assert_eq!(
        traceparent,
        format!(
            "00-{}-{}-01",
            reviews_client.trace_id(),
            reviews_client.span_id()
        )
    );
    assert_eq!(
        header(ratings_headers, "x-b3-traceid"),
        Some(reviews_client.trace_id())
    );
    assert_eq!(
        header(ratings_headers, "x-b3-spanid"),
        Some(reviews_client.span_id())
    );
    assert_eq!(
        header(ratings_headers, "x-b3-parentspanid"),
        Some(reviews_client.parent())
    );
    assert_eq!(
        header(ratings_headers, "x-b3-sampled").as_deref(),
        Some("1")
    );
    assert_eq!(
        header(ratings_headers, "b3"),
        Some(format!(
            "{}-{}-1-{}",
            reviews_client.trace_id(),
            reviews_client.span_id(),
            reviews_client.parent()
        ))
    );
    // The handler's context names ratings' own server span.
    let ratings_server = span(&out.spans, "ratings", SERVER);
    let tc = ctx.trace_context().expect("trace context");
    assert_eq!(tc.span_id.to_string(), ratings_server.span_id());
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

#[tokio::test(start_paused = true)]
async fn an_inbound_w3c_context_is_continued() {
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let out = chain(
        20,
        &[
            ("traceparent", traceparent.as_str()),
            ("tracestate", "vendor=abc"),
        ],
    )
    .await;
    let root = check_chain(&out.spans);
    assert_eq!(root.trace_id(), TRACE);
    assert_eq!(root.parent(), PARENT);
    assert_eq!(root.span.trace_state, "vendor=abc");
    assert_eq!(
        header(&out.ratings.headers, "tracestate").as_deref(),
        Some("vendor=abc")
    );
}

#[tokio::test(start_paused = true)]
async fn an_inbound_b3_multi_header_context_is_continued() {
    let out = chain(
        30,
        &[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", PARENT),
            ("x-b3-sampled", "1"),
        ],
    )
    .await;
    let root = check_chain(&out.spans);
    assert_eq!(root.trace_id(), TRACE);
    assert_eq!(root.parent(), PARENT);
}

#[tokio::test(start_paused = true)]
async fn an_inbound_b3_single_header_context_is_continued() {
    // A 64-bit B3 trace id is padded to 128 bits.
    let b3 = format!("a3ce929d0e0e4736-{PARENT}-1");
    let out = chain(40, &[("b3", b3.as_str())]).await;
    let root = check_chain(&out.spans);
    assert_eq!(root.trace_id(), "0000000000000000a3ce929d0e0e4736");
    assert_eq!(root.parent(), PARENT);
}
