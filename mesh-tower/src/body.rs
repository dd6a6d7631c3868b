//! Request and response bodies of the client stack.
//!
//! [`RequestBody`] is what the stack sends: empty, fully buffered (replayable by retries), or a
//! stream sent once. [`ResponseBody`] is what it returns: the upstream's body, which releases its
//! endpoint's in-flight count when it ends, or a local reply the mesh wrote itself.

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use crate::BoxError;
use crate::endpoint::InFlight;

/// A request body as the client stack sends it.
pub struct RequestBody {
    kind: RequestKind,
}

enum RequestKind {
    /// No body at all.
    Empty,
    /// A body held in memory, which a retry can send again.
    Buffered {
        data: Option<Bytes>,
        // Boxed: rare, and a request moves through every layer of the stack.
        trailers: Option<Box<HeaderMap>>,
    },
    /// A body read as it streams; it can be sent only once.
    Stream(UnsyncBoxBody<Bytes, BoxError>),
}

impl RequestBody {
    /// An empty body.
    pub fn empty() -> Self {
        Self {
            kind: RequestKind::Empty,
        }
    }

    /// A body held in memory (replayable).
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        if data.is_empty() {
            return Self::empty();
        }
        Self::buffered(data, None)
    }

    pub(crate) fn buffered(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            kind: RequestKind::Buffered {
                data: (!data.is_empty()).then_some(data),
                trailers: trailers.map(Box::new),
            },
        }
    }

    /// Wraps any body; an empty one becomes [`RequestBody::empty`], others stream.
    pub fn new<B>(body: B) -> Self
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        if body.is_end_stream() {
            return Self::empty();
        }
        let body = body
            .map_frame(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining())))
            .map_err(Into::into);
        Self {
            kind: RequestKind::Stream(UnsyncBoxBody::new(body)),
        }
    }

    /// A copy of this body for another try, when it is held in memory (or empty).
    pub fn try_clone(&self) -> Option<Self> {
        match &self.kind {
            RequestKind::Empty => Some(Self::empty()),
            RequestKind::Buffered { data, trailers } => Some(Self {
                kind: RequestKind::Buffered {
                    data: data.clone(),
                    trailers: trailers.clone(),
                },
            }),
            RequestKind::Stream(_) => None,
        }
    }

    /// Takes the stream out of a streaming body, leaving it empty.
    pub(crate) fn take_stream(&mut self) -> Option<UnsyncBoxBody<Bytes, BoxError>> {
        match std::mem::replace(&mut self.kind, RequestKind::Empty) {
            RequestKind::Stream(s) => Some(s),
            other => {
                self.kind = other;
                None
            }
        }
    }

    pub(crate) fn from_stream(stream: UnsyncBoxBody<Bytes, BoxError>) -> Self {
        Self {
            kind: RequestKind::Stream(stream),
        }
    }
}

impl Default for RequestBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl From<Bytes> for RequestBody {
    fn from(data: Bytes) -> Self {
        Self::full(data)
    }
}

impl From<String> for RequestBody {
    fn from(data: String) -> Self {
        Self::full(data)
    }
}

impl From<&'static str> for RequestBody {
    fn from(data: &'static str) -> Self {
        Self::full(Bytes::from_static(data.as_bytes()))
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RequestKind::Empty => f.write_str("RequestBody::Empty"),
            RequestKind::Buffered { data, .. } => f
                .debug_struct("RequestBody::Buffered")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
            RequestKind::Stream(_) => f.write_str("RequestBody::Stream"),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            RequestKind::Empty => Poll::Ready(None),
            RequestKind::Buffered { data, trailers } => {
                if let Some(data) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(*t))))
            }
            RequestKind::Stream(s) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            RequestKind::Empty => true,
            RequestKind::Buffered { data, trailers } => data.is_none() && trailers.is_none(),
            RequestKind::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            RequestKind::Empty => SizeHint::with_exact(0),
            RequestKind::Buffered { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            RequestKind::Stream(s) => s.size_hint(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body from the client stack.
    pub struct ResponseBody {
        #[pin]
        kind: ResponseKind,
        // Told about every frame; dropped when the body ends, fails or is dropped.
        observer: Option<Box<dyn BodyObserver>>,
    }
}

/// Watches a response body for telemetry: told about each frame the caller reads, and
/// dropped when the body ends, fails or is dropped (which is when it records).
pub(crate) trait BodyObserver: Send + Sync + 'static {
    /// A frame on its way to the caller.
    fn frame(&mut self, frame: &Frame<Bytes>);
}

/// Two observers of one body, told in order.
struct Both(Box<dyn BodyObserver>, Box<dyn BodyObserver>);

impl BodyObserver for Both {
    fn frame(&mut self, frame: &Frame<Bytes>) {
        self.0.frame(frame);
        self.1.frame(frame);
    }
}

pin_project_lite::pin_project! {
    #[project = ResponseKindProj]
    enum ResponseKind {
        Upstream {
            #[pin]
            body: hyper::body::Incoming,
            endpoint: SocketAddr,
            in_flight: Option<InFlight>,
            // A circuit breaker's slot, released with `in_flight`.
            held: Option<crate::breaker::Permit>,
            // A concurrency limit's slot, released with `in_flight`.
            limit: Option<mesh_core::ratelimit::OwnedPermit>,
        },
        Local {
            data: Option<Bytes>,
        },
    }
}

impl ResponseBody {
    pub(crate) fn upstream(body: hyper::body::Incoming, in_flight: InFlight) -> Self {
        let endpoint = in_flight.addr();
        // An empty body (a 204, a HEAD answer) is over already: release the endpoint now.
        let in_flight = (!body.is_end_stream()).then_some(in_flight);
        Self {
            kind: ResponseKind::Upstream {
                body,
                endpoint,
                in_flight,
                held: None,
                limit: None,
            },
            observer: None,
        }
    }

    /// Has `observer` told about this body's frames and dropped when it ends (after any
    /// observer set before).
    pub(crate) fn observe(&mut self, observer: Box<dyn BodyObserver>) {
        self.observer = Some(match self.observer.take() {
            Some(first) => Box::new(Both(first, observer)),
            None => observer,
        });
    }

    /// Keeps a circuit breaker's slot until the body ends (at once when it has ended).
    pub(crate) fn hold(&mut self, permit: crate::breaker::Permit) {
        if let ResponseKind::Upstream {
            in_flight: Some(_),
            held,
            ..
        } = &mut self.kind
        {
            *held = Some(permit);
        }
    }

    /// Keeps a concurrency limit's slot until the body ends (at once when it has ended, or
    /// when the body is the mesh's own).
    fn hold_limit(&mut self, permit: mesh_core::ratelimit::OwnedPermit) {
        if let ResponseKind::Upstream {
            in_flight: Some(_),
            limit,
            ..
        } = &mut self.kind
        {
            *limit = Some(permit);
        }
    }

    /// A body the mesh writes itself (a local reply).
    pub fn local(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        Self {
            kind: ResponseKind::Local {
                data: (!data.is_empty()).then_some(data),
            },
            observer: None,
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::local(Bytes::new())
    }

    /// The endpoint that answered, when the body comes from upstream.
    pub fn endpoint(&self) -> Option<SocketAddr> {
        match &self.kind {
            ResponseKind::Upstream { endpoint, .. } => Some(*endpoint),
            ResponseKind::Local { .. } => None,
        }
    }
}

impl Default for ResponseBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ResponseKind::Upstream { endpoint, .. } => f
                .debug_struct("ResponseBody::Upstream")
                .field("endpoint", endpoint)
                .finish(),
            ResponseKind::Local { data } => f
                .debug_struct("ResponseBody::Local")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.project();
        let polled = match this.kind.project() {
            ResponseKindProj::Upstream {
                body,
                in_flight,
                held,
                limit,
                ..
            } => {
                let polled = body.poll_frame(cx);
                if let Poll::Ready(None | Some(Err(_))) = &polled {
                    // The stream is over: the endpoint is no longer busy with this request.
                    in_flight.take();
                    held.take();
                    limit.take();
                }
                polled
            }
            ResponseKindProj::Local { data } => {
                Poll::Ready(data.take().map(|d| Ok(Frame::data(d))))
            }
        };
        if let Some(observer) = this.observer {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => observer.frame(frame),
                Poll::Ready(None | Some(Err(_))) => *this.observer = None,
                Poll::Pending => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            ResponseKind::Upstream { body, .. } => body.is_end_stream(),
            ResponseKind::Local { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            ResponseKind::Upstream { body, .. } => body.size_hint(),
            ResponseKind::Local { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

/// The client's concurrency limit keeps its slot in the response body itself, so the stack's
/// response type stays `Response<ResponseBody>`.
impl crate::limit::HoldPermit<http::Response<ResponseBody>> for ResponseBody {
    type Response = http::Response<ResponseBody>;

    fn hold(
        mut response: http::Response<ResponseBody>,
        permit: Option<mesh_core::ratelimit::OwnedPermit>,
    ) -> Self::Response {
        if let Some(permit) = permit {
            response.body_mut().hold_limit(permit);
        }
        response
    }
}
