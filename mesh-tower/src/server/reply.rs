//! Local replies of the server stack: every [`ServerError`] becomes the response a caller
//! sees, as Envoy answers.
//!
//! | error | status | body |
//! |---|---|---|
//! | rate limited | 429 | `local_rate_limited` |
//! | shed by the concurrency limit | 503, `x-mesh-overloaded: true` | `overloaded` |
//! | malformed deadline header | 400 | what is wrong, naming the header |
//! | deadline passed on arrival | 504 | `deadline exceeded ...` |
//! | application error | 500 | `internal server error` (the error is logged) |
//!
//! A gRPC request gets a trailers-only gRPC answer instead: status 200 with `grpc-status`
//! and `grpc-message` (see [`ServerError::grpc_status`]). Callers' retry layers may retry a
//! shed request: the 503 says the server did not process it.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};

use super::ServerError;
use crate::limit::Limited;

/// The header on a response shed by the concurrency limit (`true`), as Envoy's
/// `x-envoy-overloaded`.
pub const OVERLOADED_HEADER: HeaderName = HeaderName::from_static("x-mesh-overloaded");

/// A response extension on local replies of the server stack: the error the reply stands
/// for.
#[derive(Clone, Debug)]
pub struct ServerReply {
    /// The error.
    pub error: Arc<ServerError>,
}

/// Applies [`ReplyService`] (the outermost layer of the server stack).
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplyLayer {
    _priv: (),
}

impl ReplyLayer {
    /// A new layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> tower_layer::Layer<S> for ReplyLayer {
    type Service = ReplyService<S>;

    fn layer(&self, inner: S) -> ReplyService<S> {
        ReplyService { inner }
    }
}

/// Answers every error of the inner stack with a local reply; never fails.
#[derive(Clone, Debug)]
pub struct ReplyService<S> {
    inner: S,
}

impl<S> ReplyService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> tower_service::Service<Request<B>> for ReplyService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<ServerError>,
{
    type Response = Response<ServerBody<RB>>;
    type Error = Infallible;
    type Future = ReplyFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The inner stack is always ready or fails per request; a readiness error is
        // reported by the next call instead.
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ReplyFuture {
            grpc: mesh_core::deadline::is_grpc(req.headers()),
            inner: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ReplyService`].
    pub struct ReplyFuture<F> {
        #[pin]
        inner: F,
        grpc: bool,
    }
}

impl<F, RB, E> Future for ReplyFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<ServerError>,
{
    type Output = Result<Response<ServerBody<RB>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        Poll::Ready(Ok(match ready!(this.inner.poll(cx)) {
            Ok(response) => response.map(ServerBody::app),
            Err(error) => local_reply(error.into(), *this.grpc),
        }))
    }
}

/// The local reply that stands for `error`; a gRPC answer when `grpc`.
pub fn local_reply<B>(error: ServerError, grpc: bool) -> Response<ServerBody<B>> {
    match &error {
        ServerError::App(e) => tracing::warn!(error = %e, "application failed; answering 500"),
        e => tracing::debug!(error = %e, "local reply"),
    }
    let text = match &error {
        ServerError::Limited {
            limited: Limited::RateLimited,
            ..
        } => "local_rate_limited".to_owned(),
        ServerError::Limited {
            limited: Limited::Shed { .. },
            ..
        } => "overloaded".to_owned(),
        ServerError::App(_) => "internal server error".to_owned(),
        e => e.to_string(),
    };
    let mut response = if grpc {
        let mut response = Response::new(ServerBody::empty());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from(error.grpc_status()));
        if let Ok(message) = HeaderValue::from_str(&grpc_message(&text)) {
            headers.insert("grpc-message", message);
        }
        response
    } else {
        let mut response = Response::new(ServerBody::local(text));
        *response.status_mut() = error.status();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    };
    match &error {
        ServerError::Limited {
            limited: Limited::Shed { .. },
            ..
        } => {
            response
                .headers_mut()
                .insert(OVERLOADED_HEADER, HeaderValue::from_static("true"));
        }
        ServerError::Unauthenticated(_) => {
            // RFC 6750's challenge, as Envoy's JWT filter answers.
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mesh\", error=\"invalid_token\""),
            );
        }
        _ => {}
    }
    response.extensions_mut().insert(ServerReply {
        error: Arc::new(error),
    });
    response
}

/// `text` percent-encoded as gRPC asks of `grpc-message`: bytes outside printable ASCII,
/// and `%`, as `%XX`.
fn grpc_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (b' '..=b'~').contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

pin_project_lite::pin_project! {
    /// The body of a response from the server stack: the application's, or a local reply.
    pub struct ServerBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        App { #[pin] body: B },
        Local { data: Option<Bytes> },
    }
}

impl<B> ServerBody<B> {
    /// The application's body.
    pub fn app(body: B) -> Self {
        Self {
            kind: Kind::App { body },
        }
    }

    /// A body the mesh writes itself.
    pub fn local(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        Self {
            kind: Kind::Local {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    /// An empty local body.
    pub fn empty() -> Self {
        Self {
            kind: Kind::Local { data: None },
        }
    }

    /// Whether the mesh wrote this body itself.
    pub fn is_local(&self) -> bool {
        matches!(self.kind, Kind::Local { .. })
    }
}

impl<B> std::fmt::Debug for ServerBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::App { .. } => f.write_str("ServerBody::App"),
            Kind::Local { data } => f
                .debug_struct("ServerBody::Local")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
        }
    }
}

impl<B> Body for ServerBody<B>
where
    B: Body,
    B::Data: Into<Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::App { body } => body
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map(|f| f.map_data(Into::into)))),
            KindProj::Local { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::App { body } => body.is_end_stream(),
            Kind::Local { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::App { body } => body.size_hint(),
            Kind::Local { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
