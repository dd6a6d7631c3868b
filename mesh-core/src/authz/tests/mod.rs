use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::config::{
    AuthorizationPolicy, AuthzAction, AuthzCondition, AuthzOperation, AuthzRule, AuthzSource,
    Matcher,
};

mod conditions;
mod errors;
mod evaluation;
mod operations;
mod props;
mod sources;

fn strs(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

fn is(values: &[&str]) -> Matcher {
    Matcher {
        values: strs(values),
        not_values: Vec::new(),
    }
}

fn not(values: &[&str]) -> Matcher {
    Matcher {
        values: Vec::new(),
        not_values: strs(values),
    }
}

fn policy(name: &str, action: AuthzAction, rules: Vec<AuthzRule>) -> AuthorizationPolicy {
    AuthorizationPolicy {
        name: name.to_owned(),
        namespace: Some("ns".to_owned()),
        selector: None,
        action,
        rules,
    }
}

fn from(source: AuthzSource) -> AuthzRule {
    AuthzRule {
        from: vec![source],
        ..AuthzRule::default()
    }
}

fn to(operation: AuthzOperation) -> AuthzRule {
    AuthzRule {
        to: vec![operation],
        ..AuthzRule::default()
    }
}

fn when(key: &str, matcher: Matcher) -> AuthzRule {
    AuthzRule {
        when: vec![AuthzCondition {
            key: key.to_owned(),
            matcher,
        }],
        ..AuthzRule::default()
    }
}

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
const ORIGIN: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9));

/// An owned request; [`Req::get`] lends it as an [`AuthzRequest`].
#[derive(Clone, Debug)]
struct Req {
    principal: Option<String>,
    request_principal: Option<String>,
    claims: Option<Value>,
    source_ip: IpAddr,
    remote_ip: IpAddr,
    destination_ip: Option<IpAddr>,
    host: String,
    port: u16,
    method: String,
    path: String,
    headers: HeaderMap,
}

impl Default for Req {
    /// An mTLS request from `default/productpage` with a token of `https://issuer.example`.
    fn default() -> Self {
        Self {
            principal: Some("cluster.local/ns/default/sa/productpage".to_owned()),
            request_principal: Some("https://issuer.example/alice".to_owned()),
            claims: Some(json!({
                "iss": "https://issuer.example",
                "sub": "alice",
                "aud": ["reviews", "ratings"],
                "azp": "web",
                "groups": ["dev", "admin"],
                "level": 3,
                "ratio": 0.5,
                "staff": true,
                "nested": {"role": "editor", "tags": ["a", "b"]},
                "empty": "",
            })),
            source_ip: CLIENT,
            remote_ip: ORIGIN,
            destination_ip: Some(SERVER),
            host: "reviews.default.svc:9080".to_owned(),
            port: 9080,
            method: "GET".to_owned(),
            path: "/api/v1/items".to_owned(),
            headers: HeaderMap::new(),
        }
    }
}

impl Req {
    fn get(&self) -> AuthzRequest<'_> {
        AuthzRequest {
            principal: self.principal.as_deref(),
            request_principal: self.request_principal.as_deref(),
            claims: self.claims.as_ref(),
            source_ip: self.source_ip,
            remote_ip: self.remote_ip,
            destination_ip: self.destination_ip,
            host: &self.host,
            port: self.port,
            method: &self.method,
            path: &self.path,
            headers: &self.headers,
        }
    }

    fn plaintext() -> Self {
        Self {
            principal: None,
            ..Self::default()
        }
    }

    fn anonymous() -> Self {
        Self {
            request_principal: None,
            claims: None,
            ..Self::default()
        }
    }

    fn with(f: impl FnOnce(&mut Req)) -> Self {
        let mut req = Self::default();
        f(&mut req);
        req
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.append(name, HeaderValue::from_static(value));
        self
    }
}

/// Whether one ALLOW policy with `rule` allows `req`.
fn allows(rule: AuthzRule, req: &Req) -> bool {
    let authorizer = Authorizer::new(&[policy("p", AuthzAction::Allow, vec![rule])])
        .unwrap_or_else(|e| panic!("compile: {e}"));
    authorizer.authorize(&req.get()).allowed
}

/// Asserts how `rule` decides each request, labelled for the failure message.
#[track_caller]
fn expect(rule: &AuthzRule, cases: &[(&str, Req, bool)]) {
    for (label, req, want) in cases {
        assert_eq!(
            allows(rule.clone(), req),
            *want,
            "{label}: rule {rule:?} on {req:?}"
        );
    }
}

fn source(f: impl FnOnce(&mut AuthzSource)) -> AuthzRule {
    let mut s = AuthzSource::default();
    f(&mut s);
    from(s)
}

fn operation(f: impl FnOnce(&mut AuthzOperation)) -> AuthzRule {
    let mut o = AuthzOperation::default();
    f(&mut o);
    to(o)
}

fn compile_err(rules: Vec<AuthzRule>) -> AuthzError {
    Authorizer::new(&[policy("p", AuthzAction::Allow, rules)]).unwrap_err()
}

fn verdict(policies: &[AuthorizationPolicy], req: &Req) -> Verdict {
    Authorizer::new(policies).unwrap().authorize(&req.get())
}

fn deny_path(name: &str, path: &str) -> AuthorizationPolicy {
    policy(
        name,
        AuthzAction::Deny,
        vec![operation(|o| o.paths = is(&[path]))],
    )
}

fn allow_method(name: &str, method: &str) -> AuthorizationPolicy {
    policy(
        name,
        AuthzAction::Allow,
        vec![operation(|o| o.methods = is(&[method]))],
    )
}
