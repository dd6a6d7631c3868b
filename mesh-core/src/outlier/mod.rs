//! Outlier detection with Istio's (Envoy's) semantics: eject endpoints that keep failing.
//!
//! The pieces, and how a balancer uses them:
//!
//! - [`OutlierSettings`] resolves Istio's `outlierDetection` ([`OutlierDetection`]) with its
//!   defaults: 5 consecutive 5xx, gateway errors off, local-origin failures counted as 5xx
//!   unless split, a 10 s interval, 30 s base ejection (300 s at most), 10 % max ejection,
//!   0 % min health. Success-rate ejection ([`SuccessRate`]) is off unless set.
//! - One [`EndpointOutlier`] per endpoint (kept by address next to its
//!   [`EndpointStats`](crate::balance::EndpointStats)). After each response the balancer calls
//!   [`observe`](EndpointOutlier::observe), which counts lock-free and reports an
//!   [`EjectReason`] when a threshold is reached. Per pick,
//!   [`is_ejected`](EndpointOutlier::is_ejected) is one atomic load.
//! - One [`OutlierDetector`] per destination decides:
//!   [`on_threshold`](OutlierDetector::on_threshold) ejects within `maxEjectionPercent`, and
//!   [`sweep`](OutlierDetector::sweep), run from a timer every
//!   [`interval`](OutlierDetector::interval), reports returned endpoints, decays the
//!   ejection multiplier of healthy ones and runs success-rate ejection.
//! - [`healthy_enough`] is the panic threshold (`minHealthPercent`): below it the balancer
//!   ignores ejections and uses every endpoint.
//!
//! Choices, where Envoy and Istio leave room:
//!
//! - **Max ejection percent**: an ejection is allowed while
//!   `ejected < max(1, floor(total * max% / 100))`, so one endpoint may always be ejected
//!   (Envoy: "will eject at least one host regardless of the value").
//! - **Ejection time**: `base * n`, where `n` counts ejections in a row (Envoy's back-off:
//!   one more at each ejection, one less after each sweep interval the endpoint spent
//!   healthy, neither ejected nor on probation), capped at `max(300 s, base)`. So 30 s,
//!   60 s, 90 s ... 300 s.
//! - **Return**: an ejection ends at its time exactly (Envoy: at the first sweep after it);
//!   the consecutive counters start again from zero, as in Envoy.
//! - **Probation** ([`OutlierSettings::probation`], on by default): a returned endpoint whose
//!   first answer is a failure, before any success, reports [`EjectReason::Probation`] and is
//!   ejected again at once, for longer. With it off, a returned endpoint needs a full
//!   consecutive threshold again, as in Envoy.
//!
//! Time is a [`Duration`] since an origin the caller chooses (as in the rest of mesh-core).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use mesh_core::config::OutlierDetection;
//! use mesh_core::outlier::{EndpointOutlier, Observation, OutlierDetector, OutlierSettings};
//!
//! let detector = OutlierDetector::new(OutlierSettings::from(&OutlierDetection::default()));
//! // The balancer keeps one per endpoint, by address, next to its EndpointStats.
//! let endpoints: Vec<Arc<EndpointOutlier>> =
//!     (0..3).map(|_| Arc::new(detector.new_endpoint())).collect();
//! let secs = Duration::from_secs;
//!
//! // After each response: observe; on a threshold, ask the detector.
//! for _ in 0..5 {
//!     if let Some(reason) = endpoints[1].observe(Observation::Status(500), secs(1)) {
//!         let all = endpoints.iter().map(|e| &**e);
//!         assert!(detector.on_threshold(&endpoints[1], reason, secs(1), all));
//!     }
//! }
//!
//! // Per pick: skip ejected endpoints, unless too few are left (panic mode).
//! let ejected = endpoints.iter().filter(|e| e.is_ejected(secs(2))).count();
//! assert_eq!(ejected, 1);
//! assert!(detector.healthy_enough(endpoints.len(), ejected));
//!
//! // From a timer, every interval: the ejection (30 s) ends.
//! let report = detector.sweep(secs(31), endpoints.iter().map(|e| &**e));
//! assert_eq!(report.returned, vec![1]);
//! assert!(!endpoints[1].is_ejected(secs(31)));
//! ```
//!
//! [`OutlierDetection`]: crate::config::OutlierDetection
//! [`Duration`]: std::time::Duration

mod detector;
mod endpoint;
mod observation;
mod settings;
mod success_rate;

#[cfg(test)]
mod tests;

pub use detector::{OutlierDetector, SweepReport};
pub use endpoint::EndpointOutlier;
pub use observation::{EjectReason, LocalFailure, Observation};
pub use settings::{
    DEFAULT_BASE_EJECTION_TIME, DEFAULT_CONSECUTIVE_5XX, DEFAULT_CONSECUTIVE_LOCAL_ORIGIN,
    DEFAULT_INTERVAL, DEFAULT_MAX_EJECTION_PERCENT, DEFAULT_MAX_EJECTION_TIME,
    DEFAULT_SUCCESS_RATE_MINIMUM_HOSTS, DEFAULT_SUCCESS_RATE_REQUEST_VOLUME,
    DEFAULT_SUCCESS_RATE_STDEV_FACTOR, OutlierSettings, SuccessRate, SuccessRateMode,
};

/// The most endpoints of `total` that may be ejected at once under `max_ejection_percent`:
/// `max(1, floor(total * max% / 100))` (at least one, as in Envoy).
pub fn max_ejected(total: usize, max_ejection_percent: u32) -> usize {
    let limit = total as u128 * u128::from(max_ejection_percent.min(100)) / 100;
    usize::try_from(limit).unwrap_or(usize::MAX).max(1)
}

/// Whether one more of `total` endpoints may be ejected when `ejected` already are:
/// `ejected < max_ejected(total, max_ejection_percent)`.
pub fn ejection_allowed(total: usize, ejected: usize, max_ejection_percent: u32) -> bool {
    ejected < max_ejected(total, max_ejection_percent)
}

/// Whether enough of `total` endpoints are not ejected (`ejected` are) for the balancer to
/// honour ejections: at least `min_health_percent` of them. When false, the balancer is in
/// panic mode and uses all endpoints, ejected or not. Always true for 0 % or no endpoints.
pub fn healthy_enough(total: usize, ejected: usize, min_health_percent: u32) -> bool {
    let healthy = total.saturating_sub(ejected) as u128;
    healthy * 100 >= total as u128 * u128::from(min_health_percent.min(100))
}
