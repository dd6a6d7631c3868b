//! Observability end to end: Istio's metrics scraped from the admin server and parsed as
//! Prometheus text, access-log lines, and traces exported over OTLP to a receiver started
//! by the test, across services that propagate context by themselves.

mod access_log;
mod metrics;
mod otlp;
mod propagation;
mod support;
mod trace_support;
mod tracing_chain;
