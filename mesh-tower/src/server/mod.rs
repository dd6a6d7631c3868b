//! The server stack: what mesh does for inbound requests before the application sees them,
//! and [`MeshServer`], which serves it with graceful shutdown.
//!
//! # The stack, outermost first
//!
//! | layer | does |
//! |---|---|
//! | listener ([`MeshServer`] only) | TLS by the peer-authentication mode (`ServerSecurity::mtls`): STRICT (mutual TLS only), PERMISSIVE (mutual TLS and plaintext on one port, told apart by the first byte), DISABLE; every request gets a [`Peer`] extension with the caller's address and verified SPIFFE identity |
//! | [`ServerTraceLayer`] | reads the caller's trace context (W3C or B3), makes the server span, gives the request an `x-request-id` when it has none (see [`telemetry`](crate::telemetry)) |
//! | [`ServerMetricsLayer`] | reads and strips the caller's peer metadata, records Istio's `reporter="destination"` metrics of every answer (local replies included) and writes the access log |
//! | [`ReplyLayer`] | answers every [`ServerError`] with a local reply: 429 `local_rate_limited`, 503 `overloaded` with `x-mesh-overloaded: true`, 400 for a malformed deadline header, 504 for a deadline passed on arrival, 401 for an invalid token, 403 `RBAC: access denied`, 500 for an application error |
//! | [`ContextLayer`] | reads the inbound deadline (`x-mesh-timeout-ms`, or `grpc-timeout` of gRPC requests) and runs the handler inside a [`RequestContext`](crate::context::RequestContext) carrying it, for the client stack to bound the outbound calls made while handling the request |
//! | [`RateLimitLayer`] | the local rate limit (`ServerConfig::rate_limit`) |
//! | [`ConcurrencyLimitLayer`] | the concurrency limit (`ServerConfig::concurrency_limit`), each request counted until its response body ends |
//! | [`NormalizeLayer`] | the path normalized as Istio's default (`BASE`): `.` and `..` segments removed, escaped unreserved characters decoded, for policies and the application alike; a malformed escape is 400 |
//! | [`AuthnLayer`](crate::authn::AuthnLayer) | JWT request authentication (`ServerSecurity::jwt_rules`, Istio's RequestAuthentication): a valid token becomes a [`RequestAuth`](crate::authn::RequestAuth) extension, an invalid one a 401; no token passes without one |
//! | [`AuthzLayer`](crate::authz::AuthzLayer) | authorization policies (`ServerSecurity::authorization`): DENY, then ALLOW, then allow when no ALLOW policy applies; denied is 403 |
//! | [`AppLayer`] | the application; its errors become [`ServerError::App`] |
//!
//! [`ServerLayer`] is the whole stack as one layer, for a server of your own (for example
//! `axum::Router::layer`); the layers are public for stacks of other shapes.
//!
//! # Live policy
//!
//! [`ServerLayer::policy`] and [`MeshServer::policy`] give a [`ServerPolicy`], whose
//! [`reload`](ServerPolicy::reload) swaps the JWT rules, the authorization policies,
//! `numTrustedProxies` and the listener's mTLS mode while traffic flows: requests arriving
//! from then on (and connections accepted from then on, for the mTLS mode) use the new
//! settings, those in flight finish on the old ones, and a reload with anything unusable
//! changes nothing. The limits, deadline propagation and shutdown periods stay those of the
//! start.
//!
//! # Graceful shutdown
//!
//! [`MeshServer::serve`] runs until its `shutdown` future resolves, then:
//!
//! 1. It stops accepting at once: the listener is closed, so new connections are refused
//!    and callers go to another endpoint.
//! 2. HTTP/2 connections get GOAWAY at once and finish the streams they have.
//! 3. HTTP/1.1 connections stay open for the drain period (`ShutdownConfig::drain`, 5 s).
//!    Every answer written from now on carries `Connection: close`, so a caller's next
//!    request opens a new connection, which is refused, and goes elsewhere. A connection
//!    closes as soon as such an answer is written.
//! 4. When the drain period ends (at once when it is zero) every connection left shuts down
//!    gracefully: idle ones close now, busy ones after their request.
//! 5. Requests in flight finish, until the grace period (`ShutdownConfig::grace`, 30 s,
//!    counted from the start of shutdown) ends: then everything left is dropped.
//!
//! `serve` returns as soon as every connection is gone, so at the latest after the grace
//! period. A connection that has sent nothing yet when shutdown starts is treated as
//! HTTP/1.1 until its first request says otherwise. The gauge
//! `mesh_server_connections{name}` counts open connections.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use mesh_core::config::ServerConfig;
//! use mesh_tower::server::ServerLayer;
//! use tower::{Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = tower::service_fn(|_req: http::Request<()>| async {
//!     Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("hello"))))
//! });
//! // With an axum `Router`: `router.layer(ServerLayer::new(...))`.
//! let service = ServerLayer::new("reviews", &ServerConfig::default()).unwrap().layer(app);
//! let req = http::Request::get("/").header("x-mesh-timeout-ms", "soon").body(()).unwrap();
//! let res = service.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), 400);
//! # }
//! ```

use std::sync::Arc;

use mesh_core::config::ServerConfig;
use tower_layer::Layer;

use crate::authn::AuthnService;
use crate::authz::AuthzService;
use crate::limit::{
    ConcurrencyLimitLayer, ConcurrencyLimitService, RateLimitLayer, RateLimitService, Side,
};
use crate::telemetry::metrics::ServerMetrics;
use crate::telemetry::trace::ServerTrace;
use crate::telemetry::{ServerMetricsLayer, ServerTraceLayer, Telemetry};

mod app;
mod capture;
mod drain;
mod error;
mod normalize;
mod peer;
mod policy;
mod reply;
mod serve;
#[cfg(test)]
mod tests;

pub use app::{AppFuture, AppLayer, AppService};
pub use capture::{ContextFuture, ContextLayer, ContextService};
pub use error::{ServerBuildError, ServerError};
pub use normalize::{NormalizeFuture, NormalizeLayer, NormalizeService};
pub use peer::Peer;
pub use policy::ServerPolicy;
pub use reply::{
    OVERLOADED_HEADER, ReplyFuture, ReplyLayer, ReplyService, ServerBody, ServerReply, local_reply,
};
pub use serve::MeshServer;

/// The name of a server that was given none: its metrics' `name` label.
pub(crate) const DEFAULT_NAME: &str = "inbound";

/// The whole server stack around an application `S`: see the [module documentation](self).
pub type ServerService<S> = ServerTrace<
    ServerMetrics<
        ReplyService<
            ContextService<
                RateLimitService<
                    ConcurrencyLimitService<
                        NormalizeService<AuthnService<AuthzService<AppService<S>>>>,
                    >,
                >,
            >,
        >,
    >,
>;

/// Applies the server stack ([`ServerService`]) as [`ServerConfig`] says; every service it
/// makes (and every clone) shares one rate limit, one concurrency limit and one security
/// policy, which [`ServerLayer::policy`] swaps while traffic flows.
#[derive(Clone, Debug)]
pub struct ServerLayer {
    name: Arc<str>,
    trace: ServerTraceLayer,
    metrics: ServerMetricsLayer,
    context: ContextLayer,
    rate_limit: RateLimitLayer,
    concurrency_limit: ConcurrencyLimitLayer,
    policy: ServerPolicy,
}

impl ServerLayer {
    /// The stack of `config`; `name` labels the limits' metrics. Reports with
    /// [`Telemetry::default`] unless [`ServerLayer::telemetry`] says otherwise. Fails when a
    /// JWT rule or an authorization policy of `config.security` cannot be used.
    pub fn new(name: impl Into<Arc<str>>, config: &ServerConfig) -> Result<Self, ServerBuildError> {
        let policy = ServerPolicy::new(&config.security, None)?;
        Ok(Self::with_policy(name.into(), config, policy))
    }

    /// The stack of `config` deciding with `policy` (whose settings it does not read).
    pub(crate) fn with_policy(name: Arc<str>, config: &ServerConfig, policy: ServerPolicy) -> Self {
        let telemetry = Telemetry::default();
        Self {
            trace: ServerTraceLayer::new(&telemetry),
            metrics: ServerMetricsLayer::new(&telemetry, name.clone()),
            name: name.clone(),
            policy,
            context: ContextLayer::new().propagate_deadline(config.propagate_deadline),
            rate_limit: RateLimitLayer::optional(name.clone(), config.rate_limit, Side::Server),
            concurrency_limit: ConcurrencyLimitLayer::optional(
                name,
                config.concurrency_limit.map(|max| max as usize),
                Side::Server,
            ),
        }
    }

    /// The handle that swaps the security policy (JWT rules, authorization policies) of
    /// every service this layer made or makes; see [`ServerPolicy`].
    pub fn policy(&self) -> ServerPolicy {
        self.policy.clone()
    }
}

impl ServerLayer {
    /// The same stack reporting with `telemetry` (share one with the workload's client).
    pub fn telemetry(mut self, telemetry: &Telemetry) -> Self {
        self.trace = ServerTraceLayer::new(telemetry);
        self.metrics = ServerMetricsLayer::new(telemetry, self.name.clone());
        self
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = ServerService<S>;

    fn layer(&self, app: S) -> ServerService<S> {
        // Outermost first. Telemetry (destination metrics, server span, access log) goes
        // outside the local reply, so it sees local replies too (marked by `ServerReply`);
        // authentication and authorization go between the limits and the application, so
        // a rejected caller costs a token and a slot but never reaches the handler.
        let app = AppLayer::new().layer(app);
        let app = self.policy.authz().layer(app);
        let app = self.policy.authn().layer(app);
        let app = NormalizeLayer.layer(app);
        let app = self.concurrency_limit.layer(app);
        let app = self.rate_limit.layer(app);
        let app = self.context.layer(app);
        let app = ReplyLayer::new().layer(app);
        let app = self.metrics.layer(app);
        self.trace.layer(app)
    }
}
