//! The server side: `reporter="destination"` metrics of each request, the caller's peer
//! metadata read and stripped, the own sent back to mesh callers, the server access log.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use mesh_core::telemetry::PEER_METADATA_NAME;
use mesh_core::telemetry::labels::SecurityPolicy;

use super::call::{Call, State};
use super::labels;
use super::series::{Series, Side};
use crate::server::{Peer, ServerReply};
use crate::telemetry::Telemetry;

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
    /// None when there is nothing to record.
    state: Option<Arc<State>>,
}

impl ServerMetricsLayer {
    /// The layer of the server called `name` (Istio's labels name the workload, not the
    /// server, so `name` is not a label).
    pub fn new(telemetry: &Telemetry, name: impl Into<Arc<str>>) -> Self {
        let _ = name.into();
        let shared = &telemetry.shared;
        let series = shared.config.metrics.then(|| {
            Series::new(
                labels::server_base(&shared.workload, &shared.service_host),
                Side::Server {
                    own_principal: shared.workload.principal.clone(),
                },
            )
        });
        let state = (series.is_some() || shared.server_log.is_some()).then(|| {
            Arc::new(State {
                series,
                log: shared.server_log.clone(),
                encoded: shared.encoded.clone(),
                cluster: "inbound|".into(),
            })
        });
        Self { state }
    }
}

impl<S> tower_layer::Layer<S> for ServerMetricsLayer {
    type Service = ServerMetrics<S>;

    fn layer(&self, inner: S) -> ServerMetrics<S> {
        ServerMetrics {
            inner,
            state: self.state.clone(),
        }
    }
}

/// Records the `reporter="destination"` metrics and the access-log line of each request
/// (local replies included); strips the caller's peer metadata before the application sees
/// the request and answers a mesh caller with the own.
#[derive(Clone, Debug)]
pub struct ServerMetrics<S> {
    inner: S,
    state: Option<Arc<State>>,
}

impl<S, B, RB> tower_service::Service<Request<B>> for ServerMetrics<S>
where
    S: tower_service::Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<ServerMetricsBody<RB>>;
    type Error = S::Error;
    type Future = ServerMetricsFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Mesh-internal: never shown to the application, recorded or not.
        let peer = req.headers_mut().remove(&PEER_METADATA_NAME);
        let call = self.state.as_ref().map(|state| {
            // The body's size as `content-length` says (0 for a stream without one).
            let body = req
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0);
            let mut call = Call::start(state, &req, body);
            match req.extensions().get::<Peer>() {
                Some(p) => {
                    let policy = if p.identity.is_some() {
                        SecurityPolicy::MutualTls
                    } else {
                        SecurityPolicy::None
                    };
                    call.connection(p.identity.clone(), policy, Some(p.local), Some(p.addr));
                }
                None => call.connection(None, SecurityPolicy::Unknown, None, None),
            }
            let answer = peer.is_some() && state.series.is_some();
            call.peer(peer);
            (Box::new(call), answer)
        });
        ServerMetricsFuture {
            inner: self.inner.call(req),
            call,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`ServerMetrics`].
    pub struct ServerMetricsFuture<F> {
        #[pin]
        inner: F,
        // The call, and whether to answer with the own peer metadata.
        call: Option<(Box<Call>, bool)>,
    }
}

impl<F, RB, E> Future for ServerMetricsFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<ServerMetricsBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        let call = this.call.take().map(|(mut call, answer)| {
            if answer {
                response
                    .headers_mut()
                    .insert(PEER_METADATA_NAME.clone(), call.encoded().clone());
            }
            let local = response.extensions().get::<ServerReply>().map(|r| {
                (
                    labels::server_reply_flag(&r.error),
                    labels::server_reply_details(&r.error),
                )
            });
            call.respond(response.status(), response.headers(), local, None);
            call
        });
        Poll::Ready(Ok(response.map(|inner| ServerMetricsBody { inner, call })))
    }
}

pin_project_lite::pin_project! {
    /// A response body of the server stack, followed until it ends for the metrics and the
    /// access log.
    pub struct ServerMetricsBody<B> {
        #[pin]
        inner: B,
        call: Option<Box<Call>>,
    }
}

impl<B> ServerMetricsBody<B> {
    /// The body inside.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B> std::fmt::Debug for ServerMetricsBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerMetricsBody")
            .field("followed", &self.call.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> Body for ServerMetricsBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Some(call) = this.call {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => call.frame(frame),
                Poll::Ready(None | Some(Err(_))) => *this.call = None,
                Poll::Pending => {}
            }
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
