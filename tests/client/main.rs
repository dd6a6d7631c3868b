//! End-to-end tests of the mesh client: a real DNS server, real HTTP backends on loopback,
//! paused tokio time where timing matters.

mod admin;
mod balance;
mod bodies;
mod breaker;
mod config;
mod discovery;
mod egress;
mod faults;
mod hashing;
mod hedge;
mod limits;
mod mirror;
mod outlier;
mod pool;
mod resilience;
mod routes;
mod support;
