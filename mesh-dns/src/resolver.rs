//! Lookups on hickory-resolver: A and AAAA for a host, SRV (with its targets' addresses)
//! for an SRV name, each giving an endpoint set and the answer's smallest TTL.
//!
//! hickory's own cache is switched off: discovery refreshes by TTL itself and needs every
//! refresh to ask the server.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, Record};
use mesh_core::config::DiscoveryConfig;
use mesh_core::discovery::Answer;
use mesh_core::name::Target;
use mesh_core::{Endpoint, EndpointSet};

use crate::DnsError;

/// Retries of a query that failed without an answer (I/O error); a query that times out is
/// not retried within one lookup, whose whole duration is bounded by the configured timeout.
const ATTEMPTS: usize = 1;

/// A DNS resolver for discovery: no cache, fully qualified queries, bounded by a timeout.
#[derive(Clone, Debug)]
pub struct DnsResolver {
    resolver: TokioResolver,
    timeout: Duration,
}

impl DnsResolver {
    /// Builds a resolver asking `config.nameservers` (UDP, with TCP for truncated answers),
    /// or the system's nameservers (`/etc/resolv.conf`) when the list is empty.
    pub fn new(config: &DiscoveryConfig) -> Result<Self, DnsError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if config.nameservers.is_empty() {
            TokioResolver::builder(provider).map_err(|e| DnsError::Config {
                reason: format!("cannot read the system DNS configuration: {e}"),
            })?
        } else {
            let servers = config
                .nameservers
                .iter()
                .map(|addr| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = addr.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = addr.port();
                    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
                })
                .collect();
            let mut builder = TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), servers),
                provider,
            );
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            builder
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.cache_size = 0;
        options.timeout = config.timeout;
        options.attempts = ATTEMPTS;
        options.preserve_intermediates = true;
        let resolver = builder.build().map_err(|e| DnsError::Config {
            reason: format!("cannot build the DNS resolver: {e}"),
        })?;
        Ok(Self {
            resolver,
            timeout: config.timeout,
        })
    }

    /// Looks `target` up: A and AAAA for a host, SRV for an SRV name; an address is its own
    /// answer (with the maximum TTL).
    pub async fn lookup(&self, target: &Target) -> Result<Answer, DnsError> {
        let name = target.name();
        let lookup = async {
            match target {
                Target::Host { fqdn, port } => self.lookup_host(fqdn, *port).await,
                Target::Srv { fqdn } => self.lookup_srv(fqdn).await,
                Target::Addr(addr) => Ok(Answer {
                    endpoints: EndpointSet::from_addrs([*addr]),
                    ttl: Duration::MAX,
                }),
            }
        };
        match tokio::time::timeout(self.timeout, lookup).await {
            Ok(result) => result,
            Err(_) => Err(DnsError::Timeout {
                name,
                timeout: self.timeout,
            }),
        }
    }

    /// A and AAAA records of `fqdn`, as endpoints on `port`.
    pub async fn lookup_host(&self, fqdn: &str, port: u16) -> Result<Answer, DnsError> {
        let (ips, ttl) = self.lookup_ips(fqdn).await?;
        Ok(Answer {
            endpoints: EndpointSet::from_addrs(ips.into_iter().map(|ip| SocketAddr::new(ip, port))),
            ttl,
        })
    }

    /// SRV records of `fqdn`: the targets of the lowest priority present, with their ports
    /// and weights, each target's addresses taken from the additional records or looked up.
    pub async fn lookup_srv(&self, fqdn: &str) -> Result<Answer, DnsError> {
        let name = absolute_name(fqdn)?;
        let lookup = self
            .resolver
            .srv_lookup(name)
            .await
            .map_err(|e| DnsError::from_net(fqdn, "SRV", self.timeout, &e))?;
        let Some(records) = srv_records(&lookup) else {
            return Err(DnsError::NoRecords {
                name: fqdn.to_owned(),
                record_type: "SRV",
            });
        };
        let mut ttl = min_ttl(lookup.answers());
        let additionals = addresses_by_name(lookup.additionals());
        let mut resolved: HashMap<String, Vec<IpAddr>> = HashMap::new();
        let mut endpoints = Vec::new();
        for srv in records {
            if srv.port == 0 {
                return Err(DnsError::BadAnswer {
                    name: fqdn.to_owned(),
                    reason: format!("SRV target {} has port 0", srv.target),
                });
            }
            if !resolved.contains_key(&srv.target) {
                let ips = match additionals.get(&srv.target) {
                    Some((ips, additional_ttl)) => {
                        ttl = ttl.min(*additional_ttl);
                        ips.clone()
                    }
                    None => {
                        let (ips, target_ttl) = self
                            .lookup_ips(&srv.target)
                            .await
                            .map_err(|e| target_error(fqdn, &srv.target, e))?;
                        ttl = ttl.min(target_ttl);
                        ips
                    }
                };
                resolved.insert(srv.target.clone(), ips);
            }
            let ips = resolved
                .get(&srv.target)
                .map(Vec::as_slice)
                .unwrap_or_default();
            endpoints.extend(ips.iter().map(|ip| {
                Endpoint::new(SocketAddr::new(*ip, srv.port)).with_weight(u32::from(srv.weight))
            }));
        }
        Ok(Answer {
            endpoints: EndpointSet::new(endpoints),
            ttl,
        })
    }

    /// The A and AAAA addresses of `fqdn` (asked together) and the smallest TTL. One family
    /// may be empty; a failure of either (other than no records) fails the lookup, so that
    /// half an answer never replaces a whole one.
    async fn lookup_ips(&self, fqdn: &str) -> Result<(Vec<IpAddr>, Duration), DnsError> {
        let name = absolute_name(fqdn)?;
        let (v4, v6) = tokio::join!(
            self.resolver.ipv4_lookup(name.clone()),
            self.resolver.ipv6_lookup(name)
        );
        let mut ips = Vec::new();
        let mut ttl = Duration::MAX;
        let mut nxdomain = false;
        for result in [v4, v6] {
            match result {
                Ok(lookup) => {
                    ttl = ttl.min(min_ttl(lookup.answers()));
                    ips.extend(lookup.answers().iter().filter_map(address));
                }
                Err(e) => match DnsError::from_net(fqdn, "A/AAAA", self.timeout, &e) {
                    DnsError::NxDomain { .. } => nxdomain = true,
                    DnsError::NoRecords { .. } => {}
                    other => return Err(other),
                },
            }
        }
        if !ips.is_empty() {
            Ok((ips, ttl))
        } else if nxdomain {
            Err(DnsError::NxDomain {
                name: fqdn.to_owned(),
            })
        } else {
            Err(DnsError::NoRecords {
                name: fqdn.to_owned(),
                record_type: "A/AAAA",
            })
        }
    }
}

/// One usable SRV record: target (lowercase, no trailing dot), port, weight.
struct SrvRecord {
    target: String,
    port: u16,
    weight: u16,
}

/// The SRV records of the lowest priority present, skipping `.` targets (the service is
/// decidedly not available, RFC 2782); `None` when the answer holds no SRV record at all.
fn srv_records(lookup: &Lookup) -> Option<Vec<SrvRecord>> {
    let srvs: Vec<_> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some(srv),
            _ => None,
        })
        .collect();
    let lowest = srvs.iter().map(|srv| srv.priority).min()?;
    let usable = srvs
        .into_iter()
        .filter(|srv| srv.priority == lowest && !srv.target.is_root())
        .map(|srv| SrvRecord {
            target: name_key(&srv.target),
            port: srv.port,
            weight: srv.weight,
        })
        .collect();
    Some(usable)
}

/// A and AAAA records of the additional section, by owner name, with their smallest TTL.
fn addresses_by_name(records: &[Record]) -> HashMap<String, (Vec<IpAddr>, Duration)> {
    let mut by_name: HashMap<String, (Vec<IpAddr>, Duration)> = HashMap::new();
    for record in records {
        if let Some(ip) = address(record) {
            let entry = by_name
                .entry(name_key(&record.name))
                .or_insert_with(|| (Vec::new(), Duration::MAX));
            entry.0.push(ip);
            entry.1 = entry.1.min(Duration::from_secs(u64::from(record.ttl)));
        }
    }
    by_name
}

fn address(record: &Record) -> Option<IpAddr> {
    match &record.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
        _ => None,
    }
}

/// The smallest TTL among `records` (CNAMEs included), or the maximum when there are none.
fn min_ttl(records: &[Record]) -> Duration {
    records
        .iter()
        .map(|r| Duration::from_secs(u64::from(r.ttl)))
        .min()
        .unwrap_or(Duration::MAX)
}

/// A lowercase name without the trailing dot, to compare names from different records.
fn name_key(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// `fqdn` as an absolute DNS name, so that no search list applies.
fn absolute_name(fqdn: &str) -> Result<Name, DnsError> {
    let text = if fqdn.ends_with('.') {
        fqdn.to_owned()
    } else {
        format!("{fqdn}.")
    };
    Name::from_ascii(&text).map_err(|e| DnsError::Config {
        reason: format!("`{fqdn}` is not a valid DNS name: {e}"),
    })
}

/// An SRV target that does not resolve makes the SRV answer bad; other failures of the
/// follow-up lookup (a timeout, a server failure) keep their kind.
fn target_error(srv_name: &str, target: &str, error: DnsError) -> DnsError {
    if error.is_not_found() {
        DnsError::BadAnswer {
            name: srv_name.to_owned(),
            reason: format!("SRV target {target} does not resolve: {error}"),
        }
    } else {
        error
    }
}
