//! Timing for the interleaved rounds the benchmarks print beside criterion's figures: the
//! variants alternate in short rounds on one runtime, so a drift of a shared machine between
//! them does not skew their ratio.

use std::future::Future;

use futures_util::future::join_all;

/// Requests timed per variant and round.
pub(crate) const PER_ROUND: usize = 2_000;

/// Requests in flight at once in [`time_concurrent`].
pub(crate) const CONCURRENCY: usize = 16;

/// Seconds per call, `count` calls one after the other.
pub(crate) async fn time_sequential<F, Fut>(call: &F, count: usize) -> f64
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let start = tokio::time::Instant::now();
    for _ in 0..count {
        call().await;
    }
    start.elapsed().as_secs_f64() / count as f64
}

/// Seconds per request, [`PER_ROUND`] requests [`CONCURRENCY`] at a time.
pub(crate) async fn time_concurrent<F, Fut>(get: &F) -> f64
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let start = tokio::time::Instant::now();
    for _ in 0..PER_ROUND / CONCURRENCY {
        join_all((0..CONCURRENCY).map(|_| get())).await;
    }
    start.elapsed().as_secs_f64() / PER_ROUND as f64
}
