//! Context capture: reads what the caller's mesh client propagated and makes it the
//! [`RequestContext`] of the handler, so the client stack applies it to outbound calls: the
//! inbound deadline, and what [`ServerTrace`](crate::telemetry::trace::ServerTrace) captured
//! (trace context, `x-request-id`, configured headers and cookies).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use mesh_core::deadline::{self, DeadlineError};
use tokio::time::Instant;

use super::ServerError;
use crate::context::RequestContext;
use crate::telemetry::trace::Captured;

/// Applies [`ContextService`].
///
/// ```
/// use mesh_tower::server::ContextLayer;
///
/// let layer = ContextLayer::new().propagate_deadline(true);
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ContextLayer {
    propagate_deadline: bool,
}

impl Default for ContextLayer {
    fn default() -> Self {
        Self {
            propagate_deadline: true,
        }
    }
}

impl ContextLayer {
    /// A layer that propagates deadlines.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the inbound deadline is read and bounds the outbound calls of the handler
    /// (true). When false the deadline headers are left to the application, unread.
    pub fn propagate_deadline(mut self, propagate: bool) -> Self {
        self.propagate_deadline = propagate;
        self
    }
}

impl<S> tower_layer::Layer<S> for ContextLayer {
    type Service = ContextService<S>;

    fn layer(&self, inner: S) -> ContextService<S> {
        ContextService {
            inner,
            propagate_deadline: self.propagate_deadline,
        }
    }
}

/// Reads the inbound deadline (`x-mesh-timeout-ms`, or `grpc-timeout` of a gRPC request) and
/// runs the handler's future inside a [`RequestContext`] carrying it, with what the server
/// trace layer captured for propagation (when it runs outside this layer).
///
/// A malformed deadline header fails with [`ServerError::BadDeadline`] (400, naming the
/// header) and a deadline already passed with [`ServerError::DeadlineExceeded`] (504); neither
/// reaches the application. The context covers the polling of the inner future, which is
/// where an axum handler runs; work done in the inner `Service::call` itself runs outside it.
#[derive(Clone, Debug)]
pub struct ContextService<S> {
    inner: S,
    propagate_deadline: bool,
}

impl<S> ContextService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> tower_service::Service<Request<B>> for ContextService<S>
where
    S: tower_service::Service<Request<B>>,
    S::Error: From<ServerError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ContextFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let state = match self.capture(&req) {
            Ok(None) => State::Plain {
                future: self.inner.call(req),
            },
            Ok(Some(context)) => State::Scoped {
                future: self.inner.call(req),
                context,
            },
            Err(rejection) => State::Rejected { rejection },
        };
        ContextFuture { state }
    }
}

impl<S> ContextService<S> {
    /// The context of `req`: `None` when it carries nothing to propagate.
    fn capture<B>(&self, req: &Request<B>) -> Result<Option<RequestContext>, Rejection> {
        let propagated = req.extensions().get::<Captured>().map(|c| c.0.clone());
        let deadline = if self.propagate_deadline {
            self.deadline(req)?
        } else {
            None
        };
        let context = match (deadline, propagated) {
            (None, None) => return Ok(None),
            (Some(at), None) => RequestContext::new().with_deadline(at),
            (None, Some(p)) => RequestContext::new().with_propagated(p),
            (Some(at), Some(p)) => RequestContext::new().with_deadline(at).with_propagated(p),
        };
        Ok(Some(context))
    }

    /// The inbound deadline's instant, if the request carries one.
    fn deadline<B>(&self, req: &Request<B>) -> Result<Option<Instant>, Rejection> {
        // Read relative to now: the remaining time is the deadline's instant.
        let Some(deadline) =
            deadline::from_headers(req.headers(), Duration::ZERO).map_err(Rejection::Bad)?
        else {
            return Ok(None);
        };
        let remaining = deadline.instant();
        if remaining.is_zero() {
            return Err(Rejection::Expired);
        }
        // A deadline past the end of tokio's clock is no deadline at all.
        Ok(Instant::now().checked_add(remaining))
    }
}

/// Why a request is answered before it reaches the application.
#[derive(Clone, Debug)]
enum Rejection {
    Bad(DeadlineError),
    Expired,
}

impl Rejection {
    fn error(&self) -> ServerError {
        match self {
            Rejection::Bad(e) => ServerError::BadDeadline(e.clone()),
            Rejection::Expired => ServerError::DeadlineExceeded,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ContextService`].
    pub struct ContextFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Plain { #[pin] future: F },
        Scoped { #[pin] future: F, context: RequestContext },
        Rejected { rejection: Rejection },
    }
}

impl<F, T, E> Future for ContextFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: From<ServerError>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Plain { future } => future.poll(cx),
            StateProj::Scoped {
                mut future,
                context,
            } => {
                // Each poll runs inside the context: a scope around one poll of the inner
                // future, so the context needs no allocation and no `'static` future.
                let once = std::future::poll_fn(|cx| future.as_mut().poll(cx));
                let scoped = std::pin::pin!(context.clone().scope(once));
                scoped.poll(cx)
            }
            // Built on each poll, so polling again after completion repeats the answer.
            StateProj::Rejected { rejection } => Poll::Ready(Err(rejection.error().into())),
        }
    }
}
