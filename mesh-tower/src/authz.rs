//! The server stack's authorization layer (Istio's `AuthorizationPolicy`).
//!
//! [`AuthzLayer`] decides each request with an [`Authorizer`] (DENY policies first, then
//! ALLOW policies, then allow when none applies; see [`mesh_core::authz`]). It reads:
//!
//! - the [`Peer`] extension the server sets: the caller's address (`source.ip`), the
//!   server's port and address (`destination.port`, `destination.ip`) and the caller's
//!   verified SPIFFE identity (`source.principal`, `source.namespace`). Without it the
//!   source is `0.0.0.0`, the port is the `Host` header's (else 0) and there is no
//!   principal;
//! - the [`RequestAuth`] extension the authentication layer sets for a valid token
//!   (`request.auth.principal` and the claims);
//! - the `Host` header (else the URI's authority), the method, the path and the headers;
//! - with [`trusted_proxies(n)`](AuthzLayer::trusted_proxies), the original client
//!   (`remote.ip`): the n-th address from the right of `X-Forwarded-For`, as Envoy's
//!   `xff_num_trusted_hops`; the connection's source when there are fewer, or n is 0.
//!
//! A denied request fails with [`ServerError::Forbidden`], which the server stack's reply
//! layer answers with 403 `RBAC: access denied` (gRPC: PERMISSION_DENIED); it is counted in
//! `mesh_authz_denied_total{policy}` (`policy` is `-` when ALLOW policies apply and none
//! matched) and logged at debug level. A request an AUDIT policy matches is counted in
//! `mesh_authz_audited_total{policy}` and logged at info level, whatever the decision. An
//! [`Authorizer`] without policies passes every request through untouched.
//!
//! ```
//! use std::convert::Infallible;
//! use mesh_core::authz::Authorizer;
//! use mesh_core::config::{AuthorizationPolicy, AuthzAction, AuthzOperation, AuthzRule, Matcher};
//! use mesh_tower::authz::AuthzLayer;
//! use mesh_tower::server::ServerError;
//! use tower::{Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Deny DELETE to everyone.
//! let policy = AuthorizationPolicy {
//!     name: "no-delete".into(),
//!     namespace: Some("default".into()),
//!     selector: None,
//!     action: AuthzAction::Deny,
//!     rules: vec![AuthzRule {
//!         to: vec![AuthzOperation {
//!             methods: Matcher { values: vec!["DELETE".into()], not_values: vec![] },
//!             ..Default::default()
//!         }],
//!         ..Default::default()
//!     }],
//! };
//! let layer = AuthzLayer::new(Authorizer::new(&[policy]).unwrap());
//! let app = tower::service_fn(|_req: http::Request<()>| async {
//!     Ok::<_, ServerError>(http::Response::new(()))
//! });
//! let service = layer.layer(app);
//!
//! let get = http::Request::get("/reviews/1").body(()).unwrap();
//! assert!(service.clone().oneshot(get).await.is_ok());
//!
//! let delete = http::Request::delete("/reviews/1").body(()).unwrap();
//! match service.oneshot(delete).await {
//!     Err(ServerError::Forbidden { policy }) => {
//!         assert_eq!(policy.as_deref(), Some("default/no-delete"));
//!     }
//!     other => panic!("expected 403, got {other:?}"),
//! }
//! # }
//! ```

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use http::header::HOST;
use http::{HeaderMap, Request};
use mesh_core::authz::{Authorizer, AuthzRequest, Verdict};

use crate::authn::RequestAuth;
use crate::server::{Peer, ServerError};

/// The header naming the original client and the proxies a request passed.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Applies [`AuthzService`]; every service it makes (and every clone) shares one compiled
/// [`Authorizer`], which the server's [`ServerPolicy`](crate::server::ServerPolicy) may swap
/// while requests flow: each request is decided with the policies current when it arrives.
#[derive(Clone, Debug)]
pub struct AuthzLayer {
    policy: Arc<ArcSwap<AuthzPolicy>>,
}

/// What a request is decided with, swapped whole on a reload.
#[derive(Debug)]
pub(crate) struct AuthzPolicy {
    authorizer: Arc<Authorizer>,
    trusted_proxies: usize,
}

impl AuthzPolicy {
    /// `authorizer`, with `trusted_proxies` proxies in front of the server.
    pub(crate) fn new(authorizer: Authorizer, trusted_proxies: usize) -> Self {
        Self {
            authorizer: Arc::new(authorizer),
            trusted_proxies,
        }
    }
}

impl AuthzLayer {
    /// Decides requests with `authorizer` (the policies that apply to the workload).
    pub fn new(authorizer: Authorizer) -> Self {
        Self {
            policy: Arc::new(ArcSwap::from_pointee(AuthzPolicy::new(authorizer, 0))),
        }
    }

    /// How many proxies in front of the server append to `X-Forwarded-For` (Envoy's
    /// `xff_num_trusted_hops`, Istio's `numTrustedProxies`): `remote.ip` is the `n`-th
    /// address from the right of the header. 0 (the default) ignores the header:
    /// `remote.ip` is the connection's source. Clones made before are not changed.
    pub fn trusted_proxies(self, n: usize) -> Self {
        let authorizer = self.policy.load().authorizer.clone();
        Self {
            policy: Arc::new(ArcSwap::from_pointee(AuthzPolicy {
                authorizer,
                trusted_proxies: n,
            })),
        }
    }

    /// The authorizer deciding requests now.
    pub fn authorizer(&self) -> Arc<Authorizer> {
        self.policy.load().authorizer.clone()
    }

    /// Decides `req` as the layer's services do, without counting or logging.
    pub fn authorize<B>(&self, req: &Request<B>) -> Verdict {
        let policy = self.policy.load();
        authorize(&policy.authorizer, policy.trusted_proxies, req)
    }

    /// Makes `policy` decide every request arriving from now on, in every service of this
    /// layer and its clones.
    pub(crate) fn store(&self, policy: AuthzPolicy) {
        self.policy.store(Arc::new(policy));
    }
}

impl<S> tower_layer::Layer<S> for AuthzLayer {
    type Service = AuthzService<S>;

    fn layer(&self, inner: S) -> AuthzService<S> {
        AuthzService {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// Decides each request before the inner service sees it; a denied request fails with
/// [`ServerError::Forbidden`] and is never sent on.
#[derive(Clone, Debug)]
pub struct AuthzService<S> {
    inner: S,
    policy: Arc<ArcSwap<AuthzPolicy>>,
}

impl<S> AuthzService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> tower_service::Service<Request<B>> for AuthzService<S>
where
    S: tower_service::Service<Request<B>>,
    S::Error: Into<ServerError>,
{
    type Response = S::Response;
    type Error = ServerError;
    type Future = AuthzFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ServerError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // One atomic load: the policies current now decide this request.
        let policy = self.policy.load();
        if !policy.authorizer.is_empty() {
            let verdict = authorize(&policy.authorizer, policy.trusted_proxies, &req);
            if let Some(policy) = &verdict.audited {
                tracing::info!(
                    %policy,
                    allowed = verdict.allowed,
                    method = %req.method(),
                    path = req.uri().path(),
                    "authorization audit"
                );
                metrics::counter!("mesh_authz_audited_total", "policy" => policy.clone())
                    .increment(1);
            }
            if !verdict.allowed {
                let label = verdict.policy.clone().map_or_else(
                    || metrics::SharedString::const_str("-"),
                    metrics::SharedString::from,
                );
                tracing::debug!(
                    policy = &*label,
                    method = %req.method(),
                    path = req.uri().path(),
                    "authorization denied"
                );
                metrics::counter!("mesh_authz_denied_total", "policy" => label).increment(1);
                return AuthzFuture {
                    state: State::Denied {
                        policy: verdict.policy,
                    },
                };
            }
        }
        drop(policy);
        AuthzFuture {
            state: State::Called {
                future: self.inner.call(req),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`AuthzService`].
    pub struct AuthzFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: F },
        Denied { policy: Option<Arc<str>> },
    }
}

impl<F, T, E> Future for AuthzFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<ServerError>,
{
    type Output = Result<T, ServerError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => future.poll(cx).map_err(Into::into),
            // Built on each poll, so polling again after completion repeats the denial.
            StateProj::Denied { policy } => Poll::Ready(Err(ServerError::Forbidden {
                policy: policy.clone(),
            })),
        }
    }
}

/// Builds the [`AuthzRequest`] of `req` and decides it.
fn authorize<B>(authorizer: &Authorizer, trusted_proxies: usize, req: &Request<B>) -> Verdict {
    let peer = req.extensions().get::<Peer>();
    let auth = req.extensions().get::<RequestAuth>();
    let headers = req.headers();
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    let source_ip = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.addr.ip());
    let remote_ip = match trusted_proxies {
        0 => source_ip,
        n => forwarded_client(headers, n).unwrap_or(source_ip),
    };
    authorizer.authorize(&AuthzRequest {
        principal: peer
            .and_then(|p| p.identity.as_ref())
            .map(|id| id.principal()),
        request_principal: auth.map(|a| &*a.principal),
        claims: auth.map(|a| &*a.claims),
        source_ip,
        remote_ip,
        destination_ip: peer.map(|p| p.local.ip()),
        host,
        port: peer.map_or_else(|| host_port(host).unwrap_or(0), |p| p.local.port()),
        method: req.method().as_str(),
        path: req.uri().path(),
        headers,
    })
}

/// The `hops`-th address from the right of `X-Forwarded-For` (over all its lines), when
/// there are that many and it is an address.
fn forwarded_client(headers: &HeaderMap, hops: usize) -> Option<IpAddr> {
    let mut seen = 0;
    for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        for entry in line.to_str().ok()?.rsplit(',') {
            seen += 1;
            if seen == hops {
                return parse_forwarded(entry.trim());
            }
        }
    }
    None
}

/// An address as proxies write it: `192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`, or either
/// with a port.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
        .map(|ip| ip.to_canonical())
}

/// The port of a `Host` value (`example.com:8080`, `[::1]:8080`), when it has one.
fn host_port(host: &str) -> Option<u16> {
    let (name, port) = host.rsplit_once(':')?;
    if name.contains(':') && !(name.starts_with('[') && name.ends_with(']')) {
        return None; // a bare IPv6 address
    }
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse().ok()
}

#[cfg(test)]
mod tests;
