//! The concurrency limit: requests in flight, each counted until its response body ends.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use http_body::{Body, Frame, SizeHint};
use mesh_core::ratelimit::{ConcurrencyLimit, OwnedPermit};

use super::{LimitError, Limited, Side, count};

/// How a response keeps its request's [`OwnedPermit`] until the response is over.
///
/// The default, [`WrapBody`], wraps any body in [`PermitBody`]. A stack whose response type
/// must not change (such as the client's `Response<ResponseBody>`) implements this for a
/// marker type of its own and picks it with [`ConcurrencyLimitLayer::hold_with`].
pub trait HoldPermit<R> {
    /// The response holding the permit.
    type Response;

    /// Attaches `permit` to `response`; it is dropped (the slot freed) when the response's
    /// body ends or is dropped. `None` when no limit is configured.
    fn hold(response: R, permit: Option<OwnedPermit>) -> Self::Response;
}

/// Holds the permit in a [`PermitBody`] around the response's body.
#[derive(Clone, Copy, Debug, Default)]
pub struct WrapBody;

impl<B: Body> HoldPermit<Response<B>> for WrapBody {
    type Response = Response<PermitBody<B>>;

    fn hold(response: Response<B>, permit: Option<OwnedPermit>) -> Self::Response {
        response.map(|body| PermitBody::new(body, permit))
    }
}

/// Applies [`ConcurrencyLimitService`]; every service it makes (and every clone) counts
/// against one limit.
///
/// ```
/// use mesh_tower::limit::{ConcurrencyLimitLayer, Side};
///
/// // At most 64 requests in flight (until their response bodies end); the rest get 503.
/// let layer = ConcurrencyLimitLayer::new("inbound", 64, Side::Server);
/// # let _ = layer;
/// ```
pub struct ConcurrencyLimitLayer<H = WrapBody> {
    shared: Option<Arc<Shared>>,
    hold: PhantomData<fn() -> H>,
}

#[derive(Debug)]
struct Shared {
    name: Arc<str>,
    side: Side,
    limit: Arc<ConcurrencyLimit>,
}

impl ConcurrencyLimitLayer {
    /// At most `max` requests in flight (0 rejects every request), counting rejections under
    /// `name` and `side`.
    pub fn new(name: impl Into<Arc<str>>, max: usize, side: Side) -> Self {
        Self::optional(name, Some(max), side)
    }

    /// Like [`new`](Self::new) when `max` is `Some`; passes every request through when it is
    /// `None` (the body is still wrapped, with no permit), so a stack keeps one type.
    pub fn optional(name: impl Into<Arc<str>>, max: Option<usize>, side: Side) -> Self {
        let name = name.into();
        Self {
            shared: max.map(|max| {
                Arc::new(Shared {
                    name,
                    side,
                    limit: Arc::new(ConcurrencyLimit::new(max)),
                })
            }),
            hold: PhantomData,
        }
    }
}

impl<H> ConcurrencyLimitLayer<H> {
    /// The same limit, holding permits the way `H` says.
    pub fn hold_with<H2>(self) -> ConcurrencyLimitLayer<H2> {
        ConcurrencyLimitLayer {
            shared: self.shared,
            hold: PhantomData,
        }
    }

    /// The requests in flight now (0 when there is no limit).
    pub fn in_flight(&self) -> usize {
        self.shared.as_ref().map_or(0, |s| s.limit.in_flight())
    }
}

impl<H> Clone for ConcurrencyLimitLayer<H> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            hold: PhantomData,
        }
    }
}

impl<H> fmt::Debug for ConcurrencyLimitLayer<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyLimitLayer")
            .field("shared", &self.shared)
            .finish()
    }
}

impl<S, H> tower_layer::Layer<S> for ConcurrencyLimitLayer<H> {
    type Service = ConcurrencyLimitService<S, H>;

    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyLimitService {
            inner,
            shared: self.shared.clone(),
            hold: PhantomData,
        }
    }
}

/// Takes a slot for each request and keeps it until the response body ends; past the limit
/// the request fails at once with the inner service's error for [`Limited::Shed`].
pub struct ConcurrencyLimitService<S, H = WrapBody> {
    inner: S,
    shared: Option<Arc<Shared>>,
    hold: PhantomData<fn() -> H>,
}

impl<S, H> ConcurrencyLimitService<S, H> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, H> Clone for ConcurrencyLimitService<S, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            hold: PhantomData,
        }
    }
}

impl<S: fmt::Debug, H> fmt::Debug for ConcurrencyLimitService<S, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyLimitService")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .finish()
    }
}

impl<S, H, R> tower_service::Service<R> for ConcurrencyLimitService<S, H>
where
    S: tower_service::Service<R>,
    S::Error: LimitError,
    H: HoldPermit<S::Response>,
{
    type Response = H::Response;
    type Error = S::Error;
    type Future = ConcurrencyLimitFuture<S::Future, H>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let permit = match &self.shared {
            None => None,
            Some(shared) => match shared.limit.try_acquire_owned() {
                Some(permit) => Some(permit),
                None => {
                    let limited = Limited::Shed {
                        max: shared.limit.max(),
                    };
                    count(&shared.name, shared.side, limited);
                    return ConcurrencyLimitFuture {
                        state: State::Rejected {
                            name: shared.name.clone(),
                            limited,
                        },
                        hold: PhantomData,
                    };
                }
            },
        };
        ConcurrencyLimitFuture {
            state: State::Called {
                future: self.inner.call(req),
                permit,
            },
            hold: PhantomData,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ConcurrencyLimitService`].
    pub struct ConcurrencyLimitFuture<F, H> {
        #[pin]
        state: State<F>,
        hold: PhantomData<fn() -> H>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: F, permit: Option<OwnedPermit> },
        Rejected { name: Arc<str>, limited: Limited },
    }
}

impl<F, H, T, E> Future for ConcurrencyLimitFuture<F, H>
where
    F: Future<Output = Result<T, E>>,
    E: LimitError,
    H: HoldPermit<T>,
{
    type Output = Result<H::Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future, permit } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(H::hold(response, permit.take())))
            }
            StateProj::Rejected { name, limited } => Poll::Ready(Err(E::limited(name, *limited))),
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps a concurrency slot until it ends (or is dropped).
    pub struct PermitBody<B> {
        #[pin]
        inner: B,
        permit: Option<OwnedPermit>,
    }
}

impl<B: Body> PermitBody<B> {
    /// `inner`, holding `permit` (if any) until it ends; a body that has ended already frees
    /// it now.
    pub fn new(inner: B, permit: Option<OwnedPermit>) -> Self {
        let permit = permit.filter(|_| !inner.is_end_stream());
        Self { inner, permit }
    }
}

impl<B> PermitBody<B> {
    /// The wrapped body.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: fmt::Debug> fmt::Debug for PermitBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PermitBody")
            .field("inner", &self.inner)
            .field("holding", &self.permit.is_some())
            .finish()
    }
}

impl<B: Body> Body for PermitBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = &polled {
            // The body is over: the request no longer counts.
            this.permit.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
