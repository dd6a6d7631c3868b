use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use mesh_core::config::{RetryBudgetConfig, RetryPolicy};
use mesh_core::retry::RetryOn;
use tower::{Layer, ServiceExt};

use super::{MAX_REPLAY_BYTES, RetryLayer};
use crate::balance::AvoidEndpoint;
use crate::body::{RequestBody, ResponseBody};
use crate::error::MeshError;

/// What the scripted inner service saw of one try.
#[derive(Debug, Clone)]
struct Seen {
    body_len: usize,
    avoid: Option<SocketAddr>,
}

type Script = Arc<Mutex<Vec<Result<u16, &'static str>>>>;
type Log = Arc<Mutex<Vec<Seen>>>;
type Inner = tower::util::BoxCloneService<Request<RequestBody>, Response<ResponseBody>, MeshError>;

/// A service that answers from `script` in order (a status, or "connect"/"reset") and records
/// each try; past the script's end it answers 200.
fn scripted(script: Vec<Result<u16, &'static str>>) -> (Inner, Log) {
    let endpoint: SocketAddr = "10.0.0.1:80".parse().unwrap();
    let script: Script = Arc::new(Mutex::new(script.into_iter().rev().collect()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let service = tower::service_fn(move |req: Request<RequestBody>| {
        let (script, log) = (script.clone(), log.clone());
        async move {
            let avoid = req.extensions().get::<AvoidEndpoint>().map(|a| a.0);
            let body = req
                .into_body()
                .collect()
                .await
                .map_err(|e| MeshError::BadRequest {
                    reason: e.to_string().into(),
                })?;
            log.lock().unwrap().push(Seen {
                body_len: body.to_bytes().len(),
                avoid,
            });
            match script.lock().unwrap().pop().unwrap_or(Ok(200)) {
                Ok(status) => {
                    let mut res = Response::new(ResponseBody::empty());
                    *res.status_mut() = StatusCode::from_u16(status).unwrap();
                    Ok(res)
                }
                Err("connect") => Err(MeshError::Connect {
                    endpoint,
                    source: "refused".into(),
                }),
                Err(_) => Err(MeshError::Reset {
                    endpoint,
                    source: "reset".into(),
                }),
            }
        }
    });
    (Inner::new(service), seen)
}

fn policy(retry_on: &str, attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        retry_on: retry_on.parse::<RetryOn>().unwrap(),
        ..RetryPolicy::default()
    }
}

fn request(method: Method, body: RequestBody) -> Request<RequestBody> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = "http://reviews:9080/".parse().unwrap();
    req
}

#[tokio::test(start_paused = true)]
async fn retries_until_success_and_avoids_the_failed_endpoint() {
    let (inner, seen) = scripted(vec![Ok(503), Err("reset")]);
    let retry = RetryLayer::new("reviews:9080", policy("5xx", 2)).layer(inner);
    let res = retry
        .oneshot(request(Method::GET, RequestBody::empty()))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].avoid, None);
    assert_eq!(seen[2].avoid, Some("10.0.0.1:80".parse().unwrap()));
}

#[tokio::test(start_paused = true)]
async fn stops_after_attempts_with_the_last_answer() {
    let (inner, seen) = scripted(vec![Ok(503); 10]);
    let retry = RetryLayer::new("reviews:9080", policy("503", 3)).layer(inner);
    let res = retry
        .oneshot(request(Method::GET, RequestBody::empty()))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(seen.lock().unwrap().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn errors_that_are_not_retryable_return_at_once() {
    let (inner, seen) = scripted(vec![Ok(404)]);
    let retry = RetryLayer::new("reviews:9080", policy("5xx,reset", 3)).layer(inner);
    let res = retry
        .oneshot(request(Method::GET, RequestBody::empty()))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn post_is_retried_only_when_never_sent() {
    let (inner, seen) = scripted(vec![Err("connect"), Ok(503)]);
    let retry = RetryLayer::new("orders:80", policy("5xx,connect-failure", 3)).layer(inner);
    let res = retry
        .oneshot(request(Method::POST, RequestBody::full("order")))
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        503,
        "the 503 may have been processed: not retried"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.body_len == 5), "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn post_is_retried_when_allowed() {
    let (inner, seen) = scripted(vec![Ok(503)]);
    let mut p = policy("5xx", 1);
    p.retry_non_idempotent = true;
    let retry = RetryLayer::new("orders:80", p).layer(inner);
    let res = retry
        .oneshot(request(Method::POST, RequestBody::full("order")))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_empty_budget_allows_no_retry() {
    let (inner, seen) = scripted(vec![Ok(503)]);
    let mut p = policy("5xx", 3);
    p.budget = RetryBudgetConfig {
        ratio: 0.0,
        min_per_second: 0,
        window: Duration::from_secs(10),
    };
    let retry = RetryLayer::new("reviews:9080", p).layer(inner);
    let res = retry
        .oneshot(request(Method::GET, RequestBody::empty()))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

fn stream(chunks: usize, size: usize) -> RequestBody {
    let frames = (0..chunks).map(move |_| {
        Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from(vec![7u8; size])))
    });
    RequestBody::new(StreamBody::new(futures_util::stream::iter(frames)))
}

#[tokio::test(start_paused = true)]
async fn a_streamed_body_within_the_limit_is_replayed() {
    let (inner, seen) = scripted(vec![Ok(503)]);
    let retry = RetryLayer::new("reviews:9080", policy("5xx", 1)).layer(inner);
    let res = retry
        .oneshot(request(Method::PUT, stream(16, 4096)))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.iter().map(|s| s.body_len).collect::<Vec<_>>(),
        [65536, 65536]
    );
}

#[tokio::test(start_paused = true)]
async fn a_streamed_body_past_the_limit_is_sent_once_whole() {
    let (inner, seen) = scripted(vec![Ok(503)]);
    let retry = RetryLayer::new("reviews:9080", policy("5xx", 1)).layer(inner);
    let res = retry
        .oneshot(request(Method::PUT, stream(17, 4096)))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body_len, MAX_REPLAY_BYTES + 4096);
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_within_the_cap() {
    let (inner, _) = scripted(vec![Ok(503); 5]);
    let retry = RetryLayer::new("reviews:9080", policy("5xx", 5)).layer(inner);
    let start = tokio::time::Instant::now();
    let res = retry
        .oneshot(request(Method::GET, RequestBody::empty()))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Five back-offs of at most 25, 50, 100, 200 and 250 ms.
    assert!(
        start.elapsed() <= Duration::from_millis(625),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_post_that_could_never_be_retried_is_not_held_back() {
    // Retrying on 503 alone never retries a POST, so its body is not read ahead: the try
    // starts while the body is still streaming (this body never ends).
    use futures_util::StreamExt;
    let chunk = Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from_static(b"part")));
    let endless = futures_util::stream::iter([chunk]).chain(futures_util::stream::pending());
    let body = RequestBody::new(StreamBody::new(endless));
    let inner = tower::service_fn(|_req: Request<RequestBody>| async {
        Ok::<_, MeshError>(Response::new(ResponseBody::empty()))
    });
    let retry = RetryLayer::new("orders:80", policy("503", 3)).layer(inner);
    let res = tokio::time::timeout(
        Duration::from_secs(1),
        retry.oneshot(request(Method::POST, body)),
    )
    .await
    .expect("the try was held back waiting for the body to end");
    assert_eq!(res.unwrap().status(), 200);
}

/// Three requests whose first tries answer 503 at once and whose retries wait for `release`:
/// the statuses they end with, under `limits`.
async fn concurrent_retries(limits: mesh_core::breaker::RetryLimits) -> Vec<u16> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let (c, r) = (calls.clone(), release.clone());
    let inner = Inner::new(tower::service_fn(move |_req: Request<RequestBody>| {
        let (c, r) = (c.clone(), r.clone());
        async move {
            let mut res = Response::new(ResponseBody::empty());
            if c.fetch_add(1, Ordering::SeqCst) < 3 {
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            } else {
                r.notified().await;
            }
            Ok::<_, MeshError>(res)
        }
    }));
    let layer = RetryLayer::with_limits("reviews:9080", policy("503", 2), limits);
    let send = || {
        layer
            .layer(inner.clone())
            .oneshot(request(Method::GET, RequestBody::empty()))
    };
    let (a, b, c3) = (send(), send(), send());
    let releaser = async {
        // Let every first try answer and every retry decision be made, then release.
        tokio::time::sleep(Duration::from_secs(1)).await;
        release.notify_waiters();
    };
    let (a, b, c3, ()) = tokio::join!(a, b, c3, releaser);
    let mut statuses: Vec<u16> = [a, b, c3]
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    statuses.sort_unstable();
    assert_eq!(calls.load(Ordering::SeqCst), 4, "three tries and one retry");
    statuses
}

#[tokio::test(start_paused = true)]
async fn max_retries_caps_retries_in_flight() {
    let limits = mesh_core::breaker::RetryLimits::new(Some(1), None);
    assert_eq!(concurrent_retries(limits).await, vec![200, 503, 503]);
}

#[tokio::test(start_paused = true)]
async fn a_retry_budget_caps_retries_in_flight_by_share() {
    let budget = mesh_core::config::RetryConcurrencyBudget {
        percent: 20.0,
        min_retry_concurrency: 1,
    };
    // 20 % of three requests in flight rounds down to 0: the minimum of 1 applies.
    let limits = mesh_core::breaker::RetryLimits::new(Some(100), Some(budget));
    assert_eq!(concurrent_retries(limits).await, vec![200, 503, 503]);
}

#[tokio::test(start_paused = true)]
async fn a_retry_carries_the_time_left_less_what_has_passed() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let inner = Inner::new(tower::service_fn(move |req: Request<RequestBody>| {
        let log = log.clone();
        async move {
            let left = req.headers()["x-mesh-timeout-ms"]
                .to_str()
                .unwrap()
                .to_owned();
            let first = {
                let mut log = log.lock().unwrap();
                log.push(left);
                log.len() == 1
            };
            // The first try takes 300 ms and fails.
            let mut res = Response::new(ResponseBody::empty());
            if first {
                tokio::time::sleep(Duration::from_millis(300)).await;
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            Ok::<_, MeshError>(res)
        }
    }));
    let mut policy = policy("503", 1);
    policy.backoff.base = Duration::ZERO;
    policy.backoff.max = Duration::ZERO;
    let mut req = request(Method::GET, RequestBody::empty());
    req.headers_mut()
        .insert("x-mesh-timeout-ms", "1000".parse().unwrap());
    let res = RetryLayer::new("ratings:9080", policy)
        .layer(inner)
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(*seen.lock().unwrap(), vec!["1000", "700"]);
}
