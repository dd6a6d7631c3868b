//! Backends and legs: the per-destination part of the client stack.
//!
//! A [`Backend`] is one destination host (or one subset of it) with its balancer; it is shared
//! by every route that sends there. A [`Leg`] is the path one route takes to one backend:
//! fault → mirror → request timeout → retry → hedge → per-try timeout → balance, configured
//! by the backend's policy with the route's timeout and retries laid over it, plus the
//! route's and destination's header operations and the consistent-hash key of the backend's
//! policy.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Request, Response, header};
use mesh_core::breaker::{PoolLimits, RetryLimits};
use mesh_core::config::{HashKey, LoadBalancer, TrafficPolicy};
use mesh_core::hash::{HashInput, RequestHash, request_hash};
use mesh_core::route::{Fault, Headers, RouteRetries};
use mesh_dns::EndpointWatch;
use tower::ServiceBuilder;
use tower_service::Service;

use crate::balance::Balance;
use crate::body::{RequestBody, ResponseBody};
use crate::breaker::{Breaker, BreakerLayer};
use crate::endpoint::EndpointTls;
use crate::fault::{FaultLayer, FaultService};
use crate::hedge::{Hedge, HedgeLayer};
use crate::limit::{
    ConcurrencyLimitLayer, ConcurrencyLimitService, RateLimitLayer, RateLimitService, Side,
};
use crate::local_reply::{LocalReplyLayer, LocalReplyService};
use crate::mirror::{MirrorLayer, MirrorService};
use crate::retry::{self, Retry, RetryLayer};
use crate::telemetry::metrics::ClientMetrics;
use crate::telemetry::trace::ClientTrace;
use crate::telemetry::{ClientMetricsLayer, ClientTraceLayer, Telemetry, Upstream};
use crate::timeout::{Timeout, TimeoutLayer};

/// A request extension: the address of the caller the request is made for (a gateway sets
/// it to the downstream peer), hashed by `useSourceIp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceAddr(pub IpAddr);

type Inner = RateLimitService<
    ConcurrencyLimitService<
        FaultService<MirrorService<Timeout<Retry<Hedge<Timeout<Breaker<Balance>>>>>>>,
        ResponseBody,
    >,
>;
pub(crate) type LegStack = ClientTrace<ClientMetrics<LocalReplyService<Inner>>>;

/// One destination host, or one subset of it, with its balancer and policy.
pub(crate) struct Backend {
    pub(crate) name: Arc<str>,
    pub(crate) balance: Balance,
    pub(crate) policy: TrafficPolicy,
    pub(crate) breaker: BreakerLayer,
    /// The retry budget and retry limits every route to the backend shares.
    pub(crate) retries: Arc<retry::Destination>,
    /// Hedging, with its latency tracker and budget shared by every leg to this backend.
    pub(crate) hedge: HedgeLayer,
    /// The destination's local rate limit, shared by every route to it.
    pub(crate) rate_limit: RateLimitLayer,
    /// The destination's concurrency limit, shared by every route to it.
    pub(crate) concurrency_limit: ConcurrencyLimitLayer<ResponseBody>,
    /// The client span and propagated headers of every call to the backend.
    pub(crate) trace: ClientTraceLayer,
    /// The backend's `reporter="source"` metrics and access log.
    pub(crate) metrics: ClientMetricsLayer,
    /// Whether connections present the workload's identity (ISTIO_MUTUAL): the metrics'
    /// `source_principal`.
    istio_mutual: bool,
}

impl Backend {
    /// A backend balancing over `endpoints` by `policy`, with its pool limits.
    pub(crate) fn new(
        name: Arc<str>,
        policy: &TrafficPolicy,
        endpoints: EndpointWatch,
        tls: Option<EndpointTls>,
    ) -> Self {
        let limits = PoolLimits::new(&policy.connection_pool, policy.protocol);
        let retry_limits = RetryLimits::new(
            policy.connection_pool.max_retries,
            policy.retry_concurrency_budget,
        );
        let istio_mutual = tls.as_ref().is_some_and(|tls| {
            tls.connector.mode() == mesh_core::config::ClientTlsMode::IstioMutual
        });
        Self {
            istio_mutual,
            balance: Balance::secured(name.clone(), policy, endpoints, tls),
            breaker: BreakerLayer::new(name.clone(), limits),
            retries: retry::Destination::new(name.clone(), &policy.retries, retry_limits),
            hedge: HedgeLayer::new(name.clone(), policy.hedge),
            rate_limit: RateLimitLayer::optional(name.clone(), policy.rate_limit, Side::Client),
            concurrency_limit: ConcurrencyLimitLayer::optional(
                name.clone(),
                policy.concurrency_limit.map(|n| n as usize),
                Side::Client,
            )
            .hold_with::<ResponseBody>(),
            trace: ClientTraceLayer::new(&Telemetry::disabled(), &Upstream::unknown()),
            metrics: ClientMetricsLayer::new(&Telemetry::disabled(), &Upstream::unknown()),
            name,
            policy: policy.clone(),
        }
    }

    /// The backend reporting to `telemetry` as `upstream`.
    pub(crate) fn telemetry(mut self, telemetry: &Telemetry, upstream: &Upstream) -> Self {
        self.trace = ClientTraceLayer::new(telemetry, upstream);
        self.metrics = ClientMetricsLayer::secured(telemetry, upstream, self.istio_mutual);
        self
    }
}

/// What a route lays over a backend's policy.
#[derive(Clone, Debug, Default)]
pub(crate) struct RouteSettings {
    pub(crate) timeout: Option<Option<std::time::Duration>>,
    pub(crate) retries: Option<RouteRetries>,
    pub(crate) fault: Option<Fault>,
    pub(crate) mirror: MirrorLayer,
    pub(crate) route_headers: Option<Arc<Headers>>,
    pub(crate) destination_headers: Option<Arc<Headers>>,
}

/// One route's path to one backend.
pub(crate) struct Leg {
    pub(crate) backend: Arc<Backend>,
    stack: LegStack,
    hash: Option<HashKey>,
    route_headers: Option<Arc<Headers>>,
    destination_headers: Option<Arc<Headers>>,
    /// Whether a header operation applies to responses.
    response_headers: bool,
}

impl Leg {
    /// A leg to `backend` under a route's `settings`. With a fault on the route, the route's
    /// timeout and retries do not apply (as in Istio), nor the backend's.
    pub(crate) fn new(backend: Arc<Backend>, settings: RouteSettings) -> Self {
        let mut policy = backend.policy.clone();
        if settings.fault.is_some() {
            policy.timeout = None;
            policy.retries.attempts = 0;
        } else {
            if let Some(timeout) = settings.timeout {
                policy.timeout = timeout;
            }
            if let Some(r) = &settings.retries {
                policy.retries.attempts = r.attempts;
                if r.per_try_timeout.is_some() {
                    policy.retries.per_try_timeout = r.per_try_timeout;
                }
                if let Some(on) = &r.retry_on {
                    policy.retries.retry_on = on.clone();
                }
            }
        }
        let name = backend.name.clone();
        let stack = ServiceBuilder::new()
            .layer(backend.trace.clone())
            .layer(backend.metrics.clone())
            .layer(LocalReplyLayer::new())
            .layer(backend.rate_limit.clone())
            .layer(backend.concurrency_limit.clone())
            .layer(FaultLayer::new(name.clone(), settings.fault))
            .layer(settings.mirror)
            .layer(TimeoutLayer::request(name.clone(), policy.timeout))
            .layer(RetryLayer::sharing(
                policy.retries.clone(),
                backend.retries.clone(),
            ))
            .layer(backend.hedge.clone())
            .layer(TimeoutLayer::per_try(name, policy.retries.per_try_timeout))
            .layer(backend.breaker.clone())
            .service(backend.balance.clone());
        let hash = match &backend.policy.load_balancer {
            LoadBalancer::ConsistentHash(ch) => Some(ch.key.clone()),
            _ => None,
        };
        let response_headers = [&settings.route_headers, &settings.destination_headers]
            .into_iter()
            .flatten()
            .any(|h| !h.response.is_empty());
        Self {
            response_headers,
            backend,
            stack,
            hash,
            route_headers: settings.route_headers,
            destination_headers: settings.destination_headers,
        }
    }

    /// The stack alone, for mirrors (no header operations or hashing).
    pub(crate) fn stack(&self) -> LegStack {
        self.stack.clone()
    }

    /// Sends `req` down this leg.
    pub(crate) fn call(&self, mut req: Request<RequestBody>) -> LegFuture {
        for headers in [&self.route_headers, &self.destination_headers]
            .into_iter()
            .flatten()
        {
            headers.request.apply(req.headers_mut());
        }
        let mut set_cookie = None;
        if let Some(key) = &self.hash {
            let source = req.extensions().get::<SourceAddr>().map(|s| s.0);
            match request_hash(key, req.uri(), req.headers(), source, rand::random()) {
                HashInput::Hash(hash) => {
                    req.extensions_mut().insert(RequestHash(hash));
                }
                HashInput::NewCookie {
                    hash,
                    set_cookie: cookie,
                } => {
                    req.extensions_mut().insert(RequestHash(hash));
                    set_cookie = Some(cookie);
                }
                HashInput::None => {}
            }
        }
        let after = (self.response_headers || set_cookie.is_some()).then(|| {
            Box::new(After {
                route_headers: self.route_headers.clone(),
                destination_headers: self.destination_headers.clone(),
                set_cookie,
            })
        });
        let mut stack = self.stack.clone();
        // Every layer of the stack is always ready.
        LegFuture {
            inner: stack.call(req),
            after,
        }
    }
}

/// Response work a leg does after the stack answers.
struct After {
    route_headers: Option<Arc<Headers>>,
    destination_headers: Option<Arc<Headers>>,
    set_cookie: Option<HeaderValue>,
}

impl After {
    fn apply(self, response: &mut Response<ResponseBody>) {
        for headers in [&self.route_headers, &self.destination_headers]
            .into_iter()
            .flatten()
        {
            headers.response.apply(response.headers_mut());
        }
        if let Some(cookie) = self.set_cookie {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of a leg.
    pub(crate) struct LegFuture {
        #[pin]
        inner: <LegStack as Service<Request<RequestBody>>>::Future,
        after: Option<Box<After>>,
    }
}

impl Future for LegFuture {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = ready!(this.inner.poll(cx));
        if let Some(after) = this.after.take() {
            after.apply(&mut response);
        }
        Poll::Ready(Ok(response))
    }
}
