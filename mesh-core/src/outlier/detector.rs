//! The per-destination detector: decides ejections, ends them, and runs success-rate ejection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::endpoint::EndpointOutlier;
use super::observation::EjectReason;
use super::settings::OutlierSettings;
use super::success_rate::success_rate_outliers;
use super::{ejection_allowed, healthy_enough, max_ejected};

/// Ejection decisions for one destination (one cluster or subset).
///
/// The endpoints' state lives in their [`EndpointOutlier`]s, which the balancer keeps by
/// address across endpoint-set snapshots; the detector is given the current set at each call.
/// A mutex serializes its decisions (it runs at thresholds and at sweeps only, never per
/// request), so concurrent thresholds cannot exceed `maxEjectionPercent` together.
#[derive(Debug)]
pub struct OutlierDetector {
    settings: OutlierSettings,
    state: Mutex<State>,
    /// Set while fewer than `minHealthPercent` of the endpoints are not ejected: ejections
    /// are then not honoured (Envoy's panic mode). Shared with every endpoint it made.
    panic: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct State {
    /// Ejections decided since the detector was built, for metrics.
    ejections_total: u64,
}

/// What a [`OutlierDetector::sweep`] changed, as positions in the endpoints it was given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Endpoints whose ejection ended: they take traffic again (on probation).
    pub returned: Vec<usize>,
    /// Endpoints ejected by success-rate detection, worst first.
    pub ejected: Vec<usize>,
}

impl OutlierDetector {
    /// A detector applying `settings`.
    pub fn new(settings: OutlierSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(State::default()),
            panic: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the destination is in panic mode: fewer than `minHealthPercent` of its
    /// endpoints are not ejected, so the balancer uses them all. Updated at each ejection and
    /// sweep.
    pub fn in_panic(&self) -> bool {
        self.panic.load(Ordering::Relaxed)
    }

    /// Recomputes panic mode from `total` endpoints of which `ejected` are ejected.
    fn update_panic(&self, total: usize, ejected: usize) {
        self.panic
            .store(!self.healthy_enough(total, ejected), Ordering::Relaxed);
    }

    /// The settings it applies.
    pub fn settings(&self) -> &OutlierSettings {
        &self.settings
    }

    /// How often to call [`sweep`](Self::sweep) (Istio's `interval`).
    pub fn interval(&self) -> Duration {
        self.settings.interval
    }

    /// A fresh [`EndpointOutlier`] counting with these settings.
    pub fn new_endpoint(&self) -> EndpointOutlier {
        EndpointOutlier::new(&self.settings).in_panic_with(self.panic.clone())
    }

    /// Ejections decided so far (consecutive, probation and success rate).
    pub fn ejections_total(&self) -> u64 {
        self.lock().ejections_total
    }

    /// Whether the balancer should honour ejections among `total` endpoints of which
    /// `ejected` are ejected (see [`healthy_enough`]); when false it uses all endpoints.
    pub fn healthy_enough(&self, total: usize, ejected: usize) -> bool {
        healthy_enough(total, ejected, self.settings.min_health_percent)
    }

    /// `endpoint` reported `reason` at `now`: ejects it unless it is already ejected or
    /// `maxEjectionPercent` of `endpoints` (the destination's current set, which should
    /// include `endpoint`) are ejected. Returns whether it was ejected.
    ///
    /// The ejection lasts `base * n`, capped at the maximum ejection time, where `n` is the
    /// endpoint's ejection multiplier after this ejection (one more than before).
    pub fn on_threshold<'a>(
        &self,
        endpoint: &EndpointOutlier,
        reason: EjectReason,
        now: Duration,
        endpoints: impl IntoIterator<Item = &'a EndpointOutlier>,
    ) -> bool {
        let mut state = self.lock();
        if endpoint.is_ejected(now) {
            if reason == EjectReason::Probation {
                // The report raced with another ejection: keep probation for its return.
                endpoint.restore_probation();
            }
            return false;
        }
        let (total, ejected) = endpoints
            .into_iter()
            .fold((0usize, 0usize), |(total, ejected), e| {
                (total + 1, ejected + usize::from(e.is_ejected(now)))
            });
        if !ejection_allowed(total.max(1), ejected, self.settings.max_ejection_percent) {
            return false;
        }
        self.eject(&mut state, endpoint, now);
        self.update_panic(total, ejected + 1);
        true
    }

    /// The periodic sweep at `now` over the destination's current `endpoints`, every
    /// [`interval`](Self::interval):
    ///
    /// 1. endpoints whose ejection has ended are reported in [`SweepReport::returned`]; they
    ///    stay on probation until their first success;
    /// 2. endpoints not ejected since the last sweep (and not on probation) were healthy for
    ///    an interval: their ejection multiplier goes down by one;
    /// 3. success-rate ejection, when configured, judges the interval's requests of the
    ///    endpoints not ejected, within `maxEjectionPercent`.
    pub fn sweep<'a>(
        &self,
        now: Duration,
        endpoints: impl IntoIterator<Item = &'a EndpointOutlier>,
    ) -> SweepReport {
        let mut state = self.lock();
        let endpoints: Vec<&EndpointOutlier> = endpoints.into_iter().collect();
        let mut report = SweepReport::default();
        let mut candidates = Vec::new();
        for (i, e) in endpoints.iter().enumerate() {
            let (requests, successes) = e.take_interval();
            if e.end_ejection(now) {
                report.returned.push(i);
            } else if e.never_ejected_since_sweep() {
                if !e.on_probation() {
                    e.decay();
                }
                candidates.push((i, requests, successes));
            }
        }
        let ejected = endpoints.iter().filter(|e| e.is_ejected(now)).count();
        let Some(success_rate) = &self.settings.success_rate else {
            self.update_panic(endpoints.len(), ejected);
            return report;
        };
        let room = max_ejected(endpoints.len(), self.settings.max_ejection_percent)
            .saturating_sub(ejected);
        for i in success_rate_outliers(success_rate, &candidates)
            .into_iter()
            .take(room)
        {
            self.eject(&mut state, endpoints[i], now);
            report.ejected.push(i);
        }
        self.update_panic(endpoints.len(), ejected + report.ejected.len());
        report
    }

    /// Ejects `endpoint` at `now` with its multiplier increased (up to the cap).
    fn eject(&self, state: &mut State, endpoint: &EndpointOutlier, now: Duration) {
        let times = endpoint
            .ejections()
            .saturating_add(1)
            .min(self.settings.max_multiplier());
        let until = now.saturating_add(self.settings.ejection_time(times));
        endpoint.eject(until, times, self.settings.probation);
        state.ejections_total = state.ejections_total.saturating_add(1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
