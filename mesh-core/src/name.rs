//! Kubernetes DNS names: qualifying `svc`, `svc.ns`, `svc.ns.svc` and SRV names.

use std::net::SocketAddr;

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

/// A host that is not a valid DNS name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid host `{host}`: {reason}")]
pub struct NameError {
    /// The host as given.
    pub host: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Qualifies `host` as Kubernetes' resolv.conf search list would, for a workload in
/// `namespace` of a cluster whose domain is `cluster_domain`.
pub fn qualify(
    _host: &str,
    _port: u16,
    _namespace: &str,
    _cluster_domain: &str,
) -> Result<Target, NameError> {
    unimplemented!()
}
