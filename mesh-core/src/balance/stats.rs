//! One endpoint's live state, shared through an `Arc` by the requests sent to it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::peak_ewma::RttEstimate;
use crate::config::{LoadBalancer, PeakEwmaConfig};
use crate::health::ConnectHealth;
use crate::outlier::EndpointOutlier;

/// Live statistics of one endpoint: requests in flight, peak-EWMA latency, connect health.
///
/// Every method takes `&self` and uses atomics only, so one value is shared by concurrent
/// requests without a lock; readings under races are approximate but always well defined.
#[derive(Debug)]
pub struct EndpointStats {
    weight: u32,
    in_flight: AtomicU32,
    rtt: RttEstimate,
    health: ConnectHealth,
    outlier: Option<EndpointOutlier>,
}

impl EndpointStats {
    /// Fresh statistics for an endpoint of `weight`, with the default peak-EWMA settings.
    ///
    /// A weight of 0 counts as 1, as for [`Endpoint::with_weight`](crate::Endpoint::with_weight).
    pub fn new(weight: u32) -> Self {
        Self::with_ewma(weight, PeakEwmaConfig::default())
    }

    /// Fresh statistics whose latency estimate uses `config` (decay and default RTT).
    pub fn with_ewma(weight: u32, config: PeakEwmaConfig) -> Self {
        Self {
            weight: weight.max(1),
            in_flight: AtomicU32::new(0),
            rtt: RttEstimate::new(config),
            health: ConnectHealth::new(),
            outlier: None,
        }
    }

    /// Fresh statistics for an endpoint balanced by `lb`: its peak-EWMA settings when it is
    /// [`LoadBalancer::PeakEwma`], the defaults otherwise.
    pub fn for_balancer(weight: u32, lb: &LoadBalancer) -> Self {
        match lb {
            LoadBalancer::PeakEwma(config) => Self::with_ewma(weight, *config),
            _ => Self::new(weight),
        }
    }

    /// The same statistics with outlier detection: an ejected endpoint is not available.
    pub fn with_outlier(mut self, outlier: EndpointOutlier) -> Self {
        self.outlier = Some(outlier);
        self
    }

    /// The endpoint's outlier detection state, when the destination has outlier detection.
    pub fn outlier(&self) -> Option<&EndpointOutlier> {
        self.outlier.as_ref()
    }

    /// The endpoint's weight (at least 1).
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Requests currently in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A request was sent to this endpoint.
    pub fn on_start(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1));
    }

    /// A request sent to this endpoint finished (its response ended, failed or was dropped).
    pub fn on_end(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// A response's headers arrived `rtt` after the request was sent.
    pub fn observe_rtt(&self, now: Duration, rtt: Duration) {
        self.rtt.observe(now, rtt);
    }

    /// The peak-EWMA latency estimate at `now` (the default RTT before any observation).
    pub fn rtt_estimate(&self, now: Duration) -> Duration {
        // The estimate is finite and non-negative; `as` saturates beyond 584 years.
        Duration::from_nanos(self.rtt.estimate_ns(now).round() as u64)
    }

    /// The peak-EWMA settings of this endpoint's latency estimate.
    pub fn ewma_config(&self) -> PeakEwmaConfig {
        self.rtt.config()
    }

    /// The peak-EWMA cost at `now`: `estimate_ns * (in_flight + 1) / weight`; lower is better.
    pub fn peak_ewma_cost(&self, now: Duration) -> f64 {
        let load = f64::from(self.in_flight()) + 1.0;
        self.rtt.estimate_ns(now) * load / f64::from(self.weight)
    }

    /// A connection attempt failed: the endpoint is avoided for a growing back-off.
    pub fn on_connect_failure(&self, now: Duration) {
        self.health.on_failure(now);
    }

    /// A request succeeded in reaching the endpoint: the connect back-off resets.
    pub fn on_connect_success(&self) {
        self.health.on_success();
    }

    /// Whether the endpoint is outside any connect back-off at `now`, and not ejected by
    /// outlier detection (or its destination is in panic mode).
    pub fn is_available(&self, now: Duration) -> bool {
        self.health.is_available(now) && self.outlier.as_ref().is_none_or(|o| !o.is_excluded(now))
    }

    /// The endpoint's connect health (failure count and end of back-off), for reporting.
    pub fn health(&self) -> &ConnectHealth {
        &self.health
    }
}

impl AsRef<EndpointStats> for EndpointStats {
    fn as_ref(&self) -> &EndpointStats {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<EndpointStats>();
    }

    #[test]
    fn weight_zero_counts_as_one() {
        assert_eq!(EndpointStats::new(0).weight(), 1);
        assert_eq!(EndpointStats::new(7).weight(), 7);
    }

    #[test]
    fn in_flight_never_underflows() {
        let s = EndpointStats::new(1);
        s.on_end();
        assert_eq!(s.in_flight(), 0);
        s.on_start();
        s.on_start();
        assert_eq!(s.in_flight(), 2);
        s.on_end();
        s.on_end();
        s.on_end();
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn cost_is_estimate_times_load_over_weight() {
        let s = EndpointStats::new(2);
        let now = Duration::from_secs(1);
        // Default RTT 30 ms, nothing in flight, weight 2.
        assert_eq!(s.peak_ewma_cost(now), 30e6 / 2.0);
        s.on_start();
        s.on_start();
        s.on_start();
        assert_eq!(s.peak_ewma_cost(now), 30e6 * 4.0 / 2.0);
        s.observe_rtt(now, 10 * MS);
        assert_eq!(s.rtt_estimate(now), 10 * MS);
        assert_eq!(s.peak_ewma_cost(now), 10e6 * 4.0 / 2.0);
    }

    #[test]
    fn ewma_settings_come_from_the_balancer() {
        let cfg = PeakEwmaConfig {
            decay: Duration::from_secs(1),
            default_rtt: 5 * MS,
        };
        let s = EndpointStats::for_balancer(1, &LoadBalancer::PeakEwma(cfg));
        assert_eq!(s.ewma_config(), cfg);
        assert_eq!(s.rtt_estimate(Duration::ZERO), 5 * MS);
        let s = EndpointStats::for_balancer(1, &LoadBalancer::RoundRobin);
        assert_eq!(s.ewma_config(), PeakEwmaConfig::default());
    }

    #[test]
    fn connect_health_is_tracked() {
        let s = EndpointStats::new(1);
        let t = Duration::from_secs(3);
        s.on_connect_failure(t);
        assert!(!s.is_available(t + 50 * MS));
        assert!(s.is_available(t + 100 * MS));
        s.on_connect_failure(t);
        s.on_connect_success();
        assert!(s.is_available(t));
        assert_eq!(s.health().consecutive_failures(), 0);
    }
}
