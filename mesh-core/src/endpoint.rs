//! Endpoints: the addresses a destination resolves to.

use std::net::SocketAddr;
use std::sync::Arc;

/// One address that serves a destination (a pod, in Kubernetes terms).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Relative weight among the endpoints of one set (SRV weight; 1 when unweighted).
    pub weight: u32,
}

impl Endpoint {
    /// An endpoint of weight 1.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, weight: 1 }
    }

    /// The same endpoint with `weight` (0 is raised to 1: a listed endpoint gets traffic).
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight.max(1);
        self
    }
}

/// An immutable, sorted, de-duplicated set of endpoints; cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EndpointSet {
    endpoints: Arc<[Endpoint]>,
}

impl EndpointSet {
    /// Builds a set, sorting by address and keeping the first of any duplicate address.
    pub fn new(endpoints: impl IntoIterator<Item = Endpoint>) -> Self {
        let mut v: Vec<Endpoint> = endpoints.into_iter().collect();
        v.sort_by_key(|e| e.addr);
        v.dedup_by(|b, a| a.addr == b.addr);
        Self {
            endpoints: v.into(),
        }
    }

    /// A set of weight-1 endpoints from plain addresses.
    pub fn from_addrs(addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self::new(addrs.into_iter().map(Endpoint::new))
    }

    /// The endpoints, sorted by address.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// How many endpoints there are.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }
}

impl FromIterator<Endpoint> for EndpointSet {
    fn from_iter<I: IntoIterator<Item = Endpoint>>(iter: I) -> Self {
        Self::new(iter)
    }
}

/// What discovery currently knows of a destination, as published to the balancer.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Resolution {
    /// The first lookup has not answered yet; requests wait for it (bounded by their timeout).
    #[default]
    Pending,
    /// The current endpoints. An empty set means the name exists but has no endpoints.
    Resolved(EndpointSet),
    /// The name could not be resolved and there is no last good set to keep; says why
    /// (for example "NXDOMAIN for reviews.default.svc.cluster.local").
    Unresolved(Arc<str>),
}

impl Resolution {
    /// The endpoints when resolved.
    pub fn endpoints(&self) -> Option<&EndpointSet> {
        match self {
            Resolution::Resolved(set) => Some(set),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_sorts_and_dedups() {
        let a: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let set = EndpointSet::new([
            Endpoint::new(a).with_weight(3),
            Endpoint::new(b),
            Endpoint::new(a),
        ]);
        assert_eq!(set.len(), 2);
        assert_eq!(set.endpoints()[0].addr, b);
        assert_eq!(set.endpoints()[1].weight, 3);
    }

    #[test]
    fn zero_weight_is_raised() {
        let a: SocketAddr = "10.0.0.2:80".parse().unwrap();
        assert_eq!(Endpoint::new(a).with_weight(0).weight, 1);
    }
}
