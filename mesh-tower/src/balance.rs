//! Balancing: picks one endpoint of a destination for each try.
//!
//! A [`Balance`] follows a live [`EndpointWatch`]: a task per destination (not per request)
//! rebuilds an immutable snapshot whenever discovery publishes, keeping the connection pool
//! and statistics of every endpoint that stays. A request reads the snapshot it starts with,
//! so endpoints come and go without failing requests in flight. The choice itself is
//! [`mesh_core::balance::Picker`].
//!
//! ```
//! use mesh_core::config::TrafficPolicy;
//! use mesh_core::EndpointSet;
//! use mesh_tower::balance::Balance;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let pods = EndpointSet::from_addrs(["127.0.0.1:9080".parse().unwrap()]);
//! let balance = Balance::new("reviews:9080", &TrafficPolicy::default(), mesh_dns::fixed_endpoints(pods));
//! assert_eq!(balance.endpoints().len(), 1);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use arc_swap::ArcSwap;
use http::{Request, Response};
use mesh_core::balance::{EndpointStats, Picker};
use mesh_core::config::{LoadBalancer, TrafficPolicy};
use mesh_core::hash::RequestHash;
use mesh_core::outlier::{
    EjectReason, LocalFailure, Observation, OutlierDetector, OutlierSettings,
};
use mesh_core::{Endpoint, Resolution};
use mesh_dns::EndpointWatch;
use tokio::sync::{oneshot, watch};

use crate::admin::{DiscoveryState, EndpointStatus};
use crate::body::{RequestBody, ResponseBody};
use crate::clock::Clock;
use crate::endpoint::{EndpointClient, EndpointFuture, EndpointSettings, EndpointTls};
use crate::error::MeshError;
use crate::timeout::TryTimedOut;

/// A request extension asking the balancer to avoid an endpoint (the one a failed try used)
/// when another is available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvoidEndpoint(pub SocketAddr);

/// A request extension the balancer fills with the endpoint it sends the try to, so a layer
/// above learns where a try went before it answers (a hedge then goes elsewhere).
#[derive(Clone, Debug, Default)]
pub struct PickedEndpoint(Arc<OnceLock<SocketAddr>>);

impl PickedEndpoint {
    /// An empty slot, to insert in a request before it is balanced.
    pub fn new() -> Self {
        Self::default()
    }

    /// The endpoint the try was sent to, once the balancer has picked it.
    pub fn get(&self) -> Option<SocketAddr> {
        self.0.get().copied()
    }

    /// Fills the slot; a slot already filled keeps its endpoint.
    pub(crate) fn set(&self, addr: SocketAddr) {
        let _ = self.0.set(addr);
    }
}

/// Picks an endpoint per try and sends the request to it.
#[derive(Clone)]
pub struct Balance {
    shared: Arc<Shared>,
}

struct Shared {
    destination: Arc<str>,
    lb: LoadBalancer,
    settings: EndpointSettings,
    clock: Clock,
    snapshot: ArcSwap<Snapshot>,
    /// Outlier detection, when the policy has it.
    outlier: Option<OutlierDetector>,
    ready: watch::Sender<bool>,
    /// Dropped with the last `Balance`: stops the updater task.
    _stop: oneshot::Sender<()>,
}

struct Snapshot {
    state: State,
    endpoints: Vec<EndpointRef>,
    picker: Picker,
}

enum State {
    Pending,
    Ready,
    Unresolved(Arc<str>),
}

#[derive(Clone)]
struct EndpointRef(Arc<EndpointClient>);

impl AsRef<EndpointStats> for EndpointRef {
    fn as_ref(&self) -> &EndpointStats {
        &self.0.stats
    }
}

impl Balance {
    /// Balances requests to `destination` over the endpoints `endpoints` publishes, by the
    /// policy's load balancer, connecting with its protocol and connect timeout and pooling
    /// connections by its `connectionPool.http` settings. Must be called within a tokio
    /// runtime: it spawns the task that follows discovery.
    pub fn new(
        destination: impl Into<Arc<str>>,
        policy: &TrafficPolicy,
        endpoints: EndpointWatch,
    ) -> Self {
        Self::secured(destination, policy, endpoints, None)
    }

    /// As [`Balance::new`], with connections secured by `tls`.
    pub(crate) fn secured(
        destination: impl Into<Arc<str>>,
        policy: &TrafficPolicy,
        mut endpoints: EndpointWatch,
        tls: Option<EndpointTls>,
    ) -> Self {
        let lb = policy.load_balancer.clone();
        let settings = EndpointSettings::from_policy(policy, tls);
        let (stop, stopped) = oneshot::channel();
        let shared = Arc::new(Shared {
            destination: destination.into(),
            lb: lb.clone(),
            settings,
            clock: Clock::new(),
            snapshot: ArcSwap::from_pointee(Snapshot {
                state: State::Pending,
                endpoints: Vec::new(),
                picker: Picker::for_endpoints(&lb, &[]),
            }),
            outlier: policy
                .outlier_detection
                .as_ref()
                .map(|o| OutlierDetector::new(OutlierSettings::from(o))),
            ready: watch::channel(false).0,
            _stop: stop,
        });
        let first = endpoints.borrow_and_update().clone();
        shared.apply(&first);
        let weak = Arc::downgrade(&shared);
        let sweep_every = shared.outlier.as_ref().map(OutlierDetector::interval);
        tokio::spawn(async move {
            let follow = async {
                while endpoints.changed().await.is_ok() {
                    let resolution = endpoints.borrow_and_update().clone();
                    let Some(shared) = weak.upgrade() else { break };
                    shared.apply(&resolution);
                }
            };
            let sweep = async {
                let Some(every) = sweep_every else { return };
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(shared) = weak.upgrade() else { break };
                    shared.sweep();
                }
            };
            tokio::select! {
                _ = stopped => {}
                // Fixed endpoints never change, but their outliers are still swept.
                _ = async { tokio::join!(follow, sweep) } => {}
            }
        });
        Self { shared }
    }

    /// The destination this balancer serves.
    pub fn destination(&self) -> &Arc<str> {
        &self.shared.destination
    }

    /// The addresses of the current endpoints.
    pub fn endpoints(&self) -> Vec<SocketAddr> {
        let snapshot = self.shared.snapshot.load();
        snapshot.endpoints.iter().map(|e| e.0.addr()).collect()
    }

    /// What discovery has answered and the live state of each endpoint, for the admin
    /// server.
    pub(crate) fn status(&self) -> (DiscoveryState, Vec<EndpointStatus>) {
        let shared = &self.shared;
        let snapshot = shared.snapshot.load();
        let state = match &snapshot.state {
            State::Pending => DiscoveryState::Pending,
            State::Ready => DiscoveryState::Resolved,
            State::Unresolved(reason) => DiscoveryState::Unresolved(reason.to_string()),
        };
        let now = shared.clock.now();
        let endpoints = snapshot
            .endpoints
            .iter()
            .map(|e| {
                let stats = &e.0.stats;
                EndpointStatus {
                    addr: e.0.addr(),
                    weight: stats.weight(),
                    healthy: stats.is_available(now),
                    ejected: stats.outlier().is_some_and(|o| o.is_ejected(now)),
                    connect_failures: stats.health().consecutive_failures(),
                    in_flight: stats.in_flight(),
                }
            })
            .collect();
        (state, endpoints)
    }

    fn pick_and_call(&self, mut req: Request<RequestBody>) -> BalanceFuture {
        let shared = &self.shared;
        let snapshot = shared.snapshot.load();
        let reason = match &snapshot.state {
            State::Pending => {
                let mut ready = shared.ready.subscribe();
                return BalanceFuture::from(BalanceState::Waiting {
                    waiting: Box::new(Waiting {
                        wait: Box::pin(async move {
                            // An error means the balancer is gone; the retry below fails
                            // cleanly.
                            let _ = ready.wait_for(|r| *r).await;
                        }),
                        request: Some(req),
                        balance: self.clone(),
                    }),
                });
            }
            State::Unresolved(reason) => reason.clone(),
            State::Ready if snapshot.endpoints.is_empty() => Arc::from("no endpoints"),
            State::Ready => {
                let avoid = req
                    .extensions_mut()
                    .remove::<AvoidEndpoint>()
                    .and_then(|a| snapshot.endpoints.iter().position(|e| e.0.addr() == a.0));
                let hash = req.extensions().get::<RequestHash>().map(|h| h.0);
                let now = shared.clock.now();
                let picked = snapshot
                    .picker
                    .pick_hashed(&snapshot.endpoints, now, &mut rand::rng(), avoid, hash)
                    .unwrap_or(0);
                if let Some(endpoint) = snapshot.endpoints.get(picked) {
                    if let Some(slot) = req.extensions_mut().remove::<PickedEndpoint>() {
                        slot.set(endpoint.0.addr());
                    }
                    let observe = shared.outlier.as_ref().map(|_| Observer {
                        balance: self.clone(),
                        endpoint: endpoint.clone(),
                        timed_out: req.extensions().get::<TryTimedOut>().map(|t| t.0.clone()),
                    });
                    return BalanceFuture::from(BalanceState::Calling {
                        future: endpoint.0.call(req, shared.clock),
                        observe,
                    });
                }
                Arc::from("no endpoints")
            }
        };
        BalanceFuture::from(BalanceState::Failed {
            error: Some(MeshError::NoEndpoints {
                destination: shared.destination.clone(),
                reason,
            }),
        })
    }
}

impl Balance {
    /// Counts an answer of `endpoint` for outlier detection, ejecting it past a threshold.
    fn observe(&self, endpoint: &EndpointRef, result: &Result<Response<ResponseBody>, MeshError>) {
        let observation = match result {
            Ok(response) => Observation::Status(response.status().as_u16()),
            Err(MeshError::Connect { .. }) => {
                Observation::LocalOrigin(LocalFailure::ConnectFailure)
            }
            Err(MeshError::Reset { .. } | MeshError::RefusedStream { .. }) => {
                Observation::LocalOrigin(LocalFailure::Reset)
            }
            Err(_) => return,
        };
        self.observe_as(endpoint, observation);
    }

    /// Counts `observation` of `endpoint`, ejecting it past a threshold.
    fn observe_as(&self, endpoint: &EndpointRef, observation: Observation) {
        let shared = &self.shared;
        let (Some(detector), Some(outlier)) = (&shared.outlier, endpoint.0.stats.outlier()) else {
            return;
        };
        let now = shared.clock.now();
        let Some(reason) = outlier.observe(observation, now) else {
            return;
        };
        let snapshot = shared.snapshot.load();
        let all = snapshot
            .endpoints
            .iter()
            .filter_map(|e| e.0.stats.outlier());
        if detector.on_threshold(outlier, reason, now, all) {
            tracing::info!(
                destination = %shared.destination,
                endpoint = %endpoint.0.addr(),
                ?reason,
                until = ?outlier.ejected_until(),
                "endpoint ejected"
            );
            metrics::counter!(
                "mesh_outlier_ejections_total",
                "destination" => shared.destination.to_string(),
                "reason" => reason_name(reason),
            )
            .increment(1);
        }
    }
}

/// An ejection reason's name in metrics.
fn reason_name(reason: EjectReason) -> &'static str {
    match reason {
        EjectReason::Consecutive5xx => "consecutive_5xx",
        EjectReason::ConsecutiveGateway => "consecutive_gateway",
        EjectReason::ConsecutiveLocalOrigin => "consecutive_local_origin",
        EjectReason::Probation => "probation",
        EjectReason::SuccessRate => "success_rate",
        _ => "other",
    }
}

impl Shared {
    /// The periodic outlier sweep: returns, success-rate ejections, multiplier decay.
    fn sweep(&self) {
        let Some(detector) = &self.outlier else {
            return;
        };
        let snapshot = self.snapshot.load();
        let report = detector.sweep(
            self.clock.now(),
            snapshot
                .endpoints
                .iter()
                .filter_map(|e| e.0.stats.outlier()),
        );
        for &i in &report.returned {
            if let Some(e) = snapshot.endpoints.get(i) {
                tracing::info!(destination = %self.destination, endpoint = %e.0.addr(), "endpoint returned");
            }
        }
        for &i in &report.ejected {
            if let Some(e) = snapshot.endpoints.get(i) {
                tracing::info!(destination = %self.destination, endpoint = %e.0.addr(), "endpoint ejected (success rate)");
                metrics::counter!(
                    "mesh_outlier_ejections_total",
                    "destination" => self.destination.to_string(),
                    "reason" => "success_rate",
                )
                .increment(1);
            }
        }
    }

    /// Replaces the snapshot with one for `resolution`, keeping the endpoints that stay.
    fn apply(&self, resolution: &Resolution) {
        let current = self.snapshot.load();
        let (state, endpoints) = match resolution {
            Resolution::Pending => (State::Pending, Vec::new()),
            Resolution::Unresolved(reason) => (State::Unresolved(reason.clone()), Vec::new()),
            Resolution::Resolved(set) => {
                // Both sides in address order (a set is sorted, and so is a snapshot built
                // from one, which makes this sort linear), walked together: no hashing of
                // every address at each update.
                let mut kept: Vec<&EndpointRef> = current.endpoints.iter().collect();
                kept.sort_by_key(|e| e.0.addr());
                let mut kept = kept.into_iter().peekable();
                let endpoints = set
                    .endpoints()
                    .iter()
                    .map(|ep| {
                        while kept.next_if(|old| old.0.addr() < ep.addr).is_some() {}
                        (ep, kept.next_if(|old| old.0.addr() == ep.addr))
                    })
                    .map(|(ep, old)| match old {
                        Some(old) if old.0.stats.weight() == ep.weight => old.clone(),
                        _ => {
                            let stats = EndpointStats::for_balancer(ep.weight, &self.lb);
                            let stats = match &self.outlier {
                                Some(detector) => stats.with_outlier(detector.new_endpoint()),
                                None => stats,
                            };
                            EndpointRef(Arc::new(EndpointClient::new(
                                ep.addr,
                                stats,
                                self.settings.clone(),
                            )))
                        }
                    })
                    .collect();
                (State::Ready, endpoints)
            }
        };
        let listed: Vec<Endpoint> = endpoints
            .iter()
            .map(|e| Endpoint::new(e.0.addr()).with_weight(e.0.stats.weight()))
            .collect();
        tracing::debug!(
            destination = %self.destination,
            endpoints = endpoints.len(),
            "endpoints updated"
        );
        let pending = matches!(state, State::Pending);
        self.snapshot.store(Arc::new(Snapshot {
            state,
            // A random start keeps many clients from walking the endpoints in step.
            picker: Picker::for_endpoints_after(&self.lb, &listed, Some(&current.picker))
                .starting_at(rand::random_range(0..listed.len().max(1))),
            endpoints,
        }));
        if !pending {
            self.ready.send_replace(true);
        }
    }
}

impl fmt::Debug for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balance")
            .field("destination", &self.shared.destination)
            .field("lb", &self.shared.lb)
            .field("endpoints", &self.endpoints())
            .finish()
    }
}

impl tower_service::Service<Request<RequestBody>> for Balance {
    type Response = Response<ResponseBody>;
    type Error = MeshError;
    type Future = BalanceFuture;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), MeshError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RequestBody>) -> BalanceFuture {
        self.pick_and_call(req)
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Balance`].
    pub struct BalanceFuture {
        #[pin]
        state: BalanceState,
    }
}

pin_project_lite::pin_project! {
    #[project = BalanceProj]
    enum BalanceState {
        /// Waiting for the first answer of discovery; boxed, as it holds the request and
        /// is rare, while the layers above move this future.
        Waiting {
            waiting: Box<Waiting>,
        },
        /// Sent to an endpoint; its answer is observed for outlier detection.
        Calling {
            #[pin]
            future: EndpointFuture,
            observe: Option<Observer>,
        },
        /// Failed before any endpoint was picked.
        Failed {
            error: Option<MeshError>,
        },
    }
}

/// A try waiting for the first answer of discovery.
struct Waiting {
    wait: Pin<Box<dyn Future<Output = ()> + Send>>,
    request: Option<Request<RequestBody>>,
    balance: Balance,
}

/// Observes a try's answer for outlier detection; a try dropped because its per-try timeout
/// fired counts as a local-origin timeout (Envoy's `LocalOriginTimeout`).
struct Observer {
    balance: Balance,
    endpoint: EndpointRef,
    timed_out: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Drop for Observer {
    fn drop(&mut self) {
        if self
            .timed_out
            .as_ref()
            .is_some_and(|t| t.load(Ordering::Relaxed))
        {
            self.balance.observe_as(
                &self.endpoint,
                Observation::LocalOrigin(LocalFailure::Timeout),
            );
        }
    }
}

impl From<BalanceState> for BalanceFuture {
    fn from(state: BalanceState) -> Self {
        Self { state }
    }
}

impl Future for BalanceFuture {
    type Output = Result<Response<ResponseBody>, MeshError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                BalanceProj::Calling { future, observe } => {
                    let result = ready!(future.poll(cx));
                    if let Some(mut observer) = observe.take() {
                        observer.timed_out = None;
                        observer.balance.observe(&observer.endpoint, &result);
                    }
                    return Poll::Ready(result);
                }
                BalanceProj::Failed { error } => {
                    return Poll::Ready(Err(MeshError::take(error)));
                }
                BalanceProj::Waiting { waiting } => {
                    let Waiting {
                        wait,
                        request,
                        balance,
                    } = &mut **waiting;
                    ready!(wait.as_mut().poll(cx));
                    match request.take() {
                        Some(req) => {
                            let next = balance.pick_and_call(req).state;
                            if let BalanceState::Waiting { .. } = next {
                                // Discovery went away before answering.
                                BalanceState::Failed {
                                    error: Some(MeshError::NoEndpoints {
                                        destination: balance.destination().clone(),
                                        reason: "discovery stopped before answering".into(),
                                    }),
                                }
                            } else {
                                next
                            }
                        }
                        None => BalanceState::Failed { error: None },
                    }
                }
            };
            state.set(next);
        }
    }
}
