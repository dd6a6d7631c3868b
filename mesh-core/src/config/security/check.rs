//! The rules of security values, shared by the Istio loaders (which name the document's
//! path) and [`MeshConfig::validate`](crate::config::MeshConfig::validate) (which names the
//! model's). Each returns the reason a value is bad; the caller adds the path and the value.

use std::net::IpAddr;

use http::HeaderName;

use super::{ClientTls, ClientTlsMode};

/// An address or CIDR block, as `ipBlocks`, `remoteIpBlocks` and the `source.ip` conditions
/// take them: `10.1.2.3`, `10.0.0.0/16`, `fd00::/8`.
pub(crate) fn ip_block(s: &str) -> Result<(), String> {
    let ok = if s.contains('/') {
        s.parse::<ipnet::IpNet>().is_ok()
    } else {
        s.parse::<IpAddr>().is_ok()
    };
    if ok {
        Ok(())
    } else {
        Err("expected an IP address or a CIDR block such as 10.0.0.0/16".to_owned())
    }
}

/// A port written as text: digits only, 1 to 65535.
pub(crate) fn port_text(s: &str) -> Result<u16, String> {
    const REASON: &str = "expected a port number from 1 to 65535";
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(REASON.to_owned());
    }
    s.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| REASON.to_owned())
}

/// An authorization path: exact, `prefix*`, `*suffix` or `*`, or a template of whole
/// segments `{*}` (one segment) and `{**}` (the rest, so only as the last segment).
pub(crate) fn authz_path(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if !s.contains('{') && !s.contains('}') {
        return Ok(());
    }
    let segments: Vec<&str> = s.trim_matches('/').split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "{*}" => {}
            "{**}" if i + 1 == segments.len() => {}
            "{**}" => return Err("`{**}` may only be the last segment of a path".to_owned()),
            other if other.contains(['{', '}', '*']) => {
                return Err(format!(
                    "segment `{other}`: a path template takes only whole segments `{{*}}` and `{{**}}`"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The keys of `when` conditions Istio knows, with the check of their values.
pub(crate) fn condition_key(key: &str) -> Result<ConditionValues, String> {
    if key.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let exact = [
        ("source.ip", ConditionValues::Ip),
        ("remote.ip", ConditionValues::Ip),
        ("destination.ip", ConditionValues::Ip),
        ("destination.port", ConditionValues::Port),
        ("source.namespace", ConditionValues::Any),
        ("source.principal", ConditionValues::Any),
        ("request.auth.principal", ConditionValues::Any),
        ("request.auth.audiences", ConditionValues::Any),
        ("request.auth.presenter", ConditionValues::Any),
        ("connection.sni", ConditionValues::Any),
    ];
    if let Some((_, values)) = exact.iter().find(|(k, _)| *k == key) {
        return Ok(*values);
    }
    for prefix in ["request.headers", "request.auth.claims"] {
        if let Some(rest) = key.strip_prefix(prefix) {
            let inner = rest
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .filter(|inner| !inner.is_empty());
            return match inner {
                Some(_) => Ok(ConditionValues::Any),
                None => Err(format!("expected {prefix}[NAME]")),
            };
        }
    }
    if key.starts_with("experimental.envoy.filters.") {
        return Ok(ConditionValues::Any);
    }
    Err(
        "unknown attribute; expected request.headers[NAME], request.auth.claims[NAME], \
         source.ip, remote.ip, source.namespace, source.principal, request.auth.principal, \
         request.auth.audiences, request.auth.presenter, destination.ip, destination.port \
         or connection.sni"
            .to_owned(),
    )
}

/// What the values of a condition must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConditionValues {
    /// Anything.
    Any,
    /// Addresses or CIDR blocks.
    Ip,
    /// Port numbers.
    Port,
}

impl ConditionValues {
    /// Checks one value.
    pub(crate) fn check(self, value: &str) -> Result<(), String> {
        match self {
            ConditionValues::Any => Ok(()),
            ConditionValues::Ip => ip_block(value),
            ConditionValues::Port => port_text(value).map(|_| ()),
        }
    }
}

/// An inline JSON Web Key Set: JSON with a `keys` array holding at least one key tokens can
/// be verified with, as the server's JWT layer reads them (RSA, EC on P-256 or P-384, or
/// Ed25519; not for encryption, not for an algorithm mesh refuses), each such key with the
/// fields its type needs. Without this a set no server can use is only refused when the
/// server starts, far from the document.
pub(crate) fn jwks(s: &str) -> Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_str(s).map_err(|e| format!("expected a JSON Web Key Set: {e}"))?;
    let Some(serde_json::Value::Array(keys)) = value.get("keys") else {
        return Err("expected a JSON Web Key Set: an object with a `keys` array".to_owned());
    };
    let mut usable = false;
    for (i, key) in keys.iter().enumerate() {
        usable |= usable_jwk(key).map_err(|e| format!("keys[{i}]: {e}"))?;
    }
    if usable {
        Ok(())
    } else {
        Err("the JWKS has no usable key (RSA, EC on P-256 or P-384, or Ed25519)".to_owned())
    }
}

/// Whether `jwk` is a key the server verifies tokens with; an error when it is of such a
/// type but a field is missing or of the wrong type (the same rules and words as the key
/// set of `mesh-tower`'s JWT layer).
fn usable_jwk(jwk: &serde_json::Value) -> Result<bool, String> {
    use serde_json::Value;

    use crate::jwt::{JwtAlg, KeyType};

    let obj = jwk.as_object().ok_or("not a JSON object")?;
    let field = |name: &str| match obj.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.as_str()),
        Some(_) => Err(format!("[{name}] is not a non-empty string")),
        None => Err(format!("[{name}] is missing")),
    };
    let kty = field("kty")?;
    if obj.get("use").and_then(Value::as_str) == Some("enc") {
        return Ok(false);
    }
    let alg = match obj.get("alg") {
        None => None,
        Some(Value::String(name)) => match JwtAlg::from_name(name) {
            Ok(alg) => Some(alg),
            // HMAC, encryption, or an algorithm mesh does not verify.
            Err(_) => return Ok(false),
        },
        Some(_) => return Err("[alg] is not a string".to_owned()),
    };
    let kind = match kty {
        "RSA" => {
            field("n")?;
            field("e")?;
            KeyType::Rsa
        }
        "EC" => {
            let kind = match field("crv")? {
                "P-256" => KeyType::Ec("P-256"),
                "P-384" => KeyType::Ec("P-384"),
                _ => return Ok(false),
            };
            field("x")?;
            field("y")?;
            kind
        }
        "OKP" => {
            if field("crv")? != "Ed25519" {
                return Ok(false);
            }
            field("x")?;
            KeyType::Okp("Ed25519")
        }
        _ => return Ok(false),
    };
    if let Some(alg) = alg
        && alg.key_type() != kind
    {
        return Err(format!("[alg] {alg} does not fit a {kty} key"));
    }
    if obj.get("kid").is_some_and(|kid| !kid.is_string()) {
        return Err("[kid] is not a string".to_owned());
    }
    Ok(true)
}

/// A JWKS URI: an absolute `http` or `https` URL with a host.
pub(crate) fn jwks_uri(s: &str) -> Result<(), String> {
    const REASON: &str = "expected an http or https URL such as https://example.com/jwks.json";
    let uri: http::Uri = s.parse().map_err(|_| REASON.to_owned())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    if scheme_ok && host_ok {
        Ok(())
    } else {
        Err(REASON.to_owned())
    }
}

/// An HTTP header name (any case; headers are compared in lower case).
pub(crate) fn header_name(s: &str) -> Result<(), String> {
    HeaderName::from_bytes(s.to_ascii_lowercase().as_bytes())
        .map(|_| ())
        .map_err(|_| "expected an HTTP header name".to_owned())
}

/// A text that must not be empty (issuers, audiences, claims, parameter names).
pub(crate) fn not_empty(s: &str) -> Result<(), String> {
    if s.is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(())
    }
}

/// A host that may be called under REGISTRY_ONLY: a DNS name, or `*.` and a DNS name.
pub(crate) fn egress_host(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if s == "*" {
        return Err(
            "`*` alone is not a host; use the ALLOW_ANY mode to allow every host".to_owned(),
        );
    }
    let name = s.strip_prefix("*.").unwrap_or(s);
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() > 253 {
        return Err("must be a DNS name of at most 253 characters".to_owned());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "label `{label}` must be 1 to 63 characters (`*` only as the first label, as `*.example.com`)"
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "label `{label}` may hold only letters, digits, `-` and `_` (`*` only as the first label, as `*.example.com`)"
            ));
        }
    }
    Ok(())
}

/// A workload-selector label key: a Kubernetes label name, optionally with a DNS prefix
/// (`app`, `app.kubernetes.io/name`); no wildcards.
pub(crate) fn label_key(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if s.contains('*') {
        return Err("wildcards are not supported in selectors".to_owned());
    }
    let (prefix, name) = match s.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    if let Some(prefix) = prefix {
        let ok = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err(format!("prefix `{prefix}` must be a lower-case DNS name"));
        }
    }
    super::super::validate::label_value(name).map_err(|e| format!("name `{name}` {e}"))
}

/// A workload-selector label value: empty, or a Kubernetes label value; no wildcards.
pub(crate) fn label_value(s: &str) -> Result<(), String> {
    if s.contains('*') {
        return Err("wildcards are not supported in selectors".to_owned());
    }
    if s.is_empty() {
        return Ok(());
    }
    super::super::validate::label_value(s)
}

/// The placeholders an identity template may hold.
const PLACEHOLDERS: [&str; 3] = ["{trust_domain}", "{namespace}", "{service}"];

/// An identity template: a `spiffe://` ID with the placeholders `{trust_domain}`,
/// `{namespace}` and `{service}`.
pub(crate) fn identity_template(s: &str) -> Result<(), String> {
    if !s.starts_with("spiffe://") {
        return Err("must be a SPIFFE ID template starting with spiffe://".to_owned());
    }
    let mut rest = s.to_owned();
    for p in PLACEHOLDERS {
        rest = rest.replace(p, "x");
    }
    if rest.contains(['{', '}']) {
        return Err(
            "takes only the placeholders {trust_domain}, {namespace} and {service}".to_owned(),
        );
    }
    Ok(())
}

/// A problem with client TLS settings: the field (by Istio's key), its value and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsProblem {
    pub(crate) field: &'static str,
    pub(crate) value: String,
    pub(crate) reason: String,
}

/// The rules across the fields of client TLS settings, as Istio's validation has them:
/// MUTUAL needs a certificate and key; SIMPLE and MUTUAL need CA certificates unless
/// `insecureSkipVerify` is set, which in turn takes neither CA certificates nor subject
/// alternative names.
pub(crate) fn client_tls(tls: &ClientTls) -> Result<(), TlsProblem> {
    let problem = |field, value: &str, reason: &str| TlsProblem {
        field,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let shown = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    for (field, path) in [
        ("clientCertificate", &tls.client_certificate),
        ("privateKey", &tls.private_key),
        ("caCertificates", &tls.ca_certificates),
    ] {
        if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(problem(field, "", "must not be empty (leave it out)"));
        }
    }
    if tls.mode == ClientTlsMode::Mutual {
        if tls.client_certificate.is_none() {
            return Err(problem("clientCertificate", "", "is required for MUTUAL"));
        }
        if tls.private_key.is_none() {
            return Err(problem("privateKey", "", "is required for MUTUAL"));
        }
    }
    if tls.insecure_skip_verify {
        if tls.ca_certificates.is_some() {
            return Err(problem(
                "caCertificates",
                &shown(&tls.ca_certificates),
                "must not be set with insecureSkipVerify",
            ));
        }
        if !tls.subject_alt_names.is_empty() {
            return Err(problem(
                "subjectAltNames",
                &format!("[{}]", tls.subject_alt_names.join(", ")),
                "must not be set with insecureSkipVerify",
            ));
        }
    } else if matches!(tls.mode, ClientTlsMode::Simple | ClientTlsMode::Mutual)
        && tls.ca_certificates.is_none()
    {
        return Err(problem(
            "caCertificates",
            "",
            "is required for SIMPLE and MUTUAL unless insecureSkipVerify is true",
        ));
    }
    if let Some(i) = tls.subject_alt_names.iter().position(String::is_empty) {
        return Err(TlsProblem {
            field: "subjectAltNames",
            value: String::new(),
            reason: format!("entry {i} must not be empty"),
        });
    }
    if tls.sni.as_deref() == Some("") {
        return Err(problem("sni", "", "must not be empty (leave it out)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_blocks() {
        for ok in [
            "10.1.2.3",
            "10.0.0.0/16",
            "10.1.2.3/8",
            "::1",
            "fd00::/8",
            "0.0.0.0/0",
        ] {
            assert_eq!(ip_block(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "10.0.0",
            "10.0.0.0/33",
            "10.0.0.0/",
            "host",
            "1.2.3.4/x",
            "::/129",
        ] {
            assert!(ip_block(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(port_text("8080"), Ok(8080));
        assert_eq!(port_text("65535"), Ok(65535));
        for bad in [
            "",
            "0",
            "65536",
            "-1",
            "80a",
            "+80",
            " 80",
            "99999999999999999999",
        ] {
            assert!(port_text(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        for ok in [
            "/info*",
            "*/admin",
            "*",
            "/data",
            "/foo/{*}/bar",
            "/foo/{**}",
            "/{*}",
            "/foo/{*}/{**}",
            "/foo/{**}/",
        ] {
            assert_eq!(authz_path(ok), Ok(()), "{ok}");
        }
        assert!(
            authz_path("/foo/{**}/bar")
                .unwrap_err()
                .contains("last segment")
        );
        for bad in ["", "/foo/{x}", "/foo/{*}bar", "/foo/{*}/*", "/foo}"] {
            assert!(authz_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn condition_keys() {
        assert_eq!(condition_key("source.ip"), Ok(ConditionValues::Ip));
        assert_eq!(condition_key("destination.port"), Ok(ConditionValues::Port));
        assert_eq!(
            condition_key("request.headers[x-token]"),
            Ok(ConditionValues::Any)
        );
        assert_eq!(
            condition_key("request.auth.claims[groups]"),
            Ok(ConditionValues::Any)
        );
        for bad in [
            "",
            "request.headers",
            "request.headers[]",
            "request.auth.claims[x",
            "source.ips",
        ] {
            assert!(condition_key(bad).is_err(), "{bad}");
        }
        assert!(ConditionValues::Port.check("0").is_err());
        assert!(ConditionValues::Ip.check("1.2.3.4/40").is_err());
    }

    #[test]
    fn jwks_and_uris() {
        let rsa = r#"{"kty": "RSA", "n": "xAE7eB6q", "e": "AQAB", "kid": "k1"}"#;
        let ec = r#"{"kty": "EC", "crv": "P-256", "x": "eA", "y": "eQ", "alg": "ES256"}"#;
        let ed = r#"{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg"}"#;
        let hmac = r#"{"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}"#;
        for key in [rsa, ec, ed] {
            assert_eq!(
                jwks(&format!(r#"{{"keys": [{hmac}, {key}]}}"#)),
                Ok(()),
                "{key}"
            );
        }
        assert!(jwks("not json").is_err());
        assert!(jwks(r#"{"keys": {}}"#).is_err());
        assert!(jwks("[]").is_err());
        // Sets no server can verify with.
        let none = "the JWKS has no usable key (RSA, EC on P-256 or P-384, or Ed25519)";
        for keys in [
            "".to_owned(),
            hmac.to_owned(),
            r#"{"kty": "EC", "crv": "P-521", "x": "eA", "y": "eQ"}"#.to_owned(),
            r#"{"kty": "OKP", "crv": "X25519", "x": "eA"}"#.to_owned(),
            rsa.replace(r#""kid""#, r#""use": "enc", "kid""#),
            rsa.replace(r#""kid""#, r#""alg": "RSA-OAEP", "kid""#),
        ] {
            assert_eq!(
                jwks(&format!(r#"{{"keys": [{keys}]}}"#)),
                Err(none.to_owned()),
                "{keys}"
            );
        }
        // Keys of a usable type with a bad field, named by index.
        for (key, reason) in [
            (r#"{"kty": "RSA", "e": "AQAB"}"#, "keys[1]: [n] is missing"),
            (
                r#"{"kty": "EC", "crv": "P-256", "x": "eA"}"#,
                "keys[1]: [y] is missing",
            ),
            (
                r#"{"kty": "OKP", "crv": "Ed25519", "x": 7}"#,
                "keys[1]: [x] is not a non-empty string",
            ),
            (
                r#"{"n": "xAE7eB6q", "e": "AQAB"}"#,
                "keys[1]: [kty] is missing",
            ),
            (r#""RSA""#, "keys[1]: not a JSON object"),
        ] {
            assert_eq!(
                jwks(&format!(r#"{{"keys": [{rsa}, {key}]}}"#)),
                Err(reason.to_owned()),
                "{key}"
            );
        }
        assert_eq!(
            jwks(&format!(
                r#"{{"keys": [{}]}}"#,
                rsa.replace(r#""kid": "k1""#, r#""alg": "ES256""#)
            )),
            Err("keys[0]: [alg] ES256 does not fit a RSA key".to_owned())
        );
        assert_eq!(
            jwks(&format!(r#"{{"keys": [{}]}}"#, rsa.replace(r#""k1""#, "1"))),
            Err("keys[0]: [kid] is not a string".to_owned())
        );
        assert_eq!(
            jwks_uri("https://example.com/.well-known/jwks.json"),
            Ok(())
        );
        assert_eq!(jwks_uri("http://127.0.0.1:8080/jwks"), Ok(()));
        for bad in [
            "",
            "example.com/jwks",
            "ftp://example.com/jwks",
            "/jwks",
            "https://",
        ] {
            assert!(jwks_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_and_labels() {
        for ok in [
            "httpbin.org",
            "*.wikipedia.org",
            "API.Example.com",
            "localhost",
        ] {
            assert_eq!(egress_host(ok), Ok(()), "{ok}");
        }
        for bad in ["", "*", "a.*.org", "a..b", "a b", "*wiki.org"] {
            assert!(egress_host(bad).is_err(), "{bad}");
        }
        for ok in ["app", "app.kubernetes.io/name", "Version_1"] {
            assert_eq!(label_key(ok), Ok(()), "{ok}");
        }
        for bad in ["", "*", "a/", "/a", "-a", "Ex.com/a", "a/b/c"] {
            assert!(label_key(bad).is_err(), "{bad}");
        }
        assert_eq!(label_value(""), Ok(()));
        assert!(label_value("v*").is_err());
        assert!(label_value("-v").is_err());
    }

    #[test]
    fn identity_templates() {
        assert_eq!(
            identity_template(super::super::DEFAULT_IDENTITY_TEMPLATE),
            Ok(())
        );
        assert!(identity_template("cluster.local/ns/{namespace}").is_err());
        assert!(identity_template("spiffe://{trust_domain}/{sa}").is_err());
    }

    #[test]
    fn client_tls_rules() {
        let mut tls = ClientTls::mode(ClientTlsMode::Mutual);
        assert_eq!(client_tls(&tls).unwrap_err().field, "clientCertificate");
        tls.client_certificate = Some("cert.pem".into());
        assert_eq!(client_tls(&tls).unwrap_err().field, "privateKey");
        tls.private_key = Some("key.pem".into());
        assert_eq!(client_tls(&tls).unwrap_err().field, "caCertificates");
        tls.ca_certificates = Some("ca.pem".into());
        assert_eq!(client_tls(&tls), Ok(()));
        tls.insecure_skip_verify = true;
        assert_eq!(client_tls(&tls).unwrap_err().field, "caCertificates");
        tls.ca_certificates = None;
        assert_eq!(client_tls(&tls), Ok(()));
        tls.subject_alt_names = vec!["spiffe://x".into()];
        assert_eq!(client_tls(&tls).unwrap_err().field, "subjectAltNames");
        assert_eq!(
            client_tls(&ClientTls::mode(ClientTlsMode::IstioMutual)),
            Ok(())
        );
        assert_eq!(client_tls(&ClientTls::mode(ClientTlsMode::Disable)), Ok(()));
        let mut simple = ClientTls::mode(ClientTlsMode::Simple);
        simple.insecure_skip_verify = true;
        assert_eq!(client_tls(&simple), Ok(()));
        simple.sni = Some(String::new());
        assert_eq!(client_tls(&simple).unwrap_err().field, "sni");
    }
}
