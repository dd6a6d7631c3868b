//! Timeouts: the whole request's (retries included) and each try's.
//!
//! A whole-request timeout fails with [`MeshError::Timeout`] (a 504 local reply); a per-try
//! timeout with [`MeshError::PerTryTimeout`], which the retry layer may retry.
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
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Sleep;

use crate::error::MeshError;

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
}

impl TimeoutLayer {
    /// The whole request's timeout for `destination`; `None` disables it.
    pub fn request(destination: impl Into<Arc<str>>, timeout: Option<Duration>) -> Self {
        Self {
            destination: destination.into(),
            timeout,
            kind: Kind::Request,
        }
    }

    /// Each try's timeout for `destination`; `None` disables it.
    pub fn per_try(destination: impl Into<Arc<str>>, timeout: Option<Duration>) -> Self {
        Self {
            destination: destination.into(),
            timeout,
            kind: Kind::PerTry,
        }
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

impl<S, R> tower_service::Service<R> for Timeout<S>
where
    S: tower_service::Service<R, Error = MeshError>,
{
    type Response = S::Response;
    type Error = MeshError;
    type Future = TimeoutFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), MeshError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        TimeoutFuture {
            inner: self.inner.call(req),
            sleep: self.layer.timeout.map(tokio::time::sleep),
            layer: self.layer.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Timeout`].
    pub struct TimeoutFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
        layer: TimeoutLayer,
    }
}

impl<F, T> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<T, MeshError>>,
{
    type Output = Result<T, MeshError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.inner.poll(cx) {
            return Poll::Ready(out);
        }
        let Some(sleep) = this.sleep.as_pin_mut() else {
            return Poll::Pending;
        };
        if sleep.poll(cx).is_pending() {
            return Poll::Pending;
        }
        let destination = this.layer.destination.clone();
        let timeout = this.layer.timeout.unwrap_or_default();
        Poll::Ready(Err(match this.layer.kind {
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

    use tower::{Layer, ServiceExt};

    use super::TimeoutLayer;
    use crate::error::MeshError;

    fn slow(pause: Duration) -> impl tower::Service<(), Response = (), Error = MeshError> {
        tower::service_fn(move |()| async move {
            tokio::time::sleep(pause).await;
            Ok::<_, MeshError>(())
        })
    }

    #[tokio::test(start_paused = true)]
    async fn request_timeout_names_destination_and_duration() {
        let layer = TimeoutLayer::request("reviews:9080", Some(Duration::from_secs(1)));
        let err = layer
            .layer(slow(Duration::from_secs(5)))
            .oneshot(())
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
            .oneshot(())
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
            .oneshot(())
            .await
            .unwrap();
        let layer = TimeoutLayer::request("reviews:9080", Some(Duration::from_secs(2)));
        layer
            .layer(slow(Duration::from_secs(1)))
            .oneshot(())
            .await
            .unwrap();
    }
}
