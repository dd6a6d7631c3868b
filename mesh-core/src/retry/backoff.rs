//! Fully jittered exponential back-off.

use std::time::Duration;

use rand::Rng;

use crate::config::BackoffConfig;

/// The pause before retry number `retry` (1 for the first retry).
pub fn backoff<R: Rng + ?Sized>(_config: &BackoffConfig, _retry: u32, _rng: &mut R) -> Duration {
    unimplemented!()
}
