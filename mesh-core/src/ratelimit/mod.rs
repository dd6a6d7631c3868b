//! Local rate limiting and concurrency limiting for the server stack.
//!
//! [`TokenBucket`] follows Envoy's local rate limit: a bucket of `max_tokens` that starts
//! full and gains `tokens_per_fill` tokens at each `fill_interval` boundary. [`ConcurrencyLimit`]
//! caps the requests in flight with an RAII [`Permit`]. Both are lock-free and exact under
//! concurrency: no interleaving of callers ever grants more than the limit.

mod bucket;
mod concurrency;

pub use bucket::{TokenBucket, TokenBucketConfig};
pub use concurrency::{ConcurrencyLimit, OwnedPermit, Permit};
