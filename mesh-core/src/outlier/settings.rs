//! Outlier-detection settings resolved from Istio's `outlierDetection` with its defaults.

use std::time::Duration;

use crate::config::OutlierDetection;

/// Istio's default `consecutive5xxErrors`.
pub const DEFAULT_CONSECUTIVE_5XX: u32 = 5;
/// Istio's default `consecutiveLocalOriginFailures` (counted only when split).
pub const DEFAULT_CONSECUTIVE_LOCAL_ORIGIN: u32 = 5;
/// Istio's default `interval` between sweeps.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Istio's default `baseEjectionTime`.
pub const DEFAULT_BASE_EJECTION_TIME: Duration = Duration::from_secs(30);
/// Envoy's default `max_ejection_time` (Istio does not expose it).
pub const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);
/// Istio's default `maxEjectionPercent`.
pub const DEFAULT_MAX_EJECTION_PERCENT: u32 = 10;

/// Resolved outlier-detection settings of one destination: every field has its value.
///
/// Built from the config model with [`OutlierSettings::from`]; [`Default`] gives Istio's
/// defaults (an empty `outlierDetection: {}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutlierSettings {
    /// 5xx answers in a row that report [`EjectReason::Consecutive5xx`]; 0 disables.
    ///
    /// [`EjectReason::Consecutive5xx`]: super::EjectReason::Consecutive5xx
    pub consecutive_5xx: u32,
    /// 502, 503 and 504 answers in a row that report a gateway threshold; 0 (the default)
    /// disables.
    pub consecutive_gateway: u32,
    /// Local-origin failures in a row that report a local-origin threshold; 0 disables.
    /// Only used when [`split_local_origin`](Self::split_local_origin) is set.
    pub consecutive_local_origin: u32,
    /// Whether local-origin failures (connect failure, reset, timeout) are counted on their
    /// own. When false (the default) they count as 503 (504 for a timeout) answers, as Envoy
    /// does.
    pub split_local_origin: bool,
    /// How often [`OutlierDetector::sweep`](super::OutlierDetector::sweep) should run.
    pub interval: Duration,
    /// The ejection time of a first ejection; later ones last a multiple of it.
    pub base_ejection_time: Duration,
    /// The longest ejection (at least `base_ejection_time`).
    pub max_ejection_time: Duration,
    /// The share of endpoints that may be ejected at once; one endpoint always may be.
    pub max_ejection_percent: u32,
    /// Below this share of endpoints not ejected, the balancer ignores ejections (panic).
    pub min_health_percent: u32,
    /// Success-rate ejection at each sweep; `None` (the default) turns it off.
    pub success_rate: Option<SuccessRate>,
    /// After an ejection ends, the endpoint is on probation until its first success: a
    /// failure before it reports [`EjectReason::Probation`] at once. On by default; when
    /// off, a returned endpoint needs a full consecutive threshold again (Envoy's behaviour).
    ///
    /// [`EjectReason::Probation`]: super::EjectReason::Probation
    pub probation: bool,
}

impl Default for OutlierSettings {
    fn default() -> Self {
        Self::from(&OutlierDetection::default())
    }
}

impl From<&OutlierDetection> for OutlierSettings {
    /// Fills unset fields with Istio's defaults. Out-of-range values (rejected by config
    /// validation) are clamped: percentages to 100, a zero interval or base time to its default.
    fn from(o: &OutlierDetection) -> Self {
        let positive =
            |d: Option<Duration>, default: Duration| d.filter(|d| !d.is_zero()).unwrap_or(default);
        let base_ejection_time = positive(o.base_ejection_time, DEFAULT_BASE_EJECTION_TIME);
        Self {
            consecutive_5xx: o.consecutive_5xx_errors.unwrap_or(DEFAULT_CONSECUTIVE_5XX),
            consecutive_gateway: o.consecutive_gateway_errors.unwrap_or(0),
            consecutive_local_origin: o
                .consecutive_local_origin_failures
                .unwrap_or(DEFAULT_CONSECUTIVE_LOCAL_ORIGIN),
            split_local_origin: o.split_external_local_origin_errors,
            interval: positive(o.interval, DEFAULT_INTERVAL),
            base_ejection_time,
            max_ejection_time: DEFAULT_MAX_EJECTION_TIME.max(base_ejection_time),
            max_ejection_percent: o
                .max_ejection_percent
                .unwrap_or(DEFAULT_MAX_EJECTION_PERCENT)
                .min(100),
            min_health_percent: o.min_health_percent.unwrap_or(0).min(100),
            success_rate: o.success_rate.clone(),
            probation: true,
        }
    }
}

impl OutlierSettings {
    /// How long the `times`-th ejection in a row lasts: `base * times`, at most
    /// `max(max_ejection_time, base)` (and at least `base`).
    pub fn ejection_time(&self, times: u32) -> Duration {
        let cap = self.max_ejection_time.max(self.base_ejection_time);
        self.base_ejection_time
            .checked_mul(times.max(1))
            .map_or(cap, |d| d.min(cap))
    }

    /// The largest useful ejection multiplier: the first whose time reaches the cap.
    /// Capping the count keeps its decay (one per healthy interval) short.
    pub(crate) fn max_multiplier(&self) -> u32 {
        let cap = self
            .max_ejection_time
            .max(self.base_ejection_time)
            .as_nanos();
        let base = self.base_ejection_time.as_nanos().max(1);
        u32::try_from(cap.div_ceil(base)).unwrap_or(u32::MAX).max(1)
    }

    /// These settings with success-rate ejection turned on.
    pub fn with_success_rate(mut self, success_rate: SuccessRate) -> Self {
        self.success_rate = Some(success_rate);
        self
    }
}

/// Success-rate ejection, run at each sweep over the requests of the ending interval.
///
/// Envoy's `success_rate_*` settings plus a plain threshold mode; Istio does not expose them,
/// so they are off unless set in code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuccessRate {
    /// Requests an endpoint needs in the interval to be judged (Envoy's
    /// `success_rate_request_volume`, 100); fewer and it is left alone.
    pub request_volume: u32,
    /// How the ejection threshold is found.
    pub mode: SuccessRateMode,
}

/// How [`SuccessRate`] decides which endpoints are outliers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SuccessRateMode {
    /// Envoy's statistical mode: eject endpoints whose success rate is below
    /// `mean - factor / 1000 * stdev` of the judged endpoints' rates.
    Stdev {
        /// Judged endpoints (with enough volume) needed to compute anything (Envoy's
        /// `success_rate_minimum_hosts`, 5).
        minimum_hosts: u32,
        /// The stdev factor in thousandths (Envoy's `success_rate_stdev_factor`, 1900 = 1.9).
        factor: u32,
    },
    /// Eject any judged endpoint whose success rate, in percent, is below this value. Each
    /// endpoint is judged on its own, so there is no minimum number of endpoints.
    Threshold {
        /// The lowest acceptable success rate in percent (0..=100).
        min_success_percent: u32,
    },
}

/// Envoy's default `success_rate_request_volume`.
pub const DEFAULT_SUCCESS_RATE_REQUEST_VOLUME: u32 = 100;
/// Envoy's default `success_rate_minimum_hosts`.
pub const DEFAULT_SUCCESS_RATE_MINIMUM_HOSTS: u32 = 5;
/// Envoy's default `success_rate_stdev_factor` (thousandths: 1.9).
pub const DEFAULT_SUCCESS_RATE_STDEV_FACTOR: u32 = 1900;

impl Default for SuccessRate {
    /// Envoy's defaults: the stdev mode, 5 hosts, 100 requests, factor 1.9.
    fn default() -> Self {
        Self::stdev()
    }
}

impl SuccessRate {
    /// Envoy's statistical mode with its defaults.
    pub fn stdev() -> Self {
        Self {
            request_volume: DEFAULT_SUCCESS_RATE_REQUEST_VOLUME,
            mode: SuccessRateMode::Stdev {
                minimum_hosts: DEFAULT_SUCCESS_RATE_MINIMUM_HOSTS,
                factor: DEFAULT_SUCCESS_RATE_STDEV_FACTOR,
            },
        }
    }

    /// The threshold mode: eject below `min_success_percent` (clamped to 100), with the
    /// default request volume.
    pub fn threshold(min_success_percent: u32) -> Self {
        Self {
            request_volume: DEFAULT_SUCCESS_RATE_REQUEST_VOLUME,
            mode: SuccessRateMode::Threshold {
                min_success_percent: min_success_percent.min(100),
            },
        }
    }

    /// The same settings with another minimum request volume.
    pub fn with_request_volume(mut self, request_volume: u32) -> Self {
        self.request_volume = request_volume;
        self
    }
}
