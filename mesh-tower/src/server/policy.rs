//! [`ServerPolicy`]: the security policy of a running server, swapped whole on a reload.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use arc_swap::ArcSwap;
use mesh_core::authz::Authorizer;
use mesh_core::config::{ServerConfig, ServerSecurity};

use super::ServerBuildError;
use crate::authn::AuthnLayer;
use crate::authz::{AuthzLayer, AuthzPolicy};
use crate::tls::{Identity, TlsAcceptor};

/// A handle on the security policy of a server stack: its authorization policies and
/// `numTrustedProxies`, its JWT rules, and (for a [`MeshServer`](super::MeshServer)) the
/// mTLS mode of its listener. [`ServerPolicy::reload`] swaps them while traffic flows, as
/// Istio applies an edited AuthorizationPolicy, RequestAuthentication or PeerAuthentication
/// without restarting the workload.
///
/// Get it from [`ServerLayer::policy`](super::ServerLayer::policy) or
/// [`MeshServer::policy`](super::MeshServer::policy); clones share one policy, and so do
/// every service of the layer (and of its clones) and every connection of the server.
///
/// - Requests decide with the policy current when they reach the layer (one atomic load
///   each, no lock); requests in flight finish on the one they started with.
/// - A new mTLS mode applies to connections accepted from then on; open connections keep
///   the mode, and the peer identity, they were accepted with.
/// - The authentication and authorization layers are swapped one after the other, so a
///   request arriving during the swap may meet the new JWT rules and the old authorization
///   policies (never a half-built one).
/// - The rate limit, the concurrency limit, deadline propagation and the shutdown periods
///   stay as the server was built: a reload reads only `config.security`.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use mesh_core::config::{AuthorizationPolicy, AuthzAction, ServerConfig};
/// use mesh_tower::server::ServerLayer;
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = tower::service_fn(|_req: http::Request<()>| async {
///     Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("hello"))))
/// });
/// let mut config = ServerConfig::default();
/// let layer = ServerLayer::new("productpage", &config).unwrap();
/// let policy = layer.policy();
/// let service = layer.layer(app);
/// let get = || http::Request::get("/productpage").body(()).unwrap();
/// assert_eq!(service.clone().oneshot(get()).await.unwrap().status(), 200);
///
/// // Istio's `deny-all`: an ALLOW policy without rules matches nothing.
/// config.security.authorization = vec![AuthorizationPolicy {
///     name: "deny-all".into(),
///     namespace: Some("default".into()),
///     selector: None,
///     action: AuthzAction::Allow,
///     rules: vec![],
/// }];
/// policy.reload(&config).unwrap();
/// assert_eq!(service.clone().oneshot(get()).await.unwrap().status(), 403);
///
/// // Removed again: allowed, without a new service.
/// config.security.authorization.clear();
/// policy.reload(&config).unwrap();
/// assert_eq!(service.oneshot(get()).await.unwrap().status(), 200);
/// # }
/// ```
#[derive(Clone)]
pub struct ServerPolicy {
    shared: Arc<Shared>,
}

struct Shared {
    authn: AuthnLayer,
    authz: AuthzLayer,
    /// Held while a reload builds and swaps, so reloads apply one at a time; never taken
    /// on the request path.
    transport: Mutex<Transport>,
}

/// What the listeners' acceptors are built from.
struct Transport {
    /// The settings in force.
    security: ServerSecurity,
    identity: Option<Identity>,
    listeners: Vec<Listener>,
}

/// A listener serving with this policy.
struct Listener {
    port: u16,
    alpn: Vec<Vec<u8>>,
    acceptor: Weak<ArcSwap<TlsAcceptor>>,
}

impl ServerPolicy {
    /// The policy of `security`; listeners registered later present `identity`.
    pub(crate) fn new(
        security: &ServerSecurity,
        identity: Option<Identity>,
    ) -> Result<Self, ServerBuildError> {
        // Authorization first: it starts nothing, unlike a jwksUri.
        let authz = AuthzLayer::new(Authorizer::new(&security.authorization)?)
            .trusted_proxies(security.num_trusted_proxies as usize);
        let authn = AuthnLayer::new(&security.jwt_rules)?;
        Ok(Self {
            shared: Arc::new(Shared {
                authn,
                authz,
                transport: Mutex::new(Transport {
                    security: security.clone(),
                    identity,
                    listeners: Vec::new(),
                }),
            }),
        })
    }

    /// Applies `config.security` to every request and connection from now on: the
    /// authorization policies and `numTrustedProxies`, the JWT rules, and the mTLS mode
    /// (with `portLevelMtls` and the trust domains) of the listeners serving.
    ///
    /// Everything is built and checked first; when anything is unusable nothing changes and
    /// the error names it: [`ServerBuildError::Authz`] (the policy and the field),
    /// [`ServerBuildError::Authn`] (the rule and its issuer), [`ServerBuildError::Mtls`] (a
    /// mode that needs a workload identity the server has not). A `jwksUri` the current
    /// rules name already, with the same timeout and refresh, keeps its cached key set and
    /// its fetch task; a new one starts fetching now (so call it inside a tokio runtime). The
    /// other settings of `config` are not read.
    pub fn reload(&self, config: &ServerConfig) -> Result<(), ServerBuildError> {
        let security = &config.security;
        let mut transport = self.transport();
        let authz = AuthzPolicy::new(
            Authorizer::new(&security.authorization)?,
            security.num_trusted_proxies as usize,
        );
        transport
            .listeners
            .retain(|l| l.acceptor.strong_count() > 0);
        let mut acceptors = Vec::new();
        for listener in &transport.listeners {
            let Some(slot) = listener.acceptor.upgrade() else {
                continue;
            };
            let mode = security.mtls_for_port(listener.port);
            if mode == transport.security.mtls_for_port(listener.port)
                && security.trust_domains == transport.security.trust_domains
            {
                continue;
            }
            let acceptor = TlsAcceptor::new(
                mode,
                transport.identity.clone(),
                security.trust_domains.clone(),
                listener.alpn.clone(),
            )
            .map_err(|source| ServerBuildError::Mtls {
                field: if security.port_mtls.contains_key(&listener.port) {
                    format!("portLevelMtls[{}].mode", listener.port)
                } else {
                    "mtls.mode".to_owned()
                },
                mode,
                source,
            })?;
            acceptors.push((slot, acceptor));
        }
        // Last: new jwksUris start fetching once every rule is good.
        let authn = self.shared.authn.prepare(&security.jwt_rules)?;

        self.shared.authz.store(authz);
        self.shared.authn.store(authn);
        for (slot, acceptor) in acceptors {
            slot.store(Arc::new(acceptor));
        }
        transport.security = security.clone();
        tracing::info!(
            policies = security.authorization.len(),
            jwt_rules = security.jwt_rules.len(),
            mtls = %security.mtls,
            "server policy reloaded"
        );
        Ok(())
    }

    /// The security settings in force (those of the start, or of the last reload).
    pub fn security(&self) -> ServerSecurity {
        self.transport().security.clone()
    }

    /// The acceptor of a listener on `port` offering `alpn`, swapped by later reloads.
    /// Fails when the mode of the port needs an identity the server has not.
    pub(crate) fn listen(
        &self,
        port: u16,
        alpn: Vec<Vec<u8>>,
    ) -> Result<Arc<ArcSwap<TlsAcceptor>>, ServerBuildError> {
        let mut transport = self.transport();
        let acceptor = TlsAcceptor::new(
            transport.security.mtls_for_port(port),
            transport.identity.clone(),
            transport.security.trust_domains.clone(),
            alpn.clone(),
        )?;
        let slot = Arc::new(ArcSwap::from_pointee(acceptor));
        transport
            .listeners
            .retain(|l| l.acceptor.strong_count() > 0);
        transport.listeners.push(Listener {
            port,
            alpn,
            acceptor: Arc::downgrade(&slot),
        });
        Ok(slot)
    }

    /// The authentication layer, sharing this policy's rules.
    pub(crate) fn authn(&self) -> &AuthnLayer {
        &self.shared.authn
    }

    /// The authorization layer, sharing this policy's authorizer.
    pub(crate) fn authz(&self) -> &AuthzLayer {
        &self.shared.authz
    }

    fn transport(&self) -> MutexGuard<'_, Transport> {
        self.shared
            .transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for ServerPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerPolicy")
            .field("authn", &self.shared.authn)
            .field("authz", &self.shared.authz)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
