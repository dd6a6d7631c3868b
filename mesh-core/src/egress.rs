//! Egress control: which hosts the client may call (Istio's `outboundTrafficPolicy`).
//!
//! Under `ALLOW_ANY` (Istio's default) every host may be called. Under `REGISTRY_ONLY` only
//! hosts of Istio's service registry may, which for a workload of mesh are:
//!
//! - the cluster's services: any name under `svc.<cluster domain>`, however it was written
//!   (`reviews`, `reviews.prod`, `reviews.prod.svc` qualify to such a name);
//! - configured destinations (`destinations[].host`, on their port when they name one);
//! - the hosts of VirtualServices (exact or `*.suffix`) and the hosts their routes and mirrors
//!   send to (on their port when they name one);
//! - the allowed hosts of [`OutboundTrafficPolicy`] (Istio's ServiceEntry hosts): fully
//!   qualified names, `*.example.com` for every subdomain of `example.com`, IP addresses and
//!   CIDR ranges (ServiceEntry `addresses`).
//!
//! Names compare without case and without a trailing dot. An IP address is allowed only when
//! a destination or an allowed host lists it: as with Istio, calling an unknown address is
//! denied, cluster IPs included.
//!
//! The decision is made once per host (the client caches it), so [`EgressPolicy::check`]
//! favours clarity over speed.
//!
//! ```
//! use mesh_core::MeshConfig;
//! use mesh_core::config::{OutboundMode, OutboundTrafficPolicy, SecurityConfig};
//! use mesh_core::egress::EgressPolicy;
//!
//! let config = MeshConfig::builder()
//!     .security(SecurityConfig {
//!         outbound: OutboundTrafficPolicy {
//!             mode: OutboundMode::RegistryOnly,
//!             allowed_hosts: vec!["*.googleapis.com".into()],
//!         },
//!         ..Default::default()
//!     })
//!     .build()?;
//! let policy = EgressPolicy::new(&config);
//! assert!(policy.check("reviews.default.svc.cluster.local", 9080).is_ok());
//! assert!(policy.check("storage.googleapis.com", 443).is_ok());
//! let denied = policy.check("api.example.com", 443).unwrap_err();
//! assert_eq!(denied.authority(), "api.example.com:443");
//! # Ok::<(), mesh_core::ConfigError>(())
//! ```
//!
//! [`OutboundTrafficPolicy`]: crate::config::OutboundTrafficPolicy

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{MeshConfig, OutboundMode};
use crate::name::{Target, qualify};

/// Which hosts the client may call: the outbound traffic policy with the registry it checks
/// against, built once from a [`MeshConfig`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressPolicy {
    mode: OutboundMode,
    /// `.svc.<cluster domain>`: every name ending with it is a cluster service; `None` when
    /// the workload's cluster domain is empty.
    cluster_suffix: Option<String>,
    /// The registry besides the cluster's services.
    rules: Vec<Rule>,
}

/// One registry entry: a host pattern, on one port or on every port.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    host: HostRule,
    /// `None` allows every port.
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostRule {
    /// A lowercase name without trailing dot.
    Exact(String),
    /// `*.example.com` as `.example.com`; `*` as the empty suffix (every name).
    Suffix(String),
    /// One address.
    Addr(IpAddr),
    /// A CIDR range.
    Net(IpNet),
}

/// A host the outbound traffic policy does not allow: it is not in the registry and the
/// mode is `REGISTRY_ONLY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressDenied {
    /// The host: a lowercase name without trailing dot, or an IP address.
    pub host: String,
    /// The port called; 0 for an SRV name, whose ports come from its records.
    pub port: u16,
}

impl EgressDenied {
    /// What follows the authority in the message: why the host is denied and how to allow
    /// it. The client's local reply says the same.
    pub const REASON: &'static str = "is not in the mesh registry and the outbound traffic \
        policy is REGISTRY_ONLY; to allow it, list it in a ServiceEntry's hosts (outbound \
        allowedHosts, `*.example.com` for every subdomain) or configure it as a destination";

    /// The host and port as an authority: `api.example.com:443`, `[2001:db8::1]:80`, or the
    /// bare name for an SRV name.
    pub fn authority(&self) -> String {
        match (self.port, self.host.contains(':')) {
            (0, _) => self.host.clone(),
            (port, true) => format!("[{}]:{port}", self.host),
            (port, false) => format!("{}:{port}", self.host),
        }
    }
}

impl fmt::Display for EgressDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.authority(), EgressDenied::REASON)
    }
}

impl std::error::Error for EgressDenied {}

impl EgressPolicy {
    /// The policy of `config`: its [`outbound`](crate::config::SecurityConfig::outbound)
    /// mode, with the registry made of the workload's cluster domain, the destinations, the
    /// VirtualServices and the allowed hosts. Hosts that are not valid names are left out
    /// (the client refuses to build with them anyway).
    pub fn new(config: &MeshConfig) -> EgressPolicy {
        let outbound = &config.security.outbound;
        let workload = &config.workload;
        let domain = normalise(&workload.cluster_domain);
        let cluster_suffix = (!domain.is_empty()).then(|| format!(".svc.{domain}"));
        let mut rules = Vec::new();
        if outbound.mode == OutboundMode::RegistryOnly {
            let qualified = |host: &str, port: Option<u16>, namespace: &str| {
                let target = qualify(
                    host,
                    port.unwrap_or(80),
                    namespace,
                    &workload.cluster_domain,
                )
                .ok()?;
                Some(Rule::target(&target, port))
            };
            for dest in &config.destinations {
                rules.extend(qualified(&dest.host, dest.port, &workload.namespace));
            }
            for vs in &config.virtual_services {
                let namespace = vs.namespace.as_deref().unwrap_or(&workload.namespace);
                for host in &vs.hosts {
                    match host.strip_prefix('*') {
                        Some(suffix) => rules.push(Rule {
                            host: HostRule::Suffix(normalise(suffix)),
                            port: None,
                        }),
                        None => rules.extend(qualified(host, None, namespace)),
                    }
                }
                for route in &vs.http {
                    if let crate::route::RouteAction::Forward(forward) = &route.action {
                        for d in &forward.destinations {
                            rules.extend(qualified(&d.host, d.port, namespace));
                        }
                    }
                    for m in &route.mirrors {
                        rules.extend(qualified(&m.host, m.port, namespace));
                    }
                }
            }
            rules.extend(outbound.allowed_hosts.iter().map(|h| Rule::allowed(h)));
        }
        EgressPolicy {
            mode: outbound.mode,
            cluster_suffix,
            rules,
        }
    }

    /// The mode.
    pub fn mode(&self) -> OutboundMode {
        self.mode
    }

    /// Whether `fqdn` may be called on `port`. `fqdn` is fully qualified, as
    /// [`qualify`] makes it (any case, a trailing dot allowed; it is not searched), or an IP
    /// address (`10.0.0.1`, `::1`, `[::1]`); an SRV name is also checked by the host after
    /// its `_port._proto.` labels.
    pub fn check(&self, fqdn: &str, port: u16) -> Result<(), EgressDenied> {
        if self.mode == OutboundMode::AllowAny {
            return Ok(());
        }
        let host = normalise(fqdn);
        if let Some(ip) = parse_ip(&host) {
            return self.check_ip(ip, port);
        }
        if self.allows_name(&host, port)
            || srv_service(&host).is_some_and(|s| self.allows_name(s, port))
        {
            return Ok(());
        }
        Err(EgressDenied { host, port })
    }

    /// [`check`](Self::check) for a qualified [`Target`]; an SRV name is checked on every
    /// port (its ports come from its records).
    pub fn check_target(&self, target: &Target) -> Result<(), EgressDenied> {
        match target {
            Target::Host { fqdn, port } => self.check(fqdn, *port),
            Target::Srv { fqdn } => self.check(fqdn, 0),
            Target::Addr(addr) => self.check_ip(addr.ip(), addr.port()),
        }
    }

    fn check_ip(&self, ip: IpAddr, port: u16) -> Result<(), EgressDenied> {
        if self.mode == OutboundMode::AllowAny {
            return Ok(());
        }
        let ip = ip.to_canonical();
        let listed = self.rules.iter().any(|rule| {
            rule.allows_port(port)
                && match &rule.host {
                    HostRule::Addr(addr) => *addr == ip,
                    HostRule::Net(net) => net.contains(&ip),
                    HostRule::Exact(_) | HostRule::Suffix(_) => false,
                }
        });
        if listed {
            Ok(())
        } else {
            Err(EgressDenied {
                host: ip.to_string(),
                port,
            })
        }
    }

    /// Whether the lowercase `name` is a cluster service or matches a name rule on `port`.
    fn allows_name(&self, name: &str, port: u16) -> bool {
        if self
            .cluster_suffix
            .as_deref()
            .is_some_and(|suffix| name.ends_with(suffix))
        {
            return true;
        }
        self.rules.iter().any(|rule| {
            rule.allows_port(port)
                && match &rule.host {
                    HostRule::Exact(exact) => exact == name,
                    HostRule::Suffix(suffix) => name.ends_with(suffix.as_str()),
                    HostRule::Addr(_) | HostRule::Net(_) => false,
                }
        })
    }
}

impl Rule {
    /// The entry for a qualified target.
    fn target(target: &Target, port: Option<u16>) -> Rule {
        let host = match target {
            Target::Host { fqdn, .. } | Target::Srv { fqdn } => HostRule::Exact(fqdn.clone()),
            Target::Addr(addr) => HostRule::Addr(addr.ip().to_canonical()),
        };
        Rule { host, port }
    }

    /// The entry for an allowed host as written: an address, a CIDR range, `*.suffix`, `*`
    /// or a fully qualified name; on every port.
    fn allowed(written: &str) -> Rule {
        let host = normalise(written);
        let host = if let Some(ip) = parse_ip(&host) {
            HostRule::Addr(ip.to_canonical())
        } else if let Ok(net) = host.parse::<IpNet>() {
            HostRule::Net(net.trunc())
        } else if let Some(suffix) = host.strip_prefix('*') {
            HostRule::Suffix(suffix.to_owned())
        } else {
            HostRule::Exact(host)
        };
        Rule { host, port: None }
    }

    fn allows_port(&self, port: u16) -> bool {
        // Port 0 is an SRV name's: any port of a host rule applies.
        port == 0 || self.port.is_none_or(|p| p == port)
    }
}

/// `name` in lowercase without surrounding spaces or a trailing dot.
fn normalise(name: &str) -> String {
    let name = name.trim();
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// `10.0.0.1`, `::1` or `[::1]` as an address.
fn parse_ip(host: &str) -> Option<IpAddr> {
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    unbracketed.parse().ok()
}

/// The service part of an SRV name (`api.example.com` of `_http._tcp.api.example.com`).
fn srv_service(name: &str) -> Option<&str> {
    let (port, rest) = name.split_once('.')?;
    let (proto, service) = rest.split_once('.')?;
    (port.starts_with('_') && proto.starts_with('_') && !service.is_empty()).then_some(service)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Format, OutboundTrafficPolicy};

    /// A config of workload `tester` in `default` from `yaml` (mesh settings and Istio
    /// documents), with the outbound policy `mode` and `allowed` hosts.
    fn config_from(yaml: &str, mode: OutboundMode, allowed: &[&str]) -> MeshConfig {
        let text = format!("workload: {{service: tester, namespace: default}}\n{yaml}");
        let mut config = MeshConfig::from_str(&text, Format::Yaml).expect("valid config");
        config.security.outbound = OutboundTrafficPolicy {
            mode,
            allowed_hosts: allowed.iter().map(|h| (*h).to_owned()).collect(),
        };
        config
    }

    fn registry_only(allowed: &[&str]) -> EgressPolicy {
        EgressPolicy::new(&config_from("", OutboundMode::RegistryOnly, allowed))
    }

    /// Checks `host` as the client does: qualified in `default` of `cluster.local` first.
    fn check_written(policy: &EgressPolicy, host: &str, port: u16) -> Result<(), EgressDenied> {
        let target = qualify(host, port, "default", "cluster.local").expect("valid host");
        policy.check_target(&target)
    }

    #[test]
    fn allow_any_allows_everything() {
        let policy = EgressPolicy::new(&config_from("", OutboundMode::AllowAny, &[]));
        assert_eq!(policy.mode(), OutboundMode::AllowAny);
        for host in [
            "api.example.com",
            "10.0.0.1",
            "[::1]",
            "_http._tcp.x.example.com",
            "",
        ] {
            assert_eq!(policy.check(host, 443), Ok(()), "{host}");
        }
        let addr = Target::Addr("192.0.2.7:80".parse().unwrap());
        assert_eq!(policy.check_target(&addr), Ok(()));
        // The default config is ALLOW_ANY, as Istio's.
        let default = EgressPolicy::new(&MeshConfig::default());
        assert_eq!(default.check("api.example.com", 443), Ok(()));
    }

    #[test]
    fn cluster_services_are_allowed_in_any_spelling() {
        let policy = registry_only(&[]);
        for host in [
            "reviews",
            "reviews.prod",
            "reviews.prod.svc",
            "Reviews.PROD.svc.cluster.local",
            "reviews.prod.svc.cluster.local.",
            "pod-0.web.prod.svc",
            "_http._tcp.reviews",
            "example.com", // two labels: `service.namespace`, as the search list reads it
        ] {
            assert_eq!(check_written(&policy, host, 9080), Ok(()), "{host}");
        }
        // Already qualified names, checked directly, in any case and with a trailing dot.
        assert_eq!(
            policy.check("ratings.default.svc.cluster.local", 80),
            Ok(())
        );
        assert_eq!(
            policy.check("RATINGS.default.SVC.Cluster.Local.", 80),
            Ok(())
        );
        // Under the cluster domain but not a service, or the domain itself: not registered.
        assert!(policy.check("node-1.cluster.local", 80).is_err());
        assert!(policy.check("svc.cluster.local", 80).is_err());
        assert!(policy.check("cluster.local", 80).is_err());
    }

    #[test]
    fn the_cluster_is_the_workloads_own_domain() {
        let mut config = config_from("", OutboundMode::RegistryOnly, &[]);
        config.workload.cluster_domain = "Corp.Internal.".into();
        let policy = EgressPolicy::new(&config);
        assert_eq!(
            policy.check("reviews.default.svc.corp.internal", 80),
            Ok(())
        );
        assert!(
            policy
                .check("reviews.default.svc.cluster.local", 80)
                .is_err()
        );
    }

    #[test]
    fn unregistered_hosts_are_denied_with_a_way_out() {
        let policy = registry_only(&[]);
        let denied = check_written(&policy, "API.Example.com", 443).unwrap_err();
        assert_eq!(
            denied,
            EgressDenied {
                host: "api.example.com".into(),
                port: 443
            }
        );
        let text = denied.to_string();
        assert!(
            text.starts_with("api.example.com:443 is not in the mesh registry"),
            "{text}"
        );
        assert!(text.contains("REGISTRY_ONLY"), "{text}");
        assert!(text.contains("ServiceEntry"), "{text}");
        assert!(text.contains("allowedHosts"), "{text}");
        // An absolute two-label name is outside the cluster.
        assert!(check_written(&policy, "example.com.", 80).is_err());
        assert!(check_written(&policy, "localhost", 80).is_err());
    }

    #[test]
    fn allowed_hosts_match_exactly_or_by_wildcard_without_case() {
        let policy = registry_only(&["Httpbin.ORG.", "*.Example.COM"]);
        assert_eq!(policy.check("httpbin.org", 80), Ok(()));
        assert_eq!(policy.check("HTTPBIN.org.", 8080), Ok(()));
        assert!(policy.check("www.httpbin.org", 80).is_err());
        assert_eq!(policy.check("api.example.com", 443), Ok(()));
        assert_eq!(policy.check("a.b.example.com", 443), Ok(()));
        assert_eq!(policy.check("API.Example.Com.", 443), Ok(()));
        // A wildcard covers subdomains, not the domain itself nor look-alikes.
        assert!(policy.check("example.com", 443).is_err());
        assert!(policy.check("badexample.com", 443).is_err());
        assert!(policy.check("example.com.evil.net", 443).is_err());
        // SRV names are checked by the host after their service and protocol labels.
        assert_eq!(policy.check("_https._tcp.api.example.com", 0), Ok(()));
        let srv = Target::Srv {
            fqdn: "_grpc._tcp.httpbin.org".into(),
        };
        assert_eq!(policy.check_target(&srv), Ok(()));
        let srv = Target::Srv {
            fqdn: "_grpc._tcp.other.net".into(),
        };
        let denied = policy.check_target(&srv).unwrap_err();
        assert_eq!(denied.authority(), "_grpc._tcp.other.net");
    }

    #[test]
    fn a_lone_star_allows_every_name_but_no_address() {
        let policy = registry_only(&["*"]);
        assert_eq!(policy.check("anything.example", 1), Ok(()));
        assert!(policy.check("10.0.0.1", 1).is_err());
    }

    #[test]
    fn addresses_must_be_listed() {
        let policy = registry_only(&["10.0.0.5", "[2001:db8::1]", "10.96.0.0/12", "fd00::/8"]);
        assert_eq!(policy.check("10.0.0.5", 80), Ok(()));
        assert_eq!(policy.check("2001:db8::1", 80), Ok(()));
        assert_eq!(policy.check("[2001:DB8::1]", 80), Ok(()));
        assert_eq!(policy.check("10.100.3.4", 443), Ok(()));
        assert_eq!(policy.check("fd12::9", 443), Ok(()));
        // An IPv4-mapped IPv6 address is the IPv4 address.
        assert_eq!(policy.check("::ffff:10.0.0.5", 80), Ok(()));
        let denied = policy.check("10.0.0.6", 80).unwrap_err();
        assert_eq!(denied.authority(), "10.0.0.6:80");
        let denied = policy.check("[2001:db8::2]", 80).unwrap_err();
        assert_eq!(denied.authority(), "[2001:db8::2]:80");
        assert!(denied.to_string().starts_with("[2001:db8::2]:80 is not"));
        let addr = Target::Addr("10.0.0.7:8080".parse().unwrap());
        assert!(policy.check_target(&addr).is_err());
        // A name rule never admits an address.
        let policy = registry_only(&["*.example.com"]);
        assert!(policy.check("127.0.0.1", 80).is_err());
    }

    #[test]
    fn destinations_are_registered_on_their_port() {
        let yaml = "destinations:\n\
                    - {host: payments.example.net., port: 443}\n\
                    - {host: api.example.org}\n\
                    - {host: 192.0.2.10, port: 8080}\n\
                    - {host: _ldap._tcp.directory.example.net}\n";
        let policy = EgressPolicy::new(&config_from(yaml, OutboundMode::RegistryOnly, &[]));
        assert_eq!(policy.check("payments.example.net", 443), Ok(()));
        assert!(policy.check("payments.example.net", 80).is_err());
        assert_eq!(policy.check("API.example.org", 80), Ok(()));
        assert_eq!(policy.check("api.example.org", 9443), Ok(()));
        assert_eq!(policy.check("192.0.2.10", 8080), Ok(()));
        assert!(policy.check("192.0.2.10", 80).is_err());
        let srv = Target::Srv {
            fqdn: "_ldap._tcp.directory.example.net".into(),
        };
        assert_eq!(policy.check_target(&srv), Ok(()));
        // Written as the client qualifies them.
        assert_eq!(check_written(&policy, "Payments.Example.Net.", 443), Ok(()));
        assert_eq!(check_written(&policy, "192.0.2.10", 8080), Ok(()));
    }

    #[test]
    fn virtual_service_hosts_and_destinations_are_registered() {
        let yaml = "\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge, namespace: shop}
spec:
  hosts: [\"*.Partner.example.com\", legacy.example.org, cart]
  http:
  - match: [{uri: {prefix: /v2}}]
    route:
    - destination: {host: backend.example.net, port: {number: 8443}}
      weight: 90
    - destination: {host: 192.0.2.20}
      weight: 10
    mirror: {host: shadow.example.net}
  - route:
    - destination: {host: cart}
";
        let policy = EgressPolicy::new(&config_from(yaml, OutboundMode::RegistryOnly, &[]));
        assert_eq!(policy.check("api.partner.example.com", 443), Ok(()));
        assert!(policy.check("partner.example.com", 443).is_err());
        assert_eq!(policy.check("legacy.example.org", 80), Ok(()));
        assert_eq!(policy.check("backend.example.net", 8443), Ok(()));
        assert!(policy.check("backend.example.net", 80).is_err());
        assert_eq!(policy.check("192.0.2.20", 80), Ok(()));
        assert_eq!(policy.check("shadow.example.net", 80), Ok(()));
        // Short names qualify in the VirtualService's namespace: a cluster service.
        assert_eq!(policy.check("cart.shop.svc.cluster.local", 80), Ok(()));
        assert!(policy.check("other.example.net", 80).is_err());
    }

    #[test]
    fn authorities() {
        let denied = |host: &str, port| EgressDenied {
            host: host.into(),
            port,
        };
        assert_eq!(denied("a.example.com", 80).authority(), "a.example.com:80");
        assert_eq!(denied("::1", 80).authority(), "[::1]:80");
        assert_eq!(
            denied("_h._tcp.a.example.com", 0).authority(),
            "_h._tcp.a.example.com"
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn check_never_panics(host in ".{0,80}", port: u16, allowed in proptest::collection::vec(".{0,30}", 0..4)) {
                let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
                let policy = registry_only(&allowed);
                let _ = policy.check(&host, port);
            }

            #[test]
            fn listed_names_are_allowed_and_others_not(
                labels in proptest::collection::vec("[a-z][a-z0-9]{0,8}", 3..5),
                port: u16,
            ) {
                let name = labels.join(".");
                let policy = registry_only(&[name.as_str()]);
                prop_assert_eq!(policy.check(&name.to_ascii_uppercase(), port), Ok(()));
                let other = format!("x{name}");
                prop_assert!(policy.check(&other, port).is_err());
            }
        }
    }
}
