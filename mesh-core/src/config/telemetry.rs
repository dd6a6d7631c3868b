//! How a workload reports itself: Istio's standard metrics, trace propagation, the headers
//! carried from inbound requests to outbound calls, and access logs.

use std::path::PathBuf;

use super::ConfigError;
use crate::telemetry::trace_context::TRACE_HEADERS;
use crate::telemetry::{PEER_METADATA_HEADER, Propagation, PropagationSet, REQUEST_ID_HEADER};

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

/// Where and how one stack writes its access log; the default is Istio's text lines on
/// standard output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

impl AccessLogFormat {
    /// The format named `text` or `json` (in any case), as config files and
    /// `MESH_ACCESS_LOG_FORMAT` write it.
    pub fn from_name(name: &str) -> Option<AccessLogFormat> {
        if name.eq_ignore_ascii_case("text") {
            Some(AccessLogFormat::Text)
        } else if name.eq_ignore_ascii_case("json") {
            Some(AccessLogFormat::Json)
        } else {
            None
        }
    }
}

impl AccessLogOutput {
    /// The output a path names: `-` and `/dev/stdout` (Istio's `accessLogFile`) are
    /// standard output, anything else a file.
    pub fn from_path(path: &str) -> AccessLogOutput {
        match path {
            "-" | STDOUT => AccessLogOutput::Stdout,
            file => AccessLogOutput::File(PathBuf::from(file)),
        }
    }
}

/// The path Istio writes for standard output.
const STDOUT: &str = "/dev/stdout";

/// The names `OTEL_PROPAGATORS` may hold that mesh does not write (OpenTelemetry's other
/// known propagators): ignored with a warning in the environment, errors in a file.
pub(crate) const OTHER_OTEL_PROPAGATORS: [&str; 4] = ["baggage", "jaeger", "xray", "ottrace"];

/// Parses one propagator name as `OTEL_PROPAGATORS` writes it.
pub(crate) fn propagator(name: &str) -> Result<Propagation, String> {
    Propagation::from_otel_name(name).ok_or_else(|| {
        if OTHER_OTEL_PROPAGATORS.contains(&name) {
            format!(
                "the {name} propagator is not implemented; expected tracecontext, b3 or b3multi"
            )
        } else {
            "expected tracecontext, b3, b3multi or none".to_owned()
        }
    })
}

/// Parses a list of propagator names (`none` alone is the empty set), giving the set and the
/// names of [`OTHER_OTEL_PROPAGATORS`] that were skipped when `lenient`.
pub(crate) fn propagators<'a>(
    names: impl IntoIterator<Item = &'a str>,
    lenient: bool,
) -> Result<(PropagationSet, Vec<String>), String> {
    let names: Vec<&str> = names.into_iter().map(str::trim).collect();
    if names.contains(&"none") {
        return if names.len() == 1 {
            Ok((PropagationSet::EMPTY, Vec::new()))
        } else {
            Err("none cannot be combined with other propagators".to_owned())
        };
    }
    let mut set = PropagationSet::EMPTY;
    let mut skipped = Vec::new();
    for name in names.into_iter().filter(|n| !n.is_empty()) {
        match propagator(name) {
            Ok(style) => set = set.with(style),
            Err(_) if lenient && OTHER_OTEL_PROPAGATORS.contains(&name) => {
                skipped.push(name.to_owned());
            }
            Err(e) => return Err(format!("`{name}`: {e}")),
        }
    }
    Ok((set, skipped))
}

/// Parses an access-log format name.
pub(crate) fn access_log_format(s: &str) -> Result<AccessLogFormat, String> {
    AccessLogFormat::from_name(s).ok_or_else(|| "expected text or json".to_owned())
}

/// Headers that may not be propagated: hop-by-hop headers, headers that describe one
/// message, and the headers the telemetry layers write themselves.
const NOT_PROPAGATED: [&str; 14] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
    REQUEST_ID_HEADER,
    PEER_METADATA_HEADER,
];

/// A header name that may be propagated: a valid, lowercase HTTP header name that is
/// neither hop-by-hop nor one the telemetry layers write (trace context, `x-request-id`).
pub(crate) fn propagated_header(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err("must be a valid HTTP header name".to_owned());
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("must be lowercase".to_owned());
    }
    if name == "cookie" {
        return Err("cookies are propagated by name: use propagateCookies".to_owned());
    }
    if NOT_PROPAGATED.contains(&name) || name.starts_with(':') {
        return Err("is hop-by-hop or describes one message, and cannot be propagated".to_owned());
    }
    if TRACE_HEADERS.contains(&name) || name == REQUEST_ID_HEADER {
        return Err(
            "is written by the telemetry layers themselves (trace context and x-request-id are always propagated)"
                .to_owned(),
        );
    }
    Ok(())
}

/// A cookie name: an RFC 6265 token.
pub(crate) fn cookie_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.bytes().all(tchar) {
        Ok(())
    } else {
        Err("must be a cookie name (letters, digits and !#$%&'*+-.^_`|~)".to_owned())
    }
}

/// A cluster ID: the value of the `*_cluster` labels, not empty and without control
/// characters.
pub(crate) fn cluster_id(id: &str) -> Result<(), String> {
    if id.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    if id.len() > 253 {
        return Err("must be at most 253 characters".to_owned());
    }
    if id.chars().any(char::is_control) {
        return Err("must not hold control characters".to_owned());
    }
    Ok(())
}

/// Checks the telemetry section; errors name the file keys (`telemetry.propagateHeaders[1]`).
pub(crate) fn validate(t: &TelemetryConfig) -> Result<(), ConfigError> {
    let at = |path: String, value: &str, rule: fn(&str) -> Result<(), String>| {
        rule(value).map_err(|reason| ConfigError::invalid(path, value, reason))
    };
    at("telemetry.clusterId".to_owned(), &t.cluster_id, cluster_id)?;
    for (i, h) in t.propagate_headers.iter().enumerate() {
        at(
            format!("telemetry.propagateHeaders[{i}]"),
            h,
            propagated_header,
        )?;
        if t.propagate_headers[..i].contains(h) {
            return Err(ConfigError::invalid(
                format!("telemetry.propagateHeaders[{i}]"),
                h,
                "is listed twice",
            ));
        }
    }
    for (i, c) in t.propagate_cookies.iter().enumerate() {
        at(format!("telemetry.propagateCookies[{i}]"), c, cookie_name)?;
        if t.propagate_cookies[..i].contains(c) {
            return Err(ConfigError::invalid(
                format!("telemetry.propagateCookies[{i}]"),
                c,
                "is listed twice",
            ));
        }
    }
    for (key, log) in [
        ("clientAccessLog", &t.client_access_log),
        ("serverAccessLog", &t.server_access_log),
    ] {
        if let Some(AccessLogConfig {
            output: AccessLogOutput::File(path),
            ..
        }) = log
            && path.as_os_str().is_empty()
        {
            return Err(ConfigError::invalid(
                format!("telemetry.{key}.path"),
                "",
                "must not be empty (use /dev/stdout or - for standard output)",
            ));
        }
    }
    Ok(())
}
