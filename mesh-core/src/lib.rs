//! Pure decision logic and the validated configuration model of mesh.
//!
//! Nothing here opens a socket or reads a clock: time is passed in as a [`Duration`]
//! since an origin the caller chooses, and randomness as a [`rand::Rng`]. The tower layers
//! in `mesh-tower` are thin adapters around these functions and state machines.
//!
//! [`Duration`]: std::time::Duration
#![forbid(unsafe_code)]

pub mod authz;
pub mod balance;
pub mod breaker;
pub mod config;
pub mod deadline;
pub mod discovery;
pub mod duration;
pub mod egress;
pub mod endpoint;
pub mod hash;
pub mod health;
pub mod hedge;
pub mod identity;
pub mod jwt;
pub mod name;
pub mod outlier;
pub mod path;
mod query;
pub mod ratelimit;
pub mod resolv_conf;
pub mod retry;
pub mod route;
pub mod telemetry;

pub use config::{ConfigError, MeshConfig};
pub use endpoint::{Endpoint, EndpointSet, Resolution};
