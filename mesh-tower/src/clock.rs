//! Time for the pure logic in mesh-core, which takes a `Duration` since an origin.

use std::time::Duration;

use tokio::time::Instant;

/// Seconds since the Unix epoch by the wall clock, for what is a matter of calendar dates
/// (certificate validity, token expiry).
pub(crate) fn unix_now() -> i64 {
    i64::try_from(unix_now_millis() / 1000).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch by the wall clock: the crate's one wall-clock read
/// (also the base of access-log start times).
#[allow(clippy::disallowed_types)]
pub(crate) fn unix_now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A monotonic clock on tokio's time (so tests can pause it), counting from its creation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// Time since the origin.
    pub(crate) fn now(&self) -> Duration {
        self.at(Instant::now())
    }

    /// Time from the origin to `instant` (zero for an instant before it): for a caller
    /// that has read the time already.
    pub(crate) fn at(&self, instant: Instant) -> Duration {
        instant.saturating_duration_since(self.origin)
    }
}
