//! Fault injection: delays and aborts a share of requests, as Istio's `fault` on a route.
//!
//! The decision is [`mesh_core::route::Fault::decide`]; this layer sleeps (tokio time) and
//! answers an abort with [`MeshError::FaultAbort`] (response flag FI). A delayed request that
//! is then forwarded carries a [`FaultDelayed`] response extension (response flag DI).
//!
//! ```
//! use std::time::Duration;
//! use mesh_core::route::{Fault, FaultDelay, Percentage};
//! use mesh_tower::fault::FaultLayer;
//!
//! let fault = Fault {
//!     delay: Some(FaultDelay { fixed: Duration::from_secs(7), percentage: Percentage::ALL }),
//!     abort: None,
//! };
//! let layer = FaultLayer::new("ratings:9080", Some(fault));
//! # let _ = layer;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response};
use mesh_core::route::{Fault, FaultDecision};
use tokio::time::Sleep;

use crate::body::ResponseBody;
use crate::error::MeshError;

/// A response extension: the request was delayed this long by fault injection (flag DI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultDelayed(pub Duration);

/// Applies [`FaultService`].
#[derive(Clone, Debug)]
pub struct FaultLayer {
    destination: Arc<str>,
    fault: Option<Arc<Fault>>,
}

impl FaultLayer {
    /// Injects `fault` (none when `None`) into requests for `destination`.
    pub fn new(destination: impl Into<Arc<str>>, fault: Option<Fault>) -> Self {
        Self {
            destination: destination.into(),
            fault: fault.map(Arc::new),
        }
    }
}

impl<S> tower_layer::Layer<S> for FaultLayer {
    type Service = FaultService<S>;

    fn layer(&self, inner: S) -> FaultService<S> {
        FaultService {
            inner,
            destination: self.destination.clone(),
            fault: self.fault.clone(),
        }
    }
}

/// Delays or aborts requests by a [`Fault`]; passes every other request straight through.
#[derive(Clone, Debug)]
pub struct FaultService<S> {
    inner: S,
    destination: Arc<str>,
    fault: Option<Arc<Fault>>,
}

impl<S> FaultService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> tower_service::Service<Request<B>> for FaultService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResponseBody>, Error = MeshError>
        + Clone,
{
    type Response = Response<ResponseBody>;
    type Error = MeshError;
    type Future = FaultFuture<S, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), MeshError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let decision = match &self.fault {
            Some(fault) => fault.decide(&mut rand::rng()),
            None => FaultDecision::default(),
        };
        let abort = decision.abort.map(|status| MeshError::FaultAbort {
            destination: self.destination.clone(),
            status,
        });
        let state = match (decision.delay, abort) {
            (None, None) => FaultState::Calling {
                future: self.inner.call(req),
                delayed: None,
            },
            (None, Some(error)) => FaultState::Aborted { error: Some(error) },
            (Some(delay), abort) => {
                tracing::debug!(destination = %self.destination, ?delay, "fault: delay");
                // The service that was ready is the one that gets the request.
                let ready = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, ready);
                FaultState::Delaying {
                    sleep: Box::pin(tokio::time::sleep(delay)),
                    delay,
                    then: Some(Box::new(match abort {
                        Some(error) => Then::Abort(error),
                        None => Then::Call(inner, req),
                    })),
                }
            }
        };
        FaultFuture { state }
    }
}

enum Then<S, B> {
    Call(S, Request<B>),
    Abort(MeshError),
}

pin_project_lite::pin_project! {
    /// The response future of [`FaultService`].
    pub struct FaultFuture<S, B>
    where
        S: tower_service::Service<Request<B>>,
    {
        #[pin]
        state: FaultState<S, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = FaultProj]
    enum FaultState<S, B>
    where
        S: tower_service::Service<Request<B>>,
    {
        // Boxed: most requests meet no fault, and the layers above move this future.
        Delaying {
            sleep: Pin<Box<Sleep>>,
            delay: Duration,
            then: Option<Box<Then<S, B>>>,
        },
        Calling {
            #[pin]
            future: S::Future,
            delayed: Option<Duration>,
        },
        Aborted {
            error: Option<MeshError>,
        },
    }
}

impl<S, B> Future for FaultFuture<S, B>
where
    S: tower_service::Service<Request<B>, Response = Response<ResponseBody>, Error = MeshError>,
{
    type Output = Result<Response<ResponseBody>, MeshError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                FaultProj::Delaying { sleep, delay, then } => {
                    ready!(sleep.as_mut().poll(cx));
                    match then.take().map(|then| *then) {
                        Some(Then::Call(mut inner, req)) => FaultState::Calling {
                            future: inner.call(req),
                            delayed: Some(*delay),
                        },
                        Some(Then::Abort(error)) => FaultState::Aborted { error: Some(error) },
                        None => FaultState::Aborted { error: None },
                    }
                }
                FaultProj::Calling { future, delayed } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(delay) = *delayed {
                        response.extensions_mut().insert(FaultDelayed(delay));
                    }
                    return Poll::Ready(Ok(response));
                }
                FaultProj::Aborted { error } => {
                    return Poll::Ready(Err(MeshError::take(error)));
                }
            };
            state.set(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use mesh_core::route::{AbortStatus, FaultAbort, FaultDelay, Percentage};
    use tokio::time::Instant;
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;

    fn ok_service() -> impl tower_service::Service<
        Request<()>,
        Response = Response<ResponseBody>,
        Error = MeshError,
        Future = impl Future<Output = Result<Response<ResponseBody>, MeshError>> + Send,
    > + Clone {
        service_fn(|_req: Request<()>| async { Ok(Response::new(ResponseBody::local("ok"))) })
    }

    fn delay(secs: u64) -> FaultDelay {
        FaultDelay {
            fixed: Duration::from_secs(secs),
            percentage: Percentage::ALL,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn delay_then_forward_marks_the_response() {
        let fault = Fault {
            delay: Some(delay(7)),
            abort: None,
        };
        let svc = FaultLayer::new("ratings:9080", Some(fault)).layer(ok_service());
        let start = Instant::now();
        let response = svc.oneshot(Request::new(())).await.unwrap();
        assert!(start.elapsed() >= Duration::from_secs(7));
        assert_eq!(
            response.extensions().get::<FaultDelayed>(),
            Some(&FaultDelayed(Duration::from_secs(7)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn abort_answers_without_calling_inner() {
        let fault = Fault {
            delay: None,
            abort: Some(FaultAbort {
                status: AbortStatus::Http(500),
                percentage: Percentage::ALL,
            }),
        };
        let inner = service_fn(|_req: Request<()>| async {
            Err::<Response<ResponseBody>, _>(MeshError::BadRequest {
                reason: "inner called".into(),
            })
        });
        let svc = FaultLayer::new("ratings:9080", Some(fault)).layer(inner);
        let error = svc.oneshot(Request::new(())).await.unwrap_err();
        assert_eq!(error.response_flag(), "FI");
        assert_eq!(error.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        assert!(error.to_string().contains("fault filter abort"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn delay_and_abort_delays_then_aborts() {
        let fault = Fault {
            delay: Some(delay(2)),
            abort: Some(FaultAbort {
                status: AbortStatus::Grpc(14),
                percentage: Percentage::ALL,
            }),
        };
        let svc = FaultLayer::new("ratings:9080", Some(fault)).layer(ok_service());
        let start = Instant::now();
        let error = svc.oneshot(Request::new(())).await.unwrap_err();
        assert!(start.elapsed() >= Duration::from_secs(2));
        assert_eq!(error.status(), http::StatusCode::OK);
        let reply = crate::local_reply::local_reply(error);
        assert_eq!(reply.headers()["grpc-status"], "14");
    }

    #[tokio::test(start_paused = true)]
    async fn no_fault_passes_through() {
        let svc = FaultLayer::new("ratings:9080", None).layer(ok_service());
        let start = Instant::now();
        let response = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(response.extensions().get::<FaultDelayed>().is_none());
    }
}
