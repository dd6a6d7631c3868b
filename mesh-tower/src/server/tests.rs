use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mesh_core::config::ServerConfig;
use mesh_core::ratelimit::TokenBucketConfig;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::context::RequestContext;
use crate::limit::Limited;

const MS: Duration = Duration::from_millis(1);

/// Answers with the time left of the request's deadline in milliseconds, or `none`.
fn deadline_echo()
-> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone
{
    service_fn(|_req: Request<()>| async {
        let left = match RequestContext::current_deadline() {
            Some(at) => (at - Instant::now()).as_millis().to_string(),
            None => "none".to_owned(),
        };
        Ok(Response::new(Full::new(Bytes::from(left))))
    })
}

fn request(headers: &[(&str, &str)]) -> Request<()> {
    let mut req = Request::get("/");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(()).unwrap()
}

/// The status, a header's value and the body of an answer of `svc`.
async fn answer<S, B>(svc: S, req: Request<()>) -> (StatusCode, http::HeaderMap, String)
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let res = svc.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn stack(config: &ServerConfig) -> ServerLayer {
    ServerLayer::new("tester", config).expect("a stack without policies")
}

#[tokio::test(start_paused = true)]
async fn the_handler_runs_inside_the_inbound_deadline() {
    let svc = stack(&ServerConfig::default()).layer(deadline_echo());
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("x-mesh-timeout-ms", "1500")], "1500"),
        (
            &[("content-type", "application/grpc"), ("grpc-timeout", "3S")],
            "3000",
        ),
        // Not gRPC: grpc-timeout is the application's business.
        (&[("grpc-timeout", "3S")], "none"),
        (&[], "none"),
        // The largest value is kept whole.
        (
            &[("x-mesh-timeout-ms", "18446744073709551615")],
            "18446744073709551615",
        ),
    ];
    for (headers, left) in cases {
        let (status, _, body) = answer(svc.clone(), request(headers)).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, *left),
            "{headers:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_deadline_keeps_counting_while_the_handler_waits() {
    let app = service_fn(|_req: Request<()>| async {
        tokio::time::sleep(400 * MS).await;
        // Still in the context after awaiting, and 400 ms less left.
        let at = RequestContext::current_deadline().expect("deadline");
        let left = (at - Instant::now()).as_millis().to_string();
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(left))))
    });
    let svc = stack(&ServerConfig::default()).layer(app);
    let (_, _, body) = answer(svc, request(&[("x-mesh-timeout-ms", "1000")])).await;
    assert_eq!(body, "600");
}

#[tokio::test]
async fn malformed_deadlines_are_400s_naming_the_header() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = {
        let hits = hits.clone();
        service_fn(move |_req: Request<()>| {
            hits.fetch_add(1, Ordering::Relaxed);
            async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))) }
        })
    };
    let svc = stack(&ServerConfig::default()).layer(counted);
    let (status, _, body) = answer(svc.clone(), request(&[("x-mesh-timeout-ms", "1.5s")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("x-mesh-timeout-ms"), "{body}");
    assert!(body.contains("1.5s"), "{body}");

    let grpc = request(&[("content-type", "application/grpc"), ("grpc-timeout", "1x")]);
    let (status, headers, body) = answer(svc.clone(), grpc).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["grpc-status"], "13");
    assert_eq!(headers["content-type"], "application/grpc");
    let message = headers["grpc-message"].to_str().unwrap();
    assert!(message.contains("grpc-timeout"), "{message}");
    assert_eq!(body, "");

    // A passed deadline: 504 (DEADLINE_EXCEEDED for gRPC), and the application is spared.
    let (status, _, body) = answer(svc.clone(), request(&[("x-mesh-timeout-ms", "0")])).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(body.contains("deadline exceeded"), "{body}");
    let grpc = request(&[("content-type", "application/grpc"), ("grpc-timeout", "0m")]);
    let (_, headers, _) = answer(svc.clone(), grpc).await;
    assert_eq!(headers["grpc-status"], "4");
    assert_eq!(hits.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn without_propagation_deadline_headers_are_left_alone() {
    let config = ServerConfig {
        propagate_deadline: false,
        ..ServerConfig::default()
    };
    let svc = stack(&config).layer(deadline_echo());
    for value in ["1500", "junk", "0"] {
        let (status, _, body) = answer(svc.clone(), request(&[("x-mesh-timeout-ms", value)])).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "none"), "{value}");
    }
}

#[tokio::test(start_paused = true)]
async fn limits_answer_429_and_503_as_envoy() {
    let config = ServerConfig {
        rate_limit: Some(TokenBucketConfig::new(2, 1, Duration::from_secs(1))),
        ..ServerConfig::default()
    };
    let svc = stack(&config).layer(deadline_echo());
    for _ in 0..2 {
        assert_eq!(answer(svc.clone(), request(&[])).await.0, StatusCode::OK);
    }
    let (status, headers, body) = answer(svc.clone(), request(&[])).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body, "local_rate_limited");
    assert!(headers.get(OVERLOADED_HEADER).is_none());
    let grpc = request(&[("content-type", "application/grpc+proto")]);
    let (status, headers, _) = answer(svc.clone(), grpc).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["grpc-status"], "14");

    let config = ServerConfig {
        concurrency_limit: Some(1),
        ..ServerConfig::default()
    };
    let svc = stack(&config).layer(deadline_echo());
    let held = svc.clone().oneshot(request(&[])).await.unwrap();
    let (status, headers, body) = answer(svc.clone(), request(&[])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "overloaded");
    assert_eq!(headers[OVERLOADED_HEADER], "true");
    // The slot is the first answer's until its body is gone.
    drop(held);
    assert_eq!(answer(svc.clone(), request(&[])).await.0, StatusCode::OK);
}

#[tokio::test]
async fn replies_carry_the_error_and_the_app_body_passes_through() {
    let svc = stack(&ServerConfig {
        concurrency_limit: Some(0),
        ..ServerConfig::default()
    })
    .layer(deadline_echo());
    let res = svc.oneshot(request(&[])).await.unwrap();
    assert!(res.body().get_ref().is_local());
    let reply = res.extensions().get::<ServerReply>().expect("marked");
    assert!(matches!(
        *reply.error,
        ServerError::Limited {
            limited: Limited::Shed { max: 0 },
            ..
        }
    ));
    let svc = stack(&ServerConfig::default()).layer(deadline_echo());
    let res = svc.oneshot(request(&[])).await.unwrap();
    assert!(!res.body().get_ref().is_local());
    assert!(res.extensions().get::<ServerReply>().is_none());
}

#[tokio::test]
async fn application_errors_are_500s() {
    let failing = service_fn(|_req: Request<()>| async {
        Err::<Response<Full<Bytes>>, _>(std::io::Error::other("disk on fire"))
    });
    let svc = stack(&ServerConfig::default()).layer(failing);
    let (status, _, body) = answer(svc.clone(), request(&[])).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
    );
    let grpc = request(&[("content-type", "application/grpc")]);
    let (_, headers, _) = answer(svc, grpc).await;
    assert_eq!(headers["grpc-status"], "2");
}

#[test]
fn boxed_errors_keep_their_kind() {
    let boxed: crate::BoxError = Box::new(ServerError::DeadlineExceeded);
    assert!(matches!(
        ServerError::from(boxed),
        ServerError::DeadlineExceeded
    ));
    let boxed: crate::BoxError = Box::new(Limited::RateLimited);
    assert_eq!(
        ServerError::from(boxed).status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let boxed: crate::BoxError = "broken".into();
    assert!(matches!(ServerError::from(boxed), ServerError::App(_)));
}

#[test]
fn grpc_messages_are_percent_encoded() {
    let res = local_reply::<Full<Bytes>>(
        ServerError::BadDeadline(mesh_core::deadline::DeadlineError::TimeoutMs {
            value: "50%é".to_owned(),
        }),
        true,
    );
    let message = res.headers()["grpc-message"].to_str().unwrap();
    assert!(message.contains("50%25%C3%A9"), "{message}");
}
