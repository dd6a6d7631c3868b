//! The refresh task of one target: look up, decide, publish changes, sleep, repeat.

use std::sync::Arc;

use mesh_core::Resolution;
use mesh_core::discovery::{Decision, RefreshState};
use mesh_core::name::Target;
use rand::rngs::SmallRng;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::discovery::Shared;

/// Counter of lookups made by refresh tasks, labelled `name`.
pub const REFRESHES_TOTAL: &str = "mesh_dns_refreshes_total";
/// Counter of failed lookups, labelled `name` and `reason` (see [`DnsError::kind`]).
///
/// [`DnsError::kind`]: crate::DnsError::kind
pub const REFRESH_FAILURES_TOTAL: &str = "mesh_dns_refresh_failures_total";
/// Gauge of the endpoints currently published for `name` (0 when unresolved).
pub const ENDPOINTS: &str = "mesh_dns_endpoints";

/// Refreshes `target` until every receiver of `tx` is gone.
pub(crate) async fn refresh(shared: Arc<Shared>, target: Target, tx: watch::Sender<Resolution>) {
    let name = target.name();
    let mut state = RefreshState::new(shared.config.clone());
    let mut rng: SmallRng = rand::make_rng();
    let origin = Instant::now();
    debug!(%target, "DNS refresh started");
    'refresh: loop {
        let result = tokio::select! {
            result = shared.resolver.lookup(&target) => result,
            () = tx.closed() => {
                if shared.release(&target, &tx) {
                    break 'refresh;
                }
                continue;
            }
        };

        metrics::counter!(REFRESHES_TOTAL, "name" => name.clone()).increment(1);
        if let Err(error) = &result {
            metrics::counter!(
                REFRESH_FAILURES_TOTAL,
                "name" => name.clone(),
                "reason" => error.kind(),
            )
            .increment(1);
        }
        let failure = result.as_ref().err().map(ToString::to_string);
        let decision = state.on_lookup(
            result.map_err(|e| e.to_lookup_failure()),
            origin.elapsed(),
            &mut rng,
        );
        report(&target, &name, &state, &decision, failure.as_deref());
        if let Some(value) = decision.publish {
            tx.send_if_modified(|current| {
                if *current == value {
                    false
                } else {
                    *current = value;
                    true
                }
            });
        }

        let sleep = tokio::time::sleep(decision.refresh_in);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                () = tx.closed() => {
                    if shared.release(&target, &tx) {
                        break 'refresh;
                    }
                }
            }
        }
    }
    debug!(%target, "DNS refresh stopped: no receivers left");
    metrics::gauge!(ENDPOINTS, "name" => name).set(0.0);
}

/// Logs a refresh and updates the endpoint gauge.
fn report(
    target: &Target,
    name: &str,
    state: &RefreshState,
    decision: &Decision,
    failure: Option<&str>,
) {
    let published = state.published();
    let endpoints = published.endpoints().map_or(0, |set| set.len());
    metrics::gauge!(ENDPOINTS, "name" => name.to_owned()).set(endpoints as f64);
    let next = decision.refresh_in;
    match (failure, decision.kept_stale) {
        (Some(error), true) => warn!(
            %target,
            %error,
            endpoints,
            next_refresh = ?next,
            "DNS lookup failed; keeping the last endpoints"
        ),
        (Some(error), false) => debug!(%target, %error, next_refresh = ?next, "DNS lookup failed"),
        (None, true) => warn!(
            %target,
            endpoints,
            next_refresh = ?next,
            "DNS answer has no endpoints; keeping the last endpoints for the grace period"
        ),
        (None, false) => debug!(%target, endpoints, next_refresh = ?next, "DNS refreshed"),
    }
    match &decision.publish {
        Some(Resolution::Resolved(set)) => {
            debug!(%target, endpoints = set.len(), "publishing new endpoints");
        }
        Some(Resolution::Unresolved(reason)) => {
            warn!(%target, %reason, "publishing: unresolved");
        }
        Some(Resolution::Pending) | None => {}
    }
}
