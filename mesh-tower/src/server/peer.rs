//! What the server knows about a request's connection: a request extension set by
//! [`MeshServer`](super::MeshServer) on every request.

use std::net::SocketAddr;

use mesh_core::identity::SpiffeId;

/// The connection a request came on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The caller's address.
    pub addr: SocketAddr,
    /// The server's own address (its port is `destination.port`).
    pub local: SocketAddr,
    /// The caller's verified SPIFFE identity, when the connection is mutual TLS.
    pub identity: Option<SpiffeId>,
    /// Whether the connection is TLS.
    pub tls: bool,
}

impl Peer {
    /// Istio's `connection_security_policy`: `mutual_tls` when the caller presented a
    /// verified certificate, `none` otherwise.
    pub fn connection_security_policy(&self) -> &'static str {
        if self.identity.is_some() {
            "mutual_tls"
        } else {
            "none"
        }
    }
}
