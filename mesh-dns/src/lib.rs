//! Kubernetes DNS discovery for mesh, on hickory-resolver.
//!
//! [`DnsDiscovery`] turns a [`Target`](mesh_core::name::Target) into a live
//! [`EndpointWatch`]: a `watch` channel of [`Resolution`]s refreshed on the answer's TTL,
//! which keeps the last good endpoint set when the DNS server fails. [`StaticDiscovery`]
//! serves a fixed map instead, for local runs.
//!
//! Refresh tasks report through the `metrics` facade:
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `mesh_dns_refreshes_total` | counter | `name` |
//! | `mesh_dns_refresh_failures_total` | counter | `name`, `reason` (`timeout`, `nxdomain`, `nodata`, `servfail`, `refused`, `io`, `bad_answer`) |
//! | `mesh_dns_endpoints` | gauge | `name` |
//!
//! With the `server` feature, [`server::DnsServer`] is a small authoritative DNS server whose
//! records can be changed while it serves, for tests and local runs.
#![forbid(unsafe_code)]

mod discovery;
mod error;
mod refresh;
pub use mesh_core::resolv_conf;
mod resolver;
#[cfg(feature = "server")]
pub mod server;

pub use discovery::{Discover, DnsDiscovery, EndpointWatch, StaticDiscovery, fixed_endpoints};
pub use error::DnsError;
pub use mesh_core::Resolution;
pub use refresh::{ENDPOINTS, REFRESH_FAILURES_TOTAL, REFRESHES_TOTAL};
pub use resolver::DnsResolver;
