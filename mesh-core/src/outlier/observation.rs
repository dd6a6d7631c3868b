//! What one request to an endpoint reported, and why an endpoint should be ejected.

/// The outcome of one request to an endpoint, as outlier detection classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observation {
    /// The request succeeded (as a non-5xx answer would).
    Success,
    /// The endpoint answered with this HTTP status; 500..=599 is a failure.
    Status(u16),
    /// The request failed on our side of the connection, without an answer.
    LocalOrigin(LocalFailure),
}

/// A failure that originates locally: the endpoint never answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalFailure {
    /// The connection could not be established.
    ConnectFailure,
    /// The connection or stream was reset before an answer.
    Reset,
    /// No answer in time.
    Timeout,
}

impl LocalFailure {
    /// The status Envoy counts it as when local-origin failures are not split:
    /// 504 for a timeout, 503 otherwise.
    pub fn equivalent_status(self) -> u16 {
        match self {
            LocalFailure::Timeout => 504,
            LocalFailure::ConnectFailure | LocalFailure::Reset => 503,
        }
    }
}

impl Observation {
    /// Whether it is a failure: a 5xx status or a local-origin failure.
    pub fn is_failure(self) -> bool {
        match self {
            Observation::Success => false,
            Observation::Status(status) => is_5xx(status),
            Observation::LocalOrigin(_) => true,
        }
    }
}

/// Whether `status` is a 5xx answer.
pub(crate) fn is_5xx(status: u16) -> bool {
    (500..600).contains(&status)
}

/// Whether `status` is a gateway error (502, 503, 504).
pub(crate) fn is_gateway_error(status: u16) -> bool {
    matches!(status, 502..=504)
}

/// Why an endpoint should be ejected: a detector's threshold was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EjectReason {
    /// `consecutive5xxErrors` 5xx answers (or, unsplit, local-origin failures) in a row.
    Consecutive5xx,
    /// `consecutiveGatewayErrors` 502/503/504 answers in a row.
    ConsecutiveGateway,
    /// `consecutiveLocalOriginFailures` local-origin failures in a row (split mode only).
    ConsecutiveLocalOrigin,
    /// A failure while on probation after an ejection, before any success.
    Probation,
    /// The endpoint's success rate over the interval was an outlier.
    SuccessRate,
}
