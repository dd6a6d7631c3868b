//! Retries: Istio's `retryOn` conditions, attempts, fully jittered exponential back-off, and
//! a retry budget per destination.
//!
//! A request body is held for replay when it is at most [`MAX_REPLAY_BYTES`]; a larger body is
//! sent once and never retried. Non-idempotent requests are retried only when the request never
//! reached the application (connect failure, refused stream), unless the policy allows more.
//! A retry goes to another endpoint than the try that failed, when there is one.
//!
//! Every request to a destination shares its retry budget (retries may add at most a share
//! of the requests sent, as in Linkerd) and its [`RetryLimits`] (Istio's `http.maxRetries`, or
//! its `retryBudget`: retries in flight at most a share of the requests in flight). A retry
//! that either refuses is not made; the caller gets the answer it has, and
//! `mesh_retry_budget_exhausted_total` or `mesh_circuit_breaker_overflows_total{limit}` counts it.
//!
//! ```
//! use mesh_core::config::RetryPolicy;
//! use mesh_tower::retry::RetryLayer;
//!
//! let layer = RetryLayer::new("reviews:9080", RetryPolicy::default());
//! # let _ = layer;
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use mesh_core::breaker::RetryLimits;
use mesh_core::config::RetryPolicy;
use mesh_core::retry::{Outcome, RetryBudget, backoff, is_idempotent};
use tokio::time::Sleep;

use crate::BoxError;
use crate::balance::AvoidEndpoint;
use crate::body::{RequestBody, ResponseBody};
use crate::clock::Clock;
use crate::error::MeshError;
use crate::telemetry::metrics::grpc_status;

/// Request bodies up to this size are held in memory so a retry can send them again.
pub const MAX_REPLAY_BYTES: usize = 64 * 1024;

/// Applies [`Retry`] with one policy; the budget and limits are the destination's.
#[derive(Clone, Debug)]
pub struct RetryLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    policy: RetryPolicy,
    destination: Arc<Destination>,
}

/// What every request to one destination shares: the retry budget, the retry limits, and
/// the requests and retries in flight they are judged against.
#[derive(Debug)]
pub(crate) struct Destination {
    name: Arc<str>,
    budget: RetryBudget,
    limits: RetryLimits,
    /// Requests in flight (counted only under a `retryBudget`).
    requests: AtomicUsize,
    /// Retries in flight (counted only under a limit).
    retries: AtomicUsize,
    clock: Clock,
}

impl Destination {
    /// The retry state of `name`, with `policy`'s budget and these limits.
    pub(crate) fn new(name: Arc<str>, policy: &RetryPolicy, limits: RetryLimits) -> Arc<Self> {
        Arc::new(Self {
            name,
            budget: RetryBudget::new(policy.budget),
            limits,
            requests: AtomicUsize::new(0),
            retries: AtomicUsize::new(0),
            clock: Clock::new(),
        })
    }

    /// Takes a retry slot, or names the limit that refuses it.
    fn start_retry(self: &Arc<Self>) -> Result<Option<InFlight>, mesh_core::breaker::Limit> {
        if self.limits.is_unlimited() {
            return Ok(None);
        }
        let requests = self.requests.load(Ordering::Relaxed);
        let retries = self.retries.fetch_add(1, Ordering::Relaxed);
        let slot = InFlight {
            destination: self.clone(),
            retry: true,
        };
        self.limits.admit(retries, requests).map(|()| Some(slot))
    }

    /// Counts a request in flight while the returned guard lives, when a budget needs it.
    fn start_request(self: &Arc<Self>) -> Option<InFlight> {
        self.limits.budget?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        Some(InFlight {
            destination: self.clone(),
            retry: false,
        })
    }
}

/// A request or retry counted in flight until dropped.
#[derive(Debug)]
struct InFlight {
    destination: Arc<Destination>,
    retry: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let counter = if self.retry {
            &self.destination.retries
        } else {
            &self.destination.requests
        };
        counter.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RetryLayer {
    /// Retries requests to `destination` by `policy`, with a budget and no retry limits of its
    /// own.
    pub fn new(destination: impl Into<Arc<str>>, policy: RetryPolicy) -> Self {
        Self::with_limits(destination, policy, RetryLimits::default())
    }

    /// Retries requests to `destination` by `policy`, at most as many at once as `limits`
    /// allow.
    pub fn with_limits(
        destination: impl Into<Arc<str>>,
        policy: RetryPolicy,
        limits: RetryLimits,
    ) -> Self {
        let destination = Destination::new(destination.into(), &policy, limits);
        Self::sharing(policy, destination)
    }

    /// Retries by `policy` with the budget and limits of `destination`, shared with other
    /// layers (every route to one destination).
    pub(crate) fn sharing(policy: RetryPolicy, destination: Arc<Destination>) -> Self {
        Self {
            shared: Arc::new(Shared {
                policy,
                destination,
            }),
        }
    }
}

impl<S: Clone> tower_layer::Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            bound: Arc::new(Bound {
                shared: self.shared.clone(),
                spare: inner.clone(),
            }),
            inner,
        }
    }
}

/// The policy with a copy of the inner service, shared by a layer's services and their
/// futures: a request holds this one reference, and a retry clones the copy only when it
/// is made, so a request that is not retried clones no service.
#[derive(Debug)]
struct Bound<S> {
    shared: Arc<Shared>,
    spare: S,
}

/// Retries failed tries by the destination's retry policy. The first try goes to the
/// service itself; retries go to a copy of the service as it was when layered.
#[derive(Clone, Debug)]
pub struct Retry<S> {
    inner: S,
    bound: Arc<Bound<S>>,
}

impl<S> Retry<S> {
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

impl<S> tower_service::Service<Request<RequestBody>> for Retry<S>
where
    S: tower_service::Service<
            Request<RequestBody>,
            Response = Response<ResponseBody>,
            Error = MeshError,
        > + Clone,
{
    type Response = Response<ResponseBody>;
    type Error = MeshError;
    type Future = RetryFuture<S>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), MeshError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<RequestBody>) -> RetryFuture<S> {
        let bound = self.bound.clone();
        let shared = &bound.shared;
        let destination = &shared.destination;
        let now = crate::clock::now();
        destination.budget.deposit(destination.clock.at(now));
        let request = destination.start_request();
        let inner = &mut self.inner;
        let policy = &shared.policy;
        let may_repeat = is_idempotent(req.method()) || policy.retry_non_idempotent;

        // A request that may not be repeated can only be retried on outcomes where it never
        // reached the application; when the policy retries neither, nothing is held for replay.
        let retryable = policy.attempts > 0
            && if may_repeat {
                !policy.retry_on.is_empty()
            } else {
                policy.retry_on.should_retry(Outcome::ConnectFailure, false)
                    || policy.retry_on.should_retry(Outcome::RefusedStream, false)
            };
        // The service a later first try (after buffering) or a retry is sent to.
        let mut service = None;
        let (state, template, replay) = if !retryable {
            (State::calling(inner.call(req)), None, None)
        } else if let Some(replay) = req.body().try_clone() {
            let template = Template::of(&req);
            (
                State::calling(inner.call(req)),
                Some(template),
                Some(replay),
            )
        } else if too_large(&req.body().size_hint()) {
            (State::calling(inner.call(req)), None, None)
        } else {
            let stream = req.body_mut().take_stream();
            let (parts, _) = req.into_parts();
            match stream {
                Some(stream) => {
                    // The service polled ready gets the first try once the body is read.
                    let cloned = inner.clone();
                    service = Some(std::mem::replace(inner, cloned));
                    (
                        State::Buffering {
                            parts: Some(Box::new(parts)),
                            stream: Some(stream),
                            buf: BytesMut::new(),
                        },
                        None,
                        None,
                    )
                }
                None => {
                    let req = Request::from_parts(parts, RequestBody::empty());
                    (State::calling(inner.call(req)), None, None)
                }
            }
        };
        RetryFuture {
            state,
            service,
            bound,
            template,
            replay,
            retries: 0,
            may_repeat,
            _request: request,
            retry: None,
            started: retryable.then_some(now),
        }
    }
}

fn too_large(hint: &SizeHint) -> bool {
    hint.lower() > MAX_REPLAY_BYTES as u64
}

/// What a retry (or a hedge) needs to rebuild the request.
#[derive(Debug)]
pub(crate) struct Template {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    /// The headers in order, each value with its name: a copy in one allocation (a header
    /// map takes two), made for every request that may be retried; a retry builds the map.
    headers: Vec<(HeaderName, HeaderValue)>,
    extensions: http::Extensions,
}

impl Template {
    pub(crate) fn of(req: &Request<RequestBody>) -> Self {
        Self {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: copy_headers(req.headers()),
            extensions: req.extensions().clone(),
        }
    }

    fn of_parts(parts: &Parts) -> Self {
        Self {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: copy_headers(&parts.headers),
            extensions: parts.extensions.clone(),
        }
    }

    pub(crate) fn build(&self, body: RequestBody) -> Request<RequestBody> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        let headers = req.headers_mut();
        headers.reserve(self.headers.len());
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        *req.extensions_mut() = self.extensions.clone();
        req
    }
}

/// Every value of `headers` with its name, in the order the map sends them.
fn copy_headers(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let mut copy = Vec::with_capacity(headers.len());
    copy.extend(headers.iter().map(|(n, v)| (n.clone(), v.clone())));
    copy
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Buffering {
            // Boxed, as the other states' contents: the layers above move this future.
            parts: Option<Box<Parts>>,
            stream: Option<UnsyncBoxBody<Bytes, BoxError>>,
            buf: BytesMut,
        },
        // In place: the request timeout above boxes this future (with its timer).
        Calling {
            #[pin]
            future: F,
        },
        Backoff {
            sleep: Pin<Box<Sleep>>,
            avoid: Option<SocketAddr>,
        },
        Ready {
            avoid: Option<SocketAddr>,
        },
    }
}

impl<F> State<F> {
    fn calling(future: F) -> Self {
        State::Calling { future }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Retry`].
    pub struct RetryFuture<S>
    where
        S: tower_service::Service<Request<RequestBody>>,
    {
        #[pin]
        state: State<S::Future>,
        // Made when needed: the service of a first try after buffering, or of retries.
        service: Option<S>,
        bound: Arc<Bound<S>>,
        // Kept for replays only.
        template: Option<Template>,
        replay: Option<RequestBody>,
        retries: u32,
        may_repeat: bool,
        // The request counted in flight, under a retry budget.
        _request: Option<InFlight>,
        // The retry in flight, under retry limits.
        retry: Option<InFlight>,
        // When a request that may be retried came: a retry carries the time left less what
        // has passed.
        started: Option<tokio::time::Instant>,
    }
}

impl<S> Future for RetryFuture<S>
where
    S: tower_service::Service<
            Request<RequestBody>,
            Response = Response<ResponseBody>,
            Error = MeshError,
        > + Clone,
{
    type Output = Result<Response<ResponseBody>, MeshError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            let next = match this.state.as_mut().project() {
                StateProj::Buffering { parts, stream, buf } => {
                    let (Some(body), Some(p)) = (stream.as_mut(), parts.as_ref()) else {
                        return Poll::Ready(Err(MeshError::polled_after_completion()));
                    };
                    let mut trailers = None;
                    let overflow = loop {
                        match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                            None => break false,
                            Some(Err(err)) => {
                                return Poll::Ready(Err(MeshError::BadRequest {
                                    reason: format!("request body failed: {err}").into(),
                                }));
                            }
                            Some(Ok(frame)) => match frame.into_data() {
                                Ok(data) => {
                                    buf.extend_from_slice(&data);
                                    if buf.len() > MAX_REPLAY_BYTES {
                                        break true;
                                    }
                                }
                                Err(frame) => {
                                    trailers = frame.into_trailers().ok();
                                    break false;
                                }
                            },
                        }
                    };
                    let prefix = std::mem::take(buf).freeze();
                    let body = if overflow {
                        // Too large to hold: send what was read and the rest once, no retry.
                        let rest = stream.take();
                        RequestBody::from_stream(UnsyncBoxBody::new(Prefixed {
                            prefix: Some(prefix),
                            rest,
                        }))
                    } else {
                        let replay = RequestBody::buffered(prefix, trailers);
                        let body = replay.try_clone().unwrap_or_default();
                        *this.template = Some(Template::of_parts(p));
                        *this.replay = Some(replay);
                        body
                    };
                    let (Some(parts), Some(service)) = (parts.take(), this.service.as_mut()) else {
                        return Poll::Ready(Err(MeshError::polled_after_completion()));
                    };
                    // The service was polled ready by our caller before `call`.
                    State::calling(service.call(Request::from_parts(*parts, body)))
                }
                StateProj::Calling { future } => {
                    let result = ready!(future.poll(cx));
                    *this.retry = None;
                    let outcome = match &result {
                        Ok(resp) => Outcome::Response {
                            status: resp.status().as_u16(),
                            grpc_status: grpc_status(resp.headers()),
                        },
                        Err(err) => match err.outcome() {
                            Some(outcome) => outcome,
                            None => return Poll::Ready(result),
                        },
                    };
                    let shared = &*this.bound.shared;
                    let policy = &shared.policy;
                    let destination = &shared.destination;
                    if this.template.is_none()
                        || *this.retries >= policy.attempts
                        || !policy.retry_on.should_retry(outcome, *this.may_repeat)
                    {
                        return Poll::Ready(result);
                    }
                    match destination.start_retry() {
                        Ok(slot) => *this.retry = slot,
                        Err(limit) => {
                            tracing::debug!(destination = %destination.name, %limit, "retry overflow");
                            metrics::counter!(
                                "mesh_circuit_breaker_overflows_total",
                                "destination" => destination.name.to_string(),
                                "limit" => limit.as_str(),
                            )
                            .increment(1);
                            return Poll::Ready(result);
                        }
                    }
                    if !destination.budget.try_withdraw(destination.clock.now()) {
                        *this.retry = None;
                        tracing::debug!(destination = %destination.name, "retry budget exhausted");
                        metrics::counter!(
                            "mesh_retry_budget_exhausted_total",
                            "destination" => destination.name.to_string()
                        )
                        .increment(1);
                        return Poll::Ready(result);
                    }
                    *this.retries += 1;
                    let avoid = match &result {
                        Ok(resp) => resp.body().endpoint(),
                        Err(err) => err.endpoint(),
                    };
                    tracing::debug!(
                        destination = %destination.name,
                        retry = *this.retries,
                        ?outcome,
                        "retrying"
                    );
                    metrics::counter!(
                        "mesh_retries_total",
                        "destination" => destination.name.to_string()
                    )
                    .increment(1);
                    let pause = backoff(&policy.backoff, *this.retries, &mut rand::rng());
                    State::Backoff {
                        sleep: Box::pin(tokio::time::sleep(pause)),
                        avoid,
                    }
                }
                StateProj::Backoff { sleep, avoid } => {
                    ready!(sleep.as_mut().poll(cx));
                    State::Ready { avoid: *avoid }
                }
                StateProj::Ready { avoid } => {
                    let bound = &**this.bound;
                    let service = this.service.get_or_insert_with(|| bound.spare.clone());
                    ready!(service.poll_ready(cx))?;
                    let (Some(template), Some(replay)) =
                        (this.template.as_ref(), this.replay.as_ref())
                    else {
                        return Poll::Ready(Err(MeshError::polled_after_completion()));
                    };
                    let mut req = template.build(replay.try_clone().unwrap_or_default());
                    if let Some(started) = this.started {
                        crate::timeout::age_time_left(req.headers_mut(), started.elapsed());
                    }
                    if let Some(addr) = *avoid {
                        req.extensions_mut().insert(AvoidEndpoint(addr));
                    }
                    State::calling(service.call(req))
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

/// A body that starts with bytes already read, then streams the rest.
struct Prefixed {
    prefix: Option<Bytes>,
    rest: Option<UnsyncBoxBody<Bytes, BoxError>>,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }
}

#[cfg(test)]
mod tests;
