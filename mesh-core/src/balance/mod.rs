//! Endpoint selection: round robin, random, least request (P2C) and peak-EWMA P2C.
//!
//! [`EndpointStats`] holds one endpoint's live load (lock-free, shared between requests);
//! [`Picker`] chooses among a snapshot of endpoints. Time is passed in as a [`Duration`]
//! since an origin the caller chooses.

use std::time::Duration;

use rand::Rng;

use crate::config::LoadBalancer;

/// Live statistics of one endpoint: requests in flight, peak-EWMA latency, connect health.
#[derive(Debug)]
pub struct EndpointStats {
    _weight: u32,
}

impl EndpointStats {
    /// Fresh statistics for an endpoint of `weight`.
    pub fn new(weight: u32) -> Self {
        Self { _weight: weight }
    }

    /// The endpoint's weight.
    pub fn weight(&self) -> u32 {
        unimplemented!()
    }

    /// Requests currently in flight.
    pub fn in_flight(&self) -> u32 {
        unimplemented!()
    }

    /// A request was sent to this endpoint.
    pub fn on_start(&self) {
        unimplemented!()
    }

    /// A request sent to this endpoint finished (its response ended, failed or was dropped).
    pub fn on_end(&self) {
        unimplemented!()
    }

    /// A response's headers arrived `rtt` after the request was sent.
    pub fn observe_rtt(&self, _now: Duration, _rtt: Duration) {
        unimplemented!()
    }

    /// A connection attempt failed: the endpoint is avoided for a growing back-off.
    pub fn on_connect_failure(&self, _now: Duration) {
        unimplemented!()
    }

    /// A request succeeded in reaching the endpoint: the connect back-off resets.
    pub fn on_connect_success(&self) {
        unimplemented!()
    }

    /// Whether the endpoint is outside any connect back-off at `now`.
    pub fn is_available(&self, _now: Duration) -> bool {
        unimplemented!()
    }
}

/// Chooses an endpoint from a snapshot by one load-balancing algorithm.
#[derive(Debug)]
pub struct Picker {
    _lb: LoadBalancer,
}

impl Picker {
    /// A picker for a snapshot of endpoints with these weights, in the snapshot's order.
    pub fn new(lb: LoadBalancer, _weights: &[u32]) -> Self {
        Self { _lb: lb }
    }

    /// Picks the index of an endpoint, or `None` when `endpoints` is empty.
    pub fn pick<E: AsRef<EndpointStats>, R: Rng + ?Sized>(
        &self,
        _endpoints: &[E],
        _now: Duration,
        _rng: &mut R,
        _avoid: Option<usize>,
    ) -> Option<usize> {
        unimplemented!()
    }
}
