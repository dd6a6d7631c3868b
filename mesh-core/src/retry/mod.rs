//! Retry decisions: which outcomes are retried, how long to back off, and the retry budget.

mod backoff;
mod budget;
mod retry_on;

pub use backoff::backoff;
pub use budget::RetryBudget;
pub use retry_on::{Condition, Outcome, ParseRetryOnError, RetryOn, is_idempotent};
