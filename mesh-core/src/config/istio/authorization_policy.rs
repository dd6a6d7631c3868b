//! Istio's AuthorizationPolicy: which requests a workload allows, denies or audits.
//!
//! Values the loader can check are checked here, at their path: addresses and CIDR blocks,
//! ports, path templates and condition keys (with the values their key takes).
//! `rules` left out (or empty) and `rules: [{}]` keep Istio's meaning: an ALLOW policy
//! without rules allows nothing (`spec: {}` is Istio's "allow nothing" policy); one empty
//! rule matches every request.

use super::selector::{selector, target_refs};
use super::walk::{Node, Obj, Walker, shown};
use crate::config::security::check;
use crate::config::{
    AuthorizationPolicy, AuthzAction, AuthzCondition, AuthzOperation, AuthzRule, AuthzSource,
    ConfigError, Matcher,
};

/// Reads an AuthorizationPolicy's `spec`.
pub(crate) fn authorization_policy(
    name: &str,
    namespace: Option<String>,
    spec: Node<'_>,
    w: &mut Walker,
) -> Result<AuthorizationPolicy, ConfigError> {
    let mut o = spec.obj(w)?;
    let selector = selector(&mut o, w)?;
    target_refs(&mut o, w)?;
    let action = match o.field("action") {
        Some(n) => {
            let text = n.str(w)?;
            match text {
                "CUSTOM" => {
                    return Err(w.invalid(
                        &n.path,
                        text,
                        "CUSTOM (external authorization through an extension provider) is not supported; use ALLOW, DENY or AUDIT",
                    ));
                }
                _ => AuthzAction::from_name(text).ok_or_else(|| {
                    w.invalid(&n.path, text, "expected one of ALLOW, DENY, AUDIT")
                })?,
            }
        }
        None => AuthzAction::Allow,
    };
    if let Some(n) = o.field("provider") {
        return Err(w.invalid(
            &n.path,
            shown(n.value),
            "external authorization providers (action CUSTOM) are not supported",
        ));
    }
    let mut rules = Vec::new();
    if let Some(list) = o.field("rules") {
        for item in list.list(w)? {
            rules.push(rule(item, w)?);
        }
    }
    o.finish(w)?;
    Ok(AuthorizationPolicy {
        name: name.to_owned(),
        namespace,
        selector,
        action,
        rules,
    })
}

/// Reads one of `rules`.
fn rule(node: Node<'_>, w: &mut Walker) -> Result<AuthzRule, ConfigError> {
    let mut r = node.obj(w)?;
    let mut rule = AuthzRule::default();
    if let Some(list) = r.field("from") {
        for item in list.list(w)? {
            let mut f = item.obj(w)?;
            rule.from.push(source(f.required(w, "source")?, w)?);
            f.finish(w)?;
        }
    }
    if let Some(list) = r.field("to") {
        for item in list.list(w)? {
            let mut t = item.obj(w)?;
            rule.to.push(operation(t.required(w, "operation")?, w)?);
            t.finish(w)?;
        }
    }
    if let Some(list) = r.field("when") {
        for item in list.list(w)? {
            rule.when.push(condition(item, w)?);
        }
    }
    r.finish(w)?;
    Ok(rule)
}

/// A rule every value of a field passes.
type Rule = fn(&str) -> Result<(), String>;

fn any(_: &str) -> Result<(), String> {
    Ok(())
}

fn ip(s: &str) -> Result<(), String> {
    check::ip_block(s)
}

fn port(s: &str) -> Result<(), String> {
    check::port_text(s).map(|_| ())
}

/// The values of `key` and `not_key`, each checked by `rule`. Ports may be written as
/// numbers; they are kept as text.
fn matcher(
    o: &mut Obj<'_>,
    w: &Walker,
    key: &'static str,
    not_key: &'static str,
    rule: Rule,
) -> Result<Matcher, ConfigError> {
    let mut read = |k: &'static str| -> Result<Vec<String>, ConfigError> {
        let Some(list) = o.field(k) else {
            return Ok(Vec::new());
        };
        list.list(w)?
            .iter()
            .map(|n| {
                let text = if n.value.is_number() {
                    n.scalar_text(w)?
                } else {
                    n.str(w)?.to_owned()
                };
                rule(&text).map_err(|r| w.invalid(&n.path, &text, r))?;
                Ok(text)
            })
            .collect()
    };
    Ok(Matcher {
        values: read(key)?,
        not_values: read(not_key)?,
    })
}

fn is_set(m: &Matcher) -> bool {
    !m.values.is_empty() || !m.not_values.is_empty()
}

/// Reads `from[].source`.
fn source(node: Node<'_>, w: &mut Walker) -> Result<AuthzSource, ConfigError> {
    let (path, value) = (node.path.clone(), shown(node.value));
    let mut o = node.obj(w)?;
    let s = AuthzSource {
        principals: matcher(&mut o, w, "principals", "notPrincipals", any)?,
        request_principals: matcher(&mut o, w, "requestPrincipals", "notRequestPrincipals", any)?,
        namespaces: matcher(&mut o, w, "namespaces", "notNamespaces", any)?,
        ip_blocks: matcher(&mut o, w, "ipBlocks", "notIpBlocks", ip)?,
        remote_ip_blocks: matcher(&mut o, w, "remoteIpBlocks", "notRemoteIpBlocks", ip)?,
    };
    // Dropping a field that narrows a source would widen an ALLOW rule: refuse it.
    for key in ["serviceAccounts", "notServiceAccounts"] {
        if let Some(n) = o.field(key) {
            return Err(w.invalid(
                &n.path,
                shown(n.value),
                "service-account matching is not implemented; write principals (<trust domain>/ns/<namespace>/sa/<account>) instead",
            ));
        }
    }
    o.finish(w)?;
    let set = [
        &s.principals,
        &s.request_principals,
        &s.namespaces,
        &s.ip_blocks,
        &s.remote_ip_blocks,
    ]
    .into_iter()
    .any(is_set);
    if !set {
        return Err(w.invalid(&path, value, "a source must set at least one field"));
    }
    Ok(s)
}

/// Reads `to[].operation`.
fn operation(node: Node<'_>, w: &mut Walker) -> Result<AuthzOperation, ConfigError> {
    let (path, value) = (node.path.clone(), shown(node.value));
    let mut o = node.obj(w)?;
    let op = AuthzOperation {
        hosts: matcher(&mut o, w, "hosts", "notHosts", any)?,
        ports: matcher(&mut o, w, "ports", "notPorts", port)?,
        methods: matcher(&mut o, w, "methods", "notMethods", any)?,
        paths: matcher(&mut o, w, "paths", "notPaths", check::authz_path)?,
    };
    o.finish(w)?;
    let set = [&op.hosts, &op.ports, &op.methods, &op.paths]
        .into_iter()
        .any(is_set);
    if !set {
        return Err(w.invalid(&path, value, "an operation must set at least one field"));
    }
    Ok(op)
}

/// Reads one of `when`.
fn condition(node: Node<'_>, w: &mut Walker) -> Result<AuthzCondition, ConfigError> {
    let (path, value) = (node.path.clone(), shown(node.value));
    let mut o = node.obj(w)?;
    let key_node = o.required(w, "key")?;
    let key = key_node.str(w)?;
    let values = check::condition_key(key).map_err(|r| w.invalid(&key_node.path, key, r))?;
    let rule: Rule = match values {
        check::ConditionValues::Any => any,
        check::ConditionValues::Ip => ip,
        check::ConditionValues::Port => port,
    };
    let matcher = matcher(&mut o, w, "values", "notValues", rule)?;
    o.finish(w)?;
    if !is_set(&matcher) {
        return Err(w.invalid(
            &path,
            value,
            format!("at least one of values or notValues must be set for key {key}"),
        ));
    }
    Ok(AuthzCondition {
        key: key.to_owned(),
        matcher,
    })
}
