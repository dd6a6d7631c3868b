//! Timeouts: the whole request's (retries included) and each try's.
//!
//! A whole-request timeout fails with [`MeshError::Timeout`] (a 504 local reply); a per-try
//! timeout with [`MeshError::PerTryTimeout`], which the retry layer may retry.
//!
//! Deadlines propagate. When the request is made while handling an inbound request that
//! carried a deadline (see [`RequestContext`]), the whole request's timeout is the smaller of
//! the configured one and the time the inbound deadline leaves; with nothing left it fails
//! at once without being sent. Each try tells the callee how long it has: `x-mesh-timeout-ms`
//! (or `grpc-timeout` for gRPC), the smaller of the time left and the per-try timeout, so the
//! callee's own outbound calls are bounded in turn.
//!
//! ```
//! use std::time::Duration;
//! use mesh_tower::timeout::TimeoutLayer;
//!
//! let layer = TimeoutLayer::request("reviews:9080", Some(Duration::from_secs(2)));
//! # let _ = layer;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::Entry;
use http::{HeaderMap, HeaderValue, Request};
use mesh_core::deadline::{self, DEADLINE_HEADER, Deadline};
use tokio::time::{Instant, Sleep};

use crate::context::RequestContext;
use crate::error::MeshError;

/// A request extension set by the per-try timeout: set when it fires, so the balancer counts
/// the abandoned try as a local-origin timeout for outlier detection.
#[derive(Clone, Debug)]
pub(crate) struct TryTimedOut(pub(crate) Arc<AtomicBool>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Request,
    PerTry,
}

/// Applies a [`Timeout`] to a service.
#[derive(Clone, Debug)]
pub struct TimeoutLayer {
    destination: Arc<str>,
    timeout: Option<Duration>,
    kind: Kind,
    /// The request timeout as an `x-mesh-timeout-ms` value, written as it is (no formatting,
    /// no allocation) when no inbound deadline is shorter.
    header: Option<HeaderValue>,
}

impl TimeoutLayer {
    /// The whole request's timeout for `destination`; `None` disables it.
    pub fn request(destination: impl Into<Arc<str>>, timeout: Option<Duration>) -> Self {
        let header = timeout.map(|t| {
            crate::interned::interned(HeaderValue::from(
                u64::try_from(t.as_millis()).unwrap_or(u64::MAX),
            ))
        });
        Self {
            destination: destination.into(),
            timeout,
            kind: Kind::Request,
            header,
        }
    }

    /// Each try's timeout for `destination`; `None` disables it.
    pub fn per_try(destination: impl Into<Arc<str>>, timeout: Option<Duration>) -> Self {
        Self {
            destination: destination.into(),
            timeout,
            kind: Kind::PerTry,
            header: None,
        }
    }
}

/// Writes `left` as the time the callee has (`grpc-timeout` for gRPC, else
/// `x-mesh-timeout-ms`), unless a smaller value is written already.
fn write_time_left(headers: &mut HeaderMap, left: Duration) {
    let grpc = deadline::is_grpc(headers);
    deadline::to_headers(
        Deadline::after(Duration::ZERO, left),
        Duration::ZERO,
        grpc,
        headers,
    );
}

/// Shortens the time left a request carries by `elapsed`: for a retry or a hedge sent
/// `elapsed` after the first try, which carried the original value.
pub(crate) fn age_time_left(headers: &mut HeaderMap, elapsed: Duration) {
    if let Ok(Some(left)) = deadline::from_headers(headers, Duration::ZERO) {
        let grpc = deadline::is_grpc(headers);
        headers.remove(&DEADLINE_HEADER);
        if grpc {
            headers.remove(&deadline::GRPC_TIMEOUT);
        }
        deadline::to_headers(left, elapsed, grpc, headers);
    }
}

impl<S> tower_layer::Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            layer: self.clone(),
        }
    }
}

/// Fails a request that takes longer than its timeout.
#[derive(Clone, Debug)]
pub struct Timeout<S> {
    inner: S,
    layer: TimeoutLayer,
}

impl<S> Timeout<S> {
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

impl<S, B> tower_service::Service<Request<B>> for Timeout<S>
where
    S: tower_service::Service<Request<B>, Error = MeshError>,
{
    type Response = S::Response;
    type Error = MeshError;
    type Future = TimeoutFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), MeshError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let now = crate::clock::now();
        let mut fired = None;
        let timeout = match self.layer.kind {
            Kind::Request => {
                let left =
                    RequestContext::current_deadline().map(|at| at.saturating_duration_since(now));
                let timeout = match (self.layer.timeout, left) {
                    (Some(t), Some(left)) => Some(t.min(left)),
                    (t, left) => t.or(left),
                };
                let headers = req.headers_mut();
                match (&self.layer.header, timeout) {
                    // The common case: the configured timeout, its value ready, and no time
                    // left written already.
                    (Some(value), Some(t))
                        if Some(t) == self.layer.timeout && !deadline::is_grpc(headers) =>
                    {
                        match headers.entry(DEADLINE_HEADER) {
                            Entry::Vacant(entry) => {
                                entry.insert(value.clone());
                            }
                            Entry::Occupied(_) => write_time_left(headers, t),
                        }
                    }
                    (_, Some(t)) => write_time_left(headers, t),
                    (_, None) => {}
                }
                timeout
            }
            Kind::PerTry => {
                if let Some(t) = self.layer.timeout {
                    // A smaller time left already written (by the request timeout) is kept.
                    write_time_left(req.headers_mut(), t);
                    let flag = Arc::new(AtomicBool::new(false));
                    req.extensions_mut().insert(TryTimedOut(flag.clone()));
                    fired = Some(flag);
                }
                self.layer.timeout
            }
        };
        if timeout == Some(Duration::ZERO) && self.layer.kind == Kind::Request {
            // The inbound deadline has passed: fail without sending.
            return TimeoutFuture {
                timed: Box::pin(Timed {
                    inner: None,
                    sleep: None,
                    deadline: None,
                    timeout: Duration::ZERO,
                    fired: None,
                    destination: self.layer.destination.clone(),
                    kind: self.layer.kind,
                }),
            };
        }
        TimeoutFuture {
            timed: Box::pin(Timed {
                inner: Some(self.inner.call(req)),
                sleep: None,
                deadline: timeout.map(|t| now + t),
                timeout: timeout.unwrap_or_default(),
                fired,
                destination: self.layer.destination.clone(),
                kind: self.layer.kind,
            }),
        }
    }
}

/// The response future of [`Timeout`].
pub struct TimeoutFuture<F> {
    // Boxed with its timer: the stack below is large (the retry layer holds its future in
    // place), and the layers above move this future. One allocation holds both.
    timed: Pin<Box<Timed<F>>>,
}

impl<F, T> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<T, MeshError>>,
{
    type Output = Result<T, MeshError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.timed.as_mut().poll(cx)
    }
}

pin_project_lite::pin_project! {
    /// A future with its timeout.
    struct Timed<F> {
        #[pin]
        inner: Option<F>,
        // Made when the inner future first waits: one that answers at once needs no timer.
        #[pin]
        sleep: Option<Sleep>,
        deadline: Option<Instant>,
        timeout: Duration,
        fired: Option<Arc<AtomicBool>>,
        destination: Arc<str>,
        kind: Kind,
    }
}

impl<F, T> Future for Timed<F>
where
    F: Future<Output = Result<T, MeshError>>,
{
    type Output = Result<T, MeshError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(inner) = this.inner.as_pin_mut() {
            if let Poll::Ready(out) = inner.poll(cx) {
                return Poll::Ready(out);
            }
            let Some(deadline) = *this.deadline else {
                return Poll::Pending;
            };
            if this.sleep.is_none() {
                this.sleep.set(Some(tokio::time::sleep_until(deadline)));
            }
            if let Some(sleep) = this.sleep.as_pin_mut()
                && sleep.poll(cx).is_pending()
            {
                return Poll::Pending;
            }
        }
        if let Some(fired) = this.fired {
            fired.store(true, Ordering::Relaxed);
        }
        let destination = this.destination.clone();
        let timeout = *this.timeout;
        Poll::Ready(Err(match this.kind {
            Kind::Request => MeshError::Timeout {
                destination,
                timeout,
            },
            Kind::PerTry => MeshError::PerTryTimeout {
                destination,
                timeout,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::Request;
    use tokio::time::Instant;
    use tower::{Layer, ServiceExt};

    use super::TimeoutLayer;
    use crate::context::RequestContext;
    use crate::error::MeshError;

    fn slow(
        pause: Duration,
    ) -> impl tower::Service<Request<()>, Response = (), Error = MeshError> + Clone {
        tower::service_fn(move |_: Request<()>| async move {
            tokio::time::sleep(pause).await;
            Ok::<_, MeshError>(())
        })
    }

    fn req() -> Request<()> {
        Request::new(())
    }

    #[tokio::test(start_paused = true)]
    async fn request_timeout_names_destination_and_duration() {
        let layer = TimeoutLayer::request("reviews:9080", Some(Duration::from_secs(1)));
        let err = layer
            .layer(slow(Duration::from_secs(5)))
            .oneshot(req())
            .await
            .unwrap_err();
        assert!(
            matches!(err, MeshError::Timeout { ref destination, timeout }
            if &**destination == "reviews:9080" && timeout == Duration::from_secs(1))
        );
        assert_eq!(err.status(), 504);
        assert_eq!(err.response_flag(), "UT");
    }

    #[tokio::test(start_paused = true)]
    async fn per_try_timeout_is_retryable() {
        let layer = TimeoutLayer::per_try("reviews:9080", Some(Duration::from_millis(100)));
        let err = layer
            .layer(slow(Duration::from_secs(1)))
            .oneshot(req())
            .await
            .unwrap_err();
        assert!(matches!(err, MeshError::PerTryTimeout { .. }));
        assert!(err.outcome().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn no_timeout_waits() {
        let layer = TimeoutLayer::request("reviews:9080", None);
        layer
            .layer(slow(Duration::from_secs(3600)))
            .oneshot(req())
            .await
            .unwrap();
        let layer = TimeoutLayer::request("reviews:9080", Some(Duration::from_secs(2)));
        layer
            .layer(slow(Duration::from_secs(1)))
            .oneshot(req())
            .await
            .unwrap();
    }

    /// The deadline headers a try carries, through both timeout layers.
    async fn sent_headers(
        timeout: Option<Duration>,
        per_try: Option<Duration>,
        grpc: bool,
    ) -> http::HeaderMap {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(http::HeaderMap::new()));
        let log = seen.clone();
        let inner = tower::service_fn(move |req: Request<()>| {
            *log.lock().unwrap() = req.headers().clone();
            async { Ok::<_, MeshError>(()) }
        });
        let service = TimeoutLayer::request("ratings:9080", timeout)
            .layer(TimeoutLayer::per_try("ratings:9080", per_try).layer(inner));
        let mut request = req();
        if grpc {
            request
                .headers_mut()
                .insert("content-type", "application/grpc".parse().unwrap());
        }
        service.oneshot(request).await.unwrap();
        seen.lock().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn the_inbound_deadline_bounds_the_timeout_and_travels_on() {
        let ctx = RequestContext::new().with_deadline(Instant::now() + Duration::from_millis(300));
        let err = ctx
            .clone()
            .scope(
                TimeoutLayer::request("ratings:9080", Some(Duration::from_secs(1)))
                    .layer(slow(Duration::from_secs(5)))
                    .oneshot(req()),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, MeshError::Timeout { timeout, .. } if timeout == Duration::from_millis(300)),
            "{err:?}"
        );
        // 300 ms have passed: 700 ms are left of a 1 s deadline set at the start.
        let ctx = RequestContext::new().with_deadline(Instant::now() + Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let headers = ctx
            .clone()
            .scope(sent_headers(Some(Duration::from_secs(15)), None, false))
            .await;
        assert_eq!(headers["x-mesh-timeout-ms"], "700");
        let headers = ctx
            .scope(sent_headers(None, Some(Duration::from_millis(250)), true))
            .await;
        assert_eq!(headers["grpc-timeout"], "250000u");
        assert!(!headers.contains_key("x-mesh-timeout-ms"));
    }

    #[tokio::test(start_paused = true)]
    async fn without_an_inbound_deadline_the_configured_timeout_travels() {
        let headers = sent_headers(Some(Duration::from_secs(2)), None, false).await;
        assert_eq!(headers["x-mesh-timeout-ms"], "2000");
        let headers = sent_headers(None, None, false).await;
        assert!(headers.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_passed_deadline_fails_without_sending() {
        let ctx = RequestContext::new().with_deadline(Instant::now());
        let called = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = called.clone();
        let inner = tower::service_fn(move |_: Request<()>| {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            async { Ok::<_, MeshError>(()) }
        });
        let err = ctx
            .scope(
                TimeoutLayer::request("ratings:9080", Some(Duration::from_secs(1)))
                    .layer(inner)
                    .oneshot(req()),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, MeshError::Timeout { timeout, .. } if timeout.is_zero()));
        assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
    }
}
