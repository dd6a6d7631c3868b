//! Time for the pure logic in mesh-core, which takes a `Duration` since an origin.

use std::cell::Cell;
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
        self.at(now())
    }

    /// Time from the origin to `instant` (zero for an instant before it): for a caller
    /// that has read the time already.
    pub(crate) fn at(&self, instant: Instant) -> Duration {
        instant.saturating_duration_since(self.origin)
    }
}

thread_local! {
    /// The time read once for the call in progress through a stack, if any.
    static CALL_TIME: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The time now; within [`with_call_time`], the time read for the call in progress: the layers one call
/// passes through (in the same instant, as far as their decisions go) share one clock read.
pub(crate) fn now() -> Instant {
    CALL_TIME.with(Cell::get).unwrap_or_else(Instant::now)
}

/// Calls `f` with [`now`] answering `time` (on this thread, until `f` returns).
pub(crate) fn with_call_time<R>(time: Instant, f: impl FnOnce() -> R) -> R {
    /// Puts back the time of an enclosing call, even if `f` unwinds.
    struct Restore(Option<Instant>);

    impl Drop for Restore {
        fn drop(&mut self) {
            CALL_TIME.with(|t| t.set(self.0));
        }
    }

    let _restore = Restore(CALL_TIME.with(|t| t.replace(Some(time))));
    f()
}
