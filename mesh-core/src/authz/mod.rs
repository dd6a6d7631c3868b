//! Authorization policies with Istio's `AuthorizationPolicy` semantics: DENY policies first,
//! then ALLOW policies, then allow when no ALLOW policy applies; AUDIT policies only mark a
//! request. The policies given are those that apply to the workload
//! ([`MeshConfig::inbound`](crate::config::MeshConfig::inbound) selects them).
//!
//! [`Authorizer::new`] compiles the policies once (CIDRs parsed, path templates split,
//! header names and claim paths resolved, bad values reported with their field path);
//! [`Authorizer::authorize`] then decides a request without allocating.
//!
//! # Matching
//!
//! - A policy matches when one of its rules does; an ALLOW policy without rules matches
//!   nothing, a rule without `from`, `to` and `when` matches everything.
//! - A rule matches when one of its `from` sources, one of its `to` operations and every
//!   `when` condition match; inside a source or an operation every set field must match.
//! - A field matches when the attribute matches one of its values (if any) and none of its
//!   `not` values. An absent attribute (no peer identity on plaintext, no token) fails a
//!   positive list, and passes a `not` list alone.
//! - Strings (principals, request principals, namespaces, hosts, methods, paths, `when`
//!   values) are exact, `prefix*`, `*suffix`, or `*`: any non-empty value.
//! - `namespaces` is the peer identity's (`<td>/ns/<ns>/sa/<sa>`). `requestPrincipals`
//!   (`<iss>/<sub>`) is split at its last `/` into a match of the token's `iss` and one of its
//!   `sub`, as Istio does. `hosts` ignores ASCII case, and a host without a port also matches
//!   it with any port. `ports` is the server's port; `methods` is case-sensitive.
//! - `paths` are compared without the query; besides the string forms they take templates
//!   whose segments are `{*}` (one non-empty segment) and, last only, `{**}` (the non-empty
//!   rest of the path): `/api/{*}/items/{**}`.
//! - `ipBlocks` (the connection's source), `remoteIpBlocks` (the original client) and the
//!   IP `when` keys take single addresses and CIDR blocks, IPv4 and IPv6; an IPv4 address
//!   mapped into IPv6 is compared as IPv4.
//!
//! `when` keys: `request.headers[<name>]` (any value of the header; `:authority`/`host`,
//! `:method` and `:path` read the request's parts), `source.ip`, `remote.ip`,
//! `destination.ip`, `destination.port`, `source.namespace`, `source.principal`,
//! `request.auth.principal`, `request.auth.audiences` (`aud`), `request.auth.presenter`
//! (`azp`) and `request.auth.claims[<name>]`, nested as `[<a>][<b>]` (a string, a number or
//! boolean as its text, or a list of which one element must match). `connection.sni`,
//! `source.serviceAccount` and `experimental.*` are refused as not supported.
//!
//! As Istio's validation does, [`Authorizer::new`] also refuses empty values, a source or
//! operation with no field set, and a condition with neither `values` nor `notValues`.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use http::HeaderMap;
//! use mesh_core::authz::{Authorizer, AuthzRequest};
//! use mesh_core::config::{AuthorizationPolicy, AuthzAction, AuthzOperation, AuthzRule, Matcher};
//!
//! let policy = AuthorizationPolicy {
//!     name: "readers".into(),
//!     namespace: Some("default".into()),
//!     selector: None,
//!     action: AuthzAction::Allow,
//!     rules: vec![AuthzRule {
//!         to: vec![AuthzOperation {
//!             methods: Matcher { values: vec!["GET".into()], not_values: vec![] },
//!             ..Default::default()
//!         }],
//!         ..Default::default()
//!     }],
//! };
//! let authorizer = Authorizer::new(&[policy]).unwrap();
//! let headers = HeaderMap::new();
//! let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));
//! let mut req = AuthzRequest {
//!     principal: None,
//!     request_principal: None,
//!     claims: None,
//!     source_ip: ip,
//!     remote_ip: ip,
//!     destination_ip: None,
//!     host: "reviews:9080",
//!     port: 9080,
//!     method: "GET",
//!     path: "/reviews/1",
//!     headers: &headers,
//! };
//! let verdict = authorizer.authorize(&req);
//! assert!(verdict.allowed);
//! assert_eq!(verdict.policy.as_deref(), Some("default/readers"));
//! req.method = "DELETE";
//! assert!(!authorizer.authorize(&req).allowed);
//! ```

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;

use crate::config::{AuthorizationPolicy, AuthzAction};

mod check;
mod compile;
mod matcher;
#[cfg(test)]
mod tests;

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
    /// The server's own address (`destination.ip`), when known.
    pub destination_ip: Option<IpAddr>,
    /// The `Host` header or `:authority`, with its port if it has one.
    pub host: &'a str,
    /// The server's port.
    pub port: u16,
    /// The method.
    pub method: &'a str,
    /// The path, without the query (a query after `?` is ignored).
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
    /// matching ALLOW policy; `-/<name>` without a namespace); `None` when no policy matched.
    pub policy: Option<Arc<str>>,
    /// The AUDIT policy that matched, if any.
    pub audited: Option<Arc<str>>,
}

/// A policy value that cannot be compiled: a bad address, CIDR block, port, path template,
/// header name or condition key, an empty value, or an empty source, operation or condition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("AuthorizationPolicy {policy}: {field}: {value:?}: {reason}")]
pub struct AuthzError {
    /// The policy, `<namespace>/<name>` (`-/<name>` without a namespace).
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
    deny: Box<[compile::Policy]>,
    allow: Box<[compile::Policy]>,
    audit: Box<[compile::Policy]>,
}

impl Authorizer {
    /// Compiles `policies` (those that apply to the workload); the first bad value is an
    /// error naming its policy, field path and value.
    pub fn new(policies: &[AuthorizationPolicy]) -> Result<Self, AuthzError> {
        let (mut deny, mut allow, mut audit) = (Vec::new(), Vec::new(), Vec::new());
        for policy in policies {
            let compiled = compile::policy(policy)?;
            match policy.action {
                AuthzAction::Allow => allow.push(compiled),
                // Without rules these never match: nothing to evaluate.
                AuthzAction::Deny if !compiled.rules.is_empty() => deny.push(compiled),
                AuthzAction::Audit if !compiled.rules.is_empty() => audit.push(compiled),
                AuthzAction::Deny | AuthzAction::Audit => {}
            }
        }
        Ok(Self {
            deny: deny.into(),
            allow: allow.into(),
            audit: audit.into(),
        })
    }

    /// Whether no policy can affect a request (there are none, or only DENY and AUDIT
    /// policies without rules): every request is allowed and nothing needs evaluating.
    pub fn is_empty(&self) -> bool {
        self.deny.is_empty() && self.allow.is_empty() && self.audit.is_empty()
    }

    /// Decides `req`: denied by the first matching DENY policy; else, when there are ALLOW
    /// policies, allowed by the first matching one or denied with no policy; else allowed.
    /// The first matching AUDIT policy is reported whatever the decision.
    pub fn authorize(&self, req: &AuthzRequest<'_>) -> Verdict {
        if self.is_empty() {
            return Verdict {
                allowed: true,
                policy: None,
                audited: None,
            };
        }
        let attrs = check::Attrs::new(req);
        let first = |policies: &[compile::Policy]| {
            policies
                .iter()
                .find(|p| p.matches(&attrs))
                .map(|p| p.name.clone())
        };
        let audited = first(&self.audit);
        if let Some(policy) = first(&self.deny) {
            return Verdict {
                allowed: false,
                policy: Some(policy),
                audited,
            };
        }
        if self.allow.is_empty() {
            return Verdict {
                allowed: true,
                policy: None,
                audited,
            };
        }
        let policy = first(&self.allow);
        Verdict {
            allowed: policy.is_some(),
            policy,
            audited,
        }
    }
}
