//! The mesh client: one `tower::Service<http::Request<B>>` that sends each request to the
//! destination its authority names, through that destination's stack.
//!
//! Each destination (a qualified host and port) gets, on its first request, a stack of
//! [local reply](crate::local_reply) → [request timeout](crate::timeout) →
//! [retry](crate::retry) → [per-try timeout](crate::timeout) → [balance](crate::balance)
//! over the endpoints discovery publishes, configured by the first matching
//! [`DestinationConfig`] or the config's defaults.
//!
//! ```no_run
//! use http_body_util::Empty;
//! use bytes::Bytes;
//! use mesh_tower::MeshClient;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = MeshClient::from_env()?;
//! let req = http::Request::get("http://reviews:9080/reviews/0").body(Empty::<Bytes>::new())?;
//! let res = client.request(req).await?;
//! println!("{}", res.status());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri, header};
use http_body::Body;
use mesh_core::config::{DestinationConfig, MeshConfig, TrafficPolicy};
use mesh_core::name::{NameError, Target, qualify};
use mesh_core::{ConfigError, EndpointSet};
use mesh_dns::{Discover, DnsDiscovery, EndpointWatch, fixed_endpoints};
use tower::ServiceBuilder;

use crate::BoxError;
use crate::balance::Balance;
use crate::body::{RequestBody, ResponseBody};
use crate::error::MeshError;
use crate::local_reply::{LocalReplyFuture, LocalReplyLayer, LocalReplyService, local_reply};
use crate::retry::{Retry, RetryLayer};
use crate::timeout::{Timeout, TimeoutLayer};

type Stack = LocalReplyService<Timeout<Retry<Timeout<Balance>>>>;

/// Why a [`MeshClient`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A configured destination's host is not a valid name.
    #[error("destinations[{index}].host: {source}")]
    Destination {
        /// The destination's index in the config.
        index: usize,
        /// What is wrong with the host.
        #[source]
        source: NameError,
    },
    /// The DNS resolver could not be set up.
    #[error("discovery: {0}")]
    Discovery(#[source] BoxError),
}

/// Builds a [`MeshClient`].
#[derive(Default)]
pub struct MeshClientBuilder {
    config: Option<MeshConfig>,
    discover: Option<Arc<dyn Discover>>,
}

impl fmt::Debug for MeshClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshClientBuilder")
            .field("config", &self.config)
            .field("custom_discovery", &self.discover.is_some())
            .finish()
    }
}

impl MeshClientBuilder {
    /// Uses `config` (the default config otherwise).
    pub fn config(mut self, config: MeshConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Discovers endpoints with `discover` instead of DNS.
    pub fn discovery(mut self, discover: impl Discover) -> Self {
        self.discover = Some(Arc::new(discover));
        self
    }

    /// Validates the config and builds the client.
    pub fn build(self) -> Result<MeshClient, BuildError> {
        let config = self.config.unwrap_or_default();
        config.validate()?;
        let discover = match self.discover {
            Some(d) => d,
            None => Arc::new(
                DnsDiscovery::new(&config.discovery)
                    .map_err(|e| BuildError::Discovery(e.into()))?,
            ),
        };
        let workload = &config.workload;
        let routes = config
            .destinations
            .iter()
            .enumerate()
            .map(|(index, dest)| {
                let target = qualify(
                    &dest.host,
                    dest.port.unwrap_or(80),
                    &workload.namespace,
                    &workload.cluster_domain,
                )
                .map_err(|source| BuildError::Destination { index, source })?;
                Ok(Route {
                    target,
                    port: dest.port,
                    config: dest.clone(),
                })
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        Ok(MeshClient {
            inner: Arc::new(Inner {
                config,
                discover,
                routes,
                by_authority: ArcSwap::default(),
                by_target: Mutex::default(),
            }),
        })
    }
}

/// A mesh client: discovery, balancing, timeouts and retries for every destination.
///
/// Cheap to clone; clones share destinations, connection pools and retry budgets.
/// It never fails: errors become local replies (see [`crate::local_reply`]).
#[derive(Clone)]
pub struct MeshClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: MeshConfig,
    discover: Arc<dyn Discover>,
    routes: Vec<Route>,
    /// Destinations by the authority callers wrote; read on every request without a lock.
    by_authority: ArcSwap<HashMap<Box<str>, Arc<Destination>>>,
    /// Destinations by qualified target, so every spelling of a name shares one destination.
    by_target: Mutex<HashMap<Target, Arc<Destination>>>,
}

struct Route {
    target: Target,
    port: Option<u16>,
    config: DestinationConfig,
}

struct Destination {
    stack: Stack,
    balance: Balance,
}

impl MeshClient {
    /// A builder.
    pub fn builder() -> MeshClientBuilder {
        MeshClientBuilder::default()
    }

    /// A client for `config`, discovering through DNS.
    pub fn new(config: MeshConfig) -> Result<Self, BuildError> {
        Self::builder().config(config).build()
    }

    /// A client configured from the environment ([`MeshConfig::from_env`]).
    pub fn from_env() -> Result<Self, BuildError> {
        Self::new(MeshConfig::from_env()?)
    }

    /// The configuration in use.
    pub fn config(&self) -> &MeshConfig {
        &self.inner.config
    }

    /// Sends a request; the same as calling the client as a `tower::Service`.
    pub fn request<B>(&self, req: Request<B>) -> ResponseFuture
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        self.send(req.map(RequestBody::new))
    }

    /// Sends a request whose body is already a [`RequestBody`].
    pub fn send(&self, req: Request<RequestBody>) -> ResponseFuture {
        match self.route(req) {
            Ok((req, destination)) => {
                let mut stack = destination.stack.clone();
                // Every layer of the stack is always ready.
                ResponseFuture {
                    state: FutureState::Stack {
                        future: tower_service::Service::call(&mut stack, req),
                    },
                }
            }
            Err(error) => ResponseFuture {
                state: FutureState::Ready {
                    response: Some(local_reply(error)),
                },
            },
        }
    }

    /// The current endpoints of the destination `authority` names (`reviews:9080`), once a
    /// request has been sent to it.
    pub fn endpoints(&self, authority: &str) -> Option<Vec<SocketAddr>> {
        let map = self.inner.by_authority.load();
        map.get(authority).map(|d| d.balance.endpoints())
    }

    fn route(
        &self,
        mut req: Request<RequestBody>,
    ) -> Result<(Request<RequestBody>, Arc<Destination>), MeshError> {
        let authority = absolute_uri(&mut req)?;
        if let Some(destination) = self.inner.by_authority.load().get(authority.as_str()) {
            return Ok((req, destination.clone()));
        }
        let destination = self.inner.create(&authority)?;
        Ok((req, destination))
    }
}

impl Inner {
    /// The slow path of a destination's first request: qualify, match config, start discovery.
    fn create(&self, authority: &Authority) -> Result<Arc<Destination>, MeshError> {
        let port = authority.port_u16().unwrap_or(80);
        let workload = &self.config.workload;
        let target = qualify(
            authority.host(),
            port,
            &workload.namespace,
            &workload.cluster_domain,
        )
        .map_err(|e| MeshError::BadRequest {
            reason: e.to_string().into(),
        })?;
        let mut by_target = self.by_target.lock().unwrap_or_else(|e| e.into_inner());
        let destination = match by_target.get(&target) {
            Some(d) => d.clone(),
            None => {
                let route = self.routes.iter().find(|r| r.matches(&target, port));
                let policy = route.map_or(&self.config.defaults, |r| &r.config.policy);
                let name: Arc<str> = match &target {
                    Target::Host { fqdn, port } => format!("{fqdn}:{port}").into(),
                    Target::Srv { fqdn } => fqdn.as_str().into(),
                    Target::Addr(addr) => addr.to_string().into(),
                };
                let endpoints = match route.and_then(|r| r.config.endpoints.as_ref()) {
                    Some(addrs) => fixed_endpoints(EndpointSet::from_addrs(addrs.iter().copied())),
                    None => self.discover.watch(&target),
                };
                tracing::debug!(destination = %name, configured = route.is_some(), "new destination");
                let d = Arc::new(Destination::new(name, policy, endpoints));
                by_target.insert(target, d.clone());
                d
            }
        };
        let mut map = HashMap::clone(&self.by_authority.load());
        map.insert(authority.as_str().into(), destination.clone());
        self.by_authority.store(Arc::new(map));
        Ok(destination)
    }
}

impl Route {
    fn matches(&self, target: &Target, port: u16) -> bool {
        match (&self.target, target) {
            (Target::Host { fqdn: a, .. }, Target::Host { fqdn: b, .. }) => {
                a == b && self.port.is_none_or(|p| p == port)
            }
            (Target::Srv { fqdn: a }, Target::Srv { fqdn: b }) => a == b,
            (Target::Addr(a), Target::Addr(b)) => {
                a.ip() == b.ip() && self.port.is_none_or(|p| p == b.port())
            }
            _ => false,
        }
    }
}

impl Destination {
    fn new(name: Arc<str>, policy: &TrafficPolicy, endpoints: EndpointWatch) -> Self {
        let balance = Balance::new(name.clone(), policy, endpoints);
        let stack = ServiceBuilder::new()
            .layer(LocalReplyLayer::new())
            .layer(TimeoutLayer::request(name.clone(), policy.timeout))
            .layer(RetryLayer::new(name.clone(), policy.retries.clone()))
            .layer(TimeoutLayer::per_try(name, policy.retries.per_try_timeout))
            .service(balance.clone());
        Self { stack, balance }
    }
}

/// Makes the request's URI absolute (`http://authority/path`), taking the authority from the
/// `Host` header when the URI has none, and returns the authority.
fn absolute_uri(req: &mut Request<RequestBody>) -> Result<Authority, MeshError> {
    let bad = |reason: String| MeshError::BadRequest {
        reason: reason.into(),
    };
    if let Some(scheme) = req.uri().scheme()
        && *scheme != Scheme::HTTP
    {
        return Err(bad(format!(
            "scheme `{scheme}` is not supported: the mesh client speaks plain HTTP to endpoints"
        )));
    }
    if let Some(authority) = req.uri().authority() {
        let authority = authority.clone();
        if req.uri().scheme().is_none() {
            set_uri(req, &authority)?;
        }
        return Ok(authority);
    }
    let host = req.headers().get(header::HOST).ok_or_else(|| {
        bad(format!(
            "`{}` has no authority and no Host header",
            req.uri()
        ))
    })?;
    let authority = host
        .to_str()
        .ok()
        .and_then(|h| h.parse::<Authority>().ok())
        .ok_or_else(|| bad(format!("invalid Host header {host:?}")))?;
    set_uri(req, &authority)?;
    Ok(authority)
}

fn set_uri(req: &mut Request<RequestBody>, authority: &Authority) -> Result<(), MeshError> {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority.clone())
        .path_and_query(path)
        .build()
        .map_err(|e| MeshError::BadRequest {
            reason: format!("invalid request target: {e}").into(),
        })?;
    *req.uri_mut() = uri;
    Ok(())
}

impl fmt::Debug for MeshClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshClient")
            .field("config", &self.inner.config)
            .field("destinations", &self.inner.by_authority.load().len())
            .finish()
    }
}

impl<B> tower_service::Service<Request<B>> for MeshClient
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> ResponseFuture {
        self.request(req)
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`MeshClient`].
    pub struct ResponseFuture {
        #[pin]
        state: FutureState,
    }
}

pin_project_lite::pin_project! {
    #[project = ResponseFutureProj]
    enum FutureState {
        // Answered locally before reaching a destination.
        Ready {
            response: Option<Response<ResponseBody>>,
        },
        // In a destination's stack.
        Stack {
            #[pin]
            future: LocalReplyFuture<<Timeout<Retry<Timeout<Balance>>> as tower_service::Service<Request<RequestBody>>>::Future>,
        },
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            ResponseFutureProj::Ready { response } => {
                Poll::Ready(Ok(response.take().unwrap_or_else(|| {
                    local_reply(MeshError::BadRequest {
                        reason: "response future polled after completion".into(),
                    })
                })))
            }
            ResponseFutureProj::Stack { future } => future.poll(cx),
        }
    }
}
