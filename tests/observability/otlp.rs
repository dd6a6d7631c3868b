//! OTLP export over gRPC to a receiver the test starts: the provider built from `OTEL_*`
//! values (resource, service name, sampler) exports the server span of a request, and an
//! `always_off` sampler exports nothing while the context still propagates unsampled.

use axum::Router;
use axum::routing::get;
use http::HeaderMap;
use mesh::core::config::TelemetryConfig;

use crate::trace_support::{
    Receiver, SERVER, SeenSlot, flush, header, note, raw_get, serve, telemetry,
};

async fn get_once(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> u16 {
    let mut all = vec![("user-agent", "otlp-test")];
    all.extend_from_slice(headers);
    raw_get(&format!("http://{addr}/hello?x=1"), &all).await.0
}

fn app(seen: SeenSlot) -> Router {
    Router::new()
        .route(
            "/hello",
            get(move |headers: HeaderMap| async move {
                note(&seen, &headers);
                "hello"
            }),
        )
        .route(
            "/boom",
            get(|| async { (http::StatusCode::SERVICE_UNAVAILABLE, "no") }),
        )
}

#[tokio::test(start_paused = true)]
async fn spans_are_exported_with_the_resource_from_the_environment() {
    let receiver = Receiver::start(60).await;
    let provider = receiver.provider(
        "fallback-name",
        &[
            ("OTEL_SERVICE_NAME", "details"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=test,service.version=v1",
            ),
            ("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
        ],
    );
    let seen = SeenSlot::default();
    let addr = serve(
        61,
        "details",
        telemetry(TelemetryConfig::default(), Some(&provider)),
        app(seen.clone()),
    )
    .await;
    assert_eq!(get_once(addr, &[]).await, 200);
    assert_eq!(raw_get(&format!("http://{addr}/boom"), &[]).await.0, 503);

    flush(std::slice::from_ref(&provider)).await;
    let spans = receiver.spans();
    let brief: Vec<_> = spans
        .iter()
        .map(|s| (s.attr("url.path"), s.span_id(), s.trace_id()))
        .collect();
    assert_eq!(spans.len(), 2, "{brief:#?}");
    let ok = spans
        .iter()
        .find(|s| s.attr("url.path").as_deref() == Some("/hello"))
        .expect("the /hello span");
    assert_eq!(ok.service, "details");
    assert!(
        ok.resource
            .contains(&("deployment.environment".into(), "test".into()))
    );
    assert!(
        ok.resource
            .contains(&("service.version".into(), "v1".into()))
    );
    assert_eq!(ok.span.kind, SERVER);
    assert_eq!(ok.parent(), "", "a new root");
    assert_eq!(ok.attr("user_agent.original").as_deref(), Some("otlp-test"));
    assert_eq!(ok.attr("http.response.status_code").as_deref(), Some("200"));
    assert_eq!(ok.attr("error.type"), None);
    let status = ok.span.status.as_ref().map_or(0, |s| s.code);
    assert_eq!(status, 0, "unset");
    // The application saw the request id the span names.
    let seen = seen.lock().unwrap().clone().expect("called");
    assert_eq!(
        header(&seen.headers, "x-request-id"),
        ok.attr("guid:x-request-id")
    );

    let failed = spans
        .iter()
        .find(|s| s.attr("url.path").as_deref() == Some("/boom"))
        .expect("the /boom span");
    assert_eq!(
        failed.attr("http.response.status_code").as_deref(),
        Some("503")
    );
    assert_eq!(failed.attr("error.type").as_deref(), Some("503"));
    assert_eq!(
        failed.span.status.as_ref().map(|s| s.code),
        Some(2),
        "error"
    );
}

#[tokio::test(start_paused = true)]
async fn an_always_off_sampler_exports_nothing_and_propagates_unsampled() {
    let receiver = Receiver::start(62).await;
    let provider = receiver.provider("quiet", &[("OTEL_TRACES_SAMPLER", "always_off")]);
    let seen = SeenSlot::default();
    let addr = serve(
        63,
        "quiet",
        telemetry(TelemetryConfig::default(), Some(&provider)),
        app(seen.clone()),
    )
    .await;
    assert_eq!(get_once(addr, &[]).await, 200);
    flush(std::slice::from_ref(&provider)).await;
    assert!(receiver.spans().is_empty());
    // The handler's context is the unsampled server span's.
    let seen = seen.lock().unwrap().clone().expect("called");
    let ctx = seen.context.expect("context");
    let tc = ctx.trace_context().expect("a trace context");
    assert_eq!(tc.sampled, Some(false));
}
