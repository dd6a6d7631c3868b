//! [`ServerTrace`]: the server span, the inbound trace context, `x-request-id`, and what the
//! handler's outbound calls carry.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use mesh_core::telemetry::propagate::{self, Propagated};
use mesh_core::telemetry::request_id::ensure_request_id;
use mesh_core::telemetry::trace_context::{Extracted, TraceContext, extract_any};
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanBuilder, SpanKind};

use super::attributes::{self, Memo, s};
use super::tracer::ActiveSpan;
use super::{Captured, Names};
use crate::server::Peer;
use crate::telemetry::Telemetry;

/// Applies [`ServerTrace`] (the outermost layer of the server stack).
///
/// ```
/// use mesh_tower::telemetry::{ServerTraceLayer, Telemetry};
///
/// let layer = ServerTraceLayer::new(&Telemetry::default());
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
pub struct ServerTraceLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    telemetry: Telemetry,
    names: Names,
}

impl ServerTraceLayer {
    /// The layer reporting to `telemetry` (spans name the service by their resource).
    pub fn new(telemetry: &Telemetry) -> Self {
        Self {
            shared: Arc::new(Shared {
                names: Names::of(telemetry.config()),
                telemetry: telemetry.clone(),
            }),
        }
    }
}

impl<S> tower_layer::Layer<S> for ServerTraceLayer {
    type Service = ServerTrace<S>;

    fn layer(&self, inner: S) -> ServerTrace<S> {
        ServerTrace {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Reads the trace context, makes the server span (ended when the response head is
/// produced) and gives the request an `x-request-id`; hands the context, the request id and
/// the configured headers and cookies to the handler's
/// [`RequestContext`](crate::context::RequestContext) (through
/// [`ContextLayer`](crate::server::ContextLayer), which must run inside this layer).
#[derive(Clone, Debug)]
pub struct ServerTrace<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, B, RB> tower_service::Service<Request<B>> for ServerTrace<S>
where
    S: tower_service::Service<Request<B>, Response = Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ServerTraceFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let shared = &*self.shared;
        let config = shared.telemetry.config();
        let mut rng = rand::rng();
        let request_id = if config.generate_request_id {
            Some(ensure_request_id(req.headers_mut(), &mut rng))
        } else {
            propagate::request_id(req.headers())
        };
        // The parent, or whether to start a trace; an unsampled B3 decision without ids
        // starts an unsampled trace no span records.
        let (parent, root, unsampled_root) = match extract_any(req.headers()) {
            Extracted::Context(ctx) => (Some(ctx), false, None),
            Extracted::SamplingOnly(s) if s.debug || s.sampled == Some(true) => (None, true, None),
            Extracted::SamplingOnly(_) => {
                (None, false, Some(TraceContext::new_root(&mut rng, false)))
            }
            Extracted::None => (None, config.tracing, None),
        };
        let tracer = &shared.telemetry.shared.tracer;
        let span = if (parent.is_some() || root) && tracer.is_active() {
            tracer.start(
                builder(&req, request_id.as_ref()),
                parent.as_ref(),
                true,
                config.tracing,
            )
        } else {
            None
        };
        let trace = match &span {
            Some(span) => Some(span.context().clone()),
            None => parent.or(unsampled_root),
        };
        let propagated = Propagated::capture(
            req.headers(),
            trace,
            request_id,
            &shared.names.headers,
            &shared.names.cookies,
        );
        if !propagated.is_empty() {
            req.extensions_mut().insert(Captured(Arc::new(propagated)));
        }
        ServerTraceFuture {
            inner: self.inner.call(req),
            span,
        }
    }
}

/// The server span's name and start attributes.
fn builder<B>(req: &Request<B>, request_id: Option<&http::HeaderValue>) -> SpanBuilder {
    let method = attributes::method(req.method());
    let peer = req.extensions().get::<Peer>();
    let tls = peer.is_some_and(|p| p.tls);
    // Room for the attributes the response adds, so the span's list does not grow then.
    let mut attrs = Vec::with_capacity(10 + attributes::RESPONSE_ATTRIBUTES);
    attrs.push(KeyValue::new("http.request.method", s(method)));
    attrs.push(KeyValue::new(
        "url.path",
        attributes::remembered(Memo::Path, req.uri().path()),
    ));
    attrs.push(KeyValue::new(
        "url.scheme",
        s(match req.uri().scheme_str() {
            Some("https") => "https",
            Some(_) => "http",
            None if tls => "https",
            None => "http",
        }),
    ));
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let parsed;
    let (address, port) = match host.and_then(attributes::plain_host_port) {
        Some((address, port)) => (Some(address), port),
        None => {
            parsed = host.and_then(|h| h.parse::<http::uri::Authority>().ok());
            match parsed.as_ref().or_else(|| req.uri().authority()) {
                Some(a) => (Some(a.host()), a.port_u16()),
                None => (None, None),
            }
        }
    };
    if let Some(address) = address {
        attrs.push(KeyValue::new(
            "server.address",
            attributes::remembered(Memo::ServerAddress, address),
        ));
    }
    if let Some(port) = port.or_else(|| peer.map(|p| p.local.port())) {
        attrs.push(KeyValue::new("server.port", i64::from(port)));
    }
    attrs.push(KeyValue::new(
        "network.protocol.version",
        s(attributes::protocol_version(req.version())),
    ));
    if let Some(peer) = peer {
        attrs.push(KeyValue::new(
            "client.address",
            attributes::client_address(peer.addr.ip()),
        ));
    }
    attrs.extend(attributes::user_agent(req.headers()));
    if let Some(id) = request_id.and_then(|v| v.to_str().ok()) {
        attrs.push(KeyValue::new("guid:x-request-id", id.to_owned()));
    }
    SpanBuilder::from_name(method)
        .with_kind(SpanKind::Server)
        .with_attributes(attrs)
}

pin_project_lite::pin_project! {
    /// The response future of [`ServerTrace`]: ends the server span with the response head.
    pub struct ServerTraceFuture<F> {
        #[pin]
        inner: F,
        span: Option<ActiveSpan>,
    }
}

impl<F, RB, E> Future for ServerTraceFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        if let Some(mut span) = this.span.take() {
            match &out {
                Ok(res) => attributes::record_response(&mut span, res.status(), true, None),
                Err(_) => attributes::record_failure(&mut span),
            }
            span.end();
        }
        Poll::Ready(out)
    }
}
