//! The client side: `reporter="source"` metrics of each call of a leg, the own peer
//! metadata sent, the callee's read and stripped, the client access log.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use mesh_core::telemetry::PEER_METADATA_NAME;

use super::call::{Call, State};
use super::labels;
use super::series::{Series, Side};
use crate::body::ResponseBody;
use crate::error::LocalReply;
use crate::telemetry::{Telemetry, Upstream};

/// Applies [`ClientMetrics`] (one per destination backend of the client stack).
#[derive(Clone, Debug)]
pub struct ClientMetricsLayer {
    /// None when there is nothing to record.
    state: Option<Arc<State>>,
}

impl ClientMetricsLayer {
    /// The layer of calls to `upstream` over plaintext or TLS without the workload's
    /// identity.
    pub(crate) fn new(telemetry: &Telemetry, upstream: &Upstream) -> Self {
        Self::build(telemetry, upstream, false)
    }

    /// The layer of calls to `upstream`; `mutual_tls` when its connections present the
    /// workload's identity (ISTIO_MUTUAL): then `source_principal` is the own SPIFFE ID and
    /// `destination_principal` the callee's as its metadata says (the handshake checked it).
    pub(crate) fn secured(telemetry: &Telemetry, upstream: &Upstream, mutual_tls: bool) -> Self {
        Self::build(telemetry, upstream, mutual_tls)
    }

    fn build(telemetry: &Telemetry, upstream: &Upstream, mutual_tls: bool) -> Self {
        let shared = &telemetry.shared;
        let series = shared.config.metrics.then(|| {
            Series::new(
                labels::client_base(&shared.workload, &upstream.host, mutual_tls),
                Side::Client { mutual_tls },
            )
        });
        if series.is_none() && shared.client_log.is_none() {
            return Self { state: None };
        }
        let cluster = format!(
            "outbound|{}|{}|{}",
            upstream.port,
            upstream.subset.as_deref().unwrap_or(""),
            upstream.host
        );
        Self {
            state: Some(Arc::new(State {
                series,
                log: shared.client_log.clone(),
                encoded: shared.encoded.clone(),
                cluster: cluster.into(),
            })),
        }
    }
}

impl<S> tower_layer::Layer<S> for ClientMetricsLayer {
    type Service = ClientMetrics<S>;

    fn layer(&self, inner: S) -> ClientMetrics<S> {
        ClientMetrics {
            inner,
            state: self.state.clone(),
        }
    }
}

/// Records the `reporter="source"` metrics and the access-log line of each call; sends the
/// own peer metadata (replacing any the application set) and strips the callee's from the
/// response.
#[derive(Clone, Debug)]
pub struct ClientMetrics<S> {
    inner: S,
    pub(super) state: Option<Arc<State>>,
}

impl<S, B> tower_service::Service<Request<B>> for ClientMetrics<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResponseBody>>,
    B: http_body::Body,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = ClientMetricsFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let call = self.state.as_ref().map(|state| {
            if state.series.is_some() {
                req.headers_mut()
                    .insert(PEER_METADATA_NAME.clone(), state.encoded.clone());
            }
            // The body's exact size when known, else the lower bound of its size hint.
            let hint = req.body().size_hint();
            let body = hint.exact().unwrap_or(hint.lower());
            Box::new(Call::start(state, &req, body))
        });
        ClientMetricsFuture {
            inner: self.inner.call(req),
            call,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ClientMetrics`].
    pub struct ClientMetricsFuture<F> {
        #[pin]
        inner: F,
        call: Option<Box<Call>>,
    }
}

impl<F, E> Future for ClientMetricsFuture<F>
where
    F: Future<Output = Result<Response<ResponseBody>, E>>,
{
    type Output = Result<Response<ResponseBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(mut call) = this.call.take() {
            call.peer(response.headers_mut().remove(&PEER_METADATA_NAME));
            let reply = response.extensions().get::<LocalReply>();
            let local = reply.map(|r| {
                (
                    r.error.response_flag(),
                    labels::client_reply_details(&r.error),
                )
            });
            let endpoint = response
                .body()
                .endpoint()
                .or_else(|| reply.and_then(|r| r.error.endpoint()));
            let local = local.map(|(flag, details)| (if flag == "-" { "" } else { flag }, details));
            call.respond(response.status(), response.headers(), local, endpoint);
            response.body_mut().observe(call);
        }
        Poll::Ready(Ok(response))
    }
}
