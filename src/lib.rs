//! mesh: a service mesh as a library.
//!
//! Add this one crate and send requests through [`MeshClient`]: destinations are discovered
//! through Kubernetes DNS, balanced, timed out and retried in-process, with no sidecar. Serve
//! with [`MeshServer`] and the deadlines callers send bound your own outbound calls.
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Empty;
//! use mesh::prelude::*;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = MeshClient::from_env()?;
//! let req = http::Request::get("http://reviews:9080/reviews/0").body(Empty::<Bytes>::new())?;
//! let res = client.request(req).await?;
//! assert!(res.status().is_success());
//! # Ok(()) }
//! ```
//!
//! The crates behind it are re-exported whole: [`core`] (the config model and the pure
//! decision logic), [`dns`] (discovery) and [`tower`] (the layers).
#![forbid(unsafe_code)]

pub use mesh_core as core;
pub use mesh_dns as dns;
pub use mesh_tower as tower;

pub use mesh_core::identity::SpiffeId;
pub use mesh_core::{ConfigError, MeshConfig};
pub use mesh_tower::authn::RequestAuth;
pub use mesh_tower::context::RequestContext;
pub use mesh_tower::server::Peer;
pub use mesh_tower::telemetry::Telemetry;
pub use mesh_tower::tls::{DevCa, Identity};
pub use mesh_tower::{
    BuildError, LocalReply, MeshClient, MeshClientBuilder, MeshError, MeshServer,
};

/// The names most programs need.
pub mod prelude {
    pub use mesh_core::MeshConfig;
    pub use mesh_core::config::{DestinationBuilder, LoadBalancer, Protocol};
    pub use mesh_tower::authn::RequestAuth;
    pub use mesh_tower::context::RequestContext;
    pub use mesh_tower::server::{Peer, ServerLayer};
    pub use mesh_tower::telemetry::Telemetry;
    pub use mesh_tower::tls::Identity;
    pub use mesh_tower::{MeshClient, MeshServer, RequestBody, ResponseBody};
}

/// The README's code, compiled as doctests so the quick start stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
