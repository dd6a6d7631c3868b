//! Istio's standard metrics on both stacks: `istio_requests_total`,
//! `istio_request_duration_milliseconds`, `istio_request_bytes` and `istio_response_bytes`
//! with Istio's 25 labels, `reporter="source"` from the client stack ([`ClientMetrics`], one
//! per destination) and `reporter="destination"` from the server stack ([`ServerMetrics`]);
//! the peer-metadata exchange that fills the other side's labels; the access-log line of
//! each request.
//!
//! # Install the recorder first
//!
//! The layers register their handles with the global `metrics` recorder once per label
//! combination and keep them: **install the recorder (for example
//! [`install_prometheus`]) before building clients and servers**, or their metrics go to the
//! no-op recorder for good.
//!
//! # The peer-metadata exchange
//!
//! The client stack sends its workload's metadata in
//! [`PEER_METADATA_HEADER`](mesh_core::telemetry::PEER_METADATA_HEADER) on every call
//! (replacing any the application set). The server stack strips it before the application
//! sees the request, fills the `source_*` labels from it, and answers with its own metadata
//! in the same header, only to callers that sent one; the client stack strips that before
//! its caller sees the response and fills the `destination_*` workload labels from it. A
//! header that cannot be decoded reads `unknown` and is counted in
//! `mesh_peer_metadata_malformed_total{reporter}`; it never fails the request. With
//! `TelemetryConfig::metrics` off, nothing is recorded and nothing is sent (an inbound
//! header is still stripped).
//!
//! # What is measured
//!
//! - Duration: from the call (the request entering the layer) until the response body ends,
//!   fails or is dropped; a request given up before its response counts with code 0 and
//!   flag `DC`.
//! - Bytes, as Envoy's `request.total_size` / `response.total_size` (headers and body),
//!   approximated: the request line or status line, each header as `name: value\r\n`, and
//!   the body. The response body is counted as it is read (trailers included); the request
//!   body by its size hint (exact with a `content-length` or a buffered body; for a stream
//!   of unknown length its lower bound, often 0).
//! - `response_flags`: a client local reply's flag ([`MeshError::response_flag`](crate::MeshError::response_flag));
//!   a server local reply's: 429 `RL`, 503 shed `UO` (the inbound circuit breaker's
//!   overflow), 504 deadline passed `UT`, and `-` for 400, 401, 403 (Envoy reports
//!   `rbac_access_denied` as details, not a flag) and 500.
//! - `source_principal` (client) is the own SPIFFE ID on ISTIO_MUTUAL legs, `unknown`
//!   otherwise, and `destination_principal` the callee's as its metadata says on those legs
//!   only; `connection_security_policy` is `unknown` for `reporter="source"`, as Istio. On
//!   the server both principals and the policy come from the connection's
//!   [`Peer`](crate::server::Peer) (`mutual_tls` with a verified caller, else `none`;
//!   `unknown` without a `Peer`, as inside a server of one's own).
//!
//! Handles are cached per layer by the label values that vary (the peer's metadata header,
//! principal, policy, protocol, code, gRPC status, flags), so a request builds no metric
//! key and takes no lock: only a combination seen for the first time registers its handles.
//! At most 4096 combinations are cached per layer; past that they are registered per
//! request (correct, slower).

use mesh_core::telemetry::labels::{
    ENVOY_BUCKETS, ISTIO_REQUEST_BYTES, ISTIO_REQUEST_DURATION, ISTIO_RESPONSE_BYTES,
};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

mod call;
mod client;
mod labels;

pub(crate) use labels::grpc_status;
pub(crate) use labels::service_host;
mod series;
mod server;

pub use client::{ClientMetrics, ClientMetricsFuture, ClientMetricsLayer};
pub use series::PEER_METADATA_MALFORMED_TOTAL;
pub use server::{ServerMetrics, ServerMetricsBody, ServerMetricsFuture, ServerMetricsLayer};

/// A Prometheus recorder builder with Envoy's buckets ([`ENVOY_BUCKETS`]) for Istio's three
/// histograms, as Istio's dashboards expect; add your own settings before installing it.
pub fn prometheus_builder() -> PrometheusBuilder {
    let mut builder = PrometheusBuilder::new();
    for name in [
        ISTIO_REQUEST_DURATION,
        ISTIO_REQUEST_BYTES,
        ISTIO_RESPONSE_BYTES,
    ] {
        builder =
            match builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), &ENVOY_BUCKETS) {
                Ok(builder) => builder,
                // Only empty buckets are refused, and ENVOY_BUCKETS has 19.
                Err(_) => unreachable!("ENVOY_BUCKETS is not empty"),
            };
    }
    builder
}

/// Installs [`prometheus_builder`]'s recorder as the global one and returns its handle (for
/// [`AdminServer::metrics`](crate::admin::AdminServer::metrics)). Call it before building
/// clients and servers. Fails when a global recorder is installed already.
pub fn install_prometheus() -> Result<PrometheusHandle, BuildError> {
    prometheus_builder().install_recorder()
}

#[cfg(test)]
mod tests;
