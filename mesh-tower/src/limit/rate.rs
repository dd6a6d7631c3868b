//! The local rate limit: a token bucket shared by every clone of the layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use mesh_core::ratelimit::{TokenBucket, TokenBucketConfig};

use super::{LimitError, Limited, Side, count};
use crate::clock::Clock;

/// Applies [`RateLimitService`]; every service it makes (and every clone) takes from one
/// bucket.
///
/// ```
/// use std::time::Duration;
/// use mesh_core::ratelimit::TokenBucketConfig;
/// use mesh_tower::limit::{RateLimitLayer, Side};
///
/// // 10 requests at once, then 5 more at every whole second.
/// let bucket = TokenBucketConfig::new(10, 5, Duration::from_secs(1));
/// let layer = RateLimitLayer::new("inbound", bucket, Side::Server);
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    shared: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    name: Arc<str>,
    side: Side,
    bucket: TokenBucket,
    /// Fill boundaries count from the layer's creation.
    clock: Clock,
}

impl RateLimitLayer {
    /// Limits requests to the token bucket `config`, counting rejections under `name` and
    /// `side`. Out-of-range values are clamped (see [`TokenBucket::new`]); validate first.
    pub fn new(name: impl Into<Arc<str>>, config: TokenBucketConfig, side: Side) -> Self {
        Self::optional(name, Some(config), side)
    }

    /// Like [`new`](Self::new) when `config` is `Some`; passes every request through when it
    /// is `None`, so a stack keeps one type whether or not a limit is configured.
    pub fn optional(
        name: impl Into<Arc<str>>,
        config: Option<TokenBucketConfig>,
        side: Side,
    ) -> Self {
        let name = name.into();
        Self {
            shared: config.map(|config| {
                Arc::new(Shared {
                    name,
                    side,
                    bucket: TokenBucket::new(config),
                    clock: Clock::new(),
                })
            }),
        }
    }
}

impl<S> tower_layer::Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> RateLimitService<S> {
        RateLimitService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Takes a token for each request; without one the request fails at once with the inner
/// service's error for [`Limited::RateLimited`] and is never sent on.
#[derive(Clone, Debug)]
pub struct RateLimitService<S> {
    inner: S,
    shared: Option<Arc<Shared>>,
}

impl<S> RateLimitService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R> tower_service::Service<R> for RateLimitService<S>
where
    S: tower_service::Service<R>,
    S::Error: LimitError,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RateLimitFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        if let Some(shared) = &self.shared
            && !shared.bucket.try_acquire(shared.clock.now())
        {
            count(&shared.name, shared.side, Limited::RateLimited);
            return RateLimitFuture {
                state: State::Rejected {
                    name: shared.name.clone(),
                },
            };
        }
        RateLimitFuture {
            state: State::Called {
                future: self.inner.call(req),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RateLimitService`].
    pub struct RateLimitFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: F },
        Rejected { name: Arc<str> },
    }
}

impl<F, T, E> Future for RateLimitFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: LimitError,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => future.poll(cx),
            // Built on each poll, so polling again after completion repeats the rejection.
            StateProj::Rejected { name } => {
                Poll::Ready(Err(E::limited(name, Limited::RateLimited)))
            }
        }
    }
}
