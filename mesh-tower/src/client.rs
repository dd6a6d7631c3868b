//! The mesh client: one `tower::Service<http::Request<B>>` that sends each request to the
//! destination its authority names, through that destination's stack.
//!
//! Each destination (a qualified host and port) gets, on its first request, a stack of
//! [local reply](crate::local_reply) → [request timeout](crate::timeout) →
//! [retry](crate::retry) → [per-try timeout](crate::timeout) → [balance](crate::balance)
//! over the endpoints discovery publishes, configured by the first matching
//! [`DestinationConfig`] or the config's defaults.
//!
//! Egress is checked once per host, when it is first seen, against the outbound traffic
//! policy ([`mesh_core::egress`]): under REGISTRY_ONLY a host outside the registry gets no
//! stack and no connection; every request to it is answered 502 by a local reply
//! ([`MeshError::EgressDenied`]) and counted in `mesh_egress_denied_total{host}` (the
//! qualified authority; one series per denied host).
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
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri, header};
use http_body::Body;
use mesh_core::config::{
    ClientTls, ClientTlsMode, DestinationConfig, MeshConfig, Protocol, SubsetEndpoints,
    TrafficPolicy,
};
use mesh_core::egress::EgressPolicy;
use mesh_core::name::{NameError, Target, qualify};
use mesh_core::route::{Headers, HttpRoute, RouteAction, Split, VirtualService};
use mesh_core::{ConfigError, EndpointSet, Resolution};
use mesh_dns::{Discover, DnsDiscovery, EndpointWatch, fixed_endpoints};

use crate::BoxError;
use crate::admin::ClusterStatus;
use crate::body::{RequestBody, ResponseBody};
use crate::context::RequestContext;
use crate::endpoint::EndpointTls;
use crate::error::MeshError;
use crate::leg::{Backend, Leg, LegFuture, RouteSettings};
use crate::local_reply::local_reply;
use crate::mirror::{MirrorLayer, Shadow};
use crate::route::{CompiledRoute, Host, Routed};
use crate::telemetry::{Telemetry, TelemetryError, Upstream};
use crate::tls::{CertError, Identity, TlsConnector};

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
    /// A VirtualService's host is not a valid name.
    #[error("virtualServices[{index}].hosts: {source}")]
    VirtualService {
        /// The VirtualService's index in the config.
        index: usize,
        /// What is wrong with the host.
        #[source]
        source: NameError,
    },
    /// The DNS resolver could not be set up.
    #[error("discovery: {0}")]
    Discovery(#[source] BoxError),
    /// The workload's certificates (`security.certificates`) cannot be used.
    #[error("workload certificates: {0}")]
    Certificates(#[from] CertError),
    /// A telemetry setting (an access-log file) cannot be used.
    #[error("telemetry: {0}")]
    Telemetry(#[from] TelemetryError),
}

/// Builds a [`MeshClient`].
#[derive(Default)]
pub struct MeshClientBuilder {
    config: Option<MeshConfig>,
    discover: Option<Arc<dyn Discover>>,
    identity: Option<Identity>,
    telemetry: Option<Telemetry>,
}

impl fmt::Debug for MeshClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshClientBuilder")
            .field("config", &self.config)
            .field("custom_discovery", &self.discover.is_some())
            .field("identity", &self.identity.as_ref().map(Identity::id))
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

    /// The workload identity for mutual TLS (otherwise the config's
    /// `security.certificates`, if any); share one with the workload's `MeshServer`.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Reports with `telemetry` (otherwise [`Telemetry::from_config`] of the config); share
    /// one with the workload's `MeshServer`.
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Validates the config and builds the client; loads the workload's certificates when
    /// the config names them and no identity was given (call inside a tokio runtime, which
    /// runs their reload task).
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
        let identity = match (self.identity, &config.security.certificates) {
            (Some(identity), _) => Some(identity),
            (None, Some(files)) => Some(Identity::from_files(files)?),
            (None, None) => None,
        };
        let telemetry = match self.telemetry {
            Some(t) => t,
            None => Telemetry::from_config(&config)?,
        };
        let inner = Inner::new(config, discover, identity, telemetry)?;
        Ok(MeshClient {
            inner: Arc::new(ArcSwap::from_pointee(inner)),
        })
    }
}

/// A mesh client: routing, discovery, balancing, timeouts and retries for every destination.
///
/// Cheap to clone; clones share destinations, connection pools and retry budgets, and see
/// a [`reload`](MeshClient::reload) at once.
/// It never fails: errors become local replies (see [`crate::local_reply`]).
#[derive(Clone)]
pub struct MeshClient {
    /// The state of the current config; a reload swaps in a new one, and a request keeps
    /// the state it started with.
    inner: Arc<ArcSwap<Inner>>,
}

/// What one config compiles to: its routes and policies and the destinations, pools and
/// budgets created for them on first use.
struct Inner {
    config: Arc<MeshConfig>,
    discover: Arc<dyn Discover>,
    /// The workload identity for ISTIO_MUTUAL connections.
    identity: Option<Identity>,
    /// Which hosts may be called; asked once per host.
    egress: EgressPolicy,
    /// Metrics, spans and access log of every backend.
    telemetry: Telemetry,
    policies: Vec<PolicyEntry>,
    virtual_hosts: Vec<VirtualHost>,
    /// Hosts by the authority callers wrote; read on every request without a lock.
    /// (xxh64 with a seed of the client: the lookup runs on every request.)
    by_authority: ArcSwap<HashMap<Box<str>, Arc<Destination>, OneShotXxh64>>,
    /// Hosts by qualified target, so every spelling of a name shares one host.
    hosts: Mutex<HashMap<Target, Arc<Destination>>>,
    /// Backends by qualified target and subset, shared by every route that sends there.
    backends: Mutex<HashMap<BackendKey, Arc<Backend>>>,
}

/// Hashes an authority with one call of seeded xxh64 rather than streaming it through
/// xxh64's buffer: a `str` is one write (and a terminator byte, mixed in by a multiply).
#[derive(Clone, Copy, Debug)]
struct OneShotXxh64 {
    seed: u64,
}

impl BuildHasher for OneShotXxh64 {
    type Hasher = OneShotHasher;

    fn build_hasher(&self) -> OneShotHasher {
        OneShotHasher { hash: self.seed }
    }
}

/// The hasher of [`OneShotXxh64`].
struct OneShotHasher {
    hash: u64,
}

impl Hasher for OneShotHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.hash = xxhash_rust::xxh64::xxh64(bytes, self.hash);
    }

    fn write_u8(&mut self, byte: u8) {
        self.hash = (self.hash ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// What requests to one qualified host meet.
enum Destination {
    /// The host's routes and legs: the egress policy allows it.
    Allowed(Host),
    /// The egress policy denies the host: every request is answered locally.
    Denied {
        /// The qualified authority (`api.example.com:443`), as the reply and the metric
        /// name it.
        host: Arc<str>,
    },
}

/// Requests answered [`MeshError::EgressDenied`], by `host` (the qualified authority).
const EGRESS_DENIED_TOTAL: &str = "mesh_egress_denied_total";

impl Destination {
    fn dispatch(&self, req: Request<RequestBody>) -> ResponseFuture {
        match self {
            Destination::Allowed(host) => host.dispatch(req),
            Destination::Denied { host } => {
                metrics::counter!(EGRESS_DENIED_TOTAL, "host" => host.clone()).increment(1);
                ResponseFuture::ready(local_reply(MeshError::EgressDenied { host: host.clone() }))
            }
        }
    }
}

/// A backend's qualified target and subset.
type BackendKey = (Target, Option<String>);

/// A destination's configured policy, with its host qualified.
struct PolicyEntry {
    target: Target,
    port: Option<u16>,
    config: DestinationConfig,
}

/// A VirtualService with its hosts qualified.
struct VirtualHost {
    hosts: Vec<HostPattern>,
    namespace: String,
    service: VirtualService,
}

enum HostPattern {
    /// A fully qualified name.
    Exact(String),
    /// `*.example.com` (the suffix keeps its dot) or `*` (empty suffix).
    Suffix(String),
}

impl HostPattern {
    fn matches(&self, fqdn: &str) -> bool {
        match self {
            HostPattern::Exact(name) => name == fqdn,
            HostPattern::Suffix(suffix) => fqdn.ends_with(suffix.as_str()),
        }
    }
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

    /// The configuration in use (the latest [`reload`](Self::reload)ed one).
    pub fn config(&self) -> Arc<MeshConfig> {
        self.inner.load().config.clone()
    }

    /// Replaces the client's config while traffic flows: every clone routes new requests by
    /// `config` at once; requests in flight finish on the old state.
    ///
    /// Destinations, connection pools, balancers, outlier state and retry budgets belong to
    /// a config: those of `config` are created afresh on their first request (pools are
    /// rebuilt; the old ones close once their last request ends). The client's discovery,
    /// workload identity and telemetry are kept; `config`'s discovery, certificate and
    /// telemetry settings are not applied. An invalid `config` is returned as an error and
    /// the old state stays.
    pub fn reload(&self, config: MeshConfig) -> Result<(), BuildError> {
        config.validate()?;
        let current = self.inner.load();
        let next = Inner::new(
            config,
            current.discover.clone(),
            current.identity.clone(),
            current.telemetry.clone(),
        )?;
        self.inner.store(Arc::new(next));
        Ok(())
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
    pub fn send(&self, mut req: Request<RequestBody>) -> ResponseFuture {
        // The request id, headers and cookies of the inbound request being handled go on
        // first, so routes match on them (`end-user` routing two hops away).
        if let Some(propagated) = RequestContext::current_propagated() {
            propagated.apply(req.headers_mut());
        }
        if let Err(error) = absolute_uri(&mut req) {
            return ResponseFuture::ready(local_reply(error));
        }
        let inner = self.inner.load();
        {
            // A known host is dispatched to in place: nothing shared is cloned.
            let map = inner.by_authority.load();
            if let Some(host) = req.uri().authority().and_then(|a| map.get(a.as_str())) {
                return host.dispatch(req);
            }
        }
        // `absolute_uri` has given the request an authority.
        let Some(authority) = req.uri().authority().cloned() else {
            return ResponseFuture::ready(local_reply(MeshError::BadRequest {
                reason: format!("`{}` has no authority", req.uri()).into(),
            }));
        };
        match inner.create(&authority) {
            Ok(host) => host.dispatch(req),
            Err(error) => ResponseFuture::ready(local_reply(error)),
        }
    }

    /// The current endpoints of the destination `authority` names (`reviews:9080`), once a
    /// request has been sent to it; for a host with routes, those of every backend its
    /// routes send to; none for a host the egress policy denies.
    pub fn endpoints(&self, authority: &str) -> Option<Vec<SocketAddr>> {
        let inner = self.inner.load();
        let map = inner.by_authority.load();
        let Destination::Allowed(host) = map.get(authority)?.as_ref() else {
            return Some(Vec::new());
        };
        match host {
            Host::Direct(leg) => Some(leg.backend.balance.endpoints()),
            Host::Routed(routed) => {
                let mut all: Vec<SocketAddr> = routed
                    .compiled
                    .iter()
                    .flat_map(|r| r.legs.iter())
                    .flat_map(|leg| leg.backend.balance.endpoints())
                    .collect();
                all.sort();
                all.dedup();
                Some(all)
            }
        }
    }

    /// Every destination (backend) the client has created, by name, with what discovery
    /// has answered for it and the live state of its endpoints; what the admin server's
    /// `/clusters` shows. A destination is created by the first request that needs it.
    pub fn clusters(&self) -> Vec<ClusterStatus> {
        let backends: Vec<Arc<Backend>> = self
            .inner
            .load()
            .backends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut clusters: Vec<ClusterStatus> = backends
            .iter()
            .map(|backend| {
                let (state, endpoints) = backend.balance.status();
                ClusterStatus {
                    name: backend.name.to_string(),
                    state,
                    endpoints,
                }
            })
            .collect();
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        clusters
    }
}

impl Inner {
    /// Compiles a validated `config`: qualifies its destinations' and VirtualServices'
    /// hosts; no destination is created yet.
    fn new(
        config: MeshConfig,
        discover: Arc<dyn Discover>,
        identity: Option<Identity>,
        telemetry: Telemetry,
    ) -> Result<Self, BuildError> {
        for warning in &config.warnings {
            tracing::warn!(%warning, "config field has no effect");
        }
        let workload = &config.workload;
        let policies = config
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
                Ok(PolicyEntry {
                    target,
                    port: dest.port,
                    config: dest.clone(),
                })
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        let virtual_hosts = config
            .virtual_services
            .iter()
            .enumerate()
            .map(|(index, vs)| {
                let namespace = vs.namespace.as_deref().unwrap_or(&workload.namespace);
                let hosts = vs
                    .hosts
                    .iter()
                    .map(|host| match host.strip_prefix('*') {
                        Some(suffix) => Ok(HostPattern::Suffix(suffix.to_ascii_lowercase())),
                        None => match qualify(host, 80, namespace, &workload.cluster_domain) {
                            Ok(Target::Host { fqdn, .. }) => Ok(HostPattern::Exact(fqdn)),
                            Ok(other) => Ok(HostPattern::Exact(other.name())),
                            Err(source) => Err(BuildError::VirtualService { index, source }),
                        },
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(VirtualHost {
                    hosts,
                    namespace: namespace.to_owned(),
                    service: vs.clone(),
                })
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        Ok(Inner {
            egress: EgressPolicy::new(&config),
            telemetry,
            config: Arc::new(config),
            discover,
            identity,
            policies,
            virtual_hosts,
            by_authority: ArcSwap::from_pointee(HashMap::with_hasher(OneShotXxh64 {
                seed: rand::random(),
            })),
            hosts: Mutex::default(),
            backends: Mutex::default(),
        })
    }

    /// The slow path of a host's first request: qualify, check egress, find its routes,
    /// build its legs.
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
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let host = match hosts.get(&target) {
            Some(host) => host.clone(),
            None => {
                let host = Arc::new(match self.egress.check_target(&target) {
                    Ok(()) => Destination::Allowed(self.build_host(authority, &target, port)),
                    Err(denied) => {
                        tracing::warn!(%authority, %denied, "egress denied");
                        Destination::Denied {
                            host: denied.authority().into(),
                        }
                    }
                });
                hosts.insert(target, host.clone());
                host
            }
        };
        drop(hosts);
        let mut map = HashMap::clone(&self.by_authority.load());
        map.insert(authority.as_str().into(), host.clone());
        self.by_authority.store(Arc::new(map));
        Ok(host)
    }

    fn build_host(&self, authority: &Authority, target: &Target, port: u16) -> Host {
        let fqdn = match target {
            Target::Host { fqdn, .. } => Some(fqdn.as_str()),
            _ => None,
        };
        let virtual_host = fqdn.and_then(|fqdn| {
            self.virtual_hosts
                .iter()
                .find(|vh| vh.hosts.iter().any(|h| h.matches(fqdn)))
        });
        let Some(vh) = virtual_host else {
            let namespace = &self.config.workload.namespace;
            let backend = self.backend_for_target(target.clone(), None, namespace);
            return Host::Direct(Arc::new(Leg::new(backend, RouteSettings::default())));
        };
        tracing::debug!(%authority, virtual_service = %vh.service.name, "new routed host");
        let compiled = vh
            .service
            .http
            .iter()
            .map(|route| self.compile_route(route, &vh.namespace, port))
            .collect();
        Host::Routed(Arc::new(Routed {
            authority: authority.as_str().into(),
            routes: vh.service.http.clone(),
            compiled,
        }))
    }

    fn compile_route(&self, route: &HttpRoute, namespace: &str, port: u16) -> CompiledRoute {
        let RouteAction::Forward(forward) = &route.action else {
            return CompiledRoute {
                split: Split::new(&[]),
                legs: Vec::new(),
            };
        };
        let shadows = route
            .mirrors
            .iter()
            .map(|m| {
                let backend = self.backend(
                    &m.host,
                    namespace,
                    m.subset.as_deref(),
                    m.port.unwrap_or(port),
                );
                let leg = Leg::new(backend.clone(), RouteSettings::default());
                Shadow::new(
                    backend.name.clone(),
                    leg.stack(),
                    m.percentage,
                    MIRROR_MAX_IN_FLIGHT,
                )
            })
            .collect();
        let mirror = MirrorLayer::new(shadows);
        let route_headers = non_empty(&route.headers);
        let legs = forward
            .destinations
            .iter()
            .map(|d| {
                let backend = self.backend(
                    &d.host,
                    namespace,
                    d.subset.as_deref(),
                    d.port.unwrap_or(port),
                );
                Arc::new(Leg::new(
                    backend,
                    RouteSettings {
                        timeout: route.timeout,
                        retries: route.retries.clone(),
                        fault: route.fault.clone(),
                        mirror: mirror.clone(),
                        route_headers: route_headers.clone(),
                        destination_headers: non_empty(&d.headers),
                    },
                ))
            })
            .collect();
        let weights: Vec<u32> = forward.destinations.iter().map(|d| d.weight).collect();
        CompiledRoute {
            split: Split::new(&weights),
            legs,
        }
    }

    /// The backend for a route destination's host (qualified in `namespace`), subset and port;
    /// a subset's own DNS name is qualified in the same namespace.
    fn backend(
        &self,
        host: &str,
        namespace: &str,
        subset: Option<&str>,
        port: u16,
    ) -> Arc<Backend> {
        let workload = &self.config.workload;
        match qualify(host, port, namespace, &workload.cluster_domain) {
            Ok(target) => match self.egress.check_target(&target) {
                Ok(()) => self.backend_for_target(target, subset, namespace),
                // Unreachable while route destinations are registry entries themselves (see
                // `mesh_core::egress`); kept so that a registry without them stays closed.
                Err(denied) => self.failing_backend(
                    denied.authority().into(),
                    MeshError::EgressDenied {
                        host: denied.authority().into(),
                    }
                    .to_string(),
                ),
            },
            Err(e) => {
                let name: Arc<str> = format!("{host}:{port}").into();
                self.failing_backend(name, e.to_string())
            }
        }
    }

    fn backend_for_target(
        &self,
        target: Target,
        subset: Option<&str>,
        namespace: &str,
    ) -> Arc<Backend> {
        let key = (target, subset.map(str::to_owned));
        let mut backends = self.backends.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(backend) = backends.get(&key) {
            return backend.clone();
        }
        let (target, subset) = &key;
        let port = match target {
            Target::Host { port, .. } => *port,
            Target::Addr(addr) => addr.port(),
            Target::Srv { .. } => 0,
        };
        let entry = self.policies.iter().find(|p| p.matches(target, port));
        let base = match target {
            Target::Host { fqdn, port } => format!("{fqdn}:{port}"),
            Target::Srv { fqdn } => fqdn.clone(),
            Target::Addr(addr) => addr.to_string(),
        };
        let backend = match subset {
            None => {
                let policy = entry.map_or(&self.config.defaults, |e| &e.config.policy);
                let endpoints = match entry.and_then(|e| e.config.endpoints.as_ref()) {
                    Some(addrs) => fixed_endpoints(EndpointSet::from_addrs(addrs.iter().copied())),
                    None => self.discover.watch(target),
                };
                let name: Arc<str> = base.into();
                let tls = match self.endpoint_tls(target, policy) {
                    Ok(tls) => tls,
                    Err(reason) => {
                        drop(backends);
                        return self.failing_backend(name, reason);
                    }
                };
                tracing::debug!(backend = %name, configured = entry.is_some(), "new backend");
                let upstream = upstream(target, None);
                Arc::new(
                    Backend::new(name, policy, endpoints, tls)
                        .telemetry(&self.telemetry, &upstream),
                )
            }
            Some(subset) => {
                let name: Arc<str> = format!("{base} subset {subset}").into();
                let found = entry.and_then(|e| e.config.subsets.iter().find(|s| &s.name == subset));
                let Some(found) = found else {
                    let reason = format!(
                        "subset {subset:?} is not defined for {} (no DestinationRule subset)",
                        target.name()
                    );
                    drop(backends);
                    return self.failing_backend(name, reason);
                };
                let endpoints = match &found.endpoints {
                    SubsetEndpoints::Static(addrs) => {
                        fixed_endpoints(EndpointSet::from_addrs(addrs.iter().copied()))
                    }
                    SubsetEndpoints::Host(host) => {
                        match qualify(host, port, namespace, &self.config.workload.cluster_domain) {
                            Ok(t) => self.discover.watch(&t),
                            Err(e) => unresolved(e.to_string()),
                        }
                    }
                };
                let tls = match self.endpoint_tls(target, &found.policy) {
                    Ok(tls) => tls,
                    Err(reason) => {
                        drop(backends);
                        return self.failing_backend(name, reason);
                    }
                };
                tracing::debug!(backend = %name, "new subset backend");
                let upstream = upstream(target, Some(subset));
                Arc::new(
                    Backend::new(name, &found.policy, endpoints, tls)
                        .telemetry(&self.telemetry, &upstream),
                )
            }
        };
        backends.insert(key, backend.clone());
        backend
    }

    /// A backend that answers every request with 503 UH naming `reason`.
    fn failing_backend(&self, name: Arc<str>, reason: String) -> Arc<Backend> {
        tracing::warn!(backend = %name, %reason, "backend cannot be resolved");
        let upstream = Upstream {
            host: name.clone(),
            port: 0,
            subset: None,
        };
        Arc::new(
            Backend::new(name, &self.config.defaults, unresolved(reason), None)
                .telemetry(&self.telemetry, &upstream),
        )
    }

    /// How connections to `target` are secured under `policy`'s `tls` (Istio's
    /// `trafficPolicy.tls`); when unset, automatic mTLS: ISTIO_MUTUAL to hosts of the
    /// cluster (`*.svc.<cluster domain>`) when the client has a workload identity, plaintext
    /// otherwise. An ISTIO_MUTUAL server must present `subjectAltNames`, or else the identity
    /// of `security.identityTemplate` for the destination's service and namespace. The error
    /// says why the settings cannot be used (such as ISTIO_MUTUAL without an identity).
    fn endpoint_tls(
        &self,
        target: &Target,
        policy: &TrafficPolicy,
    ) -> Result<Option<EndpointTls>, String> {
        let config = &self.config;
        let fqdn = match target {
            Target::Host { fqdn, .. } | Target::Srv { fqdn } => Some(fqdn.as_str()),
            Target::Addr(_) => None,
        };
        // `<service>.<namespace>.svc.<cluster domain>`, after any SRV `_service._proto.`.
        let in_cluster = fqdn.and_then(|fqdn| {
            let rest = fqdn
                .trim_end_matches('.')
                .strip_suffix(config.workload.cluster_domain.as_str())?
                .strip_suffix(".svc.")?;
            let mut labels = rest.split('.').filter(|l| !l.starts_with('_'));
            Some((labels.next()?, labels.next()?))
        });
        let automatic;
        let settings = match &policy.tls {
            Some(tls) => tls,
            None if self.identity.is_some() && in_cluster.is_some() => {
                automatic = ClientTls::mode(ClientTlsMode::IstioMutual);
                &automatic
            }
            None => return Ok(None),
        };
        if settings.mode == ClientTlsMode::Disable {
            return Ok(None);
        }
        let expected = match (settings.mode, in_cluster) {
            _ if !settings.subject_alt_names.is_empty() => settings.subject_alt_names.clone(),
            (ClientTlsMode::IstioMutual, Some((service, namespace))) => {
                vec![ClientTls::expected_identity(
                    &config.security.identity_template,
                    &config.workload.trust_domain,
                    namespace,
                    service,
                )]
            }
            _ => Vec::new(),
        };
        let alpn = match policy.protocol {
            Protocol::Http2 => vec![b"h2".to_vec()],
            Protocol::Http1 => vec![b"http/1.1".to_vec()],
        };
        let connector = TlsConnector::new(settings, self.identity.as_ref(), expected, alpn)
            .map_err(|e| format!("tls {:?}: {e}", settings.mode))?;
        let server_name: Arc<str> = match (&settings.sni, fqdn, target) {
            (Some(sni), _, _) => sni.as_str().into(),
            (None, Some(fqdn), _) => fqdn.trim_end_matches('.').into(),
            (None, None, Target::Addr(addr)) => addr.ip().to_string().into(),
            (None, None, _) => "".into(),
        };
        Ok(Some(EndpointTls {
            connector,
            server_name,
        }))
    }
}

/// An endpoint stream that never resolves, for `reason`.
/// How telemetry names the destination `target` (and `subset`).
fn upstream(target: &Target, subset: Option<&str>) -> Upstream {
    let (host, port) = match target {
        Target::Host { fqdn, port } => (fqdn.as_str().into(), *port),
        Target::Srv { fqdn } => (fqdn.as_str().into(), 0),
        Target::Addr(addr) => (addr.ip().to_string().into(), addr.port()),
    };
    Upstream {
        host,
        port,
        subset: subset.map(Arc::from),
    }
}

fn unresolved(reason: String) -> EndpointWatch {
    tokio::sync::watch::channel(Resolution::Unresolved(reason.into())).1
}

/// Header operations worth keeping: `None` when there are none.
fn non_empty(headers: &Headers) -> Option<Arc<Headers>> {
    let empty = headers.request.is_empty() && headers.response.is_empty();
    (!empty).then(|| Arc::new(headers.clone()))
}

/// Copies a mirror may have in flight per shadow destination.
const MIRROR_MAX_IN_FLIGHT: usize = 128;

impl PolicyEntry {
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

/// Makes the request's URI absolute (`http://authority/path`), taking the authority from the
/// `Host` header when the URI has none.
fn absolute_uri(req: &mut Request<RequestBody>) -> Result<(), MeshError> {
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
    if req.uri().authority().is_some() {
        if req.uri().scheme().is_none()
            && let Some(authority) = req.uri().authority().cloned()
        {
            set_uri(req, &authority)?;
        }
        return Ok(());
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
    set_uri(req, &authority)
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
        let inner = self.inner.load();
        f.debug_struct("MeshClient")
            .field("config", &inner.config)
            .field("destinations", &inner.by_authority.load().len())
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
        // In a leg's stack.
        Leg {
            #[pin]
            future: LegFuture,
        },
    }
}

impl ResponseFuture {
    /// The future of a request sent down a leg.
    pub(crate) fn leg(future: LegFuture) -> Self {
        Self {
            state: FutureState::Leg { future },
        }
    }

    /// A future already answered (a local reply, a redirect, a direct response).
    pub(crate) fn ready(response: Response<ResponseBody>) -> Self {
        Self {
            state: FutureState::Ready {
                response: Some(response),
            },
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            ResponseFutureProj::Ready { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| local_reply(MeshError::polled_after_completion())))),
            ResponseFutureProj::Leg { future } => future.poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::StatusCode;
    use http::response::Parts;
    use http_body_util::{BodyExt, Empty};
    use mesh_core::config::{Format, OutboundMode, OutboundTrafficPolicy};

    use crate::LocalReply;

    /// Discovery that records what it is asked and resolves nothing.
    #[derive(Default)]
    struct Recording(Mutex<Vec<Target>>);

    impl Discover for Recording {
        fn watch(&self, target: &Target) -> EndpointWatch {
            self.0.lock().unwrap().push(target.clone());
            unresolved("not in this test".into())
        }
    }

    fn config(yaml: &str, allowed: &[&str]) -> MeshConfig {
        let text = format!("workload: {{service: tester, namespace: default}}\n{yaml}");
        let mut config = MeshConfig::from_str(&text, Format::Yaml).expect("valid config");
        config.security.outbound = OutboundTrafficPolicy {
            mode: OutboundMode::RegistryOnly,
            allowed_hosts: allowed.iter().map(|h| (*h).to_owned()).collect(),
        };
        config
    }

    fn client(config: MeshConfig) -> (MeshClient, Arc<Recording>) {
        let discovery = Arc::new(Recording::default());
        let client = MeshClient::builder()
            .config(config)
            .discovery(discovery.clone())
            .build()
            .expect("client");
        (client, discovery)
    }

    /// One GET: the answer's head and its body as text.
    async fn get(client: &MeshClient, uri: &str) -> (Parts, String) {
        let req = Request::get(uri).body(Empty::<Bytes>::new()).unwrap();
        let (parts, body) = client.request(req).await.unwrap().into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (parts, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn a_denied_host_is_answered_locally_without_discovery() {
        let (client, discovery) = client(config("", &["*.example.org"]));

        for uri in [
            "http://api.example.com/a",
            "http://API.Example.com./b",
            "http://api.example.com:80/c",
        ] {
            let (res, body) = get(&client, uri).await;
            assert_eq!(res.status, StatusCode::BAD_GATEWAY, "{uri}");
            let reply = res.extensions.get::<LocalReply>().expect("local reply");
            assert!(
                matches!(&*reply.error, MeshError::EgressDenied { host } if host.as_ref() == "api.example.com:80"),
                "{:?}",
                reply.error
            );
            assert_eq!(reply.error.response_flag(), "-");
            assert!(
                body.starts_with("egress denied: api.example.com:80 is not in the mesh registry"),
                "{body}"
            );
            assert!(body.contains("REGISTRY_ONLY"), "{body}");
        }
        assert!(discovery.0.lock().unwrap().is_empty());
        assert_eq!(client.endpoints("api.example.com"), Some(Vec::new()));

        // Allowed hosts go on to discovery (which resolves nothing here: 503).
        let (res, _) = get(&client, "http://reviews:9080/").await;
        assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
        let (res, _) = get(&client, "http://www.example.org/").await;
        assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
        let asked: Vec<String> = discovery
            .0
            .lock()
            .unwrap()
            .iter()
            .map(Target::name)
            .collect();
        assert_eq!(
            asked,
            ["reviews.default.svc.cluster.local", "www.example.org"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_denied_route_destination_fails_without_discovery() {
        let vs = "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: api.example.com}
";
        let (client, discovery) = client(config(vs, &[]));
        // A VirtualService's destinations are registry entries; check against a registry
        // without them, as a stricter policy would.
        let current = client.inner.load_full();
        let mut inner = Inner::new(
            MeshConfig::clone(&current.config),
            current.discover.clone(),
            None,
            current.telemetry.clone(),
        )
        .expect("valid config");
        inner.egress = EgressPolicy::new(&config("", &[]));
        client.inner.store(Arc::new(inner));

        let (res, body) = get(&client, "http://reviews/").await;
        assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains("egress denied: api.example.com:80 is not in the mesh registry"),
            "{body}"
        );
        assert!(discovery.0.lock().unwrap().is_empty());
    }

    const ROUTE_TO: &str = "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: SUBSET}
";

    /// The hosts discovery has been asked for, in order.
    fn asked(discovery: &Recording) -> Vec<String> {
        discovery
            .0
            .lock()
            .unwrap()
            .iter()
            .map(Target::name)
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_is_seen_by_every_clone() {
        let (client, discovery) = client(config(&ROUTE_TO.replace("SUBSET", "reviews-v1"), &[]));
        let clone = client.clone();
        get(&clone, "http://reviews/").await;
        assert_eq!(asked(&discovery), ["reviews-v1.default.svc.cluster.local"]);

        client
            .reload(config(&ROUTE_TO.replace("SUBSET", "reviews-v2"), &[]))
            .expect("a valid config");
        get(&clone, "http://reviews/").await;
        assert_eq!(
            asked(&discovery),
            [
                "reviews-v1.default.svc.cluster.local",
                "reviews-v2.default.svc.cluster.local"
            ]
        );
        assert_eq!(clone.config().virtual_services.len(), 1);
        // The new state's destinations are created afresh: only reviews-v2's backend.
        let names: Vec<String> = clone.clusters().into_iter().map(|c| c.name).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].contains("reviews-v2"), "{names:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_bad_config_is_refused_and_the_old_routes_stay() {
        let (client, discovery) = client(config(&ROUTE_TO.replace("SUBSET", "reviews-v1"), &[]));
        let mut bad = config(&ROUTE_TO.replace("SUBSET", "reviews-v2"), &[]);
        bad.security.root_namespace = "Not A Namespace".into();
        let error = client.reload(bad).expect_err("an invalid config");
        assert!(
            error.to_string().contains("security.rootNamespace"),
            "{error}"
        );
        get(&client.clone(), "http://reviews/").await;
        assert_eq!(asked(&discovery), ["reviews-v1.default.svc.cluster.local"]);
    }
}
