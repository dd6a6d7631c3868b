//! The layers of a leg, in one of two shapes.
//!
//! Most legs configure none of the layers that are off by default: no rate or concurrency
//! limit, no fault, no mirror, no hedging, no per-try timeout. Such a leg gets the lean
//! stack, without those layers: each layer is a call that moves the request and a future
//! that wraps the one below, and a pass-through layer still costs both on every request. A
//! leg that configures any of them gets every layer.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::ServiceBuilder;
use tower_service::Service;

use super::Backend;
use crate::balance::Balance;
use crate::body::{RequestBody, ResponseBody};
use crate::breaker::Breaker;
use crate::fault::{FaultLayer, FaultService};
use crate::hedge::Hedge;
use crate::limit::{ConcurrencyLimitService, RateLimitService};
use crate::local_reply::{LocalReplyLayer, LocalReplyService};
use crate::mirror::{MirrorLayer, MirrorService};
use crate::retry::{Retry, RetryLayer};
use crate::telemetry::metrics::ClientMetrics;
use crate::telemetry::trace::ClientTrace;
use crate::timeout::{Timeout, TimeoutLayer};

/// Telemetry and local replies: the layers every request passes through.
type Outer<S> = ClientTrace<ClientMetrics<LocalReplyService<S>>>;

type FullInner = RateLimitService<
    ConcurrencyLimitService<
        FaultService<MirrorService<Timeout<Retry<Hedge<Timeout<Breaker<Balance>>>>>>>,
        ResponseBody,
    >,
>;

type LeanInner = Timeout<Retry<Breaker<Balance>>>;

/// What a leg configures beyond its backend's balancer, breaker, retries and timeout.
pub(super) struct Extras {
    pub(super) fault: FaultLayer,
    pub(super) mirror: MirrorLayer,
    pub(super) per_try: TimeoutLayer,
    /// Whether any of the above, the backend's limits or its hedging is configured.
    pub(super) any: bool,
}

/// The stack of one leg: trace → metrics → local reply → [rate limit → concurrency limit →
/// fault → mirror →] request timeout → retry → [hedge → per-try timeout →] breaker →
/// balance; the bracketed layers only when the leg configures one of them.
#[derive(Clone)]
pub(crate) enum LegStack {
    /// Every layer.
    Full(Outer<FullInner>),
    /// Only the layers every request needs.
    Lean(Outer<LeanInner>),
}

impl LegStack {
    /// The stack of `backend` with the route's `timeout` and `retry` layers and `extras`.
    pub(super) fn new(
        backend: &Backend,
        timeout: TimeoutLayer,
        retry: RetryLayer,
        extras: Extras,
    ) -> Self {
        let outer = ServiceBuilder::new()
            .layer(backend.trace.clone())
            .layer(backend.metrics.clone())
            .layer(LocalReplyLayer::new());
        if !extras.any {
            return Self::Lean(
                outer
                    .layer(timeout)
                    .layer(retry)
                    .layer(backend.breaker.clone())
                    .service(backend.balance.clone()),
            );
        }
        Self::Full(
            outer
                .layer(backend.rate_limit.clone())
                .layer(backend.concurrency_limit.clone())
                .layer(extras.fault)
                .layer(extras.mirror)
                .layer(timeout)
                .layer(retry)
                .layer(backend.hedge.clone())
                .layer(extras.per_try)
                .layer(backend.breaker.clone())
                .service(backend.balance.clone()),
        )
    }
}

impl Service<Request<RequestBody>> for LegStack {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = StackFuture;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self {
            Self::Full(s) => s.poll_ready(cx),
            Self::Lean(s) => s.poll_ready(cx),
        }
    }

    #[inline]
    fn call(&mut self, req: Request<RequestBody>) -> StackFuture {
        // The layers share one clock read for the call (a timeout's start, the retry
        // budget's deposit, the balancer's pick, the endpoint's start).
        crate::clock::with_call_time(tokio::time::Instant::now(), || match self {
            Self::Full(s) => StackFuture::Full { inner: s.call(req) },
            Self::Lean(s) => StackFuture::Lean { inner: s.call(req) },
        })
    }
}

pin_project_lite::pin_project! {
    /// The response future of a [`LegStack`].
    #[project = StackProj]
    pub(crate) enum StackFuture {
        Full { #[pin] inner: <Outer<FullInner> as Service<Request<RequestBody>>>::Future },
        Lean { #[pin] inner: <Outer<LeanInner> as Service<Request<RequestBody>>>::Future },
    }
}

impl Future for StackFuture {
    type Output = Result<Response<ResponseBody>, Infallible>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            StackProj::Full { inner } => inner.poll(cx),
            StackProj::Lean { inner } => inner.poll(cx),
        }
    }
}
