//! How a workload reports itself: Istio's standard metrics, trace propagation, the headers
//! carried from inbound requests to outbound calls, and access logs.

use std::path::PathBuf;

use crate::telemetry::PropagationSet;

/// Istio's default cluster ID (`ISTIO_META_CLUSTER_ID` when unset): the `*_cluster` labels.
pub const DEFAULT_CLUSTER_ID: &str = "Kubernetes";

/// The telemetry settings of a workload (`telemetry:` in a config file, `MESH_TELEMETRY_*`,
/// `MESH_ACCESS_LOG*`, `MESH_PROPAGATE_*` and the standard `OTEL_PROPAGATORS` in the
/// environment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// Whether both stacks record Istio's standard metrics (`istio_requests_total` ...): true.
    pub metrics: bool,
    /// The cluster ID of the `source_cluster` / `destination_cluster` labels
    /// ([`DEFAULT_CLUSTER_ID`]).
    pub cluster_id: String,
    /// Whether the server stack starts a trace for a request that carries none, so the
    /// request's spans are exported (true); a request that carries a context is always
    /// continued.
    pub tracing: bool,
    /// The trace header styles written on outbound calls (W3C and B3 multi-header); every
    /// style is read.
    pub propagation: PropagationSet,
    /// Whether the server stack gives a request without `x-request-id` a new one (true).
    pub generate_request_id: bool,
    /// Request headers carried from an inbound request to every outbound call made while
    /// handling it, besides trace context and `x-request-id` (lowercase names, such as
    /// `end-user`).
    pub propagate_headers: Vec<String>,
    /// Cookies carried the same way (such as Bookinfo's `user`), sent as one `cookie` header.
    pub propagate_cookies: Vec<String>,
    /// The client stack's access log: off unless set.
    pub client_access_log: Option<AccessLogConfig>,
    /// The server stack's access log: off unless set.
    pub server_access_log: Option<AccessLogConfig>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            metrics: true,
            cluster_id: DEFAULT_CLUSTER_ID.to_owned(),
            tracing: true,
            propagation: PropagationSet::default(),
            generate_request_id: true,
            propagate_headers: Vec::new(),
            propagate_cookies: Vec::new(),
            client_access_log: None,
            server_access_log: None,
        }
    }
}

/// Where and how one stack writes its access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// The line format.
    pub format: AccessLogFormat,
    /// Where lines go.
    pub output: AccessLogOutput,
}

/// An access-log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// Istio's default text format (`[start] "METHOD path protocol" code flags ...`).
    #[default]
    Text,
    /// One JSON object per line, with Istio's JSON field names.
    Json,
}

/// Where access-log lines go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AccessLogOutput {
    /// The process's standard output (Istio's `/dev/stdout`).
    #[default]
    Stdout,
    /// A file, appended to (created when missing).
    File(PathBuf),
}
