//! Endpoint health: the back-off that keeps the balancer off an endpoint that refuses connections.
//!
//! After `n` consecutive connect failures an endpoint is unavailable for
//! `min(100ms * 2^(n-1), 5s)`; one success resets it. The state is two atomics, so it can be
//! shared by concurrent requests without a lock; under races the result is approximate
//! (a deadline from a slightly different failure count) but always well defined.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The back-off after the first connect failure.
pub const CONNECT_BACKOFF_BASE: Duration = Duration::from_millis(100);

/// The longest back-off, however many connects failed in a row.
pub const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How long an endpoint is avoided after `consecutive_failures` connect failures in a row
/// (zero for none): `min(100ms * 2^(n-1), 5s)`.
pub fn connect_backoff(consecutive_failures: u32) -> Duration {
    let Some(doublings) = consecutive_failures.checked_sub(1) else {
        return Duration::ZERO;
    };
    1u32.checked_shl(doublings)
        .and_then(|factor| CONNECT_BACKOFF_BASE.checked_mul(factor))
        .map_or(CONNECT_BACKOFF_MAX, |d| d.min(CONNECT_BACKOFF_MAX))
}

/// A duration since the caller's origin as whole nanoseconds, saturating (584 years).
pub(crate) fn as_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The connect health of one endpoint: consecutive failures and the end of its back-off.
#[derive(Debug, Default)]
pub struct ConnectHealth {
    failures: AtomicU32,
    /// Nanoseconds since the origin before which the endpoint is unavailable.
    until: AtomicU64,
}

impl ConnectHealth {
    /// A healthy endpoint: no failure, no back-off.
    pub fn new() -> Self {
        Self::default()
    }

    /// A connection attempt failed at `now`: the back-off grows with the failure count.
    pub fn on_failure(&self, now: Duration) {
        let previous = self
            .failures
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1))
            .unwrap_or(u32::MAX);
        let failures = previous.saturating_add(1);
        let until = as_nanos(now.saturating_add(connect_backoff(failures)));
        // Concurrent failures: the latest deadline wins.
        self.until.fetch_max(until, Ordering::Relaxed);
    }

    /// A connection (or a request over one) succeeded: the failure count and back-off reset.
    pub fn on_success(&self) {
        // Cheap on the hot path: only write when there is something to reset.
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.until.load(Ordering::Relaxed) != 0 {
            self.until.store(0, Ordering::Relaxed);
        }
    }

    /// Whether the endpoint is outside any back-off at `now`.
    pub fn is_available(&self, now: Duration) -> bool {
        as_nanos(now) >= self.until.load(Ordering::Relaxed)
    }

    /// Connect failures in a row since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// When the current back-off ends (since the origin); zero when there is none.
    pub fn available_at(&self) -> Duration {
        Duration::from_nanos(self.until.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(connect_backoff(0), Duration::ZERO);
        assert_eq!(connect_backoff(1), 100 * MS);
        assert_eq!(connect_backoff(2), 200 * MS);
        assert_eq!(connect_backoff(3), 400 * MS);
        assert_eq!(connect_backoff(6), 3200 * MS);
        assert_eq!(connect_backoff(7), CONNECT_BACKOFF_MAX);
        assert_eq!(connect_backoff(33), CONNECT_BACKOFF_MAX);
        assert_eq!(connect_backoff(u32::MAX), CONNECT_BACKOFF_MAX);
    }

    #[test]
    fn failures_make_unavailable_until_backoff_ends() {
        let h = ConnectHealth::new();
        let t0 = Duration::from_secs(10);
        assert!(h.is_available(t0));
        h.on_failure(t0);
        assert_eq!(h.consecutive_failures(), 1);
        assert!(!h.is_available(t0));
        assert!(!h.is_available(t0 + 99 * MS));
        assert!(h.is_available(t0 + 100 * MS));
        h.on_failure(t0 + 100 * MS);
        assert!(!h.is_available(t0 + 299 * MS));
        assert!(h.is_available(t0 + 300 * MS));
        assert_eq!(h.available_at(), t0 + 300 * MS);
    }

    #[test]
    fn success_resets() {
        let h = ConnectHealth::new();
        for _ in 0..10 {
            h.on_failure(Duration::ZERO);
        }
        assert!(!h.is_available(Duration::from_secs(4)));
        h.on_success();
        assert_eq!(h.consecutive_failures(), 0);
        assert!(h.is_available(Duration::ZERO));
        h.on_failure(Duration::ZERO);
        assert_eq!(h.available_at(), 100 * MS);
    }

    #[test]
    fn huge_times_do_not_overflow() {
        let h = ConnectHealth::new();
        h.on_failure(Duration::MAX);
        assert!(!h.is_available(Duration::from_secs(1)));
        assert!(h.is_available(Duration::MAX));
    }
}
