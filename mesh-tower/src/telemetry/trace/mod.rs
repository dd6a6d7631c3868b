//! Tracing: the client and server spans of each request (OpenTelemetry, HTTP semantic
//! conventions), W3C and B3 trace context read and written, `x-request-id`, and the headers
//! carried from an inbound request to the outbound calls made while handling it.
//!
//! | piece | does |
//! |---|---|
//! | [`ServerTraceLayer`] | reads the caller's context (W3C `traceparent`/`tracestate`, else B3 single, else B3 multi-header), starts a `SERVER` span as its child (a new trace when there is none and `tracing` is on), gives the request an `x-request-id`, captures the context, request id and configured headers and cookies for the handler's [`RequestContext`](crate::context::RequestContext) |
//! | [`ClientTraceLayer`] | picks the parent (trace headers the application set, else the inbound request's context, else a new trace when `tracing` is on), starts a `CLIENT` span, writes its context in every configured style (the request id, headers and cookies of the inbound request are written by `MeshClient::send`, before routing) |
//! | [`Tracer`] | where spans go: the global provider, an SDK tracer of your own, or none |
//! | [`init_from_env`] | an OTLP/gRPC exporter and SDK provider from the standard `OTEL_*` variables, installed globally |
//!
//! Without spans (no tracer, or the global provider is OpenTelemetry's no-op one) the context
//! still travels: the client stack writes a child of the inbound context with a fresh span id,
//! so a chain through a workload without an exporter stays one trace.

use std::sync::Arc;

use http::HeaderName;
use mesh_core::config::TelemetryConfig;
use mesh_core::telemetry::Propagated;

mod attributes;
mod client;
mod otel;
mod server;
mod tracer;

pub use client::{ClientTrace, ClientTraceFuture, ClientTraceLayer};
pub use otel::{DEFAULT_ENDPOINT, TraceInitError, TracingGuard, init_from_env, provider_with_env};
pub use server::{ServerTrace, ServerTraceFuture, ServerTraceLayer};
pub use tracer::{INSTRUMENTATION_SCOPE, Tracer};

/// A request extension set by [`ServerTrace`]: what the request propagates, for
/// [`ContextLayer`](crate::server::ContextLayer) to put in the handler's context.
#[derive(Clone, Debug)]
pub(crate) struct Captured(pub(crate) Arc<Propagated>);

/// The configured header and cookie names to propagate, parsed once.
#[derive(Debug, Default)]
pub(crate) struct Names {
    pub(crate) headers: Vec<HeaderName>,
    pub(crate) cookies: Vec<String>,
}

impl Names {
    pub(crate) fn of(config: &TelemetryConfig) -> Self {
        let headers = config
            .propagate_headers
            .iter()
            .filter_map(|name| match HeaderName::from_bytes(name.as_bytes()) {
                Ok(name) => Some(name),
                Err(_) => {
                    tracing::warn!(%name, "not a header name; not propagated");
                    None
                }
            })
            .collect();
        Self {
            headers,
            cookies: config.propagate_cookies.clone(),
        }
    }
}
