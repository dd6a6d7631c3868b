//! Local replies: turns a [`MeshError`] into the HTTP response a caller sees, as Envoy does
//! (504 for a timeout, 503 when no endpoint could answer, 400 for a bad request), with a body
//! that says what went wrong and a [`LocalReply`] extension carrying the typed error.
//!
//! ```
//! use mesh_tower::local_reply::LocalReplyLayer;
//!
//! let layer = LocalReplyLayer::new();
//! # let _ = layer;
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Response, header};

use mesh_core::route::AbortStatus;

use crate::body::ResponseBody;
use crate::error::{LocalReply, MeshError};

/// Applies [`LocalReplyService`].
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalReplyLayer {
    _priv: (),
}

impl LocalReplyLayer {
    /// A new layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> tower_layer::Layer<S> for LocalReplyLayer {
    type Service = LocalReplyService<S>;

    fn layer(&self, inner: S) -> LocalReplyService<S> {
        LocalReplyService { inner }
    }
}

/// Answers every [`MeshError`] of the inner service with a local reply; never fails.
#[derive(Clone, Debug)]
pub struct LocalReplyService<S> {
    inner: S,
}

impl<S> LocalReplyService<S> {
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

impl<S, R> tower_service::Service<R> for LocalReplyService<S>
where
    S: tower_service::Service<R, Response = Response<ResponseBody>, Error = MeshError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = LocalReplyFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The inner stack is always ready or fails per request; a readiness error is
        // reported by the next call instead.
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: R) -> Self::Future {
        LocalReplyFuture {
            inner: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`LocalReplyService`].
    pub struct LocalReplyFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F> Future for LocalReplyFuture<F>
where
    F: Future<Output = Result<Response<ResponseBody>, MeshError>>,
{
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(match ready!(self.project().inner.poll(cx)) {
            Ok(response) => response,
            Err(error) => local_reply(error),
        }))
    }
}

/// The local reply that stands for `error`.
pub fn local_reply(error: MeshError) -> Response<ResponseBody> {
    tracing::debug!(%error, "local reply");
    let status = error.status();
    let mut response = Response::new(ResponseBody::local(format!("{error}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let MeshError::FaultAbort {
        status: AbortStatus::Grpc(code),
        ..
    } = &error
    {
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from(*code));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("fault filter abort"),
        );
    }
    response.extensions_mut().insert(LocalReply {
        error: Arc::new(error),
    });
    response
}
