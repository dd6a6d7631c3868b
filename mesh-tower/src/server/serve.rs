//! [`MeshServer`]: accepts connections, serves the stack on HTTP/1.1 and h2c, shuts down
//! gracefully.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::server::conn::auto;
use mesh_core::config::{MeshConfig, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower_layer::Layer;

use super::drain::{Phase, Shutdown, connection};
use super::{DEFAULT_NAME, Peer, ServerBuildError, ServerLayer, ServerPolicy};
use crate::BoxError;
use crate::telemetry::Telemetry;
use crate::tls::{Identity, ServerIo, TlsAcceptor};

/// How long accepting pauses after an error that is not about one connection (such as
/// running out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a new connection may take to say whether it speaks TLS and to finish its
/// handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The mesh server: the server stack around an application, on one listener, with graceful
/// shutdown (see the [module documentation](super) for what happens when).
///
/// ```no_run
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use mesh_core::config::ServerConfig;
/// use mesh_tower::server::MeshServer;
///
/// # async fn run() -> std::io::Result<()> {
/// let app = tower::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
///     Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("hello"))))
/// });
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:9080").await?;
/// let shutdown = async {
///     let _ = tokio::signal::ctrl_c().await;
/// };
/// MeshServer::new(ServerConfig::default())
///     .name("reviews")
///     .serve(listener, app, shutdown)
///     .await
///     .expect("a server without TLS or policies always starts");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct MeshServer {
    config: ServerConfig,
    name: Arc<str>,
    identity: Option<Identity>,
    telemetry: Telemetry,
    /// The security policy, built on first use and shared by clones, layers and `serve`.
    policy: Arc<Mutex<Option<ServerPolicy>>>,
}

impl MeshServer {
    /// A server with `config`, named `inbound`, without a workload identity (so plaintext
    /// only, unless [`MeshServer::identity`] gives it one).
    pub fn new(config: ServerConfig) -> Self {
        Self {
            config,
            name: Arc::from(DEFAULT_NAME),
            identity: None,
            telemetry: Telemetry::default(),
            policy: Arc::default(),
        }
    }

    /// The server of a workload's whole configuration: [`MeshConfig::inbound`] (the server
    /// settings with the security documents that apply to the workload), named after the
    /// workload's service, with the workload's certificates when the configuration names
    /// them (reloaded when the files change; call inside a tokio runtime), reporting with
    /// [`Telemetry::from_config`].
    pub fn from_config(config: &MeshConfig) -> Result<Self, ServerBuildError> {
        let mut server = Self::new(config.inbound())
            .name(config.workload.service.clone())
            .telemetry(Telemetry::from_config(config)?);
        if let Some(files) = &config.security.certificates {
            server.identity = Some(Identity::from_files(files)?);
        }
        Ok(server)
    }

    /// The workload identity presented to callers and whose trust bundle verifies them;
    /// share one with the workload's `MeshClient`.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        // A policy taken before does not know the identity: this server gets its own.
        self.policy = Arc::default();
        self
    }

    /// Reports with `telemetry` ([`Telemetry::default`] otherwise); share one with the
    /// workload's `MeshClient`.
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// The name its metrics carry (`name` label), such as the service's.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Its settings, as it was built (a [`ServerPolicy::reload`] does not change them).
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The handle that swaps its security policy while it serves: the JWT rules, the
    /// authorization policies and the listener's mTLS mode (see [`ServerPolicy`]). Built
    /// from the config on the first call (failing as [`MeshServer::layer`] does), then
    /// shared by this server, its clones, its layers and [`MeshServer::serve`]; take it
    /// after [`MeshServer::identity`], which gives the server a policy of its own.
    ///
    /// ```no_run
    /// # use mesh_core::config::MeshConfig;
    /// # use mesh_tower::MeshServer;
    /// # async fn run(config: MeshConfig, edited: MeshConfig) -> Result<(), Box<dyn std::error::Error>> {
    /// let server = MeshServer::from_config(&config)?;
    /// let policy = server.policy()?;
    /// let listener = tokio::net::TcpListener::bind("0.0.0.0:9080").await?;
    /// let app = tower::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hello")))
    /// });
    /// tokio::spawn(server.serve(listener, app, std::future::pending()));
    /// // Later, with the workload's documents edited: applies to the next request, or
    /// // changes nothing and says why.
    /// policy.reload(&edited.inbound())?;
    /// # Ok(()) }
    /// ```
    pub fn policy(&self) -> Result<ServerPolicy, ServerBuildError> {
        let mut slot = self.policy.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(policy) = &*slot {
            return Ok(policy.clone());
        }
        let policy = ServerPolicy::new(&self.config.security, self.identity.clone())?;
        *slot = Some(policy.clone());
        Ok(policy)
    }

    /// The server stack as one layer, for a server of your own; each call makes new limits,
    /// and all share the server's [`policy`](MeshServer::policy).
    pub fn layer(&self) -> Result<ServerLayer, ServerBuildError> {
        Ok(
            ServerLayer::with_policy(self.name.clone(), &self.config, self.policy()?)
                .telemetry(&self.telemetry),
        )
    }

    /// Serves `app` on `listener` until `shutdown` resolves, then shuts down gracefully;
    /// resolves once every connection is gone.
    ///
    /// `app` is any cloneable `tower::Service` of `http::Request<hyper::body::Incoming>`,
    /// typically an axum `Router`; each connection gets a clone. Its errors become 500
    /// answers. Fails at once, before serving, when the security settings cannot be used
    /// (STRICT mTLS without an identity, an unusable JWT rule or policy).
    pub async fn serve<S, B>(
        self,
        listener: TcpListener,
        app: S,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServerBuildError>
    where
        S: tower_service::Service<Request<Incoming>, Response = Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Into<Bytes> + Send,
        B::Error: Into<BoxError>,
    {
        let stack = self.layer()?.layer(app);
        let local = listener.local_addr().map_err(ServerBuildError::Listener)?;
        // Swapped when a reload changes the port's mTLS mode.
        let acceptors = self
            .policy()?
            .listen(local.port(), vec![b"h2".to_vec(), b"http/1.1".to_vec()])?;
        let state = Arc::new(Shutdown::new());
        let builder = Arc::new(auto::Builder::new(state.executor()));
        let mut connections = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, addr)) => {
                        let _ = stream.set_nodelay(true);
                        let gauge = Gauge::open(&self.name);
                        let (builder, stack, state) = (builder.clone(), stack.clone(), state.clone());
                        // The mode in force now decides this connection, for its life.
                        let acceptor = acceptors.load_full();
                        connections.spawn(async move {
                            if let Some((io, peer)) = handshake(&acceptor, stream, addr, local).await {
                                connection(builder, io, peer, stack, state).await;
                            }
                            drop(gauge);
                        });
                    }
                    Err(e) if is_per_connection(&e) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed; pausing");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        // New connections are refused from now on.
        drop(listener);
        self.drain(&state, &mut connections).await;
        Ok(())
    }

    /// Walks the shutdown phases until every connection is gone.
    async fn drain(&self, state: &Shutdown, connections: &mut JoinSet<()>) {
        let ShutdownTimes { drain, grace } = ShutdownTimes::of(&self.config);
        let start = Instant::now();
        tracing::debug!(name = %self.name, connections = connections.len(), "shutting down");
        state.enter(if drain.is_zero() {
            Phase::Closing
        } else {
            Phase::Draining
        });
        let drain_end = tokio::time::sleep_until(start + drain);
        let grace_end = tokio::time::sleep_until(start + grace);
        let (mut drain_end, mut grace_end) = (std::pin::pin!(drain_end), std::pin::pin!(grace_end));
        let mut draining = !drain.is_zero();
        loop {
            tokio::select! {
                biased;
                next = connections.join_next() => {
                    if next.is_none() {
                        return;
                    }
                }
                () = &mut drain_end, if draining => {
                    draining = false;
                    state.enter(Phase::Closing);
                }
                () = &mut grace_end => {
                    tracing::debug!(name = %self.name, left = connections.len(), "grace period over");
                    state.enter(Phase::Cut);
                    connections.shutdown().await;
                    return;
                }
            }
        }
    }
}

/// Runs the TLS handshake the peer-authentication mode asks for (none for plaintext), within
/// [`HANDSHAKE_TIMEOUT`]; a failed one is logged and the connection dropped.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    addr: SocketAddr,
    local: SocketAddr,
) -> Option<(ServerIo, Peer)> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(accepted)) => Some((
            accepted.io,
            Peer {
                addr,
                local,
                identity: accepted.identity,
                tls: accepted.tls,
            },
        )),
        Ok(Err(e)) => {
            tracing::debug!(peer = %addr, error = %e, "connection refused");
            None
        }
        Err(_) => {
            tracing::debug!(peer = %addr, "TLS handshake timed out");
            None
        }
    }
}

/// The drain and grace periods, the drain at most the grace.
struct ShutdownTimes {
    drain: Duration,
    grace: Duration,
}

impl ShutdownTimes {
    fn of(config: &ServerConfig) -> Self {
        let grace = config.shutdown.grace;
        Self {
            drain: config.shutdown.drain.min(grace),
            grace,
        }
    }
}

/// Errors of `accept` that concern one connection only (it was reset before it was
/// accepted); the next `accept` works.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// One open connection in `mesh_server_connections{name}`, for as long as it lives.
struct Gauge {
    name: Arc<str>,
}

impl Gauge {
    fn open(name: &Arc<str>) -> Self {
        metrics::gauge!("mesh_server_connections", "name" => name.clone()).increment(1.0);
        Self { name: name.clone() }
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        metrics::gauge!("mesh_server_connections", "name" => self.name.clone()).decrement(1.0);
    }
}
