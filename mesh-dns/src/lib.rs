//! Kubernetes DNS discovery for mesh, on hickory-resolver.
//!
//! [`DnsDiscovery`] turns a [`Target`](mesh_core::name::Target) into a live
//! [`EndpointWatch`]: a `watch` channel of [`Resolution`]s refreshed on the answer's TTL,
//! which keeps the last good endpoint set when the DNS server fails.
#![forbid(unsafe_code)]

mod discovery;

pub use discovery::{Discover, DnsDiscovery, EndpointWatch, StaticDiscovery};
pub use mesh_core::Resolution;
