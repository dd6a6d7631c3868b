//! Connection-pool circuit breaking: Istio's `connectionPool` limits as admission decisions.
//!
//! Over HTTP/1.1 a connection carries one request at a time, so the requests in flight to a
//! destination are the connections in use: `tcp.maxConnections` caps them (with
//! `http.http2MaxRequests`, Envoy's `max_requests`, when lower), and a request that finds
//! them all busy waits, at most `http.http1MaxPendingRequests` of them. Over HTTP/2 requests
//! share connections: `http.http2MaxRequests` caps them and nothing waits. A request past a
//! limit fails at once (503, flag UO) and the decision names the limit it tripped.
//!
//! ```
//! use mesh_core::breaker::{Admission, Limit, PoolLimits};
//! use mesh_core::config::{ConnectionPool, Protocol};
//!
//! let pool = ConnectionPool { max_connections: Some(1), http1_max_pending_requests: Some(1), ..Default::default() };
//! let limits = PoolLimits::new(&pool, Protocol::Http1);
//! assert_eq!(limits.admit(0, 0), Admission::Proceed);
//! assert_eq!(limits.admit(1, 0), Admission::Queue);
//! assert_eq!(limits.admit(1, 1), Admission::Overflow(Limit::MaxPendingRequests));
//! ```

use std::fmt;

use crate::config::{ConnectionPool, Protocol, RetryConcurrencyBudget};

/// The limit a request tripped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `tcp.maxConnections`: every connection is busy and no request may wait.
    MaxConnections,
    /// `http.http1MaxPendingRequests`: too many requests wait for a connection.
    MaxPendingRequests,
    /// `http.http2MaxRequests`: too many requests in flight.
    MaxRequests,
    /// `http.maxRetries`: too many retries in flight.
    MaxRetries,
    /// `retryBudget`: retries in flight reached their share of the requests in flight.
    RetryBudget,
}

impl Limit {
    /// The limit's name in metrics (`max_connections`, `max_pending_requests`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::MaxConnections => "max_connections",
            Limit::MaxPendingRequests => "max_pending_requests",
            Limit::MaxRequests => "max_requests",
            Limit::MaxRetries => "max_retries",
            Limit::RetryBudget => "retry_budget",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with a request, given what is in flight and waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Send it now.
    Proceed,
    /// Wait for a request in flight to end.
    Queue,
    /// Fail it at once.
    Overflow(Limit),
}

/// The limits of one destination's pool; `None` is unlimited (Istio's default, 2^32-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PoolLimits {
    /// Requests in flight at once.
    pub active: Option<usize>,
    /// The limit `active` stands for.
    pub active_limit: Option<Limit>,
    /// Requests that may wait when `active` is reached (0: none wait).
    pub pending: usize,
}

impl PoolLimits {
    /// The limits `pool` sets for requests spoken in `protocol`.
    pub fn new(pool: &ConnectionPool, protocol: Protocol) -> Self {
        let size = |n: Option<u32>| n.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let connections = size(pool.max_connections);
        let requests = size(pool.http2_max_requests);
        let (active, active_limit) = match protocol {
            Protocol::Http1 => match (connections, requests) {
                (Some(c), Some(r)) if r < c => (Some(r), Some(Limit::MaxRequests)),
                (Some(c), _) => (Some(c), Some(Limit::MaxConnections)),
                (None, Some(r)) => (Some(r), Some(Limit::MaxRequests)),
                (None, None) => (None, None),
            },
            Protocol::Http2 => (requests, requests.map(|_| Limit::MaxRequests)),
        };
        // Only HTTP/1.1 requests wait for a connection; a missing pending limit is Istio's
        // unlimited default.
        let pending = match (protocol, active_limit) {
            (Protocol::Http1, Some(Limit::MaxConnections)) => {
                size(pool.http1_max_pending_requests).unwrap_or(usize::MAX)
            }
            _ => 0,
        };
        Self {
            active,
            active_limit,
            pending,
        }
    }

    /// Whether the pool limits anything at all.
    pub fn is_unlimited(&self) -> bool {
        self.active.is_none()
    }

    /// The decision for a new request when `active` requests are in flight and `pending`
    /// wait.
    pub fn admit(&self, active: usize, pending: usize) -> Admission {
        match self.active {
            Some(max) if active >= max => {
                if pending < self.pending {
                    Admission::Queue
                } else if self.pending == 0 {
                    Admission::Overflow(self.active_limit.unwrap_or(Limit::MaxRequests))
                } else {
                    Admission::Overflow(Limit::MaxPendingRequests)
                }
            }
            _ => Admission::Proceed,
        }
    }
}

/// How many retries may be in flight to a destination at once: Istio's `http.maxRetries`, or
/// its `retryBudget` (Envoy's circuit-breaker retry budget), which replaces `maxRetries` when
/// set. A retry past the limit is not made: the caller gets the answer it has.
///
/// ```
/// use mesh_core::breaker::{Limit, RetryLimits};
/// use mesh_core::config::RetryConcurrencyBudget;
///
/// let limits = RetryLimits::new(None, Some(RetryConcurrencyBudget { percent: 20.0, min_retry_concurrency: 3 }));
/// assert_eq!(limits.admit(2, 5), Ok(()));            // 3 always allowed
/// assert_eq!(limits.admit(3, 5), Err(Limit::RetryBudget));
/// assert_eq!(limits.admit(9, 50), Ok(()));           // 20 % of 50 is 10
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct RetryLimits {
    /// `http.maxRetries`; `None` is unlimited.
    pub max_retries: Option<usize>,
    /// `retryBudget`; when set, `max_retries` is not used.
    pub budget: Option<RetryConcurrencyBudget>,
}

impl RetryLimits {
    /// The limits of `maxRetries` (from a pool's `max_retries`) and `retryBudget`.
    pub fn new(max_retries: Option<u32>, budget: Option<RetryConcurrencyBudget>) -> Self {
        Self {
            max_retries: max_retries.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            budget,
        }
    }

    /// Whether nothing limits retries (nothing needs counting).
    pub fn is_unlimited(&self) -> bool {
        self.max_retries.is_none() && self.budget.is_none()
    }

    /// Whether one more retry may start when `retries` are in flight among `requests`
    /// requests in flight (active and pending, retries included); the limit that stops it.
    pub fn admit(&self, retries: usize, requests: usize) -> Result<(), Limit> {
        if let Some(budget) = self.budget {
            let share = if budget.percent.is_finite() && budget.percent > 0.0 {
                // Truncation is the intent: Envoy rounds the share down.
                (requests as f64 * budget.percent.min(100.0) / 100.0) as usize
            } else {
                0
            };
            let max = share.max(budget.min_retry_concurrency as usize);
            return if retries < max {
                Ok(())
            } else {
                Err(Limit::RetryBudget)
            };
        }
        match self.max_retries {
            Some(max) if retries >= max => Err(Limit::MaxRetries),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(
        connections: Option<u32>,
        pending: Option<u32>,
        requests: Option<u32>,
    ) -> ConnectionPool {
        ConnectionPool {
            max_connections: connections,
            http1_max_pending_requests: pending,
            http2_max_requests: requests,
            ..Default::default()
        }
    }

    #[test]
    fn unset_limits_admit_everything() {
        let limits = PoolLimits::new(&ConnectionPool::default(), Protocol::Http1);
        assert!(limits.is_unlimited());
        assert_eq!(limits.admit(usize::MAX - 1, 0), Admission::Proceed);
        assert!(RetryLimits::default().is_unlimited());
        assert_eq!(RetryLimits::default().admit(1_000_000, 0), Ok(()));
    }

    #[test]
    fn http1_waits_for_a_connection_up_to_the_pending_limit() {
        let limits = PoolLimits::new(&pool(Some(2), Some(3), None), Protocol::Http1);
        assert_eq!(limits.admit(1, 0), Admission::Proceed);
        assert_eq!(limits.admit(2, 0), Admission::Queue);
        assert_eq!(limits.admit(2, 2), Admission::Queue);
        assert_eq!(
            limits.admit(2, 3),
            Admission::Overflow(Limit::MaxPendingRequests)
        );
    }

    #[test]
    fn no_pending_allowed_overflows_on_connections() {
        let limits = PoolLimits::new(&pool(Some(1), Some(0), None), Protocol::Http1);
        assert_eq!(
            limits.admit(1, 0),
            Admission::Overflow(Limit::MaxConnections)
        );
    }

    #[test]
    fn unset_pending_limit_is_unlimited() {
        let limits = PoolLimits::new(&pool(Some(1), None, None), Protocol::Http1);
        assert_eq!(limits.admit(1, 1_000_000), Admission::Queue);
    }

    #[test]
    fn the_lower_of_connections_and_requests_binds_http1() {
        let limits = PoolLimits::new(&pool(Some(10), Some(5), Some(3)), Protocol::Http1);
        assert_eq!(limits.active, Some(3));
        assert_eq!(limits.admit(3, 0), Admission::Overflow(Limit::MaxRequests));
    }

    #[test]
    fn http2_never_waits() {
        let limits = PoolLimits::new(&pool(Some(1), Some(10), Some(4)), Protocol::Http2);
        assert_eq!(limits.admit(3, 0), Admission::Proceed);
        assert_eq!(limits.admit(4, 0), Admission::Overflow(Limit::MaxRequests));
        let limits = PoolLimits::new(&pool(Some(1), Some(10), None), Protocol::Http2);
        assert!(limits.is_unlimited());
    }

    #[test]
    fn retries_are_capped() {
        let limits = RetryLimits::new(Some(2), None);
        assert_eq!(limits.admit(1, 0), Ok(()));
        assert_eq!(limits.admit(2, 100), Err(Limit::MaxRetries));
    }

    #[test]
    fn a_retry_budget_replaces_max_retries() {
        let budget = RetryConcurrencyBudget {
            percent: 50.0,
            min_retry_concurrency: 1,
        };
        let limits = RetryLimits::new(Some(0), Some(budget));
        assert_eq!(limits.admit(0, 0), Ok(()));
        assert_eq!(limits.admit(1, 1), Err(Limit::RetryBudget));
        assert_eq!(limits.admit(4, 10), Ok(()));
        assert_eq!(limits.admit(5, 10), Err(Limit::RetryBudget));
        let odd = RetryConcurrencyBudget {
            percent: f64::NAN,
            min_retry_concurrency: 2,
        };
        assert_eq!(RetryLimits::new(None, Some(odd)).admit(1, 1_000), Ok(()));
        assert_eq!(
            RetryLimits::new(None, Some(odd)).admit(2, 1_000),
            Err(Limit::RetryBudget)
        );
    }
}
