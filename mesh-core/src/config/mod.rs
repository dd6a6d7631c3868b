//! The one validated configuration model of mesh, and its three front doors.
//!
//! A [`MeshConfig`] is built from code ([`MeshConfig::builder`]), from the environment
//! ([`MeshConfig::from_env`], variables listed in [`env`](mod@env)) or from a file in YAML, TOML or JSON
//! ([`MeshConfig::from_file`]); all three produce the same model. Every value is checked on the
//! way in ([`MeshConfig::validate`]): a bad value is a [`ConfigError`] that names the field path
//! and the value.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderName;

use crate::hedge::HedgePolicy;
use crate::outlier::SuccessRate;
use crate::ratelimit::TokenBucketConfig;
use crate::retry::RetryOn;
use crate::route::VirtualService;

mod builder;
pub mod env;
mod error;
mod file;
mod istio;
mod security;
mod telemetry;
#[cfg(test)]
mod telemetry_tests;
#[cfg(test)]
mod tests;
mod validate;
mod values;

pub use builder::{DestinationBuilder, MeshConfigBuilder, SubsetBuilder};
pub use env::ENV_VARS;
pub use error::ConfigError;
pub use file::Format;
pub use security::{
    AuthorizationPolicy, AuthzAction, AuthzCondition, AuthzOperation, AuthzRule, AuthzSource,
    CertificateFiles, CertificateLayout, ClaimToHeader, ClientTls, ClientTlsMode,
    DEFAULT_IDENTITY_TEMPLATE, JwksSource, JwtHeader, JwtRule, Matcher, MtlsMode, OutboundMode,
    OutboundTrafficPolicy, PeerAuthentication, RequestAuthentication, SecurityConfig,
    ServerSecurity,
};
pub use telemetry::{
    AccessLogConfig, AccessLogFormat, AccessLogOutput, DEFAULT_CLUSTER_ID, TelemetryConfig,
};

/// The whole configuration of one workload's mesh.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct MeshConfig {
    /// Who this workload is.
    pub workload: Workload,
    /// How destinations are discovered through DNS.
    pub discovery: DiscoveryConfig,
    /// The traffic policy of destinations that have no entry of their own.
    pub defaults: TrafficPolicy,
    /// Per-destination settings; the first whose host and port match a request applies.
    pub destinations: Vec<DestinationConfig>,
    /// HTTP routes by host (Istio's VirtualServices), in the order they were given.
    pub virtual_services: Vec<VirtualService>,
    /// The server stack's settings (inbound limits, shutdown).
    pub server: ServerConfig,
    /// Certificates, mTLS, JWT, authorization and egress.
    pub security: SecurityConfig,
    /// Metrics, tracing, propagated headers and access logs.
    pub telemetry: TelemetryConfig,
    /// Fields that were read but are not implemented, by path; the client logs them.
    pub warnings: Vec<ConfigWarning>,
}

/// The server stack's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// Local rate limit of inbound requests (Envoy's local rate limit): past it, 429.
    pub rate_limit: Option<TokenBucketConfig>,
    /// Inbound requests handled at once; past it a request is shed with 503.
    pub concurrency_limit: Option<u32>,
    /// Whether a deadline an inbound request carries (`x-mesh-timeout-ms` or `grpc-timeout`)
    /// bounds the outbound calls made while handling it (true).
    pub propagate_deadline: bool,
    /// How shutdown drains connections.
    pub shutdown: ShutdownConfig,
    /// mTLS mode, JWT rules and authorization policies, resolved for the workload
    /// ([`MeshConfig::inbound`] fills it from [`MeshConfig::security`]).
    pub security: ServerSecurity,
}

/// How the server drains on shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// How long kept-alive HTTP/1.1 connections stay open after shutdown starts, answering
    /// each request with `Connection: close` (5 s, as Istio's `terminationDrainDuration`).
    pub drain: Duration,
    /// The most shutdown takes: requests still in flight after it are cut (30 s, as
    /// Kubernetes' `terminationGracePeriodSeconds`).
    pub grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            rate_limit: None,
            concurrency_limit: None,
            propagate_deadline: true,
            shutdown: ShutdownConfig::default(),
            security: ServerSecurity::default(),
        }
    }
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain: Duration::from_secs(5),
            grace: Duration::from_secs(30),
        }
    }
}

/// A field that was read but has no effect (not implemented), named by its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The field path, such as `VirtualService reviews: spec.http[0].corsPolicy`.
    pub path: String,
    /// What is not implemented, and what happens instead.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The identity of the workload that runs mesh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// The service (canonical name) this workload belongs to, such as `productpage`.
    pub service: String,
    /// The Kubernetes namespace; short destination names are qualified with it.
    pub namespace: String,
    /// The cluster's DNS domain, `cluster.local` by default.
    pub cluster_domain: String,
    /// The SPIFFE trust domain, `cluster.local` by default.
    pub trust_domain: String,
    /// The Kubernetes service account, `default` by default.
    pub service_account: String,
    /// The pod's name, when known (Downward API `POD_NAME`).
    pub pod_name: Option<String>,
    /// The workload's version label (such as `v1`), when known.
    pub version: Option<String>,
    /// Further pod labels, for the workload selectors of security policies.
    pub labels: BTreeMap<String, String>,
}

impl Workload {
    /// The labels policies select the workload by: `app` (the service) and `version` (when
    /// known), then [`Workload::labels`] (which may override them).
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        labels.insert("app".to_owned(), self.service.clone());
        if let Some(version) = &self.version {
            labels.insert("version".to_owned(), version.clone());
        }
        labels.extend(self.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        labels
    }
}

/// How DNS discovery behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscoveryConfig {
    /// DNS servers to ask; empty means the system's (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// Lower bound of the refresh interval, whatever the answer's TTL.
    pub min_ttl: Duration,
    /// Upper bound of the refresh interval, whatever the answer's TTL.
    pub max_ttl: Duration,
    /// Fraction (0 to 1) by which each refresh interval is shortened at random.
    pub jitter: f64,
    /// How long one lookup may take before it counts as failed.
    pub timeout: Duration,
    /// What to do when a name that had endpoints answers NXDOMAIN.
    pub nxdomain: NxDomainPolicy,
}

/// What to do when a name that had endpoints starts answering NXDOMAIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NxDomainPolicy {
    /// Keep the last endpoints for `grace`, then drop them.
    Keep {
        /// How long the last endpoints are kept.
        grace: Duration,
    },
    /// Drop the endpoints at once.
    Drop,
}

/// Settings for one destination (a Kubernetes service, usually).
#[derive(Clone, Debug, PartialEq)]
pub struct DestinationConfig {
    /// The host as callers write it: `reviews`, `reviews.default`,
    /// `reviews.default.svc.cluster.local`, or an SRV name `_http._tcp.reviews.default.svc.cluster.local`.
    pub host: String,
    /// The port this entry applies to; `None` matches every port.
    pub port: Option<u16>,
    /// Fixed endpoints to use instead of DNS, for local runs.
    pub endpoints: Option<Vec<SocketAddr>>,
    /// How traffic to this destination is handled.
    pub policy: TrafficPolicy,
    /// Named subsets (versions) of the destination, as in Istio's DestinationRule.
    pub subsets: Vec<Subset>,
}

/// A named subset of a destination's endpoints (Istio's `subsets[]`), such as `v2`.
#[derive(Clone, Debug, PartialEq)]
pub struct Subset {
    /// The subset's name, as routes refer to it (`v2`).
    pub name: String,
    /// The labels Istio selects the subset's pods by (`version: v2`); kept for reference,
    /// since DNS publishes no labels.
    pub labels: BTreeMap<String, String>,
    /// Where the subset's endpoints come from.
    pub endpoints: SubsetEndpoints,
    /// The subset's traffic policy: the destination's, with the subset's own fields laid over.
    pub policy: TrafficPolicy,
}

/// Where a subset's endpoints come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubsetEndpoints {
    /// A DNS name of its own, resolved like any destination host. By default the host's
    /// first label with `-<subset>` appended: subset `v2` of `reviews` is `reviews-v2`.
    Host(String),
    /// A fixed list of addresses.
    Static(Vec<SocketAddr>),
}

/// How requests to one destination are balanced, timed out and retried.
#[derive(Clone, Debug, PartialEq)]
pub struct TrafficPolicy {
    /// The load-balancing algorithm.
    pub load_balancer: LoadBalancer,
    /// The whole request's timeout, retries included; `None` disables it.
    pub timeout: Option<Duration>,
    /// How long a TCP connect may take.
    pub connect_timeout: Duration,
    /// The HTTP version spoken to endpoints.
    pub protocol: Protocol,
    /// The retry policy.
    pub retries: RetryPolicy,
    /// Istio's `connectionPool` settings, as written (enforced by the circuit breaker).
    pub connection_pool: ConnectionPool,
    /// Istio's `outlierDetection` settings, as written; `None` when not configured.
    pub outlier_detection: Option<OutlierDetection>,
    /// Istio's `retryBudget` (Envoy's circuit-breaker retry budget): retries in flight are
    /// capped at a share of the requests in flight; `None` leaves `http.maxRetries` alone.
    pub retry_concurrency_budget: Option<RetryConcurrencyBudget>,
    /// A local rate limit on requests to the destination: past it, 429 (flag RL).
    pub rate_limit: Option<TokenBucketConfig>,
    /// Requests to the destination in flight at once; past it a request is shed with 503.
    pub concurrency_limit: Option<u32>,
    /// Hedged requests for idempotent methods; `None` (the default) never hedges.
    pub hedge: Option<HedgePolicy>,
    /// Istio's `tls`: how connections to the destination are secured; `None` is automatic
    /// mTLS (ISTIO_MUTUAL to hosts of the cluster when the client has a workload identity,
    /// plaintext otherwise).
    pub tls: Option<ClientTls>,
}

/// Istio's `trafficPolicy.retryBudget`: at most `percent` of the requests in flight (active
/// and pending) may be retries, and always at least `min_retry_concurrency`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryConcurrencyBudget {
    /// The share of requests in flight that may be retries, in percent (20).
    pub percent: f64,
    /// Retries always allowed in flight at once (3).
    pub min_retry_concurrency: u32,
}

impl Default for RetryConcurrencyBudget {
    fn default() -> Self {
        Self {
            percent: 20.0,
            min_retry_concurrency: 3,
        }
    }
}

/// Istio's `connectionPool` settings; `None` fields are unset (no limit, or Istio's default).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConnectionPool {
    /// `tcp.maxConnections`: connections to all endpoints of the destination.
    pub max_connections: Option<u32>,
    /// `tcp.connectTimeout` (also sets [`TrafficPolicy::connect_timeout`]).
    pub connect_timeout: Option<Duration>,
    /// `http.http1MaxPendingRequests`: requests waiting for a connection.
    pub http1_max_pending_requests: Option<u32>,
    /// `http.http2MaxRequests`: requests in flight to the destination.
    pub http2_max_requests: Option<u32>,
    /// `http.maxRequestsPerConnection`: requests before a connection is closed (unset or 0:
    /// no limit).
    pub max_requests_per_connection: Option<u32>,
    /// `http.maxRetries`: retries in flight to the destination.
    pub max_retries: Option<u32>,
    /// `http.idleTimeout`: how long an idle connection is kept (unset or zero: Istio's
    /// default, 1 hour).
    pub idle_timeout: Option<Duration>,
}

/// Istio's `outlierDetection` settings; `None` fields take Istio's defaults when enforced.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OutlierDetection {
    /// `consecutive5xxErrors` (5; 0 disables).
    pub consecutive_5xx_errors: Option<u32>,
    /// `consecutiveGatewayErrors`: consecutive 502, 503 and 504 answers (0 disables).
    pub consecutive_gateway_errors: Option<u32>,
    /// `consecutiveLocalOriginFailures`: connect failures, resets and timeouts.
    pub consecutive_local_origin_failures: Option<u32>,
    /// `splitExternalLocalOriginErrors`.
    pub split_external_local_origin_errors: bool,
    /// `interval` between ejection sweeps (10 s).
    pub interval: Option<Duration>,
    /// `baseEjectionTime` (30 s).
    pub base_ejection_time: Option<Duration>,
    /// `maxEjectionPercent` (10).
    pub max_ejection_percent: Option<u32>,
    /// `minHealthPercent` (0).
    pub min_health_percent: Option<u32>,
    /// Success-rate ejection (Envoy's `success_rate_*`, not in Istio's API); `None` is off.
    pub success_rate: Option<SuccessRate>,
}

/// Load-balancing algorithms, by Istio's names.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LoadBalancer {
    /// `ROUND_ROBIN`: each endpoint in turn (weighted by SRV weight).
    RoundRobin,
    /// `RANDOM`: a (weighted) random endpoint.
    Random,
    /// `LEAST_REQUEST`: the less loaded of two random endpoints (P2C); Istio's default.
    #[default]
    LeastRequest,
    /// `PEAK_EWMA`: P2C on peak-EWMA latency times load, as Linkerd does.
    PeakEwma(PeakEwmaConfig),
    /// `PASSTHROUGH`: no balancing; the first address discovery lists (in address order)
    /// that accepts connections, as a plain client would connect.
    Passthrough,
    /// `consistentHash`: a request's hash key picks the endpoint on a ring or Maglev table.
    ConsistentHash(ConsistentHash),
}

/// Consistent-hash balancing (Istio's `loadBalancer.consistentHash`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistentHash {
    /// What a request is hashed by.
    pub key: HashKey,
    /// The lookup structure.
    pub table: HashTable,
}

/// What a request is hashed by. A request without the key is balanced at random.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashKey {
    /// `httpHeaderName`: a request header's value.
    Header(HeaderName),
    /// `httpCookie`: a cookie's value; generated and returned when absent and `ttl` is set.
    Cookie(HashCookie),
    /// `useSourceIp`: the caller's IP address.
    SourceIp,
    /// `httpQueryParameterName`: a query parameter's value.
    QueryParameter(String),
}

/// A hash cookie (Istio's `httpCookie`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashCookie {
    /// The cookie's name.
    pub name: String,
    /// The cookie's `Path` when generated.
    pub path: Option<String>,
    /// The generated cookie's lifetime; `None` never generates one.
    pub ttl: Option<Duration>,
}

/// The consistent-hash lookup structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashTable {
    /// `ringHash`: Ketama-style ring with at least `minimum_size` entries (1024).
    Ring {
        /// The ring's minimum number of entries.
        minimum_size: u64,
    },
    /// `maglev`: Maglev lookup table of `table_size` entries (65537, a prime).
    Maglev {
        /// The table's size; must be prime.
        table_size: u64,
    },
}

impl Default for HashTable {
    fn default() -> Self {
        HashTable::Ring { minimum_size: 1024 }
    }
}

/// Parameters of peak-EWMA balancing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeakEwmaConfig {
    /// How fast old latency observations fade (10 s, as in Linkerd).
    pub decay: Duration,
    /// The latency assumed for an endpoint with no observation yet (30 ms).
    pub default_rtt: Duration,
}

impl Default for PeakEwmaConfig {
    fn default() -> Self {
        Self {
            decay: Duration::from_secs(10),
            default_rtt: Duration::from_millis(30),
        }
    }
}

/// The HTTP version spoken to endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive connection pooling.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c), multiplexed on one connection per endpoint.
    Http2,
}

/// When and how requests are retried.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries allowed after the first try (Istio's `attempts`; 2 by default, 0 disables).
    pub attempts: u32,
    /// The timeout of each try; `None` leaves tries bounded only by the request timeout.
    pub per_try_timeout: Option<Duration>,
    /// The conditions that trigger a retry (Istio's `retryOn`).
    pub retry_on: RetryOn,
    /// Whether non-idempotent requests (POST, PATCH) are retried on conditions other than
    /// connect-failure and refused-stream, where the request never reached the application.
    pub retry_non_idempotent: bool,
    /// Back-off between tries.
    pub backoff: BackoffConfig,
    /// The retry budget shared by all requests to the destination.
    pub budget: RetryBudgetConfig,
}

/// Fully jittered exponential back-off between tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The first interval's upper bound (25 ms).
    pub base: Duration,
    /// The cap on any interval (250 ms).
    pub max: Duration,
}

/// A retry budget: retries may add at most `ratio` of requests plus `min_per_second`,
/// counted over `window` (as in Linkerd and Finagle).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryBudgetConfig {
    /// Retries allowed per request sent (0.2).
    pub ratio: f64,
    /// Retries always allowed each second, whatever the traffic (10).
    pub min_per_second: u32,
    /// The window over which requests and retries are counted (10 s).
    pub window: Duration,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            service: "unknown".to_owned(),
            namespace: "default".to_owned(),
            cluster_domain: "cluster.local".to_owned(),
            trust_domain: "cluster.local".to_owned(),
            service_account: "default".to_owned(),
            pod_name: None,
            version: None,
            labels: BTreeMap::new(),
        }
    }
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(60),
            jitter: 0.1,
            timeout: Duration::from_secs(2),
            nxdomain: NxDomainPolicy::default(),
        }
    }
}

impl Default for NxDomainPolicy {
    fn default() -> Self {
        NxDomainPolicy::Keep {
            grace: Duration::from_secs(60),
        }
    }
}

impl Default for TrafficPolicy {
    fn default() -> Self {
        Self {
            load_balancer: LoadBalancer::default(),
            timeout: Some(Duration::from_secs(15)),
            connect_timeout: Duration::from_secs(10),
            protocol: Protocol::default(),
            retries: RetryPolicy::default(),
            connection_pool: ConnectionPool::default(),
            outlier_detection: None,
            retry_concurrency_budget: None,
            rate_limit: None,
            concurrency_limit: None,
            hedge: None,
            tls: None,
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 2,
            per_try_timeout: None,
            retry_on: RetryOn::default(),
            retry_non_idempotent: false,
            backoff: BackoffConfig::default(),
            budget: RetryBudgetConfig::default(),
        }
    }
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(25),
            max: Duration::from_millis(250),
        }
    }
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_second: 10,
            window: Duration::from_secs(10),
        }
    }
}
