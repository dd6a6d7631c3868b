//! One endpoint: its connection pool (hyper-util, HTTP/1.1 or HTTP/2), its live statistics,
//! and the guard that counts a request in flight until its response ends.
//!
//! The pool follows Istio's `connectionPool.http` settings: an idle connection is closed after
//! `idleTimeout` (Istio's default, 1 hour, when unset or zero), and with
//! `maxRequestsPerConnection` a connection is retired after that many requests
//! (see [`crate::conn_limit`]). A connection idle past the timeout is never handed out again;
//! the pool sweeps its idle connections once per timeout, so one left alone is closed between
//! one and two timeouts after its last request ended.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use mesh_core::balance::EndpointStats;
use mesh_core::config::{LoadBalancer, Protocol, TrafficPolicy};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::{RequestBody, ResponseBody};
use crate::clock::Clock;
use crate::conn_limit::{CountedIo, UseTracker};
use crate::error::MeshError;
use crate::tls::{HandshakeError, TlsConnector};
use crate::transport::ClientStream;

/// How long an idle pooled connection is kept when `idleTimeout` is unset: Istio's default.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// How connections to an endpoint are secured: the connector and the server name (SNI) sent.
#[derive(Clone, Debug)]
pub(crate) struct EndpointTls {
    pub(crate) connector: TlsConnector,
    pub(crate) server_name: Arc<str>,
}

/// How connections to an endpoint are made and pooled.
#[derive(Clone, Debug)]
pub(crate) struct EndpointSettings {
    pub(crate) protocol: Protocol,
    pub(crate) connect_timeout: Duration,
    /// How long a connection may sit idle in the pool before it is closed.
    pub(crate) idle_timeout: Duration,
    /// Requests one connection carries before it is retired; `None` is no limit.
    pub(crate) max_requests_per_connection: Option<NonZeroU32>,
    /// TLS, when connections are secured; `None` is plaintext.
    pub(crate) tls: Option<EndpointTls>,
    /// Whether response times are observed: only a peak-EWMA balancer reads them.
    pub(crate) track_rtt: bool,
}

impl EndpointSettings {
    /// The settings of `policy`: its protocol, its connect timeout and its
    /// `connectionPool.http` `idleTimeout` (zero or unset: 1 hour) and
    /// `maxRequestsPerConnection` (zero or unset: no limit); TLS by `tls`.
    pub(crate) fn from_policy(policy: &TrafficPolicy, tls: Option<EndpointTls>) -> Self {
        let pool = &policy.connection_pool;
        Self {
            protocol: policy.protocol,
            connect_timeout: policy.connect_timeout,
            idle_timeout: pool
                .idle_timeout
                .filter(|t| !t.is_zero())
                .unwrap_or(DEFAULT_IDLE_TIMEOUT),
            max_requests_per_connection: pool.max_requests_per_connection.and_then(NonZeroU32::new),
            tls,
            track_rtt: matches!(policy.load_balancer, LoadBalancer::PeakEwma(_)),
        }
    }
}

/// An endpoint with its own connection pool and statistics.
pub(crate) struct EndpointClient {
    addr: SocketAddr,
    pub(crate) stats: EndpointStats,
    /// Built on the first request: a discovery answer with thousands of endpoints then
    /// costs no pools for endpoints never picked, and applies in a fraction of the time.
    client: OnceLock<Client<Connector, RequestBody>>,
    settings: EndpointSettings,
    max_requests_per_connection: Option<NonZeroU32>,
}

impl fmt::Debug for EndpointClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointClient")
            .field("addr", &self.addr)
            .field("stats", &self.stats)
            .finish()
    }
}

impl EndpointClient {
    pub(crate) fn new(addr: SocketAddr, stats: EndpointStats, settings: EndpointSettings) -> Self {
        Self {
            addr,
            stats,
            client: OnceLock::new(),
            max_requests_per_connection: settings.max_requests_per_connection,
            settings,
        }
    }

    /// The endpoint's pooled client, built now if this is its first request.
    fn client(&self) -> &Client<Connector, RequestBody> {
        self.client.get_or_init(|| {
            let settings = &self.settings;
            let mut builder = Client::builder(TokioExecutor::new());
            builder
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .pool_idle_timeout(settings.idle_timeout)
                .http2_only(settings.protocol == Protocol::Http2);
            builder.build(Connector {
                addr: self.addr,
                timeout: settings.connect_timeout,
                counted: settings.max_requests_per_connection.is_some(),
                tls: settings.tls.clone(),
            })
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one request to this endpoint; the request keeps its logical URI (and so its
    /// `Host` / `:authority`), the connection goes to this endpoint's address.
    pub(crate) fn call(
        self: &Arc<Self>,
        mut req: Request<RequestBody>,
        clock: Clock,
    ) -> EndpointFuture {
        self.stats.on_start();
        let uses = self
            .max_requests_per_connection
            .map(|limit| UseTracker::attach(&mut req, limit));
        EndpointFuture {
            inner: self.client().request(req),
            uses,
            in_flight: Some(InFlight {
                endpoint: self.clone(),
            }),
            started: crate::clock::now(),
            clock,
        }
    }
}

/// Counts one request in flight on an endpoint until dropped.
pub(crate) struct InFlight {
    endpoint: Arc<EndpointClient>,
}

impl InFlight {
    pub(crate) fn addr(&self) -> SocketAddr {
        self.endpoint.addr
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.endpoint.stats.on_end();
    }
}

pin_project_lite::pin_project! {
    /// The response future of one try on one endpoint.
    pub struct EndpointFuture {
        #[pin]
        inner: hyper_util::client::legacy::ResponseFuture,
        // Counts the request on its connection, when connections carry a limited number.
        uses: Option<UseTracker>,
        in_flight: Option<InFlight>,
        started: Instant,
        clock: Clock,
    }
}

impl Future for EndpointFuture {
    type Output = Result<Response<ResponseBody>, MeshError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = this.inner.poll(cx);
        if this.uses.as_ref().is_some_and(UseTracker::try_count) {
            *this.uses = None;
        }
        let result = ready!(result);
        let Some(in_flight) = this.in_flight.take() else {
            return Poll::Pending;
        };
        let endpoint = &in_flight.endpoint;
        let stats = &endpoint.stats;
        match result {
            Ok(response) => {
                stats.on_connect_success();
                if endpoint.settings.track_rtt {
                    let instant = Instant::now();
                    stats.observe_rtt(
                        this.clock.at(instant),
                        instant.saturating_duration_since(*this.started),
                    );
                }
                Poll::Ready(Ok(response.map(|b| ResponseBody::upstream(b, in_flight))))
            }
            Err(err) => {
                let err = MeshError::from_client(in_flight.addr(), err);
                if matches!(err, MeshError::Connect { .. }) {
                    stats.on_connect_failure(this.clock.now());
                }
                tracing::debug!(endpoint = %in_flight.addr(), error = %err, "try failed");
                Poll::Ready(Err(err))
            }
        }
    }
}

/// Connects to one fixed address, whatever the request's URI says.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    addr: SocketAddr,
    timeout: Duration,
    /// Whether connections carry a use counter (`maxRequestsPerConnection`).
    counted: bool,
    tls: Option<EndpointTls>,
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The connect did not finish in time.
    #[error("connect to {addr} timed out after {timeout:?}")]
    Timeout {
        /// The endpoint.
        addr: SocketAddr,
        /// The connect timeout.
        timeout: Duration,
    },
    /// The connect failed (refused, unreachable...).
    #[error("connect to {addr}: {source}")]
    Io {
        /// The endpoint.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed; the error says why (expired, unknown CA, wrong identity...).
    #[error("connect to {addr}: {source}")]
    Tls {
        /// The endpoint.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: HandshakeError,
    },
}

type ConnectFuture =
    Pin<Box<dyn Future<Output = Result<CountedIo, ConnectError>> + Send + 'static>>;

impl tower_service::Service<Uri> for Connector {
    type Response = CountedIo;
    type Error = ConnectError;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let (addr, timeout, counted) = (self.addr, self.timeout, self.counted);
        let tls = self.tls.clone();
        Box::pin(async move {
            // The connect timeout bounds the TCP connect and the TLS handshake together.
            let connect = async {
                let stream = TcpStream::connect(addr)
                    .await
                    .map_err(|source| ConnectError::Io { addr, source })?;
                stream
                    .set_nodelay(true)
                    .map_err(|source| ConnectError::Io { addr, source })?;
                let stream = match tls {
                    None => ClientStream::Plain(stream),
                    Some(tls) => ClientStream::Tls(Box::new(
                        tls.connector
                            .connect(&tls.server_name, stream)
                            .await
                            .map_err(|source| ConnectError::Tls { addr, source })?,
                    )),
                };
                Ok(CountedIo::new(stream, counted))
            };
            tokio::time::timeout(timeout, connect)
                .await
                .map_err(|_| ConnectError::Timeout { addr, timeout })?
        })
    }
}
