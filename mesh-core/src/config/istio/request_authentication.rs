//! Istio's RequestAuthentication: which JWTs a workload accepts, and where it finds them.

use super::selector::{selector, target_refs};
use super::walk::{Node, Walker, shown};
use crate::config::security::check;
use crate::config::{
    ClaimToHeader, ConfigError, JwksSource, JwtHeader, JwtRule, RequestAuthentication,
};

/// Reads a RequestAuthentication's `spec`.
pub(crate) fn request_authentication(
    name: &str,
    namespace: Option<String>,
    spec: Node<'_>,
    w: &mut Walker,
) -> Result<RequestAuthentication, ConfigError> {
    let mut o = spec.obj(w)?;
    let selector = selector(&mut o, w)?;
    target_refs(&mut o, w)?;
    let mut jwt_rules = Vec::new();
    if let Some(list) = o.field("jwtRules") {
        for item in list.list(w)? {
            jwt_rules.push(jwt_rule(item, w)?);
        }
    }
    o.finish(w)?;
    Ok(RequestAuthentication {
        name: name.to_owned(),
        namespace,
        selector,
        jwt_rules,
    })
}

/// A string that must pass `rule`, at `node`.
fn checked(
    node: &Node<'_>,
    w: &Walker,
    rule: fn(&str) -> Result<(), String>,
) -> Result<String, ConfigError> {
    let s = node.str(w)?;
    rule(s).map_err(|r| w.invalid(&node.path, s, r))?;
    Ok(s.to_owned())
}

/// A list of strings that must each pass `rule`.
fn checked_list(
    node: Node<'_>,
    w: &Walker,
    rule: fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, ConfigError> {
    node.list(w)?.iter().map(|n| checked(n, w, rule)).collect()
}

/// Reads one of `jwtRules`.
fn jwt_rule(node: Node<'_>, w: &mut Walker) -> Result<JwtRule, ConfigError> {
    let value = node.value;
    let mut r = node.obj(w)?;
    let path = r.path().to_owned();
    let issuer = checked(&r.required(w, "issuer")?, w, check::not_empty)?;
    let audiences = match r.field("audiences") {
        Some(n) => checked_list(n, w, check::not_empty)?,
        None => Vec::new(),
    };
    let jwks = r.field("jwks");
    let uri = r.field("jwksUri");
    let timeout = match r.field("timeout") {
        Some(n) => Some((n.positive_duration(w)?, n)),
        None => None,
    };
    let keys = match (jwks, uri) {
        (Some(_), Some(u)) => {
            return Err(w.invalid(
                &u.path,
                shown(u.value),
                "set either jwks or jwksUri, not both",
            ));
        }
        (Some(j), None) => {
            let text = checked(&j, w, check::jwks)?;
            if let Some((_, n)) = &timeout {
                w.warn(&n.path, "applies only to jwksUri; ignored");
            }
            JwksSource::Inline(text)
        }
        (None, Some(u)) => {
            let uri = checked(&u, w, check::jwks_uri)?;
            JwksSource::Remote {
                uri,
                timeout: timeout.map_or(JwksSource::DEFAULT_TIMEOUT, |(t, _)| t),
                refresh: JwksSource::DEFAULT_REFRESH,
            }
        }
        (None, None) => {
            return Err(w.invalid(
                &path,
                shown(value),
                "one of jwks or jwksUri is required (finding the keys through the issuer's OpenID configuration is not implemented)",
            ));
        }
    };
    let mut from_headers = Vec::new();
    if let Some(list) = r.field("fromHeaders") {
        for item in list.list(w)? {
            let mut h = item.obj(w)?;
            let name = checked(&h.required(w, "name")?, w, check::header_name)?;
            let prefix = match h.field("prefix") {
                Some(p) => p.str(w)?.to_owned(),
                None => String::new(),
            };
            h.finish(w)?;
            from_headers.push(JwtHeader {
                name: name.to_ascii_lowercase(),
                prefix,
            });
        }
    }
    let from_params = match r.field("fromParams") {
        Some(n) => checked_list(n, w, check::not_empty)?,
        None => Vec::new(),
    };
    let from_cookies = match r.field("fromCookies") {
        Some(n) => checked_list(n, w, check::not_empty)?,
        None => Vec::new(),
    };
    let forward_original_token = match r.field("forwardOriginalToken") {
        Some(n) => n.bool(w)?,
        None => false,
    };
    let mut output_claim_to_headers = Vec::new();
    if let Some(list) = r.field("outputClaimToHeaders") {
        for item in list.list(w)? {
            let mut c = item.obj(w)?;
            let header = checked(&c.required(w, "header")?, w, check::header_name)?;
            let claim = checked(&c.required(w, "claim")?, w, check::not_empty)?;
            c.finish(w)?;
            output_claim_to_headers.push(ClaimToHeader {
                header: header.to_ascii_lowercase(),
                claim,
            });
        }
    }
    let output_payload_to_header = match r.field("outputPayloadToHeader") {
        // proto3's empty string is "unset".
        Some(n) if n.value.as_str() == Some("") => None,
        Some(n) => Some(checked(&n, w, check::header_name)?.to_ascii_lowercase()),
        None => None,
    };
    r.finish(w)?;
    Ok(JwtRule {
        issuer,
        audiences,
        keys,
        from_headers,
        from_params,
        from_cookies,
        forward_original_token,
        output_claim_to_headers,
        output_payload_to_header,
    })
}
