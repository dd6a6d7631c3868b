//! Circuit breaking by connection-pool limits (Istio's `connectionPool`), per destination.
//!
//! Each try takes a slot of the destination's [`PoolLimits`] before it is balanced, and keeps
//! it until its response body ends. With every slot taken an HTTP/1.1 try waits (at most
//! `http1MaxPendingRequests` of them); past a limit it fails at once with
//! [`MeshError::Overflow`] (503, flag UO), never hangs, and
//! `mesh_circuit_breaker_overflows_total{destination, limit}` says which limit tripped.
//! The decisions are [`mesh_core::breaker`].
//!
//! ```
//! use mesh_core::breaker::PoolLimits;
//! use mesh_core::config::{ConnectionPool, Protocol};
//! use mesh_tower::breaker::BreakerLayer;
//!
//! let pool = ConnectionPool { max_connections: Some(1), http1_max_pending_requests: Some(1), ..Default::default() };
//! let layer = BreakerLayer::new("reviews:9080", PoolLimits::new(&pool, Protocol::Http1));
//! # let _ = layer;
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use mesh_core::breaker::{Admission, Limit, PoolLimits};
use tokio::sync::oneshot;

use crate::body::ResponseBody;
use crate::error::MeshError;

/// Applies [`Breaker`]; clones share the slots.
#[derive(Clone)]
pub struct BreakerLayer {
    shared: Arc<Shared>,
}

struct Shared {
    destination: Arc<str>,
    limits: PoolLimits,
    slots: Mutex<Slots>,
}

/// The slots in use and the tries waiting for one, in arrival order.
#[derive(Default)]
struct Slots {
    active: usize,
    waiting: VecDeque<oneshot::Sender<Permit>>,
}

/// A slot of a destination's pool, released (or handed to the next waiting try) when
/// dropped.
pub(crate) struct Permit {
    shared: Option<Arc<Shared>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let mut slots = shared.slots.lock().unwrap_or_else(|e| e.into_inner());
        // Hand the slot to the first try still waiting; one that gave up has dropped its
        // receiver, and the permit sent to it comes back to be disarmed.
        while let Some(waiter) = slots.waiting.pop_front() {
            let permit = Permit {
                shared: Some(shared.clone()),
            };
            match waiter.send(permit) {
                Ok(()) => return,
                Err(mut unsent) => {
                    unsent.shared = None;
                }
            }
        }
        slots.active = slots.active.saturating_sub(1);
    }
}

/// What a try gets from the pool.
enum Admit {
    Slot(Permit),
    Wait(oneshot::Receiver<Permit>),
    Overflow(Limit),
}

impl Shared {
    fn admit(self: &Arc<Self>) -> Admit {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match self.limits.admit(slots.active, slots.waiting.len()) {
            Admission::Proceed => {
                slots.active += 1;
                Admit::Slot(Permit {
                    shared: Some(self.clone()),
                })
            }
            Admission::Queue => {
                let (tx, rx) = oneshot::channel();
                slots.waiting.push_back(tx);
                Admit::Wait(rx)
            }
            Admission::Overflow(limit) => Admit::Overflow(limit),
        }
    }
}

impl BreakerLayer {
    /// Enforces `limits` on requests to `destination`.
    pub fn new(destination: impl Into<Arc<str>>, limits: PoolLimits) -> Self {
        Self {
            shared: Arc::new(Shared {
                destination: destination.into(),
                limits,
                slots: Mutex::default(),
            }),
        }
    }

    /// Tries in flight under the limits now.
    pub fn active(&self) -> usize {
        let slots = self.shared.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.active
    }
}

impl fmt::Debug for BreakerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerLayer")
            .field("destination", &self.shared.destination)
            .field("limits", &self.shared.limits)
            .field("active", &self.active())
            .finish()
    }
}

impl<S> tower_layer::Layer<S> for BreakerLayer {
    type Service = Breaker<S>;

    fn layer(&self, inner: S) -> Breaker<S> {
        Breaker {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Admits each try by the destination's pool limits.
#[derive(Clone)]
pub struct Breaker<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Breaker<S> {
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

impl<S: fmt::Debug> fmt::Debug for Breaker<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("inner", &self.inner)
            .field("destination", &self.shared.destination)
            .finish()
    }
}

impl<S, B> tower_service::Service<Request<B>> for Breaker<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResponseBody>, Error = MeshError>
        + Clone,
{
    type Response = Response<ResponseBody>;
    type Error = MeshError;
    type Future = BreakerFuture<S, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), MeshError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let shared = &self.shared;
        if shared.limits.active.is_none() {
            return BreakerFuture::calling(self.inner.call(req), None);
        }
        match shared.admit() {
            Admit::Slot(permit) => BreakerFuture::calling(self.inner.call(req), Some(permit)),
            Admit::Overflow(limit) => BreakerFuture::overflow(overflow(shared, limit)),
            Admit::Wait(slot) => {
                tracing::trace!(destination = %shared.destination, "waiting for a slot");
                // The service that was ready is the one that gets the request.
                let ready = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, ready);
                BreakerFuture {
                    state: State::Waiting {
                        slot,
                        then: Some(Box::new((inner, req))),
                    },
                }
            }
        }
    }
}

fn overflow(shared: &Shared, limit: Limit) -> MeshError {
    tracing::debug!(destination = %shared.destination, %limit, "circuit breaker overflow");
    metrics::counter!(
        "mesh_circuit_breaker_overflows_total",
        "destination" => shared.destination.to_string(),
        "limit" => limit.as_str(),
    )
    .increment(1);
    MeshError::Overflow {
        destination: shared.destination.clone(),
        limit,
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Breaker`].
    pub struct BreakerFuture<S, B>
    where
        S: tower_service::Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: tower_service::Service<Request<B>>,
    {
        Waiting {
            #[pin]
            slot: oneshot::Receiver<Permit>,
            // Boxed: rare, and the layers above move this future.
            then: Option<Box<(S, Request<B>)>>,
        },
        Calling {
            #[pin]
            future: S::Future,
            permit: Option<Permit>,
        },
        Failed {
            error: Option<MeshError>,
        },
    }
}

impl<S, B> BreakerFuture<S, B>
where
    S: tower_service::Service<Request<B>>,
{
    fn calling(future: S::Future, permit: Option<Permit>) -> Self {
        Self {
            state: State::Calling { future, permit },
        }
    }

    fn overflow(error: MeshError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
        }
    }
}

impl<S, B> Future for BreakerFuture<S, B>
where
    S: tower_service::Service<Request<B>, Response = Response<ResponseBody>, Error = MeshError>,
{
    type Output = Result<Response<ResponseBody>, MeshError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                StateProj::Waiting { slot, then } => {
                    let permit = ready!(slot.poll(cx)).ok();
                    match (permit, then.take().map(|then| *then)) {
                        (Some(permit), Some((mut inner, req))) => State::Calling {
                            future: inner.call(req),
                            permit: Some(permit),
                        },
                        _ => State::Failed { error: None },
                    }
                }
                StateProj::Calling { future, permit } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(permit) = permit.take() {
                        response.body_mut().hold(permit);
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Failed { error } => {
                    return Poll::Ready(Err(MeshError::take(error)));
                }
            };
            state.set(next);
        }
    }
}
