//! One endpoint's outlier state: consecutive-failure counters and its ejection, in atomics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::observation::{EjectReason, Observation, is_5xx, is_gateway_error};
use super::settings::OutlierSettings;
use crate::health::as_nanos;

/// The counts one endpoint needs from [`OutlierSettings`], copied so `observe` reads no lock.
#[derive(Clone, Copy, Debug)]
struct Thresholds {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    consecutive_local_origin: u32,
    split_local_origin: bool,
    count_interval: bool,
}

/// One interval request, packed in [`EndpointOutlier::interval`]: requests in the high half.
const ONE_REQUEST: u64 = 1 << 32;

/// The outlier state of one endpoint, shared by the requests sent to it.
///
/// Every method takes `&self` and uses atomics only. [`observe`](Self::observe) counts
/// outcomes and reports when a threshold is reached; it never ejects: the destination's
/// [`OutlierDetector`](super::OutlierDetector) decides, so it can enforce
/// `maxEjectionPercent`. [`is_ejected`](Self::is_ejected) is one atomic load.
///
/// While ejected, observations (answers of requests already in flight) are ignored, and the
/// consecutive counters restart from zero when the endpoint returns, as in Envoy.
#[derive(Debug)]
pub struct EndpointOutlier {
    thresholds: Thresholds,
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    consecutive_local_origin: AtomicU32,
    /// Requests (high 32 bits) and successes (low 32 bits) since the last sweep.
    interval: AtomicU64,
    /// Nanoseconds since the origin before which the endpoint is ejected; 0 when it has not
    /// been ejected since the last sweep.
    ejected_until: AtomicU64,
    /// Ejections in a row (Envoy's ejection back-off): the ejection-time multiplier.
    ejections: AtomicU32,
    /// Returned from an ejection and not yet succeeded.
    probation: AtomicBool,
    /// The destination's panic flag (see [`OutlierDetector::in_panic`]); while it is set
    /// an ejected endpoint still takes traffic.
    ///
    /// [`OutlierDetector::in_panic`]: super::OutlierDetector::in_panic
    panic: Option<Arc<AtomicBool>>,
}

impl EndpointOutlier {
    /// A healthy endpoint counted with `settings`' thresholds.
    ///
    /// The thresholds are copied: after a settings change, build new endpoints and a new
    /// detector.
    pub fn new(settings: &OutlierSettings) -> Self {
        Self {
            thresholds: Thresholds {
                consecutive_5xx: settings.consecutive_5xx,
                consecutive_gateway: settings.consecutive_gateway,
                consecutive_local_origin: if settings.split_local_origin {
                    settings.consecutive_local_origin
                } else {
                    0
                },
                split_local_origin: settings.split_local_origin,
                count_interval: settings.success_rate.is_some(),
            },
            consecutive_5xx: AtomicU32::new(0),
            consecutive_gateway: AtomicU32::new(0),
            consecutive_local_origin: AtomicU32::new(0),
            interval: AtomicU64::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            probation: AtomicBool::new(false),
            panic: None,
        }
    }

    /// The same endpoint, honouring its destination's panic flag.
    pub(crate) fn in_panic_with(mut self, panic: Arc<AtomicBool>) -> Self {
        self.panic = Some(panic);
        self
    }

    /// Whether the balancer should skip the endpoint at `now`: it is ejected and its
    /// destination is not in panic mode (`minHealthPercent`).
    pub fn is_excluded(&self, now: Duration) -> bool {
        self.is_ejected(now)
            && !self
                .panic
                .as_ref()
                .is_some_and(|p| p.load(Ordering::Relaxed))
    }

    /// Counts the outcome of one request that ended at `now`; `Some` when it reached a
    /// threshold (reported once: the counter restarts). Pass the reason to
    /// [`OutlierDetector::on_threshold`](super::OutlierDetector::on_threshold).
    ///
    /// Any non-5xx answer (or [`Observation::Success`]) resets the consecutive counters. A
    /// 5xx answer resets the local-origin counter (the connection worked) and a non-gateway
    /// 5xx the gateway counter. Unsplit, a local-origin failure counts as a 503 (504 for a
    /// timeout), so it feeds both the 5xx and the gateway counters.
    pub fn observe(&self, observation: Observation, now: Duration) -> Option<EjectReason> {
        if self.is_ejected(now) {
            return None;
        }
        let t = self.thresholds;
        let status = match observation {
            Observation::Success => None,
            Observation::Status(status) => Some(status),
            Observation::LocalOrigin(failure) if !t.split_local_origin => {
                Some(failure.equivalent_status())
            }
            Observation::LocalOrigin(_) => {
                // Split: local-origin failures feed their own counter only (and no success
                // rate: Envoy keeps a separate one for them, which we do not).
                if self.probation_failure() {
                    return Some(EjectReason::Probation);
                }
                return bump(&self.consecutive_local_origin, t.consecutive_local_origin)
                    .then_some(EjectReason::ConsecutiveLocalOrigin);
            }
        };
        let failure = status.is_some_and(is_5xx);
        if t.count_interval {
            let delta = if failure {
                ONE_REQUEST
            } else {
                ONE_REQUEST + 1
            };
            self.interval.fetch_add(delta, Ordering::Relaxed);
        }
        let Some(status) = status.filter(|s| is_5xx(*s)) else {
            self.on_success();
            return None;
        };
        if self.probation_failure() {
            return Some(EjectReason::Probation);
        }
        reset(&self.consecutive_local_origin);
        let gateway = if is_gateway_error(status) {
            bump(&self.consecutive_gateway, t.consecutive_gateway)
        } else {
            reset(&self.consecutive_gateway);
            false
        };
        let five_xx = bump(&self.consecutive_5xx, t.consecutive_5xx);
        if gateway {
            Some(EjectReason::ConsecutiveGateway)
        } else {
            five_xx.then_some(EjectReason::Consecutive5xx)
        }
    }

    /// A success: the consecutive counters reset and probation ends.
    fn on_success(&self) {
        reset(&self.consecutive_5xx);
        reset(&self.consecutive_gateway);
        reset(&self.consecutive_local_origin);
        if self.probation.load(Ordering::Relaxed) {
            self.probation.store(false, Ordering::Relaxed);
        }
    }

    /// A failure: whether it ends a probation (exactly one racing request reports it).
    fn probation_failure(&self) -> bool {
        self.probation.load(Ordering::Relaxed)
            && self
                .probation
                .compare_exchange(true, false, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Whether the endpoint is ejected at `now`: one atomic load and a comparison.
    ///
    /// An ejection ends at its time exactly; the next sweep reports the return.
    pub fn is_ejected(&self, now: Duration) -> bool {
        as_nanos(now) < self.ejected_until.load(Ordering::Relaxed)
    }

    /// When the current (or last, if not swept yet) ejection ends; `None` when there is none.
    pub fn ejected_until(&self) -> Option<Duration> {
        match self.ejected_until.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// The ejection-time multiplier: ejections in a row, less one per healthy interval.
    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Whether the endpoint returned from an ejection and has not succeeded since.
    pub fn on_probation(&self) -> bool {
        self.probation.load(Ordering::Relaxed)
    }

    /// The current run of 5xx answers (with unsplit local-origin failures).
    pub fn consecutive_5xx(&self) -> u32 {
        self.consecutive_5xx.load(Ordering::Relaxed)
    }

    /// The current run of gateway errors (502, 503, 504).
    pub fn consecutive_gateway(&self) -> u32 {
        self.consecutive_gateway.load(Ordering::Relaxed)
    }

    /// The current run of local-origin failures (split mode only).
    pub fn consecutive_local_origin(&self) -> u32 {
        self.consecutive_local_origin.load(Ordering::Relaxed)
    }

    /// Ejects until `until` with multiplier `ejections`; counters restart. Detector only.
    pub(super) fn eject(&self, until: Duration, ejections: u32, probation: bool) {
        self.ejections.store(ejections, Ordering::Relaxed);
        // At least 1 ns, so that 0 keeps meaning "not ejected".
        self.ejected_until
            .store(as_nanos(until).max(1), Ordering::Relaxed);
        reset(&self.consecutive_5xx);
        reset(&self.consecutive_gateway);
        reset(&self.consecutive_local_origin);
        self.probation.store(probation, Ordering::Relaxed);
    }

    /// Clears an ejection that ended at or before `now`; whether there was one. Detector only.
    pub(super) fn end_ejection(&self, now: Duration) -> bool {
        let now = as_nanos(now);
        self.ejected_until
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |until| {
                (until != 0 && until <= now).then_some(0)
            })
            .is_ok()
    }

    /// Whether no ejection is recorded since the last sweep. Detector only.
    pub(super) fn never_ejected_since_sweep(&self) -> bool {
        self.ejected_until.load(Ordering::Relaxed) == 0
    }

    /// One less ejection in the multiplier (a healthy interval). Detector only.
    pub(super) fn decay(&self) {
        let _ = self
            .ejections
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Puts probation back (a report that lost a race with an ejection). Detector only.
    pub(super) fn restore_probation(&self) {
        self.probation.store(true, Ordering::Relaxed);
    }

    /// Requests and successes since the last call, which restarts them. Detector only.
    pub(super) fn take_interval(&self) -> (u32, u32) {
        let packed = self.interval.swap(0, Ordering::Relaxed);
        ((packed >> 32) as u32, packed as u32)
    }
}

/// Adds one to a consecutive counter; true (and the counter restarts) when it reaches
/// `threshold`. A threshold of 0 is disabled: nothing is counted.
fn bump(counter: &AtomicU32, threshold: u32) -> bool {
    if threshold == 0 {
        return false;
    }
    let previous = counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            let n = n.saturating_add(1);
            Some(if n >= threshold { 0 } else { n })
        })
        .unwrap_or_else(|n| n);
    previous.saturating_add(1) >= threshold
}

/// Resets a counter, writing only when there is something to reset (cheap on success).
fn reset(counter: &AtomicU32) {
    if counter.load(Ordering::Relaxed) != 0 {
        counter.store(0, Ordering::Relaxed);
    }
}
