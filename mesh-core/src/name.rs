//! Kubernetes DNS names: qualifying `svc`, `svc.ns`, `svc.ns.svc` and SRV names.
//!
//! A pod's `/etc/resolv.conf` carries `search <ns>.svc.<domain> svc.<domain> <domain>`, so
//! `reviews` reaches `reviews.<ns>.svc.<domain>`. [`qualify`] makes the same choice once,
//! without a search list, so that discovery asks one fully qualified question per refresh:
//!
//! | host as written                         | qualified (namespace `default`)            |
//! |-----------------------------------------|--------------------------------------------|
//! | `reviews`                               | `reviews.default.svc.cluster.local`        |
//! | `reviews.prod`                          | `reviews.prod.svc.cluster.local`           |
//! | `reviews.prod.svc`                      | `reviews.prod.svc.cluster.local`           |
//! | `pod-0.web.prod.svc`                    | `pod-0.web.prod.svc.cluster.local`         |
//! | `reviews.prod.svc.cluster.local`        | as is                                      |
//! | `example.com.` (trailing dot)           | `example.com` (absolute, as is)            |
//! | `example.com` (two labels)              | `example.com.svc.cluster.local` (`svc.ns`) |
//! | `api.example.com` (3+ labels)           | as is (absolute)                           |
//! | `_http._tcp.reviews`                    | SRV `_http._tcp.reviews.default.svc.cluster.local` |
//! | `10.0.0.1`, `::1`, `[::1]`              | an address, no lookup                      |
//! | `localhost`                             | as is (never searched, RFC 6761)           |
//!
//! A two-label name is always read as `service.namespace`, as the search list would try it
//! first: write `example.com.` with a trailing dot to reach an outside name of two labels.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Longest DNS name, in characters, without the trailing dot (RFC 1035).
const MAX_NAME_LEN: usize = 253;
/// Longest DNS label, in characters (RFC 1035).
const MAX_LABEL_LEN: usize = 63;
/// The reason given for a name that starts like an SRV name but is not one.
const SRV_FORM: &str = "an SRV name starts with `_port._proto.` (such as `_http._tcp.`)";

/// What a request's host and port resolve through.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A name to look up with A and AAAA queries; endpoints take `port`.
    Host {
        /// The fully qualified name, without a trailing dot (`reviews.default.svc.cluster.local`).
        fqdn: String,
        /// The port every endpoint listens on.
        port: u16,
    },
    /// An SRV name (`_http._tcp.reviews.default.svc.cluster.local`); endpoints take the SRV ports.
    Srv {
        /// The fully qualified SRV name, without a trailing dot.
        fqdn: String,
    },
    /// An IP address: one fixed endpoint, no lookup.
    Addr(SocketAddr),
}

impl Target {
    /// The name looked up, or the address as text; used in logs, metrics and errors.
    pub fn name(&self) -> String {
        match self {
            Target::Host { fqdn, .. } | Target::Srv { fqdn } => fqdn.clone(),
            Target::Addr(addr) => addr.ip().to_string(),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Host { fqdn, port } => write!(f, "{fqdn}:{port}"),
            Target::Srv { fqdn } => write!(f, "SRV {fqdn}"),
            Target::Addr(addr) => write!(f, "{addr}"),
        }
    }
}

/// A host that is not a valid DNS name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid host `{host}`: {reason}")]
pub struct NameError {
    /// The host as given.
    pub host: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl NameError {
    fn new(host: &str, reason: &'static str) -> Self {
        Self {
            host: host.to_owned(),
            reason,
        }
    }
}

/// Qualifies `host` as Kubernetes' resolv.conf search list would, for a workload in
/// `namespace` of a cluster whose domain is `cluster_domain`.
///
/// IP literals (`10.0.0.1`, `::1`, `[::1]`) become [`Target::Addr`] with `port`; names that
/// start with `_port._proto.` become [`Target::Srv`] (which ignores `port`); every other name
/// becomes [`Target::Host`]. The result is lowercase and has no trailing dot. See the module
/// documentation for the rules.
pub fn qualify(
    host: &str,
    port: u16,
    namespace: &str,
    cluster_domain: &str,
) -> Result<Target, NameError> {
    if host.is_empty() {
        return Err(NameError::new(host, "empty name"));
    }
    if let Some(ip) = parse_ip_literal(host)? {
        return Ok(Target::Addr(SocketAddr::new(ip, port)));
    }

    let (name, absolute) = match host.strip_suffix('.') {
        Some(rest) => (rest, true),
        None => (host, false),
    };
    if name.is_empty() {
        return Err(NameError::new(host, "empty name"));
    }
    let name = name.to_ascii_lowercase();
    validate_name(host, &name)?;

    let labels: Vec<&str> = name.split('.').collect();
    let (fqdn, is_srv) = match labels.as_slice() {
        [port, rest @ ..] if port.starts_with('_') => {
            let [proto, service @ ..] = rest else {
                return Err(NameError::new(host, SRV_FORM));
            };
            if !proto.starts_with('_') {
                return Err(NameError::new(host, SRV_FORM));
            }
            if service.is_empty() {
                return Err(NameError::new(host, "SRV name without a service name"));
            }
            let service = service.join(".");
            let qualified = qualify_name(host, &service, absolute, namespace, cluster_domain)?;
            (format!("{port}.{proto}.{qualified}"), true)
        }
        _ => (
            qualify_name(host, &name, absolute, namespace, cluster_domain)?,
            false,
        ),
    };

    if fqdn.len() > MAX_NAME_LEN {
        return Err(NameError::new(
            host,
            "qualified name is longer than 253 characters",
        ));
    }
    Ok(if is_srv {
        Target::Srv { fqdn }
    } else {
        Target::Host { fqdn, port }
    })
}

/// Splits an HTTP authority (`host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6
/// address) into its host and port, using `default_port` when none is given.
///
/// The host is returned as written (an IPv6 literal keeps its brackets), ready for
/// [`qualify`]. A port that is not a number from 1 to 65535 is an error naming the authority.
pub fn parse_authority(authority: &str, default_port: u16) -> Result<(String, u16), NameError> {
    if authority.is_empty() {
        return Err(NameError::new(authority, "empty authority"));
    }
    if authority.contains('@') {
        return Err(NameError::new(
            authority,
            "user information is not allowed in an authority",
        ));
    }
    let (host, port) = if authority.starts_with('[') {
        let Some(end) = authority.find(']') else {
            return Err(NameError::new(
                authority,
                "IPv6 literal without a closing `]`",
            ));
        };
        let (host, rest) = authority.split_at(end + 1);
        let port = match rest {
            "" => None,
            _ => match rest.strip_prefix(':') {
                Some(port) => Some(port),
                None => {
                    return Err(NameError::new(
                        authority,
                        "unexpected characters after the IPv6 literal",
                    ));
                }
            },
        };
        (host, port)
    } else if authority.matches(':').count() > 1 {
        // A bare IPv6 address has no room for a port.
        if authority.parse::<Ipv6Addr>().is_err() {
            return Err(NameError::new(
                authority,
                "an IPv6 address with a port must be written in brackets (`[::1]:80`)",
            ));
        }
        (authority, None)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(NameError::new(authority, "empty host"));
    }
    let port = match port {
        None => default_port,
        Some("") => return Err(NameError::new(authority, "empty port after `:`")),
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port != 0 && text.bytes().all(|b| b.is_ascii_digit()) => port,
            _ => {
                return Err(NameError::new(
                    authority,
                    "port is not a number from 1 to 65535",
                ));
            }
        },
    };
    Ok((host.to_owned(), port))
}

/// Recognises `10.0.0.1`, `::1` and `[::1]`; a bracketed text that is not IPv6 is an error.
fn parse_ip_literal(host: &str) -> Result<Option<IpAddr>, NameError> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| NameError::new(host, "IPv6 literal without a closing `]`"))?;
        return inner
            .parse::<Ipv6Addr>()
            .map(|ip| Some(IpAddr::V6(ip)))
            .map_err(|_| NameError::new(host, "not a valid IPv6 address in brackets"));
    }
    Ok(host.parse::<IpAddr>().ok())
}

/// Checks a lowercase name without trailing dot: label lengths, characters, total length.
fn validate_name(host: &str, name: &str) -> Result<(), NameError> {
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::new(host, "name is longer than 253 characters"));
    }
    let mut last = "";
    for label in name.split('.') {
        validate_label(host, label)?;
        last = label;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NameError::new(
            host,
            "last label is all digits: not a name, and not a valid IP address",
        ));
    }
    Ok(())
}

fn validate_label(host: &str, label: &str) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::new(
            host,
            "empty label (two dots in a row, or a leading dot)",
        ));
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(NameError::new(host, "label is longer than 63 characters"));
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(NameError::new(
            host,
            "bad character: only letters, digits, `-` and `_` are allowed in a label",
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(NameError::new(host, "label starts or ends with `-`"));
    }
    Ok(())
}

/// Applies the search-list rules to a validated, lowercase, non-SRV name.
fn qualify_name(
    host: &str,
    name: &str,
    absolute: bool,
    namespace: &str,
    cluster_domain: &str,
) -> Result<String, NameError> {
    // `localhost` is never searched (RFC 6761).
    if absolute || name == "localhost" || name.ends_with(".localhost") {
        return Ok(name.to_owned());
    }
    let labels = name.split('.').count();
    if labels > 2 && !name.ends_with(".svc") {
        return Ok(name.to_owned());
    }
    let domain = cluster_domain
        .strip_suffix('.')
        .unwrap_or(cluster_domain)
        .to_ascii_lowercase();
    if domain.is_empty() || validate_name(host, &domain).is_err() {
        return Err(NameError::new(
            host,
            "cluster domain is not a valid DNS name",
        ));
    }
    if name == domain || name.ends_with(&format!(".{domain}")) {
        return Ok(name.to_owned());
    }
    if labels == 1 {
        let namespace = namespace.to_ascii_lowercase();
        if validate_label(host, &namespace).is_err() {
            return Err(NameError::new(host, "namespace is not a valid DNS label"));
        }
        Ok(format!("{name}.{namespace}.svc.{domain}"))
    } else if labels == 2 {
        Ok(format!("{name}.svc.{domain}"))
    } else {
        Ok(format!("{name}.{domain}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(fqdn: &str, port: u16) -> Target {
        Target::Host {
            fqdn: fqdn.to_owned(),
            port,
        }
    }

    fn q(name: &str) -> Result<Target, NameError> {
        qualify(name, 9080, "default", "cluster.local")
    }

    #[test]
    fn short_names_follow_the_search_list() {
        assert_eq!(
            q("reviews"),
            Ok(host("reviews.default.svc.cluster.local", 9080))
        );
        assert_eq!(
            q("reviews.prod"),
            Ok(host("reviews.prod.svc.cluster.local", 9080))
        );
        assert_eq!(
            q("reviews.prod.svc"),
            Ok(host("reviews.prod.svc.cluster.local", 9080))
        );
        assert_eq!(
            q("pod-0.web.prod.svc"),
            Ok(host("pod-0.web.prod.svc.cluster.local", 9080))
        );
    }

    #[test]
    fn qualified_and_absolute_names_are_kept() {
        assert_eq!(
            q("reviews.prod.svc.cluster.local"),
            Ok(host("reviews.prod.svc.cluster.local", 9080))
        );
        assert_eq!(
            q("reviews.prod.svc.cluster.local."),
            Ok(host("reviews.prod.svc.cluster.local", 9080))
        );
        assert_eq!(q("example.com."), Ok(host("example.com", 9080)));
        assert_eq!(q("localhost."), Ok(host("localhost", 9080)));
        assert_eq!(q("localhost"), Ok(host("localhost", 9080)));
        assert_eq!(q("app.localhost"), Ok(host("app.localhost", 9080)));
        assert_eq!(q("api.example.com"), Ok(host("api.example.com", 9080)));
        assert_eq!(q("cluster.local"), Ok(host("cluster.local", 9080)));
    }

    #[test]
    fn two_labels_read_as_service_and_namespace() {
        assert_eq!(
            q("example.com"),
            Ok(host("example.com.svc.cluster.local", 9080))
        );
    }

    #[test]
    fn custom_namespace_and_domain() {
        let t = qualify("ratings", 80, "Shop", "corp.internal.").unwrap();
        assert_eq!(t, host("ratings.shop.svc.corp.internal", 80));
        let t = qualify("ratings.shop.svc.corp.internal", 80, "x", "corp.internal").unwrap();
        assert_eq!(t, host("ratings.shop.svc.corp.internal", 80));
        // A name under another cluster's domain is absolute (3+ labels).
        let t = qualify("ratings.shop.svc.cluster.local", 80, "x", "corp.internal").unwrap();
        assert_eq!(t, host("ratings.shop.svc.cluster.local", 80));
    }

    #[test]
    fn result_is_lowercase() {
        assert_eq!(
            q("Reviews.PROD"),
            Ok(host("reviews.prod.svc.cluster.local", 9080))
        );
        assert_eq!(
            q("_HTTP._TCP.Reviews"),
            Ok(Target::Srv {
                fqdn: "_http._tcp.reviews.default.svc.cluster.local".into()
            })
        );
    }

    #[test]
    fn srv_names() {
        let srv = |s: &str| Target::Srv { fqdn: s.to_owned() };
        assert_eq!(
            q("_http._tcp.reviews.prod.svc.cluster.local"),
            Ok(srv("_http._tcp.reviews.prod.svc.cluster.local"))
        );
        assert_eq!(
            q("_http._tcp.reviews"),
            Ok(srv("_http._tcp.reviews.default.svc.cluster.local"))
        );
        assert_eq!(
            q("_http._tcp.reviews.prod"),
            Ok(srv("_http._tcp.reviews.prod.svc.cluster.local"))
        );
        assert_eq!(
            q("_http._tcp.reviews.prod.svc"),
            Ok(srv("_http._tcp.reviews.prod.svc.cluster.local"))
        );
        assert_eq!(
            q("_grpc-web._tcp.api.example.com."),
            Ok(srv("_grpc-web._tcp.api.example.com"))
        );
        assert!(q("_http._tcp").is_err());
        assert!(q("_http._tcp.").is_err());
        assert!(q("_http.reviews").is_err());
    }

    #[test]
    fn ip_literals_are_addresses() {
        let addr = |s: &str| Target::Addr(s.parse().unwrap());
        assert_eq!(q("10.0.0.1"), Ok(addr("10.0.0.1:9080")));
        assert_eq!(q("::1"), Ok(addr("[::1]:9080")));
        assert_eq!(q("[::1]"), Ok(addr("[::1]:9080")));
        assert_eq!(q("[fe80::1:2]"), Ok(addr("[fe80::1:2]:9080")));
        assert!(q("[10.0.0.1]").is_err());
        assert!(q("[::1").is_err());
        assert!(q("10.0.0.256").is_err());
        assert!(q("010.0.0.1").is_err());
        assert!(q("1.2.3").is_err());
    }

    #[test]
    fn invalid_names_are_rejected_with_a_reason() {
        let err = q("").unwrap_err();
        assert_eq!(err.reason, "empty name");
        assert_eq!(q(".").unwrap_err().reason, "empty name");
        assert!(q("a..b").unwrap_err().reason.contains("empty label"));
        assert!(q(".a").unwrap_err().reason.contains("empty label"));
        assert!(q("a b").unwrap_err().reason.contains("bad character"));
        assert!(q("a/b").unwrap_err().reason.contains("bad character"));
        assert!(q("héllo").unwrap_err().reason.contains("bad character"));
        assert!(
            q("reviews:80")
                .unwrap_err()
                .reason
                .contains("bad character")
        );
        assert!(q("-reviews").unwrap_err().reason.contains("`-`"));
        assert!(q("reviews-").unwrap_err().reason.contains("`-`"));
        let long_label = "a".repeat(64);
        assert!(q(&long_label).unwrap_err().reason.contains("63"));
        assert!(q(&"a".repeat(63)).is_ok());
        let long_name = vec!["a".repeat(60); 5].join(".");
        assert!(q(&long_name).unwrap_err().reason.contains("253"));
        // Valid alone, too long once qualified.
        let near = format!("{}.x.y", vec!["a".repeat(60); 4].join("."));
        assert!(near.len() <= 253);
        assert!(
            q(&format!("{near}.svc"))
                .unwrap_err()
                .reason
                .contains("qualified")
        );
        let err = q("a b").unwrap_err();
        assert_eq!(err.host, "a b");
        assert!(err.to_string().contains("`a b`"));
    }

    #[test]
    fn bad_namespace_or_domain_is_reported() {
        let err = qualify("reviews", 80, "", "cluster.local").unwrap_err();
        assert!(err.reason.contains("namespace"));
        let err = qualify("reviews", 80, "default", "").unwrap_err();
        assert!(err.reason.contains("cluster domain"));
        let err = qualify("reviews", 80, "default", "bad..domain").unwrap_err();
        assert!(err.reason.contains("cluster domain"));
        // Names that need neither do not care.
        assert!(qualify("api.example.com", 80, "", "").is_ok());
        assert!(qualify("10.0.0.1", 80, "", "").is_ok());
    }

    #[test]
    fn target_display_and_name() {
        let t = q("reviews").unwrap();
        assert_eq!(t.to_string(), "reviews.default.svc.cluster.local:9080");
        assert_eq!(t.name(), "reviews.default.svc.cluster.local");
        let t = q("_http._tcp.reviews").unwrap();
        assert_eq!(
            t.to_string(),
            "SRV _http._tcp.reviews.default.svc.cluster.local"
        );
        let t = q("[::1]").unwrap();
        assert_eq!(t.to_string(), "[::1]:9080");
        assert_eq!(t.name(), "::1");
    }

    #[test]
    fn authorities() {
        let ok = |a: &str| parse_authority(a, 80);
        assert_eq!(ok("reviews"), Ok(("reviews".into(), 80)));
        assert_eq!(ok("reviews:9080"), Ok(("reviews".into(), 9080)));
        assert_eq!(ok("10.0.0.1:8080"), Ok(("10.0.0.1".into(), 8080)));
        assert_eq!(ok("[::1]:8080"), Ok(("[::1]".into(), 8080)));
        assert_eq!(ok("[::1]"), Ok(("[::1]".into(), 80)));
        assert_eq!(ok("::1"), Ok(("::1".into(), 80)));
        assert_eq!(ok("a.b.c:65535"), Ok(("a.b.c".into(), 65535)));
    }

    #[test]
    fn bad_authorities_name_the_problem() {
        let err = |a: &str| parse_authority(a, 80).unwrap_err();
        assert_eq!(
            err("reviews:http").reason,
            "port is not a number from 1 to 65535"
        );
        assert_eq!(err("reviews:http").host, "reviews:http");
        assert!(err("reviews:99999").reason.contains("port"));
        assert!(err("reviews:0").reason.contains("port"));
        assert!(err("reviews:+80").reason.contains("port"));
        assert!(err("reviews:").reason.contains("empty port"));
        assert!(err(":80").reason.contains("empty host"));
        assert!(err("").reason.contains("empty"));
        assert!(err("[]:80").reason.contains("empty host"));
        assert!(err("[::1").reason.contains("`]`"));
        assert!(err("[::1]x").reason.contains("after"));
        assert!(err("fe80::1:8080:zz").reason.contains("brackets"));
        assert!(err("user@reviews").reason.contains("user"));
    }

    #[test]
    fn authority_then_qualify() {
        let (h, p) = parse_authority("[::1]:9", 80).unwrap();
        assert_eq!(
            qualify(&h, p, "d", "cluster.local"),
            Ok(Target::Addr("[::1]:9".parse().unwrap()))
        );
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn qualify_never_panics(host in ".{0,300}", port: u16, ns in ".{0,20}", domain in ".{0,40}") {
                let _ = qualify(&host, port, &ns, &domain);
            }

            #[test]
            fn qualify_never_panics_on_name_like_input(host in "[a-zA-Z0-9_.:\\[\\]-]{0,80}") {
                let _ = qualify(&host, 80, "default", "cluster.local");
            }

            #[test]
            fn parse_authority_never_panics(authority in ".{0,100}", port: u16) {
                let _ = parse_authority(&authority, port);
            }

            #[test]
            fn parse_authority_never_panics_on_authority_like_input(authority in "[a-f0-9:.\\[\\]@]{0,40}") {
                let _ = parse_authority(&authority, 80);
            }

            #[test]
            fn qualified_names_are_valid_and_stable(
                labels in proptest::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", 1..6)
            ) {
                let name = labels.join(".");
                if let Ok(Target::Host { fqdn, .. }) = qualify(&name, 80, "default", "cluster.local") {
                    prop_assert!(fqdn.len() <= 253);
                    prop_assert_eq!(fqdn.to_ascii_lowercase(), fqdn.clone());
                    // Qualifying the result as an absolute name changes nothing.
                    let again = qualify(&format!("{fqdn}."), 80, "other", "other.domain");
                    prop_assert_eq!(again, Ok(Target::Host { fqdn, port: 80 }));
                }
            }
        }
    }
}
