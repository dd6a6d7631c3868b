//! The retry budget shared by all requests to one destination.

use std::time::Duration;

use crate::config::RetryBudgetConfig;

/// Retries may add at most `ratio` of requests plus `min_per_second` each second, counted
/// over a sliding window. Lock-free; time is passed in.
#[derive(Debug)]
pub struct RetryBudget {
    _config: RetryBudgetConfig,
}

impl RetryBudget {
    /// A full budget.
    pub fn new(config: RetryBudgetConfig) -> Self {
        Self { _config: config }
    }

    /// Records a request (not a retry) at `now`.
    pub fn deposit(&self, _now: Duration) {
        unimplemented!()
    }

    /// Takes one retry from the budget at `now`; `false` when the budget is spent.
    pub fn try_withdraw(&self, _now: Duration) -> bool {
        unimplemented!()
    }
}
