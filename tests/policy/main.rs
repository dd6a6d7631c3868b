//! End-to-end tests of mesh's security policies: Istio's RequestAuthentication,
//! AuthorizationPolicy and PeerAuthentication documents loaded from YAML through the real
//! front door, a MeshServer built from the config serving an axum application on loopback,
//! and requests over real HTTP (bare hyper clients, or MeshClients with DevCa identities
//! where identities matter). Paused tokio time throughout, mutual TLS handshakes included;
//! the property tests drive a paused runtime of their own.

mod authz;
mod fuzz;
mod jwt;
mod peer_auth;
mod support;
mod yaml;
