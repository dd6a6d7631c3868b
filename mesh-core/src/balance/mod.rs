//! Endpoint selection: round robin, random, least request (P2C), peak-EWMA P2C,
//! passthrough, and consistent hash on a ring or a Maglev table.
//!
//! [`EndpointStats`] holds one endpoint's live load (lock-free, shared between requests);
//! [`Picker`] chooses among a snapshot of endpoints. Time is passed in as a [`Duration`]
//! since an origin the caller chooses.
//!
//! ```
//! use std::time::Duration;
//! use mesh_core::balance::{EndpointStats, Picker};
//! use mesh_core::config::LoadBalancer;
//! use rand::SeedableRng;
//!
//! let lb = LoadBalancer::LeastRequest;
//! let endpoints = [EndpointStats::for_balancer(1, &lb), EndpointStats::for_balancer(1, &lb)];
//! endpoints[0].on_start();
//! let picker = Picker::new(&lb, &[1, 1]);
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//! // With two endpoints P2C compares both: the idle one wins.
//! assert_eq!(picker.pick(&endpoints, Duration::ZERO, &mut rng, None), Some(1));
//! ```
//!
//! [`Duration`]: std::time::Duration

mod maglev;
mod p2c;
mod peak_ewma;
mod picker;
mod ring_hash;
mod round_robin;
mod stats;
mod weighted;

#[cfg(test)]
mod tests;

pub(crate) use maglev::{
    DEFAULT_TABLE_SIZE as DEFAULT_MAGLEV_TABLE_SIZE, MAXIMUM_TABLE_SIZE as MAX_MAGLEV_TABLE_SIZE,
    is_prime,
};
pub use picker::Picker;
pub(crate) use ring_hash::MAXIMUM_SIZE as MAX_RING_SIZE;
pub use stats::EndpointStats;
