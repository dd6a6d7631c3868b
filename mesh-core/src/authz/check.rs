//! One compiled condition on one request attribute, and the request's attributes as the
//! conditions read them.

use std::cell::OnceCell;
use std::net::IpAddr;

use http::HeaderName;
use ipnet::IpNet;
use serde_json::Value;

use super::AuthzRequest;
use super::matcher::{Field, HostMatch, PathMatch, RequestPrincipalMatch, StrMatch, claim_matches};

/// A condition on one attribute: a field of a source or an operation, or one `when`.
#[derive(Clone, Debug)]
pub(crate) enum Check {
    /// `principals`, `source.principal`.
    Principal(Field<StrMatch>),
    /// `requestPrincipals`, `request.auth.principal`.
    RequestPrincipal(Field<RequestPrincipalMatch>),
    /// `namespaces`, `source.namespace`.
    Namespace(Field<StrMatch>),
    /// `ipBlocks`, `source.ip`.
    SourceIp(Field<IpNet>),
    /// `remoteIpBlocks`, `remote.ip`.
    RemoteIp(Field<IpNet>),
    /// `destination.ip`.
    DestinationIp(Field<IpNet>),
    /// `hosts`.
    Host(Field<HostMatch>),
    /// `ports`, `destination.port`.
    Port(Field<u16>),
    /// `methods`.
    Method(Field<StrMatch>),
    /// `paths`.
    Path(Field<PathMatch>),
    /// `request.headers[<name>]`.
    Header(HeaderKey, Field<StrMatch>),
    /// `request.auth.claims[<a>][<b>]`, `request.auth.audiences` (`aud`),
    /// `request.auth.presenter` (`azp`).
    Claim(Box<[Box<str>]>, Field<StrMatch>),
}

/// Which header a `request.headers[...]` condition reads; Envoy's pseudo-headers map to the
/// request's parts.
#[derive(Clone, Debug)]
pub(crate) enum HeaderKey {
    /// A header by name (every value of it).
    Name(HeaderName),
    /// `:authority` or `host`.
    Authority,
    /// `:method`.
    Method,
    /// `:path` (without the query).
    Path,
}

/// The attributes of one request; those that take work are worked out when first read.
pub(crate) struct Attrs<'a> {
    req: AuthzRequest<'a>,
    path: &'a str,
    namespace: OnceCell<Option<&'a str>>,
    /// The token's `iss` and `sub`.
    token: OnceCell<Option<(&'a str, &'a str)>>,
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(req: &AuthzRequest<'a>) -> Self {
        Self {
            path: req.path.split_once('?').map_or(req.path, |(path, _)| path),
            namespace: OnceCell::new(),
            token: OnceCell::new(),
            req: *req,
        }
    }

    fn namespace(&self) -> Option<&'a str> {
        *self
            .namespace
            .get_or_init(|| self.req.principal.and_then(namespace_of))
    }

    fn token(&self) -> Option<(&'a str, &'a str)> {
        let req = self.req;
        *self.token.get_or_init(|| {
            let principal = req.request_principal?;
            let claim = |name| req.claims?.get(name)?.as_str();
            Some(match (claim("iss"), claim("sub")) {
                (Some(iss), Some(sub)) => (iss, sub),
                _ => principal.rsplit_once('/').unwrap_or((principal, "")),
            })
        })
    }
}

/// The namespace of an Istio principal, `<td>/ns/<ns>/sa/<sa>`: what follows `/ns/` up to
/// the next `/` (Istio's `.*/ns/<ns>/.*`).
fn namespace_of(principal: &str) -> Option<&str> {
    let (_, rest) = principal.split_once("/ns/")?;
    let (namespace, _) = rest.split_once('/')?;
    (!namespace.is_empty()).then_some(namespace)
}

fn ip_hit(field: &Field<IpNet>, ip: Option<IpAddr>) -> bool {
    field.check(|net| ip.is_some_and(|ip| net.contains(&ip)))
}

fn str_hit(field: &Field<StrMatch>, value: Option<&str>) -> bool {
    field.check(|m| value.is_some_and(|v| m.matches(v)))
}

impl Check {
    /// Whether the request's attribute satisfies this condition.
    pub(crate) fn matches(&self, a: &Attrs<'_>) -> bool {
        match self {
            Check::Principal(f) => str_hit(f, a.req.principal),
            Check::RequestPrincipal(f) => {
                let token = a.token();
                f.check(|m| token.is_some_and(|t| m.matches(t)))
            }
            Check::Namespace(f) => str_hit(f, a.namespace()),
            Check::SourceIp(f) => ip_hit(f, Some(a.req.source_ip.to_canonical())),
            Check::RemoteIp(f) => ip_hit(f, Some(a.req.remote_ip.to_canonical())),
            Check::DestinationIp(f) => ip_hit(f, a.req.destination_ip.map(|ip| ip.to_canonical())),
            Check::Host(f) => {
                let host = a.req.host;
                f.check(|m| !host.is_empty() && m.matches(host))
            }
            Check::Port(f) => f.check(|port| *port == a.req.port),
            Check::Method(f) => str_hit(f, Some(a.req.method)),
            Check::Path(f) => f.check(|m| m.matches(a.path)),
            Check::Header(key, f) => match key {
                HeaderKey::Name(name) => {
                    let values = a.req.headers.get_all(name);
                    f.check(|m| {
                        values
                            .iter()
                            .any(|v| std::str::from_utf8(v.as_bytes()).is_ok_and(|v| m.matches(v)))
                    })
                }
                HeaderKey::Authority => str_hit(f, Some(a.req.host)),
                HeaderKey::Method => str_hit(f, Some(a.req.method)),
                HeaderKey::Path => str_hit(f, Some(a.path)),
            },
            Check::Claim(path, f) => {
                let value = claim_at(a.req.claims, path);
                f.check(|m| value.is_some_and(|v| claim_matches(v, m)))
            }
        }
    }
}

fn claim_at<'v>(claims: Option<&'v Value>, path: &[Box<str>]) -> Option<&'v Value> {
    path.iter()
        .try_fold(claims?, |value, name| value.get(&**name))
}
