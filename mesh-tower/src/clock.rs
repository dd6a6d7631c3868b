//! Time for the pure logic in mesh-core, which takes a `Duration` since an origin.

use std::time::Duration;

use tokio::time::Instant;

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
        Instant::now().saturating_duration_since(self.origin)
    }
}
