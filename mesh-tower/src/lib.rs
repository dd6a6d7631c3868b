//! Tower layers of mesh: the client stack that discovers, balances, times out, retries and
//! connects with mutual TLS, and the server stack that accepts by peer-authentication mode,
//! authenticates tokens, authorizes, limits, reads deadlines and shuts down gracefully.
//!
//! Most users want [`MeshClient`]: one `tower::Service<http::Request<B>>` usable wherever a
//! hyper client is, configured from code or [`MeshClient::from_env`]; and [`MeshServer`] (or
//! [`server::ServerLayer`] on an axum `Router`) for inbound requests. The layers they are
//! made of are public too ([`balance`], [`timeout`], [`retry`], [`hedge`], [`limit`],
//! [`local_reply`], [`server`], [`authn`], [`authz`]) for stacks of your own; [`context`] is
//! what the two stacks share, and [`tls`] holds the workload identity (certificates that
//! reload from files, and a development CA) both use.
#![forbid(unsafe_code)]

pub mod admin;
pub mod authn;
pub mod authz;
pub mod balance;
pub mod body;
pub mod breaker;
pub mod client;
mod clock;
mod conn_limit;
pub mod context;
mod endpoint;
pub mod error;
pub mod fault;
pub mod hedge;
mod interned;
mod leg;
pub mod limit;
pub mod local_reply;
pub mod mirror;
pub mod retry;
mod route;
pub mod server;
pub mod telemetry;
#[cfg(test)]
mod test_metrics;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timeout;
pub mod tls;
mod transport;

pub use body::{RequestBody, ResponseBody};
pub use client::{BuildError, MeshClient, MeshClientBuilder, ResponseFuture};
pub use endpoint::ConnectError;
pub use error::{LocalReply, MeshError};
pub use leg::SourceAddr;
pub use server::{MeshServer, ServerLayer};

/// A boxed error, as hyper and tower use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
