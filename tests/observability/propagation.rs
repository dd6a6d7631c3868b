//! Context across spawned tasks, and without an exporter: a handler that spawns a task
//! calling downstream passes the trace context, `x-request-id` and `end-user` on only when the
//! task runs in the request's context (`context::spawn` or `RequestContext::in_current`); a
//! plain `tokio::spawn` loses them, as documented. The front workload has no tracer, so what
//! travels is a child of the caller's context with a fresh span id; unsampled stays unsampled.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty};
use mesh::core::MeshConfig;
use mesh::core::config::TelemetryConfig;
use mesh::core::telemetry::trace_context::parse_traceparent;
use mesh::tower::MeshClient;
use mesh::tower::context::{self, RequestContext};
use mesh::tower::telemetry::Telemetry;
use mesh::tower::testing::DnsServer;

use crate::trace_support::{Seen, SeenSlot, header, note, raw_get, serve, telemetry};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// How the front handler runs its downstream call.
#[derive(Clone, Copy, Debug)]
enum How {
    ContextSpawn,
    InCurrent,
    PlainSpawn,
    Inline,
}

type Front = (MeshClient, String, SeenSlot);

async fn call(client: MeshClient, uri: String) -> String {
    let req = http::Request::get(&uri)
        .body(Empty::<bytes::Bytes>::new())
        .expect("request");
    let res = client.request(req).await.expect("never fails");
    let body = res.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// The front's handler: notes what it saw, calls downstream as `how` says.
async fn front(how: How, State((client, uri, seen)): State<Front>, headers: HeaderMap) -> String {
    note(&seen, &headers);
    match how {
        How::ContextSpawn => context::spawn(call(client, uri)).await.expect("task"),
        How::InCurrent => tokio::spawn(RequestContext::in_current(call(client, uri)))
            .await
            .expect("task"),
        How::PlainSpawn => tokio::spawn(call(client, uri)).await.expect("task"),
        How::Inline => call(client, uri).await,
    }
}

/// front (no tracer, propagates `end-user`) -> downstream; answers what front and downstream
/// saw.
async fn through_front(host: u8, how: How, traceparent: &str) -> (Seen, Seen) {
    let dns = DnsServer::start().expect("DNS server");
    let down_seen = SeenSlot::default();
    let down_app = {
        let seen = down_seen.clone();
        Router::new().route(
            "/",
            get(move |headers: HeaderMap| async move {
                note(&seen, &headers);
                "down"
            }),
        )
    };
    // Downstream neither adds a request id nor starts a trace: it shows what arrived.
    let down = serve(host + 1, "down", Telemetry::disabled(), down_app).await;
    dns.set_hosts("down.default.svc", &[down.ip()], 30)
        .expect("record");

    let config = TelemetryConfig {
        propagate_headers: vec!["end-user".into()],
        ..TelemetryConfig::default()
    };
    let front_t = telemetry(config, None);
    let mesh = MeshConfig::builder()
        .service("front")
        .namespace("default")
        .discovery(dns.config())
        .retry_attempts(0)
        .build()
        .expect("config");
    let client = MeshClient::builder()
        .config(mesh)
        .telemetry(front_t.clone())
        .build()
        .expect("client");
    let front_seen = SeenSlot::default();
    let front_app = Router::new()
        .route(
            "/",
            get(move |state: State<Front>, headers: HeaderMap| front(how, state, headers)),
        )
        .with_state((
            client,
            format!("http://down:{}/", down.port()),
            front_seen.clone(),
        ));
    let front_addr = serve(host, "front", front_t, front_app).await;

    let (_, body) = raw_get(
        &format!("http://{front_addr}/"),
        &[("traceparent", traceparent), ("end-user", "jason")],
    )
    .await;
    assert_eq!(body, "down");
    let front = front_seen.lock().unwrap().clone().expect("front called");
    let down = down_seen.lock().unwrap().clone().expect("down called");
    (front, down)
}

/// Asserts downstream got a child of the caller's context and front's headers.
fn assert_carried(front: &Seen, down: &Seen, sampled: bool) {
    let tp = header(&down.headers, "traceparent").expect("traceparent");
    let ctx = parse_traceparent(&tp).expect("valid traceparent");
    assert_eq!(ctx.trace_id.to_string(), TRACE);
    assert_ne!(ctx.span_id.to_string(), CALLER_SPAN, "a fresh span id");
    assert_eq!(ctx.is_sampled(), sampled, "{tp}");
    // B3 multi-header is in the default styles too.
    assert_eq!(
        header(&down.headers, "x-b3-traceid").as_deref(),
        Some(TRACE)
    );
    assert_eq!(
        header(&down.headers, "x-b3-parentspanid").as_deref(),
        Some(CALLER_SPAN)
    );
    assert_eq!(header(&down.headers, "end-user").as_deref(), Some("jason"));
    let id = header(&front.headers, "x-request-id").expect("front gave a request id");
    assert_eq!(header(&down.headers, "x-request-id"), Some(id));
    // Front's own context is the caller's: it made no span.
    let front_ctx = front.context.as_ref().expect("front's context");
    let tc = front_ctx.trace_context().expect("trace context");
    assert_eq!(tc.span_id.to_string(), CALLER_SPAN);
}

fn sampled_parent() -> String {
    format!("00-{TRACE}-{CALLER_SPAN}-01")
}

#[tokio::test(start_paused = true)]
async fn inline_calls_carry_the_context_without_a_tracer() {
    let (front, down) = through_front(50, How::Inline, &sampled_parent()).await;
    assert_carried(&front, &down, true);
}

#[tokio::test(start_paused = true)]
async fn context_spawn_carries_the_context() {
    let (front, down) = through_front(52, How::ContextSpawn, &sampled_parent()).await;
    assert_carried(&front, &down, true);
}

#[tokio::test(start_paused = true)]
async fn in_current_carries_the_context() {
    let (front, down) = through_front(54, How::InCurrent, &sampled_parent()).await;
    assert_carried(&front, &down, true);
}

#[tokio::test(start_paused = true)]
async fn a_plain_spawn_loses_the_context() {
    let (front, down) = through_front(56, How::PlainSpawn, &sampled_parent()).await;
    // Documented: a task-local does not cross tokio::spawn. Front has no tracer, so no new
    // trace is started either.
    assert!(front.context.is_some());
    assert_eq!(header(&down.headers, "traceparent"), None);
    assert_eq!(header(&down.headers, "end-user"), None);
    assert_eq!(header(&down.headers, "x-request-id"), None);
}

#[tokio::test(start_paused = true)]
async fn unsampled_stays_unsampled() {
    let unsampled = format!("00-{TRACE}-{CALLER_SPAN}-00");
    let (front, down) = through_front(58, How::Inline, &unsampled).await;
    assert_carried(&front, &down, false);
    assert_eq!(header(&down.headers, "x-b3-sampled").as_deref(), Some("0"));
}
