use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use mesh_core::ratelimit::TokenBucketConfig;
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::error::MeshError;

const SEC: Duration = Duration::from_secs(1);

type Reply = Response<Full<Bytes>>;

fn ok() -> impl Service<Request<()>, Response = Reply, Error = MeshError, Future: Send> + Clone {
    service_fn(|_req: Request<()>| async { Ok(Response::new(Full::new(Bytes::from("ok")))) })
}

fn req() -> Request<()> {
    Request::new(())
}

/// Sends `n` requests one after another; the number answered.
async fn admitted<S>(svc: &mut S, n: usize) -> usize
where
    S: Service<Request<()>, Error = MeshError>,
{
    let mut ok = 0;
    for _ in 0..n {
        match svc.ready().await.unwrap().call(req()).await {
            Ok(_) => ok += 1,
            Err(MeshError::Limited {
                destination,
                limited,
            }) => {
                assert_eq!(&*destination, "reviews:9080");
                assert_eq!(limited, Limited::RateLimited);
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    ok
}

#[tokio::test(start_paused = true)]
async fn bucket_admits_its_tokens_then_one_fill_per_interval() {
    let bucket = TokenBucketConfig::new(10, 5, SEC);
    let layer = RateLimitLayer::new("reviews:9080", bucket, Side::Client);
    let mut svc = layer.layer(ok());
    assert_eq!(admitted(&mut svc, 30).await, 10);
    tokio::time::advance(SEC).await;
    assert_eq!(admitted(&mut svc, 30).await, 5);
    tokio::time::advance(10 * SEC).await;
    assert_eq!(admitted(&mut svc, 30).await, 10);
}

#[tokio::test(start_paused = true)]
async fn clones_and_services_share_one_bucket() {
    let layer = RateLimitLayer::new(
        "reviews:9080",
        TokenBucketConfig::new(4, 1, SEC),
        Side::Client,
    );
    let mut a = layer.layer(ok());
    let mut b = a.clone();
    let mut c = layer.layer(ok());
    assert_eq!(admitted(&mut a, 2).await, 2);
    assert_eq!(admitted(&mut b, 1).await, 1);
    assert_eq!(admitted(&mut c, 5).await, 1);
}

#[tokio::test(start_paused = true)]
async fn no_bucket_admits_everything() {
    let mut svc = RateLimitLayer::optional("reviews:9080", None, Side::Client).layer(ok());
    assert_eq!(admitted(&mut svc, 1000).await, 1000);
}

#[tokio::test(start_paused = true)]
async fn boxed_errors_carry_the_limit() {
    let inner = service_fn(|_req: Request<()>| async {
        Ok::<_, crate::BoxError>(Response::new(Empty::<Bytes>::new()))
    });
    let layer = RateLimitLayer::new("inbound", TokenBucketConfig::new(1, 1, SEC), Side::Server);
    let mut svc = layer.layer(inner);
    assert!(svc.ready().await.unwrap().call(req()).await.is_ok());
    let err = svc.ready().await.unwrap().call(req()).await.unwrap_err();
    assert_eq!(err.downcast_ref::<Limited>(), Some(&Limited::RateLimited));
}

#[tokio::test(start_paused = true)]
async fn a_rejection_polled_again_repeats_itself() {
    let layer = RateLimitLayer::new(
        "reviews:9080",
        TokenBucketConfig::new(1, 1, SEC),
        Side::Client,
    );
    let mut svc = layer.layer(ok());
    let _ = svc.call(req()).await;
    let mut rejected = std::pin::pin!(svc.call(req()));
    let waker = futures_util::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    for _ in 0..2 {
        assert!(matches!(
            rejected.as_mut().poll(&mut cx),
            std::task::Poll::Ready(Err(MeshError::Limited { .. }))
        ));
    }
}

/// Calls `svc` once; the response, or the limit that rejected it.
async fn call<S, B>(svc: &mut S) -> Result<Response<B>, Limited>
where
    S: Service<Request<()>, Response = Response<B>, Error = MeshError>,
{
    match svc.ready().await.unwrap().call(req()).await {
        Ok(res) => Ok(res),
        Err(MeshError::Limited { limited, .. }) => Err(limited),
        Err(e) => panic!("unexpected {e}"),
    }
}

#[tokio::test]
async fn slots_are_held_until_the_body_ends() {
    let layer = ConcurrencyLimitLayer::new("reviews:9080", 2, Side::Client);
    let mut svc = layer.layer(ok());
    let first = call(&mut svc).await.unwrap();
    let second = call(&mut svc).await.unwrap();
    assert_eq!(layer.in_flight(), 2);
    assert_eq!(call(&mut svc).await.unwrap_err(), Limited::Shed { max: 2 });

    // Read to its end, the first body frees its slot (before it is dropped).
    let mut body = first.into_body();
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "ok"
    );
    assert!(body.frame().await.is_none());
    assert_eq!(layer.in_flight(), 1);
    let third = call(&mut svc).await.unwrap();
    assert_eq!(call(&mut svc).await.unwrap_err(), Limited::Shed { max: 2 });

    // Dropped unread, a body frees its slot too.
    drop((second, third));
    assert_eq!(layer.in_flight(), 0);
    assert!(call(&mut svc).await.is_ok());
}

#[tokio::test]
async fn failures_and_empty_bodies_free_the_slot_at_once() {
    let layer = ConcurrencyLimitLayer::new("reviews:9080", 1, Side::Client);
    let failing = service_fn(|_req: Request<()>| async {
        Err::<Response<Empty<Bytes>>, _>(MeshError::BadRequest {
            reason: "broken".into(),
        })
    });
    let mut svc = layer.layer(failing);
    for _ in 0..3 {
        let err = svc.ready().await.unwrap().call(req()).await.unwrap_err();
        assert!(matches!(err, MeshError::BadRequest { .. }), "{err}");
    }
    let empty = service_fn(|_req: Request<()>| async {
        Ok::<_, MeshError>(Response::new(Empty::<Bytes>::new()))
    });
    let mut svc = layer.layer(empty);
    let held: Vec<_> = [call(&mut svc).await, call(&mut svc).await].into();
    assert!(held.iter().all(Result::is_ok));
    assert_eq!(layer.in_flight(), 0);
}

#[tokio::test]
async fn a_dropped_response_future_frees_its_slot() {
    let layer = ConcurrencyLimitLayer::new("reviews:9080", 1, Side::Client);
    let pending = service_fn(|_req: Request<()>| {
        std::future::pending::<Result<Response<Empty<Bytes>>, MeshError>>()
    });
    let mut svc = layer.layer(pending);
    let future = svc.call(req());
    assert_eq!(layer.in_flight(), 1);
    assert!(matches!(
        svc.call(req()).await,
        Err(MeshError::Limited {
            limited: Limited::Shed { max: 1 },
            ..
        })
    ));
    drop(future);
    assert_eq!(layer.in_flight(), 0);
}

#[tokio::test]
async fn zero_sheds_everything_and_none_admits_everything() {
    let mut zero = ConcurrencyLimitLayer::new("reviews:9080", 0, Side::Client).layer(ok());
    assert_eq!(call(&mut zero).await.unwrap_err(), Limited::Shed { max: 0 });
    let layer = ConcurrencyLimitLayer::optional("reviews:9080", None, Side::Client);
    let mut open = layer.layer(ok());
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(call(&mut open).await.unwrap());
    }
    assert_eq!(layer.in_flight(), 0);
}

/// A stack that keeps its response type: holds the permit in an extension instead.
struct InExtension;

#[derive(Clone)]
struct HeldPermit(#[allow(dead_code)] Arc<mesh_core::ratelimit::OwnedPermit>);

impl<B> HoldPermit<Response<B>> for InExtension {
    type Response = Response<B>;

    fn hold(
        mut response: Response<B>,
        permit: Option<mesh_core::ratelimit::OwnedPermit>,
    ) -> Response<B> {
        if let Some(permit) = permit {
            response
                .extensions_mut()
                .insert(HeldPermit(Arc::new(permit)));
        }
        response
    }
}

#[tokio::test]
async fn a_stack_can_hold_permits_its_own_way() {
    let layer =
        ConcurrencyLimitLayer::new("reviews:9080", 1, Side::Client).hold_with::<InExtension>();
    let mut svc = layer.layer(ok());
    let res: Reply = call(&mut svc).await.unwrap();
    assert!(res.extensions().get::<HeldPermit>().is_some());
    assert!(call(&mut svc).await.is_err());
    drop(res);
    assert!(call(&mut svc).await.is_ok());
}

#[test]
fn labels_and_messages() {
    assert_eq!(Side::Client.as_str(), "client");
    assert_eq!(Side::Server.to_string(), "server");
    assert_eq!(Limited::RateLimited.to_string(), "local rate limit reached");
    assert_eq!(
        Limited::Shed { max: 3 }.to_string(),
        "concurrency limit of 3 reached"
    );
    let e = MeshError::limited(&Arc::from("reviews:9080"), Limited::Shed { max: 3 });
    assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(e.response_flag(), "UO");
}
