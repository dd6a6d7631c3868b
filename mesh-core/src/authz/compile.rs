//! Turning [`AuthorizationPolicy`] documents into [`Check`]s, with errors that name the
//! policy, the field path and the value.

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderName;
use ipnet::IpNet;

use super::AuthzError;
use super::check::{Check, HeaderKey};
use super::matcher::{Field, HostMatch, PathMatch, RequestPrincipalMatch, StrMatch};
use crate::config::{
    AuthorizationPolicy, AuthzCondition, AuthzOperation, AuthzRule, AuthzSource, Matcher,
};

/// A compiled policy.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    /// `<namespace>/<name>`.
    pub(crate) name: Arc<str>,
    pub(crate) rules: Box<[Rule]>,
}

/// A compiled rule: one of `from`, one of `to` and every `when` must match.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    /// Each source's checks, all of which must match; empty matches any source.
    from: Box<[Box<[Check]>]>,
    /// Each operation's checks, all of which must match; empty matches any operation.
    to: Box<[Box<[Check]>]>,
    when: Box<[Check]>,
}

impl Policy {
    #[inline]
    pub(crate) fn matches(&self, a: &super::check::Attrs<'_>) -> bool {
        self.rules.iter().any(|rule| rule.matches(a))
    }
}

impl Rule {
    fn matches(&self, a: &super::check::Attrs<'_>) -> bool {
        let all = |checks: &[Check]| checks.iter().all(|check| check.matches(a));
        (self.from.is_empty() || self.from.iter().any(|s| all(s)))
            && (self.to.is_empty() || self.to.iter().any(|o| all(o)))
            && all(&self.when)
    }
}

/// The name a policy goes by in verdicts, metrics and errors: `<namespace>/<name>`, with
/// `-` for a policy without a namespace.
pub(crate) fn policy_name(policy: &AuthorizationPolicy) -> String {
    format!(
        "{}/{}",
        policy.namespace.as_deref().unwrap_or("-"),
        policy.name
    )
}

/// Compiles one policy.
pub(crate) fn policy(policy: &AuthorizationPolicy) -> Result<Policy, AuthzError> {
    let name = policy_name(policy);
    let ctx = Ctx { policy: &name };
    let rules = policy
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| rule(&ctx, i, r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Policy {
        name: name.as_str().into(),
        rules: rules.into(),
    })
}

struct Ctx<'a> {
    policy: &'a str,
}

impl Ctx<'_> {
    fn err(&self, field: String, value: &str, reason: impl Into<String>) -> AuthzError {
        AuthzError {
            policy: self.policy.to_owned(),
            field,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

fn rule(ctx: &Ctx<'_>, i: usize, rule: &AuthzRule) -> Result<Rule, AuthzError> {
    let from = rule
        .from
        .iter()
        .enumerate()
        .map(|(j, s)| source(ctx, &format!("rules[{i}].from[{j}].source"), s))
        .collect::<Result<Vec<_>, _>>()?;
    let to = rule
        .to
        .iter()
        .enumerate()
        .map(|(j, o)| operation(ctx, &format!("rules[{i}].to[{j}].operation"), o))
        .collect::<Result<Vec<_>, _>>()?;
    let when = rule
        .when
        .iter()
        .enumerate()
        .map(|(j, c)| condition(ctx, &format!("rules[{i}].when[{j}]"), c))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rule {
        from: from.into(),
        to: to.into(),
        when: when.into(),
    })
}

/// Compiles `m`, the field `name`/`not_name` at `path`; `None` when neither list is set.
fn field<P>(
    ctx: &Ctx<'_>,
    path: &str,
    (name, not_name): (&str, &str),
    m: &Matcher,
    compile: impl Fn(&str) -> Result<P, String>,
) -> Result<Option<Field<P>>, AuthzError> {
    if m.values.is_empty() && m.not_values.is_empty() {
        return Ok(None);
    }
    let list = |values: &[String], name: &str| {
        values
            .iter()
            .enumerate()
            .map(|(k, value)| {
                let at = || format!("{path}.{name}[{k}]");
                if value.is_empty() {
                    return Err(ctx.err(at(), value, "empty value not allowed"));
                }
                compile(value).map_err(|reason| ctx.err(at(), value, reason))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Some(Field::new(
        list(&m.values, name)?,
        list(&m.not_values, not_name)?,
    )))
}

fn str_match(value: &str) -> Result<StrMatch, String> {
    Ok(StrMatch::new(value))
}

fn request_principal(value: &str) -> Result<RequestPrincipalMatch, String> {
    Ok(RequestPrincipalMatch::new(value))
}

fn host(value: &str) -> Result<HostMatch, String> {
    Ok(HostMatch::new(value))
}

fn path(value: &str) -> Result<PathMatch, String> {
    PathMatch::new(value).map_err(str::to_owned)
}

/// A single address or a CIDR block, IPv4 or IPv6.
fn ip_block(value: &str) -> Result<IpNet, String> {
    if value.contains('/') {
        value
            .parse::<IpNet>()
            .map_err(|_| "bad CIDR block: expected an address and a prefix length".to_owned())
    } else {
        value
            .parse::<IpAddr>()
            .map(|ip| IpNet::from(ip.to_canonical()))
            .map_err(|_| "bad IP address".to_owned())
    }
}

fn port(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(port) if value.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err("bad port: expected a number from 0 to 65535".to_owned()),
    }
}

fn push<P>(
    checks: &mut Vec<Check>,
    field: Option<Field<P>>,
    check: impl FnOnce(Field<P>) -> Check,
) {
    if let Some(field) = field {
        checks.push(check(field));
    }
}

fn source(ctx: &Ctx<'_>, at: &str, s: &AuthzSource) -> Result<Box<[Check]>, AuthzError> {
    let mut checks = Vec::new();
    push(
        &mut checks,
        field(ctx, at, ("ipBlocks", "notIpBlocks"), &s.ip_blocks, ip_block)?,
        Check::SourceIp,
    );
    push(
        &mut checks,
        field(
            ctx,
            at,
            ("remoteIpBlocks", "notRemoteIpBlocks"),
            &s.remote_ip_blocks,
            ip_block,
        )?,
        Check::RemoteIp,
    );
    push(
        &mut checks,
        field(
            ctx,
            at,
            ("principals", "notPrincipals"),
            &s.principals,
            str_match,
        )?,
        Check::Principal,
    );
    push(
        &mut checks,
        field(
            ctx,
            at,
            ("namespaces", "notNamespaces"),
            &s.namespaces,
            str_match,
        )?,
        Check::Namespace,
    );
    push(
        &mut checks,
        field(
            ctx,
            at,
            ("requestPrincipals", "notRequestPrincipals"),
            &s.request_principals,
            request_principal,
        )?,
        Check::RequestPrincipal,
    );
    if checks.is_empty() {
        return Err(ctx.err(at.to_owned(), "{}", "a source must set at least one field"));
    }
    Ok(checks.into())
}

fn operation(ctx: &Ctx<'_>, at: &str, o: &AuthzOperation) -> Result<Box<[Check]>, AuthzError> {
    let mut checks = Vec::new();
    push(
        &mut checks,
        field(ctx, at, ("ports", "notPorts"), &o.ports, port)?,
        Check::Port,
    );
    push(
        &mut checks,
        field(ctx, at, ("methods", "notMethods"), &o.methods, str_match)?,
        Check::Method,
    );
    push(
        &mut checks,
        field(ctx, at, ("paths", "notPaths"), &o.paths, path)?,
        Check::Path,
    );
    push(
        &mut checks,
        field(ctx, at, ("hosts", "notHosts"), &o.hosts, host)?,
        Check::Host,
    );
    if checks.is_empty() {
        return Err(ctx.err(
            at.to_owned(),
            "{}",
            "an operation must set at least one field",
        ));
    }
    Ok(checks.into())
}

/// The `when` keys this evaluator knows but cannot evaluate.
const UNSUPPORTED_KEYS: [&str; 2] = ["connection.sni", "source.serviceAccount"];

fn condition(ctx: &Ctx<'_>, at: &str, c: &AuthzCondition) -> Result<Check, AuthzError> {
    let key = c.key.as_str();
    let key_err = |reason: &str| ctx.err(format!("{at}.key"), key, reason);
    if c.matcher.values.is_empty() && c.matcher.not_values.is_empty() {
        return Err(ctx.err(
            at.to_owned(),
            key,
            "at least one of values or notValues must be set",
        ));
    }
    let names = ("values", "notValues");
    let m = &c.matcher;
    // `field` is `Some`: the matcher has values.
    let strings = || field(ctx, at, names, m, str_match);
    let ips = || field(ctx, at, names, m, ip_block);
    let check = match key {
        "source.ip" => ips()?.map(Check::SourceIp),
        "remote.ip" => ips()?.map(Check::RemoteIp),
        "destination.ip" => ips()?.map(Check::DestinationIp),
        "destination.port" => field(ctx, at, names, m, port)?.map(Check::Port),
        "source.namespace" => strings()?.map(Check::Namespace),
        "source.principal" => strings()?.map(Check::Principal),
        "request.auth.principal" => {
            field(ctx, at, names, m, request_principal)?.map(Check::RequestPrincipal)
        }
        "request.auth.audiences" => strings()?.map(|f| Check::Claim(claim_path(&["aud"]), f)),
        "request.auth.presenter" => strings()?.map(|f| Check::Claim(claim_path(&["azp"]), f)),
        _ if UNSUPPORTED_KEYS.contains(&key) || key.starts_with("experimental.") => {
            return Err(key_err("not supported by this authorizer"));
        }
        _ => {
            if let Some(rest) = key.strip_prefix("request.headers") {
                let name =
                    bracketed(rest).ok_or_else(|| key_err("expected request.headers[<name>]"))?;
                let header = header_key(name).map_err(key_err)?;
                strings()?.map(|f| Check::Header(header, f))
            } else if let Some(rest) = key.strip_prefix("request.auth.claims") {
                let names = nested(rest).ok_or_else(|| {
                    key_err("expected request.auth.claims[<name>] or [<name>][<nested name>]")
                })?;
                strings()?.map(|f| Check::Claim(names, f))
            } else {
                return Err(key_err("unknown attribute"));
            }
        }
    };
    check.ok_or_else(|| ctx.err(at.to_owned(), key, "no values"))
}

fn claim_path(names: &[&str]) -> Box<[Box<str>]> {
    names.iter().map(|&name| Box::from(name)).collect()
}

/// `name` of `[name]`: non-empty, without brackets.
fn bracketed(text: &str) -> Option<&str> {
    let name = text.strip_prefix('[')?.strip_suffix(']')?;
    (!name.is_empty() && !name.contains(['[', ']'])).then_some(name)
}

/// The names of `[a][b]...`.
fn nested(text: &str) -> Option<Box<[Box<str>]>> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .split("][")
        .map(|name| (!name.is_empty() && !name.contains(['[', ']'])).then(|| Box::from(name)))
        .collect()
}

fn header_key(name: &str) -> Result<HeaderKey, &'static str> {
    match name.to_ascii_lowercase().as_str() {
        ":authority" | "host" => Ok(HeaderKey::Authority),
        ":method" => Ok(HeaderKey::Method),
        ":path" => Ok(HeaderKey::Path),
        pseudo if pseudo.starts_with(':') => Err("this pseudo-header is not supported"),
        _ => HeaderName::from_bytes(name.as_bytes())
            .map(HeaderKey::Name)
            .map_err(|_| "bad header name"),
    }
}
