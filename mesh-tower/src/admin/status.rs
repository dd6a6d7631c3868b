//! What the client knows of each destination it has created: discovery's answer and the
//! live state of every endpoint, as [`MeshClient::clusters`](crate::MeshClient::clusters)
//! reports it and the admin server's `/clusters` and `/healthz/ready` show it.

use std::fmt;
use std::net::SocketAddr;

/// What discovery has answered for a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscoveryState {
    /// No answer yet: requests to the destination wait for the first one.
    Pending,
    /// Discovery published an endpoint set (possibly empty).
    Resolved,
    /// Discovery answered that the destination cannot be resolved, for this reason.
    Unresolved(String),
}

impl DiscoveryState {
    /// Whether discovery has answered (resolved or not).
    pub fn has_answered(&self) -> bool {
        !matches!(self, DiscoveryState::Pending)
    }

    /// A short name: `pending`, `resolved` or `unresolved`.
    pub fn name(&self) -> &'static str {
        match self {
            DiscoveryState::Pending => "pending",
            DiscoveryState::Resolved => "resolved",
            DiscoveryState::Unresolved(_) => "unresolved",
        }
    }
}

impl fmt::Display for DiscoveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoveryState::Unresolved(reason) => write!(f, "unresolved: {reason}"),
            other => f.write_str(other.name()),
        }
    }
}

/// One destination (a backend: a qualified host and port, or one subset of it) the client
/// has created, with its endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStatus {
    /// The destination's name: `reviews.default.svc.cluster.local:9080`, with
    /// ` subset v2` appended for a subset.
    pub name: String,
    /// What discovery has answered.
    pub state: DiscoveryState,
    /// The current endpoints, in discovery's order.
    pub endpoints: Vec<EndpointStatus>,
}

/// One endpoint of a destination and its live state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStatus {
    /// The endpoint's address.
    pub addr: SocketAddr,
    /// Its balancing weight (at least 1).
    pub weight: u32,
    /// Whether the balancer may pick it now: neither ejected nor in connect back-off.
    pub healthy: bool,
    /// Whether outlier detection has ejected it.
    pub ejected: bool,
    /// Connect failures in a row; past one, the endpoint is avoided for a back-off.
    pub connect_failures: u32,
    /// Requests in flight to it.
    pub in_flight: u32,
}

impl EndpointStatus {
    /// The endpoint's health in one word: `healthy`, `ejected` (by outlier detection) or
    /// `backoff` (avoided after connect failures).
    pub fn health(&self) -> &'static str {
        if self.ejected {
            "ejected"
        } else if self.healthy {
            "healthy"
        } else {
            "backoff"
        }
    }
}
