//! Local rate limits and concurrency limits, for the server stack and per destination on
//! the client stack.
//!
//! A token bucket (Envoy's local rate limit: max tokens, tokens per fill, fill interval)
//! rejects a request it has no token for with [`Limited::RateLimited`] (429); a concurrency
//! limit sheds a request past its limit with [`Limited::Shed`] (503). Both count in
//! `mesh_rate_limited_total` and `mesh_load_shed_total`. The decisions are
//! [`mesh_core::ratelimit`].

use std::fmt;

/// Why a limit rejected a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    /// The token bucket was empty (429, flag RL).
    RateLimited,
    /// `max` requests were in flight already (503, load shedding).
    Shed {
        /// The concurrency limit.
        max: usize,
    },
}

impl fmt::Display for Limited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limited::RateLimited => f.write_str("local rate limit reached"),
            Limited::Shed { max } => write!(f, "concurrency limit of {max} reached"),
        }
    }
}
