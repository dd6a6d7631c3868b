//! Closed-loop callers: a fixed number of tasks, each sending its next request as soon as
//! the last is answered, until the round's count is reached or its deadline passes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::caller::Caller;

/// The longest latency the histogram holds, in nanoseconds (longer ones are clamped).
const MAX_NANOS: u64 = 120_000_000_000;

/// What a phase of callers did.
pub(crate) struct Outcome {
    /// Requests answered 2xx with the expected body.
    pub(crate) ok: u64,
    /// Requests failed (error, non-2xx, wrong body, or cut by the deadline).
    pub(crate) errors: u64,
    /// The first failure, for the report.
    pub(crate) first_error: Option<String>,
    /// Whether the deadline cut the phase short.
    pub(crate) cut: bool,
    /// Latency of the successful requests, in nanoseconds.
    pub(crate) latency: Histogram<u64>,
    /// Seconds from the first request to the last answer.
    pub(crate) elapsed: f64,
    /// The HTTP version of the last successful answer.
    pub(crate) version: Option<http::Version>,
}

/// Sends `total` requests through `caller`, `concurrency` at a time, stopping at `deadline`.
pub(crate) async fn drive(
    caller: &Arc<Caller>,
    concurrency: usize,
    total: usize,
    deadline: Instant,
) -> Result<Outcome, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let empty = histogram()?;
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (caller, next, latency) = (caller.clone(), next.clone(), empty.clone());
            tokio::spawn(async move { one_caller(&caller, &next, total, deadline, latency).await })
        })
        .collect();
    let mut outcome = Outcome {
        ok: 0,
        errors: 0,
        first_error: None,
        cut: false,
        latency: empty,
        elapsed: 0.0,
        version: None,
    };
    for task in tasks {
        let part = task.await.map_err(|e| format!("caller task: {e}"))?;
        outcome.ok += part.ok;
        outcome.errors += part.errors;
        outcome.cut |= part.cut;
        if outcome.first_error.is_none() {
            outcome.first_error = part.first_error;
        }
        outcome.version = outcome.version.or(part.version);
        outcome
            .latency
            .add(&part.latency)
            .map_err(|e| format!("histogram: {e}"))?;
    }
    outcome.elapsed = start.elapsed().as_secs_f64();
    Ok(outcome)
}

async fn one_caller(
    caller: &Caller,
    next: &AtomicUsize,
    total: usize,
    deadline: Instant,
    latency: Histogram<u64>,
) -> Outcome {
    let mut o = Outcome {
        ok: 0,
        errors: 0,
        first_error: None,
        cut: false,
        latency,
        elapsed: 0.0,
        version: None,
    };
    while next.fetch_add(1, Ordering::Relaxed) < total {
        let sent = Instant::now();
        if sent >= deadline {
            o.cut = true;
            break;
        }
        match tokio::time::timeout_at(deadline, caller.call()).await {
            Ok(Ok(version)) => {
                let nanos = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
                o.latency.saturating_record(nanos.max(1));
                o.ok += 1;
                o.version = Some(version);
            }
            Ok(Err(e)) => {
                o.errors += 1;
                o.first_error.get_or_insert(e);
            }
            Err(_) => {
                o.errors += 1;
                o.first_error
                    .get_or_insert_with(|| "cut by the round's deadline".to_owned());
                o.cut = true;
                break;
            }
        }
    }
    o
}

fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, MAX_NANOS, 3).map_err(|e| format!("histogram: {e}"))
}
