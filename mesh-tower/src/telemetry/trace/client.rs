//! [`ClientTrace`]: the client span of each call, and the trace context written on it (the
//! request id, headers and cookies of the inbound request are written earlier, by
//! [`MeshClient::send`](crate::client::MeshClient::send), so routes match on them).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use mesh_core::telemetry::propagate::{Parent, choose_parent};
use mesh_core::telemetry::trace_context::inject;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanBuilder, SpanKind};

use super::attributes::{self, s};
use super::tracer::ActiveSpan;
use crate::LocalReply;
use crate::context::RequestContext;
use crate::telemetry::{Telemetry, Upstream};

/// Applies [`ClientTrace`] (one per destination backend of the client stack).
#[derive(Clone, Debug)]
pub struct ClientTraceLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    telemetry: Telemetry,
    upstream: Upstream,
}

impl ClientTraceLayer {
    pub(crate) fn new(telemetry: &Telemetry, upstream: &Upstream) -> Self {
        Self {
            shared: Arc::new(Shared {
                telemetry: telemetry.clone(),
                upstream: upstream.clone(),
            }),
        }
    }
}

impl<S> tower_layer::Layer<S> for ClientTraceLayer {
    type Service = ClientTrace<S>;

    fn layer(&self, inner: S) -> ClientTrace<S> {
        ClientTrace {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Makes the client span of each call and writes its trace context, a child of the request
/// being handled (the current [`RequestContext`](crate::context::RequestContext)).
///
/// The parent is the trace context the application wrote on the request itself, else the
/// inbound request's, else a new trace when tracing is on. Without a span (no tracer) a child
/// of the parent with a fresh span id is written, so the trace goes on.
#[derive(Clone, Debug)]
pub struct ClientTrace<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, B, RB> tower_service::Service<Request<B>> for ClientTrace<S>
where
    S: tower_service::Service<Request<B>, Response = Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ClientTraceFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let shared = &*self.shared;
        let config = shared.telemetry.config();
        let propagated = RequestContext::current_propagated();
        let inbound = propagated.as_ref().and_then(|p| p.trace.as_ref());
        let parent = choose_parent(req.headers(), inbound, config.tracing);
        let (parent_ctx, remote) = match &parent {
            Parent::Headers(c) => (Some(c), true),
            Parent::Inbound(c) => (Some(c), false),
            Parent::NewRoot | Parent::None => (None, false),
        };
        let tracer = &shared.telemetry.shared.tracer;
        let span = if parent != Parent::None && tracer.is_active() {
            tracer.start(
                builder(&req, &shared.upstream),
                parent_ctx,
                remote,
                config.tracing,
            )
        } else {
            None
        };
        match (&span, parent_ctx) {
            (Some(span), _) => inject(span.context(), config.propagation, req.headers_mut()),
            (None, Some(parent)) => inject(
                &parent.child(&mut rand::rng()),
                config.propagation,
                req.headers_mut(),
            ),
            (None, None) => {}
        }
        ClientTraceFuture {
            inner: self.inner.call(req),
            span,
        }
    }
}

/// The client span's name and start attributes.
fn builder<B>(req: &Request<B>, upstream: &Upstream) -> SpanBuilder {
    let method = attributes::method(req.method());
    let port = match upstream.port {
        0 => req.uri().port_u16(),
        p => Some(p),
    };
    // Room for the attributes the response adds, so the span's list does not grow then.
    let mut attrs = Vec::with_capacity(6 + attributes::RESPONSE_ATTRIBUTES);
    attrs.push(KeyValue::new("http.request.method", s(method)));
    attrs.push(KeyValue::new("server.address", upstream.host.clone()));
    if let Some(port) = port {
        attrs.push(KeyValue::new("server.port", i64::from(port)));
    }
    attrs.push(KeyValue::new(
        "url.full",
        attributes::url_full_value(req.uri()),
    ));
    attrs.push(KeyValue::new(
        "network.protocol.version",
        s(attributes::protocol_version(req.version())),
    ));
    if let Some(subset) = &upstream.subset {
        attrs.push(KeyValue::new("mesh.upstream.subset", subset.clone()));
    }
    SpanBuilder::from_name(method)
        .with_kind(SpanKind::Client)
        .with_attributes(attrs)
}

pin_project_lite::pin_project! {
    /// The response future of [`ClientTrace`]: ends the client span with the response head.
    pub struct ClientTraceFuture<F> {
        #[pin]
        inner: F,
        span: Option<ActiveSpan>,
    }
}

impl<F, RB, E> Future for ClientTraceFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        if let Some(mut span) = this.span.take() {
            match &out {
                Ok(res) => {
                    let flag = res
                        .extensions()
                        .get::<LocalReply>()
                        .map(|r| r.error.response_flag());
                    attributes::record_response(&mut span, res.status(), false, flag);
                }
                Err(_) => attributes::record_failure(&mut span),
            }
            span.end();
        }
        Poll::Ready(out)
    }
}
