//! Backends and legs: the per-destination part of the client stack.
//!
//! A [`Backend`] is one destination host (or one subset of it) with its balancer; it is shared
//! by every route that sends there. A [`Leg`] is the path one route takes to one backend:
//! fault → mirror → request timeout → retry → hedge → per-try timeout → balance, configured
//! by the backend's policy with the route's timeout and retries laid over it (the layers a
//! leg does not configure are left out, see [`stack`]), plus the route's and destination's
//! header operations and the consistent-hash key of the backend's policy.

mod stack;

use std::cell::RefCell;
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
use thread_local::ThreadLocal;
use tower_service::Service;

use crate::balance::Balance;
use crate::body::{RequestBody, ResponseBody};
use crate::breaker::BreakerLayer;
use crate::endpoint::EndpointTls;
use crate::fault::FaultLayer;
use crate::hedge::HedgeLayer;
use crate::limit::{ConcurrencyLimitLayer, RateLimitLayer, Side};
use crate::mirror::MirrorLayer;
use crate::retry::{self, RetryLayer};
use crate::telemetry::{ClientMetricsLayer, ClientTraceLayer, Telemetry, Upstream};
use crate::timeout::TimeoutLayer;
pub(crate) use stack::LegStack;
use stack::{Extras, StackFuture};

/// A request extension: the address of the caller the request is made for (a gateway sets
/// it to the downstream peer), hashed by `useSourceIp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceAddr(pub IpAddr);

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
    /// A copy of the stack for each thread that calls the leg: calling one does not touch
    /// the reference counts every layer shares with the other threads, as a clone per call
    /// would.
    stacks: ThreadLocal<RefCell<LegStack>>,
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
        let extras = Extras {
            any: settings.fault.is_some()
                || !settings.mirror.is_empty()
                || policy.retries.per_try_timeout.is_some()
                || policy.rate_limit.is_some()
                || policy.concurrency_limit.is_some()
                || backend.hedge.is_enabled(),
            fault: FaultLayer::new(name.clone(), settings.fault),
            mirror: settings.mirror,
            per_try: TimeoutLayer::per_try(name.clone(), policy.retries.per_try_timeout),
        };
        let stack = LegStack::new(
            &backend,
            TimeoutLayer::request(name, policy.timeout),
            RetryLayer::sharing(policy.retries.clone(), backend.retries.clone()),
            extras,
        );
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
            stacks: ThreadLocal::new(),
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
        // Every layer of the stack is always ready. The thread's copy is borrowed only for
        // the call itself; a call made from within one (none is) would use a clone.
        let copy = self.stacks.get_or(|| RefCell::new(self.stack.clone()));
        let inner = match copy.try_borrow_mut() {
            Ok(mut stack) => stack.call(req),
            Err(_) => self.stack.clone().call(req),
        };
        LegFuture { inner, after }
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
        inner: StackFuture,
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use mesh_core::config::TrafficPolicy;
    use mesh_core::endpoint::EndpointSet;
    use mesh_core::hedge::HedgePolicy;
    use mesh_core::ratelimit::TokenBucketConfig;
    use mesh_core::route::Fault;
    use mesh_dns::fixed_endpoints;

    use super::{Backend, Leg, LegStack, RouteSettings};

    fn leg(policy: &TrafficPolicy, settings: RouteSettings) -> Leg {
        let endpoints = fixed_endpoints(EndpointSet::from_addrs(["127.0.0.1:9".parse().unwrap()]));
        let backend = Backend::new(Arc::from("reviews:9080"), policy, endpoints, None);
        Leg::new(Arc::new(backend), settings)
    }

    fn is_lean(leg: &Leg) -> bool {
        matches!(leg.stack, LegStack::Lean(_))
    }

    #[tokio::test]
    async fn a_leg_configuring_nothing_extra_gets_the_lean_stack() {
        let policy = TrafficPolicy::default();
        assert!(is_lean(&leg(&policy, RouteSettings::default())));
        let routed = RouteSettings {
            timeout: Some(Some(Duration::from_secs(2))),
            ..RouteSettings::default()
        };
        assert!(is_lean(&leg(&policy, routed)));
    }

    #[tokio::test]
    async fn each_layer_that_is_off_by_default_gives_the_full_stack() {
        let default = TrafficPolicy::default();
        let fault = RouteSettings {
            fault: Some(Fault::default()),
            ..RouteSettings::default()
        };
        assert!(!is_lean(&leg(&default, fault)));

        let mut per_try = TrafficPolicy::default();
        per_try.retries.per_try_timeout = Some(Duration::from_secs(1));
        assert!(!is_lean(&leg(&per_try, RouteSettings::default())));

        let limited = TrafficPolicy {
            rate_limit: Some(TokenBucketConfig {
                max_tokens: 10,
                tokens_per_fill: 1,
                fill_interval: Duration::from_secs(1),
            }),
            ..TrafficPolicy::default()
        };
        assert!(!is_lean(&leg(&limited, RouteSettings::default())));

        let concurrency = TrafficPolicy {
            concurrency_limit: Some(8),
            ..TrafficPolicy::default()
        };
        assert!(!is_lean(&leg(&concurrency, RouteSettings::default())));

        let hedged = TrafficPolicy {
            hedge: Some(HedgePolicy::default()),
            ..TrafficPolicy::default()
        };
        assert!(!is_lean(&leg(&hedged, RouteSettings::default())));
    }
}
