//! Local rate limits and concurrency limits, for the server stack and per destination on
//! the client stack.
//!
//! A token bucket (Envoy's local rate limit: max tokens, tokens per fill, fill interval)
//! rejects a request it has no token for with [`Limited::RateLimited`] (429); a concurrency
//! limit sheds a request past its limit with [`Limited::Shed`] (503). Both count in
//! `mesh_rate_limited_total{side, name}` and `mesh_load_shed_total{side, name}`. The
//! decisions are [`mesh_core::ratelimit`].
//!
//! Both layers work on any stack: a rejection is the inner service's own error type, built by
//! [`LimitError`] (implemented for [`MeshError`], the server's
//! [`ServerError`](crate::server::ServerError) and [`BoxError`]). Both are always ready: they
//! delegate `poll_ready` and decide in `call`, so a rejection costs no waiting.
//!
//! ```
//! use std::time::Duration;
//! use mesh_core::ratelimit::TokenBucketConfig;
//! use mesh_tower::limit::{ConcurrencyLimitLayer, RateLimitLayer, Side};
//! use tower::ServiceBuilder;
//!
//! let bucket = TokenBucketConfig::new(100, 10, Duration::from_secs(1));
//! let layers = ServiceBuilder::new()
//!     .layer(RateLimitLayer::new("inbound", bucket, Side::Server))
//!     .layer(ConcurrencyLimitLayer::new("inbound", 64, Side::Server));
//! # let _ = layers;
//! ```

use std::fmt;
use std::sync::Arc;

use crate::BoxError;
use crate::error::MeshError;

mod concurrency;
mod rate;
#[cfg(test)]
mod tests;

pub use concurrency::{
    ConcurrencyLimitFuture, ConcurrencyLimitLayer, ConcurrencyLimitService, HoldPermit, PermitBody,
    WrapBody,
};
pub use rate::{RateLimitFuture, RateLimitLayer, RateLimitService};

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

impl std::error::Error for Limited {}

/// Which stack a limit guards: the `side` label of its metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Outbound calls of the client stack, per destination.
    Client,
    /// Inbound requests of the server stack.
    Server,
}

impl Side {
    /// The label value: `client` or `server`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error type that can say a limit rejected a request; the limit layers answer with it.
///
/// `name` is the limit's name (the destination on the client, the server's name inbound).
pub trait LimitError {
    /// The error standing for `limited` by the limit called `name`.
    fn limited(name: &Arc<str>, limited: Limited) -> Self;
}

impl LimitError for MeshError {
    fn limited(name: &Arc<str>, limited: Limited) -> Self {
        MeshError::Limited {
            destination: name.clone(),
            limited,
        }
    }
}

impl LimitError for BoxError {
    /// The boxed [`Limited`]; find it again with `downcast_ref::<Limited>()`.
    fn limited(_name: &Arc<str>, limited: Limited) -> Self {
        Box::new(limited)
    }
}

/// Counts a rejection in `mesh_rate_limited_total` or `mesh_load_shed_total`.
fn count(name: &Arc<str>, side: Side, limited: Limited) {
    tracing::debug!(%name, %side, %limited, "local limit");
    let metric = match limited {
        Limited::RateLimited => "mesh_rate_limited_total",
        Limited::Shed { .. } => "mesh_load_shed_total",
    };
    metrics::counter!(metric, "side" => side.as_str(), "name" => name.clone()).increment(1);
}
