//! Building a [`MeshConfig`](super::MeshConfig) in code.
//!
//! A destination's policy setters that are not called inherit the config's `defaults` when
//! [`MeshConfigBuilder::build`] runs, even when the defaults are set after the destination.
//!
//! ```
//! use std::time::Duration;
//! use mesh_core::config::{DestinationBuilder, LoadBalancer, MeshConfig};
//!
//! let config = MeshConfig::builder()
//!     .service("productpage")
//!     .namespace("bookinfo")
//!     .destination(DestinationBuilder::new("reviews").port(9080).retry_attempts(3))
//!     .timeout(Duration::from_secs(5))
//!     .build()?;
//! let reviews = &config.destinations[0].policy;
//! assert_eq!(reviews.retries.attempts, 3);
//! assert_eq!(reviews.timeout, Some(Duration::from_secs(5)));
//! assert_eq!(reviews.load_balancer, LoadBalancer::LeastRequest);
//! # Ok::<(), mesh_core::ConfigError>(())
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use super::values::LbKind;
use super::{
    AuthorizationPolicy, BackoffConfig, CertificateFiles, ClientTls, ConfigError, ConfigWarning,
    ConnectionPool, ConsistentHash, DestinationConfig, DiscoveryConfig, HashKey, HashTable,
    LoadBalancer, MeshConfig, MtlsMode, NxDomainPolicy, OutboundTrafficPolicy, OutlierDetection,
    PeakEwmaConfig, PeerAuthentication, Protocol, RequestAuthentication, RetryBudgetConfig,
    RetryConcurrencyBudget, RetryPolicy, SecurityConfig, ServerConfig, Subset, SubsetEndpoints,
    TelemetryConfig, TrafficPolicy, Workload,
};
use crate::hedge::HedgePolicy;
use crate::ratelimit::TokenBucketConfig;
use crate::retry::RetryOn;
use crate::route::VirtualService;

/// Builds a [`MeshConfig`](super::MeshConfig); start with [`MeshConfig::builder`].
///
/// Unset values keep the model's defaults; [`build`](Self::build) validates the result.
#[derive(Clone, Debug, Default)]
pub struct MeshConfigBuilder {
    pub(super) workload: Workload,
    pub(super) discovery: DiscoveryConfig,
    pub(super) defaults_base: TrafficPolicy,
    pub(super) defaults: PolicyOverrides,
    pub(super) destinations: Vec<DestinationBuilder>,
    pub(super) virtual_services: Vec<VirtualService>,
    pub(super) server: ServerConfig,
    pub(super) security: SecurityConfig,
    pub(super) telemetry: TelemetryConfig,
    pub(super) warnings: Vec<ConfigWarning>,
}

/// Builds one destination's settings; policy setters not called inherit the config's defaults.
#[derive(Clone, Debug)]
pub struct DestinationBuilder {
    pub(super) host: String,
    pub(super) port: Option<u16>,
    pub(super) endpoints: Option<Vec<SocketAddr>>,
    pub(super) policy: PolicyOverrides,
    pub(super) subsets: Vec<SubsetBuilder>,
}

/// Builds one subset of a destination; policy setters not called inherit the destination's.
#[derive(Clone, Debug)]
pub struct SubsetBuilder {
    pub(super) name: String,
    pub(super) labels: std::collections::BTreeMap<String, String>,
    pub(super) endpoints: Option<SubsetEndpoints>,
    pub(super) policy: PolicyOverrides,
}

/// The policy fields a destination (or the environment) sets; `None` inherits.
#[derive(Clone, Debug, Default)]
pub(crate) struct PolicyOverrides {
    pub(crate) load_balancer: Option<LbKind>,
    pub(crate) peak_ewma_decay: Option<Duration>,
    pub(crate) peak_ewma_default_rtt: Option<Duration>,
    pub(crate) timeout: Option<Option<Duration>>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) protocol: Option<Protocol>,
    pub(crate) attempts: Option<u32>,
    pub(crate) per_try_timeout: Option<Option<Duration>>,
    pub(crate) retry_on: Option<RetryOn>,
    pub(crate) retry_non_idempotent: Option<bool>,
    pub(crate) backoff_base: Option<Duration>,
    pub(crate) backoff_max: Option<Duration>,
    pub(crate) budget_ratio: Option<f64>,
    pub(crate) budget_min_per_second: Option<u32>,
    pub(crate) budget_window: Option<Duration>,
    pub(crate) consistent_hash: Option<ConsistentHash>,
    pub(crate) connection_pool: Option<ConnectionPool>,
    pub(crate) outlier_detection: Option<Option<OutlierDetection>>,
    pub(crate) retry_concurrency_budget: Option<Option<RetryConcurrencyBudget>>,
    pub(crate) rate_limit: Option<Option<TokenBucketConfig>>,
    pub(crate) concurrency_limit: Option<Option<u32>>,
    pub(crate) hedge: Option<Option<HedgePolicy>>,
    pub(crate) tls: Option<Option<ClientTls>>,
}

impl PolicyOverrides {
    /// Every field of `policy`, so that nothing is inherited.
    fn all(policy: TrafficPolicy) -> Self {
        let mut o = PolicyOverrides::default();
        o.set_load_balancer(policy.load_balancer);
        o.timeout = Some(policy.timeout);
        o.connect_timeout = Some(policy.connect_timeout);
        o.protocol = Some(policy.protocol);
        o.set_retries(policy.retries);
        o.connection_pool = Some(policy.connection_pool);
        o.outlier_detection = Some(policy.outlier_detection);
        o.retry_concurrency_budget = Some(policy.retry_concurrency_budget);
        o.rate_limit = Some(policy.rate_limit);
        o.concurrency_limit = Some(policy.concurrency_limit);
        o.hedge = Some(policy.hedge);
        o.tls = Some(policy.tls);
        o
    }

    fn set_load_balancer(&mut self, lb: LoadBalancer) {
        self.load_balancer = Some(LbKind::of(&lb));
        match lb {
            LoadBalancer::PeakEwma(ewma) => {
                self.peak_ewma_decay = Some(ewma.decay);
                self.peak_ewma_default_rtt = Some(ewma.default_rtt);
            }
            LoadBalancer::ConsistentHash(hash) => self.consistent_hash = Some(hash),
            _ => {}
        }
    }

    fn set_retries(&mut self, r: RetryPolicy) {
        self.attempts = Some(r.attempts);
        self.per_try_timeout = Some(r.per_try_timeout);
        self.retry_on = Some(r.retry_on);
        self.retry_non_idempotent = Some(r.retry_non_idempotent);
        self.set_backoff(r.backoff);
        self.set_budget(r.budget);
    }

    fn set_backoff(&mut self, b: BackoffConfig) {
        self.backoff_base = Some(b.base);
        self.backoff_max = Some(b.max);
    }

    fn set_budget(&mut self, b: RetryBudgetConfig) {
        self.budget_ratio = Some(b.ratio);
        self.budget_min_per_second = Some(b.min_per_second);
        self.budget_window = Some(b.window);
    }

    /// These overrides with every field that `top` sets replaced by `top`'s.
    pub(crate) fn overlay(&self, top: &PolicyOverrides) -> PolicyOverrides {
        fn pick<T: Clone>(top: &Option<T>, below: &Option<T>) -> Option<T> {
            top.clone().or_else(|| below.clone())
        }
        PolicyOverrides {
            load_balancer: pick(&top.load_balancer, &self.load_balancer),
            peak_ewma_decay: pick(&top.peak_ewma_decay, &self.peak_ewma_decay),
            peak_ewma_default_rtt: pick(&top.peak_ewma_default_rtt, &self.peak_ewma_default_rtt),
            timeout: pick(&top.timeout, &self.timeout),
            connect_timeout: pick(&top.connect_timeout, &self.connect_timeout),
            protocol: pick(&top.protocol, &self.protocol),
            attempts: pick(&top.attempts, &self.attempts),
            per_try_timeout: pick(&top.per_try_timeout, &self.per_try_timeout),
            retry_on: pick(&top.retry_on, &self.retry_on),
            retry_non_idempotent: pick(&top.retry_non_idempotent, &self.retry_non_idempotent),
            backoff_base: pick(&top.backoff_base, &self.backoff_base),
            backoff_max: pick(&top.backoff_max, &self.backoff_max),
            budget_ratio: pick(&top.budget_ratio, &self.budget_ratio),
            budget_min_per_second: pick(&top.budget_min_per_second, &self.budget_min_per_second),
            budget_window: pick(&top.budget_window, &self.budget_window),
            consistent_hash: pick(&top.consistent_hash, &self.consistent_hash),
            connection_pool: pick(&top.connection_pool, &self.connection_pool),
            outlier_detection: pick(&top.outlier_detection, &self.outlier_detection),
            retry_concurrency_budget: pick(
                &top.retry_concurrency_budget,
                &self.retry_concurrency_budget,
            ),
            rate_limit: pick(&top.rate_limit, &self.rate_limit),
            concurrency_limit: pick(&top.concurrency_limit, &self.concurrency_limit),
            hedge: pick(&top.hedge, &self.hedge),
            tls: pick(&top.tls, &self.tls),
        }
    }

    /// `base` with the fields set here replaced. Peak-EWMA parameters apply only when the
    /// resulting balancer is `PEAK_EWMA`; they start from `base`'s when it was one too.
    pub(crate) fn apply(&self, base: &TrafficPolicy) -> TrafficPolicy {
        let kind = self
            .load_balancer
            .unwrap_or_else(|| LbKind::of(&base.load_balancer));
        let load_balancer = match kind {
            LbKind::RoundRobin => LoadBalancer::RoundRobin,
            LbKind::Random => LoadBalancer::Random,
            LbKind::LeastRequest => LoadBalancer::LeastRequest,
            LbKind::PeakEwma => {
                let from = match base.load_balancer {
                    LoadBalancer::PeakEwma(ewma) => ewma,
                    _ => PeakEwmaConfig::default(),
                };
                LoadBalancer::PeakEwma(PeakEwmaConfig {
                    decay: self.peak_ewma_decay.unwrap_or(from.decay),
                    default_rtt: self.peak_ewma_default_rtt.unwrap_or(from.default_rtt),
                })
            }
            LbKind::Passthrough => LoadBalancer::Passthrough,
            LbKind::ConsistentHash => {
                let from = match &base.load_balancer {
                    LoadBalancer::ConsistentHash(hash) => Some(hash.clone()),
                    _ => None,
                };
                LoadBalancer::ConsistentHash(self.consistent_hash.clone().or(from).unwrap_or(
                    ConsistentHash {
                        key: HashKey::SourceIp,
                        table: HashTable::default(),
                    },
                ))
            }
        };
        let r = &base.retries;
        TrafficPolicy {
            load_balancer,
            timeout: self.timeout.unwrap_or(base.timeout),
            connect_timeout: self.connect_timeout.unwrap_or(base.connect_timeout),
            protocol: self.protocol.unwrap_or(base.protocol),
            retries: RetryPolicy {
                attempts: self.attempts.unwrap_or(r.attempts),
                per_try_timeout: self.per_try_timeout.unwrap_or(r.per_try_timeout),
                retry_on: self.retry_on.clone().unwrap_or_else(|| r.retry_on.clone()),
                retry_non_idempotent: self.retry_non_idempotent.unwrap_or(r.retry_non_idempotent),
                backoff: BackoffConfig {
                    base: self.backoff_base.unwrap_or(r.backoff.base),
                    max: self.backoff_max.unwrap_or(r.backoff.max),
                },
                budget: RetryBudgetConfig {
                    ratio: self.budget_ratio.unwrap_or(r.budget.ratio),
                    min_per_second: self
                        .budget_min_per_second
                        .unwrap_or(r.budget.min_per_second),
                    window: self.budget_window.unwrap_or(r.budget.window),
                },
            },
            connection_pool: self
                .connection_pool
                .clone()
                .unwrap_or_else(|| base.connection_pool.clone()),
            outlier_detection: self
                .outlier_detection
                .clone()
                .unwrap_or_else(|| base.outlier_detection.clone()),
            retry_concurrency_budget: self
                .retry_concurrency_budget
                .unwrap_or(base.retry_concurrency_budget),
            rate_limit: self.rate_limit.unwrap_or(base.rate_limit),
            concurrency_limit: self.concurrency_limit.unwrap_or(base.concurrency_limit),
            hedge: self.hedge.unwrap_or(base.hedge),
            tls: self.tls.clone().unwrap_or_else(|| base.tls.clone()),
        }
    }
}

/// A zero timeout disables it, as `0s` does in files.
fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// The traffic-policy setters shared by [`MeshConfigBuilder`] (for the defaults) and
/// [`DestinationBuilder`] (for one destination); `$field` is the `PolicyOverrides` to set.
macro_rules! policy_setters {
    ($field:ident) => {
        /// Sets the load-balancing algorithm.
        pub fn load_balancer(mut self, load_balancer: LoadBalancer) -> Self {
            self.$field.set_load_balancer(load_balancer);
            self
        }

        /// Sets the whole request's timeout, retries included; zero disables it.
        pub fn timeout(mut self, timeout: Duration) -> Self {
            self.$field.timeout = Some(nonzero(timeout));
            self
        }

        /// Disables the whole request's timeout.
        pub fn no_timeout(mut self) -> Self {
            self.$field.timeout = Some(None);
            self
        }

        /// Sets how long a TCP connect may take.
        pub fn connect_timeout(mut self, timeout: Duration) -> Self {
            self.$field.connect_timeout = Some(timeout);
            self
        }

        /// Sets the HTTP version spoken to endpoints.
        pub fn protocol(mut self, protocol: Protocol) -> Self {
            self.$field.protocol = Some(protocol);
            self
        }

        /// Sets the whole retry policy, so that none of it is inherited.
        pub fn retries(mut self, retries: RetryPolicy) -> Self {
            self.$field.set_retries(retries);
            self
        }

        /// Sets how many retries may follow the first try (0 disables retries).
        pub fn retry_attempts(mut self, attempts: u32) -> Self {
            self.$field.attempts = Some(attempts);
            self
        }

        /// Sets each try's timeout; zero leaves tries bounded only by the request timeout.
        pub fn per_try_timeout(mut self, timeout: Duration) -> Self {
            self.$field.per_try_timeout = Some(nonzero(timeout));
            self
        }

        /// Sets the conditions that trigger a retry (Istio's `retryOn`).
        pub fn retry_on(mut self, retry_on: RetryOn) -> Self {
            self.$field.retry_on = Some(retry_on);
            self
        }

        /// Sets whether non-idempotent requests are retried after they may have been processed.
        pub fn retry_non_idempotent(mut self, retry: bool) -> Self {
            self.$field.retry_non_idempotent = Some(retry);
            self
        }

        /// Sets the back-off between tries.
        pub fn backoff(mut self, backoff: BackoffConfig) -> Self {
            self.$field.set_backoff(backoff);
            self
        }

        /// Sets the retry budget.
        pub fn retry_budget(mut self, budget: RetryBudgetConfig) -> Self {
            self.$field.set_budget(budget);
            self
        }

        /// Sets Istio's `connectionPool` limits as a whole; a pool's `connect_timeout`, when
        /// set, is also the policy's connect timeout.
        pub fn connection_pool(mut self, pool: ConnectionPool) -> Self {
            if let Some(t) = pool.connect_timeout {
                self.$field.connect_timeout = Some(t);
            }
            self.$field.connection_pool = Some(pool);
            self
        }

        /// Turns on outlier detection (Istio's `outlierDetection`) with these settings.
        pub fn outlier_detection(mut self, outlier: OutlierDetection) -> Self {
            self.$field.outlier_detection = Some(Some(outlier));
            self
        }

        /// Turns outlier detection off, whatever would be inherited.
        pub fn no_outlier_detection(mut self) -> Self {
            self.$field.outlier_detection = Some(None);
            self
        }

        /// Caps retries in flight at a share of the requests in flight (Istio's
        /// `trafficPolicy.retryBudget`).
        pub fn retry_concurrency_budget(mut self, budget: RetryConcurrencyBudget) -> Self {
            self.$field.retry_concurrency_budget = Some(Some(budget));
            self
        }

        /// Turns the retry concurrency budget off, whatever would be inherited.
        pub fn no_retry_concurrency_budget(mut self) -> Self {
            self.$field.retry_concurrency_budget = Some(None);
            self
        }

        /// Limits the rate of requests with a token bucket; past it a request fails with 429.
        pub fn rate_limit(mut self, bucket: TokenBucketConfig) -> Self {
            self.$field.rate_limit = Some(Some(bucket));
            self
        }

        /// Turns the rate limit off, whatever would be inherited.
        pub fn no_rate_limit(mut self) -> Self {
            self.$field.rate_limit = Some(None);
            self
        }

        /// Limits the requests in flight at once; past it a request is shed with 503.
        pub fn concurrency_limit(mut self, limit: u32) -> Self {
            self.$field.concurrency_limit = Some(Some(limit));
            self
        }

        /// Turns the concurrency limit off, whatever would be inherited.
        pub fn no_concurrency_limit(mut self) -> Self {
            self.$field.concurrency_limit = Some(None);
            self
        }

        /// Hedges slow idempotent requests with this policy.
        pub fn hedge(mut self, hedge: HedgePolicy) -> Self {
            self.$field.hedge = Some(Some(hedge));
            self
        }

        /// Turns hedging off, whatever would be inherited.
        pub fn no_hedge(mut self) -> Self {
            self.$field.hedge = Some(None);
            self
        }

        /// Sets how connections are secured (Istio's `trafficPolicy.tls`).
        pub fn tls(mut self, tls: ClientTls) -> Self {
            self.$field.tls = Some(Some(tls));
            self
        }

        /// Returns to automatic mTLS, whatever would be inherited.
        pub fn auto_tls(mut self) -> Self {
            self.$field.tls = Some(None);
            self
        }
    };
}

impl MeshConfig {
    /// Starts building a config in code.
    pub fn builder() -> MeshConfigBuilder {
        MeshConfigBuilder::default()
    }
}

impl MeshConfigBuilder {
    /// Sets the whole workload identity.
    pub fn workload(mut self, workload: Workload) -> Self {
        self.workload = workload;
        self
    }

    /// Sets the service this workload belongs to.
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.workload.service = service.into();
        self
    }

    /// Sets the Kubernetes namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.workload.namespace = namespace.into();
        self
    }

    /// Sets the cluster's DNS domain.
    pub fn cluster_domain(mut self, domain: impl Into<String>) -> Self {
        self.workload.cluster_domain = domain.into();
        self
    }

    /// Sets the SPIFFE trust domain.
    pub fn trust_domain(mut self, domain: impl Into<String>) -> Self {
        self.workload.trust_domain = domain.into();
        self
    }

    /// Sets the Kubernetes service account.
    pub fn service_account(mut self, account: impl Into<String>) -> Self {
        self.workload.service_account = account.into();
        self
    }

    /// Sets the pod's name.
    pub fn pod_name(mut self, name: impl Into<String>) -> Self {
        self.workload.pod_name = Some(name.into());
        self
    }

    /// Sets the workload's version label.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.workload.version = Some(version.into());
        self
    }

    /// Sets the whole discovery configuration.
    pub fn discovery(mut self, discovery: DiscoveryConfig) -> Self {
        self.discovery = discovery;
        self
    }

    /// Adds a DNS server to ask (none means the system's).
    pub fn nameserver(mut self, addr: SocketAddr) -> Self {
        self.discovery.nameservers.push(addr);
        self
    }

    /// Replaces the DNS servers to ask.
    pub fn nameservers(mut self, addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.discovery.nameservers = addrs.into_iter().collect();
        self
    }

    /// Sets the lower bound of the DNS refresh interval.
    pub fn min_ttl(mut self, ttl: Duration) -> Self {
        self.discovery.min_ttl = ttl;
        self
    }

    /// Sets the upper bound of the DNS refresh interval.
    pub fn max_ttl(mut self, ttl: Duration) -> Self {
        self.discovery.max_ttl = ttl;
        self
    }

    /// Sets the fraction (0 to 1) by which refresh intervals are shortened at random.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.discovery.jitter = jitter;
        self
    }

    /// Sets how long one DNS lookup may take.
    pub fn dns_timeout(mut self, timeout: Duration) -> Self {
        self.discovery.timeout = timeout;
        self
    }

    /// Sets what happens when a name that had endpoints answers NXDOMAIN.
    pub fn nxdomain(mut self, policy: NxDomainPolicy) -> Self {
        self.discovery.nxdomain = policy;
        self
    }

    /// Replaces the default traffic policy, dropping default setters called before.
    pub fn defaults(mut self, policy: TrafficPolicy) -> Self {
        self.defaults_base = policy;
        self.defaults = PolicyOverrides::default();
        self
    }

    policy_setters!(defaults);

    /// Sets the whole server configuration.
    pub fn server(mut self, server: ServerConfig) -> Self {
        self.server = server;
        self
    }

    /// Limits the rate of inbound requests with a token bucket; past it, 429.
    pub fn server_rate_limit(mut self, bucket: TokenBucketConfig) -> Self {
        self.server.rate_limit = Some(bucket);
        self
    }

    /// Limits the inbound requests handled at once; past it a request is shed with 503.
    pub fn server_concurrency_limit(mut self, limit: u32) -> Self {
        self.server.concurrency_limit = Some(limit);
        self
    }

    /// Sets whether an inbound request's deadline bounds the outbound calls made for it.
    pub fn propagate_deadline(mut self, propagate: bool) -> Self {
        self.server.propagate_deadline = propagate;
        self
    }

    /// Sets how long kept-alive connections stay open once shutdown starts.
    pub fn shutdown_drain(mut self, drain: Duration) -> Self {
        self.server.shutdown.drain = drain;
        self
    }

    /// Sets the most shutdown may take; requests still in flight after it are cut.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.server.shutdown.grace = grace;
        self
    }

    /// Sets the whole security configuration.
    pub fn security(mut self, security: SecurityConfig) -> Self {
        self.security = security;
        self
    }

    /// Sets the whole telemetry configuration: metrics, tracing, propagated headers and
    /// access logs.
    pub fn telemetry(mut self, telemetry: TelemetryConfig) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Adds a pod label, for the workload selectors of security policies (`app` and
    /// `version` come from [`service`](Self::service) and [`version`](Self::version)).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.workload.labels.insert(key.into(), value.into());
        self
    }

    /// Sets where the workload's certificate, key and trust bundle are read from.
    pub fn certificates(mut self, files: CertificateFiles) -> Self {
        self.security.certificates = Some(files);
        self
    }

    /// Sets the mTLS mode of the server when no PeerAuthentication applies (PERMISSIVE).
    pub fn mtls(mut self, mode: MtlsMode) -> Self {
        self.security.default_mtls = mode;
        self
    }

    /// Sets Istio's root namespace, whose policies apply to every workload (`istio-system`).
    pub fn root_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.security.root_namespace = namespace.into();
        self
    }

    /// Sets how many proxies in front of the workload append to `X-Forwarded-For` (Istio's
    /// `numTrustedProxies`), for authorization's `remote.ip`.
    pub fn num_trusted_proxies(mut self, n: u32) -> Self {
        self.security.num_trusted_proxies = n;
        self
    }

    /// Sets the trust domains whose identities are accepted besides the workload's own.
    pub fn trust_domain_aliases(
        mut self,
        aliases: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.security.trust_domain_aliases = aliases.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the SPIFFE ID template ISTIO_MUTUAL servers are checked against when a
    /// destination names no `subjectAltNames`.
    pub fn identity_template(mut self, template: impl Into<String>) -> Self {
        self.security.identity_template = template.into();
        self
    }

    /// Sets which destinations the client may call.
    pub fn outbound(mut self, outbound: OutboundTrafficPolicy) -> Self {
        self.security.outbound = outbound;
        self
    }

    /// Adds a PeerAuthentication document.
    pub fn peer_authentication(mut self, policy: PeerAuthentication) -> Self {
        self.security.peer_authentications.push(policy);
        self
    }

    /// Adds a RequestAuthentication document.
    pub fn request_authentication(mut self, policy: RequestAuthentication) -> Self {
        self.security.request_authentications.push(policy);
        self
    }

    /// Adds an AuthorizationPolicy document.
    pub fn authorization_policy(mut self, policy: AuthorizationPolicy) -> Self {
        self.security.authorization_policies.push(policy);
        self
    }

    /// Adds a destination; its unset policy fields inherit the defaults.
    pub fn destination(mut self, destination: DestinationBuilder) -> Self {
        self.destinations.push(destination);
        self
    }

    /// The default policy as it stands.
    pub(crate) fn resolved_defaults(&self) -> TrafficPolicy {
        self.defaults.apply(&self.defaults_base)
    }

    /// Resolves inheritance and validates the result.
    pub fn build(self) -> Result<MeshConfig, ConfigError> {
        let defaults = self.resolved_defaults();
        let destinations = self
            .destinations
            .into_iter()
            .map(|d| d.resolve(&defaults))
            .collect();
        let config = MeshConfig {
            workload: self.workload,
            discovery: self.discovery,
            defaults,
            destinations,
            virtual_services: self.virtual_services,
            server: self.server,
            security: self.security,
            telemetry: self.telemetry,
            warnings: self.warnings,
        };
        config.validate()?;
        Ok(config)
    }
}

impl DestinationBuilder {
    /// Starts a destination for `host` (such as `reviews` or `reviews.default.svc.cluster.local`).
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port: None,
            endpoints: None,
            policy: PolicyOverrides::default(),
            subsets: Vec::new(),
        }
    }

    /// Restricts the entry to one port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Uses fixed endpoints instead of DNS (for local runs); an empty list is an error.
    pub fn endpoints(mut self, endpoints: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.endpoints = Some(endpoints.into_iter().collect());
        self
    }

    /// Sets the whole traffic policy, so that nothing is inherited from the defaults.
    pub fn policy(mut self, policy: TrafficPolicy) -> Self {
        self.policy = PolicyOverrides::all(policy);
        self
    }

    policy_setters!(policy);

    /// The destination's config, with unset fields taken from `defaults`.
    pub(crate) fn resolve(self, defaults: &TrafficPolicy) -> DestinationConfig {
        let policy = self.policy.apply(defaults);
        let subsets = self
            .subsets
            .into_iter()
            .map(|s| s.resolve(&self.host, &policy))
            .collect();
        DestinationConfig {
            policy,
            host: self.host,
            port: self.port,
            endpoints: self.endpoints,
            subsets,
        }
    }

    /// Adds a subset.
    pub fn subset(mut self, subset: SubsetBuilder) -> Self {
        self.subsets.push(subset);
        self
    }
}

impl SubsetBuilder {
    /// Starts a subset named `name` (such as `v2`).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            labels: Default::default(),
            endpoints: None,
            policy: PolicyOverrides::default(),
        }
    }

    /// Adds a label (kept for reference; DNS publishes none).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Resolves the subset through its own DNS name instead of `<host>-<subset>`.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.endpoints = Some(SubsetEndpoints::Host(host.into()));
        self
    }

    /// Uses fixed endpoints for the subset.
    pub fn endpoints(mut self, endpoints: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.endpoints = Some(SubsetEndpoints::Static(endpoints.into_iter().collect()));
        self
    }

    policy_setters!(policy);

    /// The subset's config; `host` is the destination's host, `policy` its resolved policy.
    pub(crate) fn resolve(self, host: &str, policy: &TrafficPolicy) -> Subset {
        let endpoints = self
            .endpoints
            .unwrap_or_else(|| SubsetEndpoints::Host(subset_host(host, &self.name)));
        Subset {
            policy: self.policy.apply(policy),
            name: self.name,
            labels: self.labels,
            endpoints,
        }
    }
}

/// The default DNS name of subset `name` of `host`: `-<name>` appended to the first label.
pub(crate) fn subset_host(host: &str, name: &str) -> String {
    match host.split_once('.') {
        Some((first, rest)) => format!("{first}-{name}.{rest}"),
        None => format!("{host}-{name}"),
    }
}

impl MeshConfigBuilder {
    /// Adds a VirtualService's routes.
    pub fn virtual_service(mut self, vs: VirtualService) -> Self {
        self.virtual_services.push(vs);
        self
    }

    /// Records a warning about a field that has no effect.
    pub fn warning(mut self, path: impl Into<String>, message: impl Into<String>) -> Self {
        self.warnings.push(ConfigWarning {
            path: path.into(),
            message: message.into(),
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::Condition;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn empty_builder_gives_defaults() {
        assert_eq!(
            MeshConfig::builder().build().unwrap(),
            MeshConfig::default()
        );
    }

    #[test]
    fn destinations_inherit_defaults_set_later() {
        let c = MeshConfig::builder()
            .destination(DestinationBuilder::new("reviews").retry_attempts(5))
            .destination(DestinationBuilder::new("ratings").load_balancer(LoadBalancer::Random))
            .timeout(secs(3))
            .load_balancer(LoadBalancer::RoundRobin)
            .retry_attempts(1)
            .per_try_timeout(secs(1))
            .build()
            .unwrap();
        let reviews = &c.destinations[0].policy;
        assert_eq!(reviews.retries.attempts, 5);
        assert_eq!(reviews.timeout, Some(secs(3)));
        assert_eq!(reviews.load_balancer, LoadBalancer::RoundRobin);
        assert_eq!(reviews.retries.per_try_timeout, Some(secs(1)));
        let ratings = &c.destinations[1].policy;
        assert_eq!(ratings.load_balancer, LoadBalancer::Random);
        assert_eq!(ratings.retries.attempts, 1);
    }

    #[test]
    fn defaults_policy_then_setters() {
        let base = TrafficPolicy {
            protocol: Protocol::Http2,
            ..TrafficPolicy::default()
        };
        let c = MeshConfig::builder()
            .retry_attempts(9)
            .defaults(base.clone())
            .connect_timeout(secs(1))
            .build()
            .unwrap();
        assert_eq!(c.defaults.protocol, Protocol::Http2);
        assert_eq!(
            c.defaults.retries.attempts, 2,
            "defaults() drops earlier setters"
        );
        assert_eq!(c.defaults.connect_timeout, secs(1));
    }

    #[test]
    fn zero_timeouts_disable() {
        let c = MeshConfig::builder()
            .timeout(Duration::ZERO)
            .per_try_timeout(secs(1))
            .destination(DestinationBuilder::new("a").per_try_timeout(Duration::ZERO))
            .destination(DestinationBuilder::new("b").timeout(secs(1)).no_timeout())
            .build()
            .unwrap();
        assert_eq!(c.defaults.timeout, None);
        assert_eq!(c.destinations[0].policy.retries.per_try_timeout, None);
        assert_eq!(c.destinations[1].policy.timeout, None);
    }

    #[test]
    fn peak_ewma_parameters_inherit() {
        let ewma = PeakEwmaConfig {
            decay: secs(5),
            default_rtt: Duration::from_millis(10),
        };
        let c = MeshConfig::builder()
            .load_balancer(LoadBalancer::PeakEwma(ewma))
            .destination(DestinationBuilder::new("a"))
            .destination(DestinationBuilder::new("b").load_balancer(LoadBalancer::RoundRobin))
            .build()
            .unwrap();
        assert_eq!(
            c.destinations[0].policy.load_balancer,
            LoadBalancer::PeakEwma(ewma)
        );
        assert_eq!(
            c.destinations[1].policy.load_balancer,
            LoadBalancer::RoundRobin
        );
    }

    #[test]
    fn whole_policy_inherits_nothing() {
        let own = TrafficPolicy::default();
        let c = MeshConfig::builder()
            .retry_attempts(7)
            .retry_on(RetryOn::none().with(Condition::Http5xx))
            .destination(DestinationBuilder::new("a").policy(own.clone()))
            .build()
            .unwrap();
        assert_eq!(c.destinations[0].policy, own);
        assert_ne!(c.defaults, own);
    }

    #[test]
    fn every_setter_lands() {
        let addr: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let c = MeshConfig::builder()
            .service("productpage")
            .namespace("bookinfo")
            .cluster_domain("example.internal")
            .trust_domain("example.org")
            .service_account("bookinfo-productpage")
            .pod_name("productpage-1")
            .version("v1")
            .nameserver(addr)
            .min_ttl(secs(2))
            .max_ttl(secs(30))
            .jitter(0.5)
            .dns_timeout(secs(1))
            .nxdomain(NxDomainPolicy::Drop)
            .protocol(Protocol::Http2)
            .retry_non_idempotent(true)
            .backoff(BackoffConfig {
                base: Duration::from_millis(10),
                max: secs(1),
            })
            .retry_budget(RetryBudgetConfig {
                ratio: 0.5,
                min_per_second: 1,
                window: secs(5),
            })
            .destination(
                DestinationBuilder::new("reviews")
                    .port(9080)
                    .endpoints([addr])
                    .retries(RetryPolicy::default()),
            )
            .build()
            .unwrap();
        assert_eq!(c.workload.service, "productpage");
        assert_eq!(c.workload.namespace, "bookinfo");
        assert_eq!(c.workload.cluster_domain, "example.internal");
        assert_eq!(c.workload.trust_domain, "example.org");
        assert_eq!(c.workload.service_account, "bookinfo-productpage");
        assert_eq!(c.workload.pod_name.as_deref(), Some("productpage-1"));
        assert_eq!(c.workload.version.as_deref(), Some("v1"));
        assert_eq!(c.discovery.nameservers, vec![addr]);
        assert_eq!(c.discovery.min_ttl, secs(2));
        assert_eq!(c.discovery.max_ttl, secs(30));
        assert_eq!(c.discovery.jitter, 0.5);
        assert_eq!(c.discovery.timeout, secs(1));
        assert_eq!(c.discovery.nxdomain, NxDomainPolicy::Drop);
        assert_eq!(c.defaults.protocol, Protocol::Http2);
        assert!(c.defaults.retries.retry_non_idempotent);
        assert_eq!(c.defaults.retries.budget.ratio, 0.5);
        let d = &c.destinations[0];
        assert_eq!(d.port, Some(9080));
        assert_eq!(d.endpoints, Some(vec![addr]));
        assert_eq!(d.policy.protocol, Protocol::Http2);
        assert_eq!(d.policy.retries, RetryPolicy::default());
    }

    #[test]
    fn resilience_settings_inherit_and_turn_off() {
        use crate::config::{ServerConfig, ShutdownConfig};
        use crate::outlier::SuccessRate;

        let bucket = TokenBucketConfig::new(20, 10, secs(1));
        let budget = RetryConcurrencyBudget {
            percent: 30.0,
            min_retry_concurrency: 4,
        };
        let hedge = HedgePolicy {
            percentile: 0.9,
            ..HedgePolicy::default()
        };
        let outlier = OutlierDetection {
            success_rate: Some(SuccessRate::threshold(95)),
            ..OutlierDetection::default()
        };
        let c = MeshConfig::builder()
            .destination(
                DestinationBuilder::new("reviews")
                    .concurrency_limit(5)
                    .no_hedge()
                    .subset(SubsetBuilder::new("v1"))
                    .subset(
                        SubsetBuilder::new("v2")
                            .hedge(hedge)
                            .no_rate_limit()
                            .no_concurrency_limit()
                            .no_retry_concurrency_budget(),
                    ),
            )
            .destination(DestinationBuilder::new("ratings").policy(TrafficPolicy::default()))
            .rate_limit(bucket)
            .retry_concurrency_budget(budget)
            .hedge(hedge)
            .concurrency_limit(100)
            .outlier_detection(outlier.clone())
            .server_rate_limit(bucket)
            .server_concurrency_limit(7)
            .propagate_deadline(false)
            .shutdown_drain(secs(1))
            .shutdown_grace(secs(2))
            .build()
            .unwrap();
        assert_eq!(c.defaults.rate_limit, Some(bucket));
        assert_eq!(c.defaults.retry_concurrency_budget, Some(budget));
        assert_eq!(c.defaults.hedge, Some(hedge));
        assert_eq!(c.defaults.concurrency_limit, Some(100));
        let reviews = &c.destinations[0];
        assert_eq!(reviews.policy.rate_limit, Some(bucket), "inherited");
        assert_eq!(reviews.policy.retry_concurrency_budget, Some(budget));
        assert_eq!(reviews.policy.outlier_detection, Some(outlier));
        assert_eq!(reviews.policy.concurrency_limit, Some(5));
        assert_eq!(reviews.policy.hedge, None);
        let v1 = &reviews.subsets[0].policy;
        assert_eq!(v1, &reviews.policy, "a subset inherits its destination's");
        let v2 = &reviews.subsets[1].policy;
        assert_eq!(v2.hedge, Some(hedge));
        assert_eq!(v2.rate_limit, None);
        assert_eq!(v2.concurrency_limit, None);
        assert_eq!(v2.retry_concurrency_budget, None);
        assert_eq!(
            c.destinations[1].policy,
            TrafficPolicy::default(),
            "a whole policy inherits nothing"
        );
        assert_eq!(
            c.server,
            ServerConfig {
                rate_limit: Some(bucket),
                concurrency_limit: Some(7),
                propagate_deadline: false,
                shutdown: ShutdownConfig {
                    drain: secs(1),
                    grace: secs(2),
                },
                security: Default::default(),
            }
        );
        let whole = ServerConfig {
            concurrency_limit: Some(3),
            ..ServerConfig::default()
        };
        let c = MeshConfig::builder().server(whole.clone()).build().unwrap();
        assert_eq!(c.server, whole);
    }

    #[test]
    fn build_validates() {
        let e = MeshConfig::builder()
            .destination(DestinationBuilder::new("reviews").retry_attempts(101))
            .build()
            .unwrap_err();
        assert_eq!(e.path(), Some("destinations[0].retries.attempts"));
        let e = MeshConfig::builder()
            .destination(DestinationBuilder::new("reviews").endpoints([]))
            .build()
            .unwrap_err();
        assert_eq!(e.path(), Some("destinations[0].endpoints"));
        let e = MeshConfig::builder()
            .namespace("Bad_NS")
            .build()
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("workload.namespace: invalid value \"Bad_NS\""),
            "{e}"
        );
        let e = MeshConfig::builder()
            .destination(
                DestinationBuilder::new("reviews")
                    .subset(SubsetBuilder::new("v1").concurrency_limit(0)),
            )
            .build()
            .unwrap_err();
        assert_eq!(
            e.path(),
            Some("destinations[0].subsets[0].concurrencyLimit")
        );
        let e = MeshConfig::builder()
            .shutdown_drain(secs(60))
            .build()
            .unwrap_err();
        assert_eq!(e.path(), Some("server.shutdown.drain"));
    }
}
